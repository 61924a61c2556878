"""redis.conf and sentinel.conf as rendered (no secret: passwords are added in the container
from the 0600 env file), and a tiny parser of Redis's directive format for checks and tests."""

from __future__ import annotations

import shlex

from keybuzz.modules.redis import layout
from keybuzz.modules.redis.settings import SentinelTuning
from keybuzz.site import Site
from keybuzz.site.servers import Server

# The seed's persistence and eviction settings.
SAVE_POINTS: tuple[tuple[int, int], ...] = ((900, 1), (300, 10))
MAXMEMORY_POLICY = "allkeys-lru"


def redis_conf(site: Site, server: Server) -> str:
    """Static settings of one node. The role (replicaof) is not here: the boot guard decides it
    at every start from the Sentinels' view, and Sentinel rewrites it while the node runs."""
    ip = server.private_ip
    sentinel = site.settings(SentinelTuning)
    lines = [
        f"# Rendered by keybuzz for {server.hostname}: edits are overwritten on the next install.",
        "# requirepass/masterauth and replicaof are added at start by keybuzz-redis.sh.",
        f"bind {ip} 127.0.0.1",
        f"port {layout.REDIS_PORT}",
        "protected-mode yes",
        "daemonize no",
        'logfile ""',
        f"dir {layout.C_SERVER_DIR}",
        "appendonly yes",
        "appendfsync everysec",
        *(f"save {seconds} {changes}" for seconds, changes in SAVE_POINTS),
        f"maxmemory-policy {MAXMEMORY_POLICY}",
        f"replica-announce-ip {ip}",
        f"replica-announce-port {layout.REDIS_PORT}",
        "replica-read-only yes",
        # A replica that needs a full sync (rejoin after a failover or a restart) gets it at
        # once instead of after the default 5 s wait for other replicas to share the transfer.
        "repl-diskless-sync yes",
        "repl-diskless-sync-delay 0",
        # A master cut off from every replica stops accepting writes after max-lag seconds:
        # bounds what a partitioned master can acknowledge and then lose (docs/redis.md).
        f"min-replicas-to-write {sentinel.min_replicas_to_write}",
        f"min-replicas-max-lag {sentinel.min_replicas_max_lag_s}",
        "",
    ]
    return "\n".join(lines)


def sentinel_conf(site: Site, server: Server) -> str:
    """Sentinel's first configuration. Sentinel owns the file after its first start (it writes
    its state there); keybuzz-redis.sh copies this template only when that state is absent."""
    ip = server.private_ip
    tuning = site.settings(SentinelTuning)
    name = layout.MASTER_NAME
    master = layout.initial_master(site).private_ip
    lines = [
        f"# Rendered by keybuzz for {server.hostname}: copied to the data dir on first start only.",
        "# requirepass, sentinel sentinel-pass and sentinel auth-pass are added at that moment.",
        f"port {layout.SENTINEL_PORT}",
        f"bind {ip} 127.0.0.1",
        "protected-mode yes",
        "daemonize no",
        'logfile ""',
        f"dir {layout.C_SENTINEL_DIR}",
        f"sentinel announce-ip {ip}",
        f"sentinel announce-port {layout.SENTINEL_PORT}",
        "sentinel resolve-hostnames no",
        f"sentinel monitor {name} {master} {layout.REDIS_PORT} {layout.quorum(site)}",
        f"sentinel down-after-milliseconds {name} {tuning.down_after_ms}",
        f"sentinel failover-timeout {name} {tuning.failover_timeout_ms}",
        f"sentinel parallel-syncs {name} 1",
        "",
    ]
    return "\n".join(lines)


def parse_directives(text: str) -> list[list[str]]:
    """Every directive line as its words (Redis quoting), comments and blank lines dropped."""
    directives = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            directives.append(shlex.split(line))
    return directives


def directive(text: str, *name: str) -> list[list[str]]:
    """The arguments of every directive whose first words are `name` (e.g. "sentinel", "monitor")."""
    size = len(name)
    return [words[size:] for words in parse_directives(text)
            if [w.lower() for w in words[:size]] == [n.lower() for n in name]]
