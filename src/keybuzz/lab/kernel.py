"""Kernel-side lab plumbing: bridge, veth links, network namespaces, processes and host PID 1s.

Every function takes names from `topology.Names`, so one lab never touches another lab's objects.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import signal
import time
from pathlib import Path

from keybuzz.lab.errors import LabError, run

NETNS_DIR = Path("/run/netns")
HUGETLB = Path("/sys/fs/cgroup/hugetlb")


def netns_pids() -> dict[tuple[int, int], list[int]]:
    """Network namespace identity -> pids in it (one pass over /proc for every host at once)."""
    found: dict[tuple[int, int], list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            st = os.stat(f"/proc/{entry.name}/ns/net")
        except OSError:
            continue
        found.setdefault((st.st_dev, st.st_ino), []).append(int(entry.name))
    return found


def netns_id(netns: str) -> tuple[int, int] | None:
    try:
        st = os.stat(NETNS_DIR / netns)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def pids_in(netns: str, table: dict[tuple[int, int], list[int]] | None = None) -> list[int]:
    ident = netns_id(netns)
    if ident is None:
        return []
    return list((table if table is not None else netns_pids()).get(ident, []))


def host_pid1(pids: list[int]) -> int | None:
    """The process whose innermost PID is 1: the host's init (NSpid line ends in 1)."""
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("NSpid:"):
                fields = line.split()
                if len(fields) == 3 and fields[-1] == "1":  # deeper (a container's init) is not the host
                    return pid
    return None


def kill_all(*netns: str, timeout: float = 10.0) -> None:
    """SIGKILL every process of the given hosts until none is left (a kill races with forks).

    PID 1s go first: the kernel then kills each whole PID namespace and each `unshare` parent
    reaps its PID 1; killing that parent first would orphan PID 1 as a zombie on machines whose
    own init does not reap.
    """
    deadline = time.monotonic() + timeout
    table = netns_pids()
    for name in netns:
        pid1 = host_pid1(pids_in(name, table))
        if pid1 is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid1, signal.SIGKILL)
    settle = time.monotonic() + 2.0
    while time.monotonic() < settle and _any_pids(netns):
        time.sleep(0.02)
    while True:
        table = netns_pids()
        pids = [pid for name in netns for pid in pids_in(name, table)]
        if not pids:
            return
        if time.monotonic() > deadline:
            raise LabError(f"processes {pids[:10]} of {', '.join(netns)} survive SIGKILL")
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


def _any_pids(netns: tuple[str, ...]) -> bool:
    table = netns_pids()
    return any(pids_in(name, table) for name in netns)


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def link_set(name: str, up: bool) -> None:
    run(["ip", "link", "set", "dev", name, "up" if up else "down"])


def link_is_up(name: str) -> bool:
    try:
        return bool(int(Path(f"/sys/class/net/{name}/flags").read_text(), 16) & 0x1)
    except OSError:
        return False


def link_exists(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


def links_with_prefix(prefix: str) -> list[str]:
    return sorted(name for name in os.listdir("/sys/class/net") if name.startswith(prefix))


def subnet_users(subnet: ipaddress.IPv4Network, own_bridge: str) -> list[str]:
    """Interfaces of the root namespace that already hold an address in the subnet."""
    users = []
    for line in run(["ip", "-o", "-4", "addr", "show"]).stdout.splitlines():
        fields = line.split()
        iface, cidr = fields[1], fields[3]
        if iface != own_bridge and ipaddress.IPv4Interface(cidr).network.overlaps(subnet):
            users.append(f"{iface} ({cidr})")
    return users


def make_bridge(bridge: str, gateway: ipaddress.IPv4Address, subnet: ipaddress.IPv4Network) -> None:
    run(["ip", "link", "add", bridge, "type", "bridge"])
    run(["ip", "addr", "add", f"{gateway}/{subnet.prefixlen}", "dev", bridge])
    run(["ip", "link", "set", bridge, "up"])


def make_host_link(bridge: str, netns: str, veth: str, ip: ipaddress.IPv4Address,
                   subnet: ipaddress.IPv4Network) -> None:
    """A veth whose far end is the host's eth0; no default route, so nothing leaves the lab."""
    run(["ip", "netns", "add", netns])
    run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns])
    run(["ip", "link", "set", veth, "master", bridge, "up"])
    batch = f"addr add {ip}/{subnet.prefixlen} dev eth0\nlink set lo up\nlink set eth0 up\n"
    run(["ip", "-n", netns, "-batch", "-"], input_text=batch)


ISOLATION_TABLE = "keybuzz_lab_isolate"


def isolation_ruleset(peers: list[str]) -> str:
    """nftables rules for a host's own namespace: drop every packet to or from `peers`, both ways
    (silence, as a broken switch port or VLAN gives); everything else, clients included, flows."""
    addresses = ", ".join(peers)
    return (f"table inet {ISOLATION_TABLE} {{\n"
            f"  chain input {{ type filter hook input priority -300; ip saddr {{ {addresses} }} drop; }}\n"
            f"  chain output {{ type filter hook output priority -300; ip daddr {{ {addresses} }} drop; }}\n"
            "}\n")


def isolate(netns: str, peers: list[str]) -> None:
    """Replace the host's isolation with one from exactly `peers` (its namespace, not the machine's)."""
    unisolate(netns)
    run(["nsenter", f"--net={NETNS_DIR / netns}", "nft", "-f", "-"], input_text=isolation_ruleset(peers))


def unisolate(netns: str) -> None:
    run(["nsenter", f"--net={NETNS_DIR / netns}", "nft", "delete", "table", "inet", ISOLATION_TABLE], check=False)


def isolated_from(netns: str) -> list[str]:
    """The peers a host is isolated from (empty when it is not)."""
    result = run(["nsenter", f"--net={NETNS_DIR / netns}", "nft", "list", "table", "inet", ISOLATION_TABLE],
                 check=False)
    if result.returncode != 0:
        return []
    line = next((ln for ln in result.stdout.splitlines() if "saddr" in ln), "")
    return re.findall(r"\d+\.\d+\.\d+\.\d+", line)


def ensure_hugetlb_v1() -> None:
    """crun refuses a cgroup v2 controller in hybrid mode: give hugetlb a v1 hierarchy, once per machine."""
    if os.path.ismount(HUGETLB) or not Path("/sys/fs/cgroup/unified").exists():
        return
    HUGETLB.mkdir(exist_ok=True)
    run(["mount", "-t", "cgroup", "-o", "hugetlb", "cgroup", str(HUGETLB)])


def remove_cgroups(container_ids: list[str]) -> None:
    """Empty podman cgroups (cgroupfs manager) of killed containers: `lab down` leaves nothing."""
    if not container_ids:
        return
    root = Path("/sys/fs/cgroup")
    for controller in [root, *root.iterdir()]:  # cgroup v2: root/libpod_parent; v1: root/<controller>/...
        parent = controller / "libpod_parent"
        if not parent.is_dir():
            continue
        for cid in container_ids:
            for path in (parent / f"libpod-{cid}", parent / f"libpod-conmon-{cid}", parent / "conmon" / cid):
                _rmdir_tree(path)


def remove_cgroup_trees(prefix: str) -> None:
    """Empty cgroups named `prefix*` at the top of each controller (the lab hosts' dockerd cgroup
    parents, cgroupfs driver), innermost first: `lab down` leaves nothing."""
    root = Path("/sys/fs/cgroup")
    for controller in [root, *(p for p in root.iterdir() if p.is_dir())]:
        for top in controller.glob(prefix + "*"):
            _rmdir_tree(top)


def _rmdir_tree(path: Path) -> None:
    """An empty cgroup and every one below it, innermost first (a cgroup's files cannot be unlinked)."""
    for sub in sorted(path.rglob("*"), key=lambda p: len(p.parts), reverse=True) if path.is_dir() else []:
        if sub.is_dir():
            _rmdir(sub)
    _rmdir(path)


def _rmdir(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.rmdir()


def mounts_under(folder: Path) -> list[str]:
    targets = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        target = line.split()[4].replace("\\040", " ")
        if target == str(folder) or target.startswith(str(folder) + "/"):
            targets.append(target)
    return sorted(targets, reverse=True)
