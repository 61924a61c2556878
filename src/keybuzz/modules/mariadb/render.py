"""render(site): the files and containers of the MariaDB Galera module per node. Pure, no I/O.

Two containers per node, both `--network host`: `mariadb` (mariadbd through keybuzz-galera.sh, as
the image's mysql user from the start) and `galera-health` (the health agent on port 9200, as an
unprivileged user, the monitoring password from its 0600 env file).
"""

from __future__ import annotations

from pathlib import Path

from keybuzz.containers import ContainerSpec, Mount
from keybuzz.modules.mariadb import bootscript, conf, layout
from keybuzz.render import DirSpec, FileSpec, HostPlan, Plans
from keybuzz.site import Site
from keybuzz.site.servers import Server

STOP_TIMEOUT_S = 120  # a clean stop writes grastate.dat with the node's seqno: never cut it short
AGENT_SOURCE = Path(__file__).with_name("galera_health.py")
AGENT_USER = "nobody"


def health_env(site: Site, server: Server) -> str:
    creds = site.credentials[layout.MODULE]
    return (f"HEALTH_BIND={server.private_ip}\nHEALTH_PORT={layout.HEALTH_PORT}\nMYSQL_HOST={server.private_ip}\n"
            f"MYSQL_PORT={layout.MYSQL_PORT}\nMARIADB_MONITOR_USER={creds['MARIADB_MONITOR_USER']}\n"
            f"MARIADB_MONITOR_PASSWORD={creds['MARIADB_MONITOR_PASSWORD']}\n")


def _node(site: Site, server: Server) -> HostPlan:
    paths = layout.host_paths(site)
    owner = layout.image_user(site)
    server_spec = ContainerSpec(
        name=layout.SERVER_CONTAINER, image=site.image(layout.MODULE), module=layout.MODULE,
        entrypoint="/bin/sh", command=(layout.C_SCRIPT, "start"), user=layout.IMAGE_USER, hostname=server.hostname,
        mounts=(Mount(paths.conf, layout.C_CONF_DIR, read_only=True), Mount(paths.data, layout.C_DATA_DIR)),
        stop_timeout_s=STOP_TIMEOUT_S,
        restart_on=(paths.my_cnf, paths.secrets_cnf, paths.script),
    )
    agent_spec = ContainerSpec(
        name=layout.HEALTH_CONTAINER, image=site.image("galera-health"), module=layout.MODULE,
        entrypoint="python3", command=(layout.C_AGENT,), user=AGENT_USER, env_file=paths.health_env,
        mounts=(Mount(paths.conf, layout.C_CONF_DIR, read_only=True),), stop_timeout_s=5,
        restart_on=(paths.agent,),
    )
    return HostPlan(server.hostname, directories=[
        DirSpec(paths.conf, 0o755),
        DirSpec(paths.secrets, 0o700),
        DirSpec(paths.data, 0o750, owner=owner, data=True),
    ], files=[
        FileSpec(paths.my_cnf, conf.my_cnf(site, server)),
        FileSpec(paths.secrets_cnf, conf.secrets_cnf(site), mode=0o600, owner=owner, secret=True),
        FileSpec(paths.script, bootscript.script(), mode=0o755),
        FileSpec(paths.agent, AGENT_SOURCE.read_text()),
        FileSpec(paths.health_env, health_env(site, server), secret=True),
    ], containers=[server_spec, agent_spec])


def render(site: Site) -> Plans:
    return {s.hostname: _node(site, s) for s in layout.nodes(site)}
