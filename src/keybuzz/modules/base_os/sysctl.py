"""Kernel settings: which act on the server's own network namespace, which on the whole machine. Pure.

A lab host (or any container) shares the machine's kernel: only keys the kernel keeps per network
namespace may be written there. Every `vm.`, `kernel.`, `fs.` key, and the `net.` keys the kernel keeps
once per machine (netdev_max_backlog has no per-namespace copy), are machine-wide.
"""

from __future__ import annotations

from keybuzz.site.servers import Server

# Per network namespace (each exists in a fresh namespace and writing it there changes that namespace only).
NET: dict[str, str] = {
    "net.core.somaxconn": "4096",  # listen backlog of HAProxy and the databases under connection storms
    "net.ipv4.tcp_max_syn_backlog": "8192",
    "net.ipv4.tcp_syncookies": "1",
    "net.ipv4.tcp_fin_timeout": "15",
    "net.ipv4.tcp_tw_reuse": "1",
    # A peer that vanished (power loss) is noticed in ~3 min on idle connections, not 2 h 11 min.
    "net.ipv4.tcp_keepalive_time": "120",
    "net.ipv4.tcp_keepalive_intvl": "20",
    "net.ipv4.tcp_keepalive_probes": "3",
    "net.ipv4.tcp_slow_start_after_idle": "0",  # pooled database connections keep their window
    "net.ipv4.tcp_mtu_probing": "1",  # Hetzner private networks have an MTU of 1450: survive ICMP black holes
    "net.ipv4.conf.all.rp_filter": "2",  # loose: spoofed sources dropped, asymmetric routes (K3s) still work
    "net.ipv4.conf.default.rp_filter": "2",
    "net.ipv4.conf.all.accept_redirects": "0",
    "net.ipv4.conf.default.accept_redirects": "0",
    "net.ipv4.conf.all.send_redirects": "0",
    "net.ipv4.conf.default.send_redirects": "0",
    "net.ipv4.conf.all.accept_source_route": "0",
    "net.ipv4.conf.default.accept_source_route": "0",
    "net.ipv4.icmp_echo_ignore_broadcasts": "1",
    "net.ipv4.icmp_ignore_bogus_error_responses": "1",
    "net.ipv6.conf.all.accept_redirects": "0",
    "net.ipv6.conf.default.accept_redirects": "0",
}

MACHINE: dict[str, str] = {
    "vm.swappiness": "1",  # swap is off; if an operator adds some back, the kernel still avoids it
    "fs.file-max": "2097152",
    "fs.inotify.max_user_watches": "524288",  # K3s and its pods watch many files
    "fs.inotify.max_user_instances": "8192",
    "kernel.panic": "10",  # a panicked server reboots and rejoins its cluster instead of hanging
    "net.core.netdev_max_backlog": "16384",
}


def net(server: Server) -> dict[str, str]:
    return dict(NET)


def machine(server: Server) -> dict[str, str]:
    """The same on every server: a service's own needs (vm.overcommit_memory for a forking store) belong
    to its module's declarations, which the contract has no place for yet."""
    return dict(MACHINE)


def conf(values: dict[str, str], what: str) -> str:
    lines = ["# Rendered by keybuzz (module base_os): edits are overwritten on the next install.", f"# {what}"]
    lines += [f"{key} = {value}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def normal(value: str) -> str:
    """`sysctl -n` separates multi-valued keys with tabs; compare on single spaces."""
    return " ".join(value.split())


def parse_values(output: str) -> dict[str, str]:
    """`sysctl -e k1 k2 ...` output (`key = value` lines; unknown keys are left out by -e)."""
    found = {}
    for line in output.splitlines():
        key, sep, value = line.partition(" = ")
        if sep:
            found[key.strip()] = normal(value)
    return found
