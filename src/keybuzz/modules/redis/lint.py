"""The module's lint rule: a Redis backend behind HAProxy sends traffic to the master only."""

from __future__ import annotations

import re
from collections.abc import Iterable

from keybuzz.contract import Hit, LintInput, Rule
from keybuzz.haproxy import parse_config
from keybuzz.modules.redis import layout


def _is_redis_data(address: str, redis_ips: set[str]) -> bool:
    """A redis server's address on a port other than Sentinel's (Sentinel backends only vote)."""
    ip, _, port = address.rpartition(":")
    return ip in redis_ips and port != str(layout.SENTINEL_PORT)


def check_redis_not_round_robin(data: LintInput) -> Iterable[Hit]:
    """A Redis backend must send traffic to the master only: no round robin, a role:master check."""
    redis_ips = {str(s.private_ip) for s in data.site.with_role("redis")}
    for host, plan in data.plans.items():
        for spec in plan.files:
            if "haproxy" not in spec.path or not isinstance(spec.content, str):
                continue
            for section, body in parse_config(spec.content).items():
                if not section.startswith(("backend", "listen")):
                    continue
                servers = [line.split() for line in body if line.startswith("server ")]
                if not any(len(s) > 2 and _is_redis_data(s[2], redis_ips) for s in servers):
                    continue
                where = f"render {host}:{spec.path} {section}"
                if any(re.match(r"balance\s+roundrobin\b", line) for line in body):
                    yield where, "Redis backend balances round robin", \
                        "always the master only (definitive design C): check role:master and keep one UP"
                active = [s for s in servers if "backup" not in s[3:]]
                master_check = any("role:master" in line for line in body if line.startswith("tcp-check expect"))
                if len(active) > 1 and not master_check:
                    yield where, "Redis backend has several active servers and no role:master check", \
                        "add `tcp-check expect string role:master` so writes only reach the master"


RULES = (Rule("KB004", "error", "Redis behind HAProxy never round robin", check_redis_not_round_robin),)
