"""keybuzz-galera.sh: the MariaDB container's entrypoint, rendered once for every node.

`start` (the container's command): mariadbd with the rendered my.cnf. It bootstraps a new primary
component (`--wsrep-new-cluster`) only when deploy left its bootstrap mark in the data folder: for
a new cluster on the first node, or after a whole-cluster stop on the node deploy found to have the
most advanced state. Never by itself: a node that guesses can start a second primary component or
throw away committed transactions (the seed's blind `safe_to_bootstrap: 0 -> 1`). After a power
loss of every node nothing has to guess: each node kept the last primary view (`pc.recovery`,
gvwstate.dat) and they form it again when all its members are back.

`position`: the node's last committed position, `uuid:seqno`: from grastate.dat after a clean
stop, from `mariadbd --wsrep-recover` after a crash. Run by deploy in a one-off container while
the node is stopped.

Runs as the image's mysql user; no secret in the environment or argv.
"""

from __future__ import annotations

from keybuzz.modules.mariadb import layout

MARK = "keybuzz-bootstrap"

SCRIPT = r"""#!/bin/sh
# Rendered by keybuzz: edits are overwritten on the next install.
set -eu
DATA=__DATA__
CNF=__CNF__
log() { echo "keybuzz-galera: $*" >&2; }

server() {
    for name in mariadbd mysqld; do
        if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return 0; fi
    done
    for path in /usr/sbin/mariadbd /usr/sbin/mysqld; do
        if [ -x "$path" ]; then echo "$path"; return 0; fi
    done
    log "no mariadbd in this image"; exit 1
}

install_db() {
    for name in mariadb-install-db mysql_install_db; do
        if command -v "$name" >/dev/null 2>&1; then
            "$name" --defaults-file="$CNF" --datadir="$DATA" --auth-root-authentication-method=socket \
                --skip-test-db >&2
            return 0
        fi
    done
    log "no mariadb-install-db in this image"; exit 1
}

start() {
    if [ -f "$DATA/__MARK__" ]; then
        rm -f "$DATA/__MARK__"
        if [ ! -d "$DATA/mysql" ]; then
            log "new cluster: initialising the data folder"
            install_db
        fi
        if [ -f "$DATA/grastate.dat" ]; then
            sed -i 's/^safe_to_bootstrap: 0/safe_to_bootstrap: 1/' "$DATA/grastate.dat"
        fi
        log "bootstrapping a new primary component from this node (deploy's decision)"
        exec "$(server)" --defaults-file="$CNF" --wsrep-new-cluster
    fi
    exec "$(server)" --defaults-file="$CNF"
}

position() {
    uuid=$(sed -n 's/^uuid:[[:space:]]*//p' "$DATA/grastate.dat" 2>/dev/null || true)
    seqno=$(sed -n 's/^seqno:[[:space:]]*//p' "$DATA/grastate.dat" 2>/dev/null || true)
    if [ -n "$uuid" ] && [ -n "$seqno" ] && [ "$seqno" != "-1" ]; then
        echo "position $uuid:$seqno grastate"
        return 0
    fi
    if [ ! -d "$DATA/mysql" ]; then
        echo "position none empty"
        return 0
    fi
    "$(server)" --defaults-file="$CNF" --wsrep-recover --log-error=/tmp/wsrep-recover.log >/dev/null 2>&1 || true
    found=$(sed -n 's/.*WSREP: Recovered position:[[:space:]]*//p' /tmp/wsrep-recover.log | tail -n 1)
    if [ -z "$found" ]; then
        log "wsrep-recover found no position:"
        tail -n 20 /tmp/wsrep-recover.log >&2 || true
        exit 1
    fi
    echo "position $found recovered"
}

case "${1:-start}" in
    start) start ;;
    position) position ;;
    *) log "unknown command ${1}"; exit 2 ;;
esac
"""


def script() -> str:
    return (SCRIPT.replace("__DATA__", layout.C_DATA_DIR).replace("__CNF__", layout.C_MY_CNF)
            .replace("__MARK__", MARK))


def parse_position(output: str) -> tuple[str, int] | None:
    """(cluster uuid, seqno) from `keybuzz-galera.sh position`; None for an empty data folder."""
    line = next((ln for ln in output.splitlines() if ln.startswith("position ")), "")
    parts = line.split()
    if len(parts) < 2:
        raise ValueError(f"no position in the output: {output.strip()[-200:]!r}")
    if parts[1] == "none":
        return None
    uuid, _, seqno = parts[1].rpartition(":")
    if not uuid or not seqno.lstrip("-").isdigit():
        raise ValueError(f"unreadable position {parts[1]!r}")
    return uuid, int(seqno)
