"""render(site): the files and containers of the Redis module per host. Pure, no I/O."""

from __future__ import annotations

from dataclasses import replace

from keybuzz import haproxy
from keybuzz.containers import ContainerSpec, Mount
from keybuzz.modules.redis import bootguard, conf, layout, lb
from keybuzz.render import DirSpec, FileSpec, HostPlan, Plans, merge_plans
from keybuzz.site import Site
from keybuzz.site.servers import Server


def env_file(site: Site) -> str:
    """The passwords, for the containers' environment only (0600, never in argv or a config)."""
    return (f"REDIS_PASSWORD={site.secret('redis', 'REDIS_PASSWORD')}\n"
            f"REDIS_SENTINEL_PASSWORD={site.secret('redis', 'REDIS_SENTINEL_PASSWORD')}\n"
            f"REDIS_MONITOR_PASSWORD={site.secret('redis', 'REDIS_MONITOR_PASSWORD')}\n")


def _redis_host(site: Site, server: Server) -> HostPlan:
    paths = layout.host_paths(site)
    image = site.image("redis")
    conf_mount = Mount(paths.conf, layout.C_CONF_DIR, read_only=True)
    data_mount = Mount(paths.data, layout.C_DATA_DIR)
    redis = ContainerSpec(
        name=layout.SERVER_CONTAINER, image=image, module=layout.MODULE,
        entrypoint="/bin/sh", command=(layout.C_SCRIPT, "server"), env_file=paths.env_file,
        mounts=(conf_mount, data_mount),
        restart_on=(paths.redis_conf, paths.script),
    )
    # sentinel.conf is not watched: Sentinel owns its state after the first start, and a
    # changed down-after/failover-timeout is applied with SENTINEL SET by deploy instead.
    sentinel = ContainerSpec(
        name=layout.SENTINEL_CONTAINER, image=image, module=layout.MODULE,
        entrypoint="/bin/sh", command=(layout.C_SCRIPT, "sentinel"), env_file=paths.env_file,
        mounts=(conf_mount, data_mount),
        restart_on=(paths.script,),
    )
    return HostPlan(
        hostname=server.hostname,
        directories=[
            DirSpec(paths.conf, 0o755),
            DirSpec(paths.secrets, 0o700),
            # Root-owned 0755; the entrypoint makes its sub-folder (server/, sentinel/: 0700) and gives it
            # to the image's redis user, whose uid differs per image (999 official, 100 Debian).
            DirSpec(paths.data, 0o755, data=True),
        ],
        files=[
            FileSpec(paths.redis_conf, conf.redis_conf(site, server)),
            FileSpec(paths.sentinel_conf, conf.sentinel_conf(site, server)),
            FileSpec(paths.script, bootguard.script(site, server), mode=0o755),
            FileSpec(paths.env_file, env_file(site), secret=True),
        ],
        containers=[redis, sentinel],
    )


def _haproxy_host(site: Site, server: Server) -> HostPlan:
    paths = layout.host_paths(site)
    spec = haproxy.container(layout.HAPROXY_CONTAINER, layout.MODULE, site.image("haproxy"), paths.haproxy_cfg)
    spec = replace(spec, env_file=paths.env_file)
    return HostPlan(
        hostname=server.hostname,
        directories=[DirSpec(paths.haproxy, 0o755), DirSpec(paths.secrets, 0o700)],
        files=[FileSpec(paths.haproxy_cfg, lb.haproxy_cfg(site, server)),
               FileSpec(paths.env_file, env_file(site), secret=True)],
        containers=[spec],
    )


def render(site: Site) -> Plans:
    return merge_plans({s.hostname: _redis_host(site, s) for s in layout.redis_servers(site)},
                       {s.hostname: _haproxy_host(site, s) for s in site.with_role("haproxy")})
