"""The lab's stand-in for Hetzner's load balancers: a TCP HAProxy on the VIP, in front of a role."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence


def lb_haproxy_config(vip: ipaddress.IPv4Address, ports: Sequence[int],
                      targets: Sequence[tuple[str, ipaddress.IPv4Address]]) -> str | None:
    """One TCP `listen` per port over every target host; None when there is no target (nothing to run).

    Like a managed LB: TCP health checks, fast detection, and sessions to a dead target are cut
    (on-marked-down shutdown-sessions) so clients reconnect instead of hanging.
    """
    if not targets:
        return None
    lines = [
        "# keybuzz lab load balancer (TCP), run by the LB host's init",
        "global",
        "    maxconn 4096",
        "    stats socket /run/haproxy-lb.sock mode 600 level admin",
        "",
        "defaults",
        "    mode tcp",
        "    timeout connect 2s",
        "    timeout client 30m",
        "    timeout server 30m",
        "    timeout check 1s",
        "    default-server inter 1s fall 2 rise 2 on-marked-down shutdown-sessions",
        "",
    ]
    for port in ports:
        lines += [f"listen lb-{port}", f"    bind {vip}:{port}", "    balance roundrobin"]
        lines += [f"    server {name} {ip}:{port} check" for name, ip in targets]
        lines.append("")
    return "\n".join(lines)
