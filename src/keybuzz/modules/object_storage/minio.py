"""MinIO on one storage server, as the definitive design B asks: the pinned release, distributed over the
storage servers through MINIO_VOLUMES, root credentials from credentials/minio.env in a 0600 env file
(never `-e` on the command line), the console on its own port, both on the server's private address only
(MinIO's default is every interface). Pure.

MinIO cannot run on this machine (no image or binary reachable) and is not exercised by keybuzz's lab:
its render is unit-tested by parsing it, `validate` says which checks cannot run. Its community edition
stopped publishing images in October 2025 and was archived in 2026: docs/object_storage.md gives the way
out (backend: seaweedfs).
"""

from __future__ import annotations

from keybuzz.containers import ContainerSpec, Mount
from keybuzz.modules.object_storage import layout
from keybuzz.render import DirSpec, FileSpec, HostPlan
from keybuzz.site import Site
from keybuzz.site.servers import Server


def volumes(site: Site) -> str:
    """MINIO_VOLUMES: every server's drive, by its DNS name when servers.tsv gives one (design B: minio-0N.<domain>)."""
    return " ".join(f"http://{s.fqdn or s.private_ip}:{layout.MINIO_PORT}{layout.C_DATA}"
                    for s in layout.storage_servers(site))


def env_file(site: Site) -> str:
    creds = site.credentials["minio"]
    return (f"MINIO_ROOT_USER={creds['MINIO_ROOT_USER']}\n"
            f"MINIO_ROOT_PASSWORD={creds['MINIO_ROOT_PASSWORD']}\n"
            f"MINIO_VOLUMES={volumes(site)}\n")


def container(site: Site, server: Server) -> ContainerSpec:
    paths = layout.host_paths(site)
    console = layout.settings(site).minio.console_port
    ip = server.private_ip
    return ContainerSpec(name=layout.MINIO_CONTAINER, image=site.image("minio"), module=layout.MODULE,
                         command=("server", "--address", f"{ip}:{layout.MINIO_PORT}",
                                  "--console-address", f"{ip}:{console}"),
                         env_file=paths.minio_env, mounts=(Mount(paths.data, layout.C_DATA),))


def node_plan(site: Site, server: Server) -> HostPlan:
    paths = layout.host_paths(site)
    return HostPlan(
        hostname=server.hostname,
        directories=[DirSpec(paths.data, 0o700, data=True), DirSpec(paths.secrets, 0o700)],
        files=[FileSpec(paths.minio_env, env_file(site), secret=True)],
        containers=[container(site, server)],
    )
