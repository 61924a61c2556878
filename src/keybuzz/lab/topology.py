"""Lab topologies and names: pure data, so they are unit-tested without root."""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from keybuzz.lab.errors import LabError
from keybuzz.registry import MODULES, example_config
from keybuzz.site import example

DEFAULT_SUBNET = ipaddress.IPv4Network("10.77.0.0/16")
MAX_PLAIN_HOSTS = 250
# Hosts of the seed topology beyond the modules' own: they get what the base OS module gives.
PLAIN_ROLES = ("monitor", "app")
# Lab folders live outside the directories that hosts overlay or replace (an overlay's upper
# dir may not sit inside its own lower dir, and /run, /tmp are fresh tmpfs inside hosts).
FORBIDDEN_ROOTS = ("/etc", "/opt", "/var", "/run", "/tmp", "/dev", "/proc", "/sys", "/root", "/usr")


@dataclass(frozen=True)
class HostSpec:
    """One lab host; `lb` names the keybuzz.yaml load balancer it stands in for (not in servers.tsv)."""

    name: str
    offset: int  # added to the subnet's network address
    roles: tuple[str, ...] = ()
    lb: str | None = None


def lab_roles() -> set[str]:
    """The roles of the implemented modules whose every image the lab can build or serve: a module
    that lands with its lab images brings its hosts into the lab topologies by itself."""
    return {role for m in MODULES if m.runs_in_lab for role in m.roles}


def _small() -> list[HostSpec]:
    """The lab roles' servers and one plain app server (faults there disturb no module)."""
    roles = lab_roles()
    rows = example.seed_servers()
    plain = next(row for row in rows if row.roles == ("app",))
    return [_from_seed(row) for row in rows if set(row.roles) <= roles or row is plain]


def _seed() -> list[HostSpec]:
    roles = lab_roles() | set(PLAIN_ROLES)
    return [_from_seed(row) for row in example.seed_servers() if set(row.roles) <= roles]


def _from_seed(row: example.ServerRow) -> HostSpec:
    return HostSpec(row.hostname, int(row.private_ip.rsplit(".", 1)[1]), row.roles)


def _load_balancer_hosts(roles: set[str] | None = None) -> list[HostSpec]:
    return [HostSpec(lb["name"], int(lb["vip"].rsplit(".", 1)[1]), (), lb["name"])
            for lb in example_config()["load_balancers"] if roles is None or lb["target_role"] in roles]


def _with_roles(text: str) -> list[HostSpec]:
    """The small lab's servers whose every role is listed, and the load balancers in front of them."""
    wanted = {role.strip() for role in text.split(",") if role.strip()}
    unknown = sorted(wanted - lab_roles())
    if not wanted or unknown:
        raise LabError(f"topology roles:{text}: {', '.join(unknown) or 'no role'} is not a role the lab runs; "
                       f"pick among {', '.join(sorted(lab_roles()))}")
    return [h for h in _small() if h.roles and set(h.roles) <= wanted] + _load_balancer_hosts(wanted)


def topology(name: str) -> list[HostSpec]:
    """`small` (what tests use), `seed` (the seed's roles that run here), `roles:R1,R2` (the small lab's
    servers of those roles and their load balancers: a lab for one module's test) or `hosts:N` (N plain
    app hosts)."""
    if name == "small":
        return _small() + _load_balancer_hosts()
    if name == "seed":
        return _seed() + _load_balancer_hosts()
    if name.startswith("roles:"):
        return _with_roles(name.removeprefix("roles:"))
    match = re.fullmatch(r"hosts:(\d+)", name)
    if match and 1 <= int(match[1]) <= MAX_PLAIN_HOSTS:
        # x.y.1.N: clear of the seed's last octets, so a plain-host lab reads differently.
        return [HostSpec(f"host-{i:03d}", 256 + i, ("app",)) for i in range(1, int(match[1]) + 1)]
    raise LabError(f"unknown topology {name!r}: use small, seed, roles:R1,R2 or hosts:N "
                   f"(1 <= N <= {MAX_PLAIN_HOSTS})")


def host_ip(subnet: ipaddress.IPv4Network, offset: int) -> ipaddress.IPv4Address:
    if offset >= subnet.num_addresses - 1:
        raise LabError(f"subnet {subnet} is too small for host offset {offset}: use a /16 such as 10.77.0.0/16")
    return subnet.network_address + offset


def gateway_ip(subnet: ipaddress.IPv4Network) -> ipaddress.IPv4Address:
    """The control machine's address on the lab bridge."""
    return subnet.network_address + 1


def parse_subnet(text: str) -> ipaddress.IPv4Network:
    try:
        subnet = ipaddress.IPv4Network(text, strict=True)
    except ValueError as exc:
        raise LabError(f"--subnet {text!r}: {exc} (e.g. 10.77.0.0/16)") from None
    if not subnet.is_private or subnet.prefixlen > 23:
        raise LabError(f"--subnet {subnet}: use a private /16../23 network (lab traffic must stay local)")
    return subnet


def check_lab_dir(path: Path) -> Path:
    resolved = path.resolve()
    for root in FORBIDDEN_ROOTS:
        if resolved == Path(root) or Path(root) in resolved.parents:
            raise LabError(f"lab folder {resolved} is under {root}, which lab hosts overlay or replace; "
                           "use a folder such as /srv/keybuzz-lab/NAME")
    return resolved


@dataclass(frozen=True)
class Names:
    """Kernel object names for one lab, derived from its folder so several labs can run at once."""

    lab_id: str

    @classmethod
    def for_dir(cls, path: Path) -> Names:
        return cls(hashlib.sha256(str(path).encode()).hexdigest()[:6])

    @property
    def bridge(self) -> str:
        return f"kb-{self.lab_id}"

    def veth(self, index: int) -> str:
        """Root-side end of a host's link; at most 15 characters (IFNAMSIZ)."""
        return f"kb{self.lab_id}h{index}"

    def netns(self, host: str) -> str:
        return f"kb-{self.lab_id}-{host}"
