"""render(site): the storage servers' backend (SeaweedFS or MinIO) and the S3 endpoint's HAProxy. Pure."""

from __future__ import annotations

from keybuzz import haproxy
from keybuzz.modules.object_storage import layout, lb, minio, seaweedfs
from keybuzz.render import DirSpec, FileSpec, HostPlan, Plans, merge_plans
from keybuzz.site import Site
from keybuzz.site.servers import Server


def module_roots(site: Site) -> list[DirSpec]:
    """The module's top folders: listed so that cleanup removes them too (kept while they hold data)."""
    return [DirSpec(path, 0o755) for path in dict.fromkeys((site.data_dir(layout.MODULE),
                                                            site.config_dir(layout.MODULE)))]


def lb_plan(site: Site, server: Server) -> HostPlan:
    paths = layout.host_paths(site)
    return HostPlan(
        hostname=server.hostname,
        directories=[*module_roots(site), DirSpec(paths.haproxy, 0o755)],
        files=[FileSpec(paths.haproxy_cfg, lb.haproxy_cfg(site, server))],
        containers=[haproxy.container(layout.HAPROXY_CONTAINER, layout.MODULE, site.image("haproxy"),
                                      paths.haproxy_cfg)],
    )


def node_plan(site: Site, server: Server) -> HostPlan:
    backend = seaweedfs if layout.settings(site).backend == "seaweedfs" else minio
    plan = backend.node_plan(site, server)
    plan.directories[:0] = module_roots(site)
    return plan


def render(site: Site) -> Plans:
    return merge_plans({s.hostname: node_plan(site, s) for s in layout.storage_servers(site)},
                       {s.hostname: lb_plan(site, s) for s in site.with_role("haproxy")})
