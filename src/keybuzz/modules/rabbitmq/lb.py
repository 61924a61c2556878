"""HAProxy for RabbitMQ on the haproxy servers: round robin over the nodes that are healthy members.

An AMQP banner check (the seed's) says a port answers, not that the node serves: a node paused in
a minority (pause_minority), still booting or under a memory/disk alarm must not get clients. Each
server's check asks the node's own management API (`/api/health/checks/local-alarms` on 15672,
as the monitoring user): it answers 200 only while the node runs the rabbit application (a
paused or booting node has no management listener) and has no local alarm. The quorum queues
handle their leaders: a client on any node reaches every queue.
"""

from __future__ import annotations

from keybuzz.haproxy import Section, render_config
from keybuzz.modules.rabbitmq import layout
from keybuzz.site import Site
from keybuzz.site.servers import Server

BACKEND = "rabbitmq"
HEALTH_URI = "/api/health/checks/local-alarms"
# A node that dies is out within about 2 s, its client sessions cut; a node back comes in after 2 checks.
NODE_CHECK = "default-server inter 1s fastinter 250ms downinter 1s fall 2 rise 2 on-marked-down shutdown-sessions"


def haproxy_sections(site: Site, server: Server) -> list[Section]:
    return [Section("listen", BACKEND, (
        f"bind {server.private_ip}:{layout.AMQP_PORT}",
        "balance roundrobin",
        "option httpchk",
        f"http-check connect port {layout.MANAGEMENT_PORT}",
        f'http-check send meth GET uri {HEALTH_URI} ver HTTP/1.1 hdr Host keybuzz '
        'hdr Authorization "Basic ${RABBITMQ_CHECK_AUTH}"',
        "http-check expect status 200",
        "timeout check 1s",
        # A LAN connect takes milliseconds: a silent node costs 1 s, then the next node is tried.
        "timeout connect 1s",
        "retries 2",
        "option redispatch 1",
        NODE_CHECK,
        *(f"server {s.hostname} {s.private_ip}:{layout.AMQP_PORT} check" for s in layout.nodes(site)),
    ))]


def haproxy_cfg(site: Site, server: Server) -> str:
    """This haproxy server's file: every listener on its private address."""
    return render_config(haproxy_sections(site, server), address=str(server.private_ip),
                         stats_port=layout.stats_port(site))
