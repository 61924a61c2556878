"""keybuzz-redis.sh: the containers' entrypoint, rendered per host.

`server`: the boot guard. Before redis-server starts it asks every Sentinel which node is the
master (`SENTINEL get-master-addr-by-name`) and starts as a replica of that node when it is
not this one: a rebooted former master never comes back as a second master (measured
without it: two masters behind HAProxy for ~9 s, 44 acknowledged writes lost). When no
Sentinel answers (first install, whole cluster cold start), the role this node had when it
stopped is kept: the replicaof line Sentinel last wrote with CONFIG REWRITE.

`sentinel`: writes sentinel.conf into the data dir on first start only (from the rendered
template, monitoring the master the other Sentinels know); Sentinel owns the file afterwards,
except for the metrics exporter's ACL user line, replaced at every start: a changed ACL or
password reaches a running cluster with the rolling restart a changed script causes.

Both give the exporter's user only the statistics it reads (INFO, SLOWLOG LEN, LATENCY, SENTINEL
MASTERS ...): no key, no write, no failover, and no CONFIG GET (it answers requirepass and
masterauth in clear) nor SLOWLOG GET (it holds the arguments of slow commands: data).

Both run as root just long enough to write 0600 files from the env file, then drop to the
image's redis user (su-exec in the official image, setpriv in Debian).
"""

from __future__ import annotations

import shlex

from keybuzz.modules.redis import layout
from keybuzz.site import Site
from keybuzz.site.servers import Server

BODY = r"""
set -eu
umask 077
: "${REDIS_PASSWORD:?REDIS_PASSWORD missing from the env file}"
: "${REDIS_SENTINEL_PASSWORD:?REDIS_SENTINEL_PASSWORD missing from the env file}"
: "${REDIS_MONITOR_PASSWORD:?REDIS_MONITOR_PASSWORD missing from the env file}"

log() { echo "keybuzz-redis: $*" >&2; }

# One line per Sentinel that answers: the master's IP as it sees it (1 s bound per Sentinel).
ask_sentinels() {
    for s in $SENTINELS; do
        REDISCLI_AUTH="$REDIS_SENTINEL_PASSWORD" timeout 1 redis-cli -h "$s" -p "$SENTINEL_PORT" \
            SENTINEL get-master-addr-by-name "$MASTER_NAME" 2>/dev/null | head -n 1 || true
    done | grep -E '^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$' || true
}

# The master most Sentinels name; on a tie another node wins over this one (never two masters).
sentinels_master() {
    tries=0
    while [ "$tries" -lt "$GUARD_TRIES" ]; do
        answers=$(ask_sentinels)
        if [ -n "$answers" ]; then
            echo "$answers" | sort | uniq -c | awk -v self="$SELF_IP" '
                { n = $1; ip = $2; other = (ip != self) }
                n > best || (n == best && other) { best = n; pick = ip }
                END { print pick }'
            return 0
        fi
        tries=$((tries + 1))
        sleep 1
    done
    return 1
}

# The role this node had when it stopped: the replicaof line Sentinel last wrote, if any.
persisted_master() {
    if [ -f "$DATA/redis.conf" ]; then
        line=$(grep -E '^(replicaof|slaveof) ' "$DATA/redis.conf" | tail -n 1 || true)
        if [ -n "$line" ]; then echo "$line" | awk '{ print $2 }'; else echo "$SELF_IP"; fi
    else
        echo "$INITIAL_MASTER"
    fi
}

# A new 0600 file next to $1, made by mktemp (never an existing name or a link planted in the data
# dir, which the redis user owns); renamed over $1 once written.
fresh_file() { mktemp "$1.XXXXXX"; }

# Own the process's folder, drop root, exec: redis-server runs as the image's redis user.
as_redis() {
    find "$DATA" \! -user redis -exec chown redis:redis '{}' +
    unset REDIS_PASSWORD REDIS_SENTINEL_PASSWORD REDIS_MONITOR_PASSWORD
    if command -v su-exec >/dev/null 2>&1; then exec su-exec redis "$@"; fi
    if command -v setpriv >/dev/null 2>&1; then exec setpriv --reuid=redis --regid=redis --init-groups "$@"; fi
    exec runuser -u redis -- "$@"
}

start_server() {
    if master=$(sentinels_master); then
        log "sentinels name $master as the master"
    else
        master=$(persisted_master)
        log "no sentinel answered; keeping the last known master $master"
    fi
    new=$(fresh_file "$DATA/redis.conf")
    {
        cat "$CONF/redis.conf"
        echo "requirepass $REDIS_PASSWORD"
        echo "masterauth $REDIS_PASSWORD"
        echo "user $MONITOR_USER on >$REDIS_MONITOR_PASSWORD $SERVER_MONITOR_ACL"
        if [ "$master" != "$SELF_IP" ]; then echo "replicaof $master $REDIS_PORT"; fi
    } > "$new"
    mv -f "$new" "$DATA/redis.conf"
    if [ "$master" = "$SELF_IP" ]; then log "starting as master"; else log "starting as replica of $master"; fi
    as_redis redis-server "$DATA/redis.conf"
}

start_sentinel() {
    if [ ! -s "$DATA/sentinel.conf" ]; then
        master=$(sentinels_master) || master=$INITIAL_MASTER
        new=$(fresh_file "$DATA/sentinel.conf")
        {
            sed -e "s/^sentinel monitor $MASTER_NAME [^ ]* /sentinel monitor $MASTER_NAME $master /" \
                "$CONF/sentinel.conf"
            echo "requirepass $REDIS_SENTINEL_PASSWORD"
            echo "sentinel sentinel-pass $REDIS_SENTINEL_PASSWORD"
            echo "sentinel auth-pass $MASTER_NAME $REDIS_PASSWORD"
        } > "$new"
        mv -f "$new" "$DATA/sentinel.conf"
        log "first start: sentinel.conf written, monitoring $master"
    fi
    # The metrics user's line (as Sentinel rewrote it, or absent) gives way to the current one.
    new=$(fresh_file "$DATA/sentinel.conf")
    {
        awk -v user="$MONITOR_USER" '!($1 == "user" && $2 == user)' "$DATA/sentinel.conf"
        echo "user $MONITOR_USER on >$REDIS_MONITOR_PASSWORD $SENTINEL_MONITOR_ACL"
    } > "$new"
    mv -f "$new" "$DATA/sentinel.conf"
    as_redis redis-server "$DATA/sentinel.conf" --sentinel
}

case "${1:-}" in
    server) DATA=$SERVER_DIR; mkdir -p "$DATA"; start_server ;;
    sentinel) DATA=$SENTINEL_DIR; mkdir -p "$DATA"; start_sentinel ;;
    *) echo "usage: $0 server|sentinel" >&2; exit 2 ;;
esac
"""

# What redis_exporter reads, and nothing else (no key pattern: no data is readable). It runs with
# --config-command=- (observability.py): CONFIG GET * would answer requirepass and masterauth.
# Its SLOWLOG GET is refused (one grouped entry in ACL LOG): slow commands' arguments are data.
SERVER_MONITOR_ACL = "-@all +ping +info +client|setname +slowlog|len +latency|latest +latency|histogram"
SENTINEL_MONITOR_ACL = ("-@all +ping +info +client|setname +sentinel|masters +sentinel|ckquorum "
                        "+sentinel|sentinels +sentinel|slaves")
# Sentinel queries per start before falling back to the persisted role (1 s apart).
GUARD_TRIES = 3


def script(site: Site, server: Server) -> str:
    sentinels = " ".join(str(s.private_ip) for s in layout.redis_servers(site))
    settings = {
        "SELF_IP": str(server.private_ip),
        "SENTINELS": sentinels,
        "INITIAL_MASTER": str(layout.initial_master(site).private_ip),
        "MASTER_NAME": layout.MASTER_NAME,
        "REDIS_PORT": str(layout.REDIS_PORT),
        "SENTINEL_PORT": str(layout.SENTINEL_PORT),
        "GUARD_TRIES": str(GUARD_TRIES),
        "CONF": layout.C_CONF_DIR,
        "SERVER_DIR": layout.C_SERVER_DIR,
        "SENTINEL_DIR": layout.C_SENTINEL_DIR,
        "MONITOR_USER": site.secret("redis", "REDIS_MONITOR_USER"),
        "SERVER_MONITOR_ACL": SERVER_MONITOR_ACL,
        "SENTINEL_MONITOR_ACL": SENTINEL_MONITOR_ACL,
    }
    head = ["#!/bin/sh", f"# Rendered by keybuzz for {server.hostname}: edits are overwritten on the next install."]
    head += [f"{key}={shlex.quote(value)}" for key, value in settings.items()]
    return "\n".join(head) + "\n" + BODY.lstrip("\n")
