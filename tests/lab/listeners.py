"""What the lab's hosts listen on, read with `ss` inside each host's namespaces: the module lab tests
assert that no TCP or UDP listener binds a wildcard (0.0.0.0, `*` or [::]) anywhere in the lab."""

from __future__ import annotations

from keybuzz.lab import Lab

WILDCARDS = ("0.0.0.0", "*", "[::]")


def wildcard_listeners(ss_output: str) -> list[str]:
    """`proto address:port process` of every wildcard listener in `ss -Htlnup` output."""
    found = []
    for line in ss_output.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        host = fields[4].rsplit(":", 1)[0].split("%", 1)[0]  # 0.0.0.0%eth0:53: bound to a device, still any address
        if host in WILDCARDS:
            found.append(" ".join([fields[0], fields[4], *fields[6:7]]))
    return found


def lab_wildcard_listeners(lab: Lab) -> list[str]:
    """Every wildcard listener on every host of the lab, as `host: proto address:port process`."""
    return [f"{host}: {listener}" for host in lab.hosts
            for listener in wildcard_listeners(lab.exec(host, ["ss", "-Htlnup"], check=True).stdout)]
