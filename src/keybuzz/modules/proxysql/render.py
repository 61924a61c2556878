"""render(site): the proxysql servers' files and container. Pure, no I/O.

engine `proxysql` (production): ProxySQL 2.6 with the rendered proxysql.cnf, started with
`--initial` so the file is the whole truth at every start (no drift kept in proxysql.db).
engine `haproxy` (the lab's stand-in): HAProxy with the Galera health agents' checks.
"""

from __future__ import annotations

from keybuzz import haproxy
from keybuzz.containers import ContainerSpec, Mount
from keybuzz.modules.proxysql import conf, layout, standin
from keybuzz.modules.proxysql.settings import ProxysqlSettings
from keybuzz.render import DirSpec, FileSpec, HostPlan, Plans
from keybuzz.site import Site
from keybuzz.site.servers import Server


def _proxysql(site: Site, server: Server) -> HostPlan:
    paths = layout.host_paths(site)
    spec = ContainerSpec(
        name=layout.PROXYSQL_CONTAINER, image=site.image(layout.MODULE), module=layout.MODULE,
        command=("proxysql", "-f", "--initial", "-c", layout.C_CONF, "-D", layout.C_DATA_DIR),
        mounts=(Mount(paths.proxysql_cnf, layout.C_CONF, read_only=True),
                               Mount(paths.admin_cnf, "/root/.my.cnf", read_only=True),
                               Mount(paths.data, layout.C_DATA_DIR)),
        restart_on=(paths.proxysql_cnf,),
    )
    return HostPlan(server.hostname, directories=[DirSpec(paths.conf, 0o700), DirSpec(paths.data, 0o700, data=True)],
                    files=[FileSpec(paths.proxysql_cnf, conf.proxysql_cnf(site, server), secret=True),
                           FileSpec(paths.admin_cnf, conf.admin_client_cnf(site), secret=True)],
                    containers=[spec])


def _standin(site: Site, server: Server) -> HostPlan:
    paths = layout.host_paths(site)
    spec = haproxy.container(layout.STANDIN_CONTAINER, layout.MODULE, site.image("haproxy"), paths.haproxy_cfg)
    return HostPlan(server.hostname, directories=[DirSpec(paths.conf, 0o755)],
                    files=[FileSpec(paths.haproxy_cfg, standin.haproxy_cfg(site, server))], containers=[spec])


def render(site: Site) -> Plans:
    build = _standin if site.settings(ProxysqlSettings).engine == "haproxy" else _proxysql
    return {s.hostname: build(site, s) for s in layout.proxies(site)}
