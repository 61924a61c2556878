"""HAProxy for Redis on the haproxy servers: only the current master is UP, never round robin.

A plain `role:master` check is not enough: a node that comes back from a reboot or a
partition answers role:master for seconds, and HAProxy would send writes to two masters.
So a node is UP only when both agree:

- the Sentinels: backend `redis_votes_<node>` asks every Sentinel for the master
  (`SENTINEL get-master-addr-by-name`); each Sentinel naming this node is one UP vote;
- the node itself: the check of server <node> in backend `redis` (AUTH, a write of the check key
  then `WAIT 1`, INFO replication, role:master, QUIT) goes through a loopback "gate" frontend
  that accepts connections only while a majority of the votes are UP (`nbsrv(...) ge quorum`)
  and no other node is UP in backend `redis` (a new master comes UP only after the old one went
  DOWN).
- a replica confirms writes now: `WAIT 1 REPLICATION_WAIT_MS` after the check's own write must
  answer at least one replica. A master cut from its replicas (while HAProxy and the clients still
  reach it) fails this at its next check and goes DOWN within about a second, its client sessions
  cut, instead of acknowledging writes that the failover then discards (min-replicas-max-lag only
  stops it after seconds).

A powered-off Sentinel host only removes one vote: the real master keeps its majority and
stays UP. HAProxy reads the passwords from its environment (the 0600 env file), so
haproxy.cfg holds no secret. This replaces the seed's redis-update-master.sh cron.
"""

from __future__ import annotations

from keybuzz.haproxy import Section, one_up_rule, render_config
from keybuzz.modules.redis import layout
from keybuzz.site import Site
from keybuzz.site.servers import Server

BACKEND = "redis"
FRONTEND = "redis"
MASTER_CHECK = ("default-server inter 250ms fastinter 100ms downinter 100ms fall 2 rise 2 "
                "on-marked-down shutdown-sessions")
CHECK_KEY = "keybuzz:replication-check"  # written by every master check, so WAIT has something to wait for
REPLICATION_WAIT_MS = 100
# Sentinel has no QUIT ("unknown command"): a vote check whose answer names another node would
# wait for the whole check timeout. The short timeout makes a DOWN vote re-check every ~0.5 s;
# `fall 2` keeps one slow answer from costing the master a vote.
VOTE_CHECK = "default-server inter 500ms fastinter 250ms downinter 250ms fall 2 rise 1"
VOTE_TIMEOUT = "timeout check 300ms"


def votes_backend(hostname: str) -> str:
    return f"redis_votes_{hostname}"


def gate_port(index: int) -> int:
    return layout.GATE_PORT_BASE + index + 1


def haproxy_sections(site: Site, server: Server) -> list[Section]:
    """This haproxy server's: the client frontend on its private address, the gates on 127.0.0.1."""
    nodes = layout.redis_servers(site)
    quorum = layout.quorum(site)
    frontend = Section("frontend", FRONTEND, (
        f"bind {server.private_ip}:{layout.REDIS_PORT}",
        one_up_rule(BACKEND),
        f"default_backend {BACKEND}",
    ))
    master = Section("backend", BACKEND, (
        "balance first",
        "option tcp-check",
        "tcp-check connect",
        'tcp-check send "AUTH ${REDIS_PASSWORD}\\r\\n"',
        "tcp-check expect string +OK",
        # One send, answered in order: the write's +OK, WAIT's count of replicas that confirmed it,
        # INFO, and QUIT (a replica closes at once instead of holding the check open). A replica
        # answers -READONLY, an isolated master :0, a master past min-replicas-max-lag -NOREPLICAS.
        f'tcp-check send "SET {CHECK_KEY} 1\\r\\nWAIT 1 {REPLICATION_WAIT_MS}\\r\\nINFO replication\\r\\nQUIT\\r\\n"',
        'tcp-check expect rstring "[+]OK\\r\\n:[1-9]\\r\\n"',
        "tcp-check expect string role:master",
        "timeout check 1s",
        MASTER_CHECK,
        *(f"server {n.hostname} {n.private_ip}:{layout.REDIS_PORT} check addr 127.0.0.1 port {gate_port(i)}"
          for i, n in enumerate(nodes)),
    ))
    sections = [frontend, master]
    for index, node in enumerate(nodes):
        votes = votes_backend(node.hostname)
        sections.append(Section("frontend", f"redis_gate_{node.hostname}", (
            f"bind 127.0.0.1:{gate_port(index)}",
            # Open on a Sentinel majority, and only while no other node is UP: a new master
            # comes UP after the old one went DOWN, never next to it.
            f"acl sentinels_name_it nbsrv({votes}) ge {quorum}",
            f"acl it_is_up srv_is_up({BACKEND}/{node.hostname})",
            f"acl none_up nbsrv({BACKEND}) eq 0",
            "tcp-request connection reject unless sentinels_name_it it_is_up or sentinels_name_it none_up",
            f"default_backend redis_direct_{node.hostname}",
        )))
        sections.append(Section("backend", f"redis_direct_{node.hostname}", (
            # Only the master check passes here: fail at once, no 1 s turn-around retries
            # that would keep a dead master UP for seconds.
            "retries 0",
            "timeout connect 1s",
            f"server {node.hostname} {node.private_ip}:{layout.REDIS_PORT}",
        )))
        sections.append(Section("backend", votes, (
            "option tcp-check",
            "tcp-check connect",
            'tcp-check send "AUTH ${REDIS_SENTINEL_PASSWORD}\\r\\n"',
            "tcp-check expect string +OK",
            f'tcp-check send "SENTINEL get-master-addr-by-name {layout.MASTER_NAME}\\r\\n"',
            f'tcp-check expect string "\\n{node.private_ip}\\r\\n"',
            VOTE_TIMEOUT,
            VOTE_CHECK,
            *(f"server {s.hostname} {s.private_ip}:{layout.SENTINEL_PORT} check" for s in nodes),
        )))
    return sections


def haproxy_cfg(site: Site, server: Server) -> str:
    return render_config(haproxy_sections(site, server), address=str(server.private_ip),
                         stats_port=layout.stats_port(site))
