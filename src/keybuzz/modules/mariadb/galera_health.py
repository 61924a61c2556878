"""The Galera health agent: an HTTP endpoint per node that answers 200 only while the node is a
Synced member of the primary component, ready for queries and not desynced; 503 otherwise, with
the reason. Load balancers check it (a MySQL protocol check marks a joining or desynced node UP);
the boot script asks it whether a peer is in the primary component.

This file is also the program: keybuzz renders it onto each node and runs it with `python3` in its
own container (stdlib + PyMySQL). Environment: HEALTH_BIND, HEALTH_PORT, MYSQL_HOST, MYSQL_PORT,
MARIADB_MONITOR_USER, MARIADB_MONITOR_PASSWORD.
"""

from __future__ import annotations

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

STATUS_SQL = ("SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_local_state', 'wsrep_local_state_comment', "
              "'wsrep_ready', 'wsrep_cluster_status', 'wsrep_cluster_size', 'wsrep_cluster_state_uuid', "
              "'wsrep_last_committed', 'wsrep_connected')")
DESYNC_SQL = "SELECT @@global.wsrep_desync"
SYNCED = "4"


def verdict(status: dict[str, str], desync: str) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) from the node's wsrep status variables and @@wsrep_desync."""
    body: dict[str, Any] = {
        "reachable": True,
        "state": status.get("wsrep_local_state_comment", ""),
        "primary": status.get("wsrep_cluster_status") == "Primary",
        "ready": status.get("wsrep_ready") == "ON",
        "desync": desync in ("1", "ON"),
        "cluster_size": int(status.get("wsrep_cluster_size") or 0),
        "cluster_uuid": status.get("wsrep_cluster_state_uuid", ""),
        "last_committed": int(status.get("wsrep_last_committed") or -1),
    }
    problems = []
    if not body["primary"]:
        problems.append(f"cluster status {status.get('wsrep_cluster_status', 'unknown')}, not Primary")
    if status.get("wsrep_local_state") != SYNCED:
        problems.append(f"state {body['state'] or status.get('wsrep_local_state', 'unknown')}, not Synced")
    if not body["ready"]:
        problems.append("wsrep_ready OFF")
    if body["desync"]:
        problems.append("desynced")
    body["problems"] = problems
    return (503 if problems else 200), body


def probe() -> tuple[int, dict[str, Any]]:
    import pymysql  # only the agent needs it; keybuzz imports this module for verdict() alone

    try:
        connection = pymysql.connect(host=os.environ.get("MYSQL_HOST", "127.0.0.1"),
                                     port=int(os.environ.get("MYSQL_PORT", "3306")),
                                     user=os.environ["MARIADB_MONITOR_USER"],
                                     password=os.environ["MARIADB_MONITOR_PASSWORD"],
                                     connect_timeout=1, read_timeout=1, write_timeout=1)
    except Exception as exc:  # any failure to reach the server is "not healthy", with its text
        return 503, {"reachable": False, "problems": [f"MariaDB unreachable: {type(exc).__name__}: {exc}"]}
    try:
        with connection.cursor() as cursor:
            cursor.execute(STATUS_SQL)
            status = {str(name): str(value) for name, value in cursor.fetchall()}
            cursor.execute(DESYNC_SQL)
            row = cursor.fetchone()
        return verdict(status, str(row[0]) if row else "")
    except Exception as exc:
        return 503, {"reachable": True, "problems": [f"status query failed: {type(exc).__name__}: {exc}"]}
    finally:
        connection.close()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        code, body = probe()
        payload = (json.dumps(body, sort_keys=True) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        return  # one line per check every second is noise; failures show in the body


def main() -> None:
    server = ThreadingHTTPServer((os.environ["HEALTH_BIND"], int(os.environ.get("HEALTH_PORT", "9200"))), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
