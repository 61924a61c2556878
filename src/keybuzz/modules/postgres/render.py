"""render(site) -> Plans: pure. Patroni (+ etcd when chosen) on db servers, HAProxy + PgBouncer
on haproxy servers. Data directories are owned by the image's postgres user (an ImageUser: the
engine reads its uid from the image); PgBouncer's userlist.txt holds the application role's SCRAM
verifier, read from the leader at deploy time (FilledAtDeploy)."""

from __future__ import annotations

from keybuzz.containers import ContainerSpec, Mount
from keybuzz.haproxy import container as haproxy_container
from keybuzz.modules.postgres import layout
from keybuzz.modules.postgres.lb import haproxy_cfg, pgbouncer_ini
from keybuzz.modules.postgres.patroni_config import patroni_env, patroni_yml
from keybuzz.modules.postgres.settings import PatroniTuning
from keybuzz.render import DirSpec, FileSpec, FilledAtDeploy, HostPlan, Plans, merge_plans
from keybuzz.site import Site
from keybuzz.site.servers import Server

USERLIST = FilledAtDeploy("pgbouncer-userlist", "the application role's SCRAM verifier, read from the leader")

# Adds every PostgreSQL bin dir of the image to PATH, whatever its major version: the official
# postgres image keeps its binaries there, and the lab image links the wheel's build there.
PATRONI_START = ('for d in /usr/lib/postgresql/*/bin; do PATH="$d:$PATH"; done; export PATH; '
                 f"exec /opt/patroni/bin/patroni {layout.C_CONFIG}")


def etcd_image(site: Site) -> str:
    """Production pins an `etcd` image; the lab's `patroni` image carries etcd itself."""
    return site.image("etcd") if "etcd" in site.versions.images else site.image("patroni")


def patroni_container(site: Site) -> ContainerSpec:
    paths = layout.host_paths(site)
    mounts = [Mount(paths.data, layout.C_DATA_MOUNT), Mount(paths.wal, layout.C_WAL_MOUNT)]
    if site.settings(PatroniTuning).dcs == "raft":
        mounts.append(Mount(paths.raft, layout.C_RAFT_DIR))
    mounts.append(Mount(paths.config, layout.C_CONFIG_DIR, read_only=True))
    # patroni.yml is not in restart_on: a changed file is applied with POST /reload, never a restart.
    return ContainerSpec(name=layout.PATRONI_CONTAINER, image=site.image("patroni"), module=layout.MODULE,
                         entrypoint="/bin/sh", command=("-c", PATRONI_START), env_file=paths.patroni_env,
                         mounts=tuple(mounts), user=layout.IMAGE_USER)


def etcd_container(site: Site, server: Server) -> ContainerSpec:
    ip = str(server.private_ip)
    cluster = ",".join(f"{s.hostname}=http://{s.private_ip}:{layout.ETCD_PEER_PORT}" for s in site.with_role("db"))
    command = (
        "--name", server.hostname,
        "--data-dir", layout.C_ETCD_DIR,
        "--listen-peer-urls", f"http://{ip}:{layout.ETCD_PEER_PORT}",
        "--initial-advertise-peer-urls", f"http://{ip}:{layout.ETCD_PEER_PORT}",
        "--listen-client-urls", f"http://{ip}:{layout.ETCD_CLIENT_PORT},http://127.0.0.1:{layout.ETCD_CLIENT_PORT}",
        "--advertise-client-urls", f"http://{ip}:{layout.ETCD_CLIENT_PORT}",
        "--initial-cluster", cluster,
        "--initial-cluster-state", "new",
        "--initial-cluster-token", layout.SCOPE,
    )
    return ContainerSpec(name=layout.ETCD_CONTAINER, image=etcd_image(site), module=layout.MODULE,
                         entrypoint="etcd", command=command,
                         mounts=(Mount(layout.host_paths(site).etcd, layout.C_ETCD_DIR),))


def module_roots(site: Site) -> list[DirSpec]:
    """The module's top folders: listed so that cleanup removes them too (kept while they hold data)."""
    roots = dict.fromkeys((site.data_dir(layout.MODULE), site.config_dir(layout.MODULE)))
    return [DirSpec(path, mode=0o755) for path in roots]


def db_plan(site: Site, server: Server) -> HostPlan:
    paths = layout.host_paths(site)
    owner = layout.image_user(site, "patroni")
    plan = HostPlan(server.hostname)
    plan.directories += [
        *module_roots(site),
        DirSpec(paths.data, mode=0o700, owner=owner, data=True),
        DirSpec(paths.wal, mode=0o700, owner=owner, data=True),
        DirSpec(paths.config, mode=0o755),
        DirSpec(paths.secrets, mode=0o700),
    ]
    if site.settings(PatroniTuning).dcs == "raft":
        # DCS state is not service data: cleanup always removes it, or a re-install would wait for
        # a leader that no longer exists. PostgreSQL's own data stays unless --purge-data.
        plan.directories.append(DirSpec(paths.raft, mode=0o700, owner=owner))
    else:
        plan.directories.append(DirSpec(paths.etcd, mode=0o700))
        plan.containers.append(etcd_container(site, server))
    plan.files += [
        FileSpec(paths.patroni_yml, patroni_yml(site, server), mode=0o644),
        FileSpec(paths.patroni_env, patroni_env(site), mode=0o600, secret=True),
    ]
    plan.containers.append(patroni_container(site))
    return plan


def pgbouncer_container(site: Site) -> ContainerSpec:
    paths = layout.host_paths(site)
    return ContainerSpec(name=layout.PGBOUNCER_CONTAINER, image=site.image("pgbouncer"), module=layout.MODULE,
                         entrypoint="pgbouncer", command=(f"{layout.C_PGBOUNCER_DIR}/pgbouncer.ini",),
                         mounts=(Mount(paths.pgbouncer, layout.C_PGBOUNCER_DIR, read_only=True),),
                         user=layout.IMAGE_USER, restart_on=(paths.pgbouncer_ini, paths.userlist))


def lb_plan(site: Site, server: Server) -> HostPlan:
    paths = layout.host_paths(site)
    plan = HostPlan(server.hostname)
    plan.directories += [*module_roots(site), DirSpec(paths.haproxy, mode=0o755),
                         DirSpec(paths.pgbouncer, mode=0o755)]
    plan.files += [FileSpec(paths.haproxy_cfg, haproxy_cfg(site, server)),
                   FileSpec(paths.pgbouncer_ini, pgbouncer_ini(site, server)),
                   FileSpec(paths.userlist, USERLIST, mode=0o600, owner=layout.image_user(site, "pgbouncer"),
                            secret=True)]
    plan.containers += [
        haproxy_container(layout.HAPROXY_CONTAINER, layout.MODULE, site.image("haproxy"), paths.haproxy_cfg),
        pgbouncer_container(site),
    ]
    return plan


def render(site: Site) -> Plans:
    return merge_plans({s.hostname: db_plan(site, s) for s in site.with_role("db")},
                       {s.hostname: lb_plan(site, s) for s in site.with_role("haproxy")})
