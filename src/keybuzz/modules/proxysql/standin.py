"""The lab's stand-in for ProxySQL: HAProxy on the proxysql servers, in front of the Galera nodes.

Same path as production (client -> lb-mariadb:3306 -> proxysql servers:3306 -> one Galera writer).
Each node's check asks its Galera health agent (200 only when Synced in the primary component,
ready, not desynced: a MySQL protocol check would mark a joining or desynced node UP). One writer:
the first maria server is the active one, the others are `backup` in site order, so both proxies
pick the same node; when the active one comes back, `on-marked-up shutdown-backup-sessions` cuts
the sessions on the backup, so two nodes never take writes from one proxy at once. What it does
not do that ProxySQL does: query rules, connection multiplexing, per-user routing.
"""

from __future__ import annotations

from keybuzz.haproxy import Section, render_config
from keybuzz.modules.mariadb import layout as maria_layout
from keybuzz.modules.proxysql import layout
from keybuzz.site import Site
from keybuzz.site.servers import Server

BACKEND = "galera"
NODE_CHECK = ("default-server inter 1s fastinter 250ms downinter 1s fall 2 rise 3 "
              f"port {maria_layout.HEALTH_PORT} on-marked-down shutdown-sessions on-marked-up shutdown-backup-sessions")


def sections(site: Site, server: Server) -> list[Section]:
    nodes = maria_layout.nodes(site)
    servers = [f"server {s.hostname} {s.private_ip}:{maria_layout.MYSQL_PORT} check" + (" backup" if i else "")
               for i, s in enumerate(nodes)]
    return [
        Section("frontend", "mariadb", (f"bind {server.private_ip}:{layout.CLIENT_PORT}",
                                        f"default_backend {BACKEND}")),
        Section("backend", BACKEND, ("option httpchk GET /", "http-check expect status 200", "timeout check 1s",
                                     "timeout connect 1s", NODE_CHECK, *servers)),
    ]


LABEL = ("# Lab stand-in for ProxySQL (proxysql.engine: haproxy): no ProxySQL query rules, multiplexing or\n"
         "# per-user routing. Production runs ProxySQL 2.6 (proxysql.engine: proxysql).\n")


def haproxy_cfg(site: Site, server: Server) -> str:
    """This proxysql server's file: every listener on its private address."""
    return LABEL + render_config(sections(site, server), address=str(server.private_ip),
                                 stats_port=layout.stats_port(site))
