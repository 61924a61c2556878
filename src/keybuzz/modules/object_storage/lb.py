"""The S3 endpoint on the haproxy servers: every storage server's gateway, round robin, health-checked.

The seed sent every client to minio-01 alone (a single point of failure). S3 has no primary: every
gateway serves every bucket, so every healthy one is UP. A SeaweedFS node is healthy when its gateway
answers /healthz and its master has a raft leader (/cluster/healthz: 503 on a node cut from the other
masters, whose filer would serve stale metadata). A new connection that cannot reach a server goes to
another (redispatch); the sessions of a server marked DOWN are cut so clients reconnect at once.
"""

from __future__ import annotations

from keybuzz.haproxy import Section, render_config
from keybuzz.modules.object_storage import layout
from keybuzz.site import Site
from keybuzz.site.servers import Server

DEFAULT_SERVER = ("default-server inter 1s fastinter 250ms downinter 500ms fall 2 rise 2 "
                  "on-marked-down shutdown-sessions")


def health_check(site: Site) -> tuple[str, ...]:
    if layout.settings(site).backend == "minio":
        return ("option httpchk GET /minio/health/live", "http-check expect status 200")
    return ("option httpchk",
            f"http-check connect port {layout.S3_PORT}",
            "http-check send meth GET uri /healthz",
            "http-check expect status 200",
            f"http-check connect port {layout.MASTER_PORT}",
            "http-check send meth GET uri /cluster/healthz",
            "http-check expect status 200")


def haproxy_sections(site: Site, server: Server) -> list[Section]:
    port = layout.gateway_port(site)
    return [Section("listen", layout.BACKEND, (
        f"bind {server.private_ip}:{layout.settings(site).port}",
        "balance roundrobin",
        "option redispatch",
        "retries 2",
        "timeout connect 1s",
        "timeout check 1s",
        *health_check(site),
        DEFAULT_SERVER,
        *(f"server {s.hostname} {s.private_ip}:{port} check" for s in layout.storage_servers(site)),
    ))]


def haproxy_cfg(site: Site, server: Server) -> str:
    """This haproxy server's file: every listener on its private address."""
    return render_config(haproxy_sections(site, server), address=str(server.private_ip),
                         stats_port=layout.stats_port(site))
