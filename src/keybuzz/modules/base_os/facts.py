"""One read-only command per server that tells deploy and checks everything they decide on.

Where the installer comes from (as the server sees it: `$SSH_CONNECTION`), whether systemd runs
(a lab host or a container has none: machine-wide changes are never made there), the firewall
table's hash, the live sysctls, swap, sshd's effective settings for the installer's own login and
the current sshd files (kept to undo a reload that would not let the installer back in). Building
the script and parsing its output are pure.
"""

from __future__ import annotations

import base64
import json
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field

from keybuzz.modules.base_os import distro, layout, sshd, sysctl
from keybuzz.remote.probe import HostState, parse_probe, probe_script

_MARK = "#KB-"


@dataclass
class Facts:
    installer_ip: str = ""  # the installer's address as this server sees it
    server_ip: str = ""
    user: str = ""
    groups: list[str] = field(default_factory=list)
    systemd: bool = False
    nft: bool = False
    table_hash: str = ""  # "" when our table is not loaded
    sysctls: dict[str, str] = field(default_factory=dict)
    swaps: list[str] = field(default_factory=list)  # active swap devices
    effective: dict[str, list[str]] = field(default_factory=dict)  # sshd -T for the installer's login
    sshd_error: str = ""
    files: dict[str, str | None] = field(default_factory=dict)  # sshd files' content (None: absent)
    packages: dict[str, str] = field(default_factory=dict)
    ntp_synchronized: str = ""
    clock: float | None = None  # the server's clock when it answered
    asked_at: float = 0.0  # this machine's clock when the question left
    ruleset: dict = field(default_factory=dict)  # `nft -j list table` of ours ({} when absent)
    resolv_conf: str = ""
    resolved_dns: list[str] = field(default_factory=list)  # systemd-resolved's global servers (`resolvectl dns`)
    units: dict[str, str] = field(default_factory=dict)  # unit -> is-enabled/is-active answer (systemd only)
    os_release: dict[str, str] = field(default_factory=dict)  # /etc/os-release
    paths: HostState = field(default_factory=HostState)

    @property
    def os(self) -> str:
        """`debian-12`, `ubuntu-24.04`, or what an OS keybuzz does not know calls itself ("" if nothing)."""
        return distro.detected(self.os_release)


def script(paths: Iterable[str], sysctl_keys: Iterable[str], runtime_versions: str) -> str:
    q = shlex.quote
    kept = " ".join(q(p) for p in (layout.SSHD_CONFIG, layout.SSHD_DROPIN))
    return probe_script(paths, None).removesuffix("exit 0\n") + "\n".join([
        f"echo '{_MARK}clock'; date +%s.%N",  # first: compared with when the question left this machine
        f"echo '{_MARK}ssh'; echo \"$SSH_CONNECTION\"",
        f"echo '{_MARK}user'; id -un; id -Gn",
        f"echo '{_MARK}systemd'; [ -d /run/systemd/system ] && echo yes || echo no",
        f"echo '{_MARK}os'; cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release 2>/dev/null || true",
        f"echo '{_MARK}nft'; if command -v nft >/dev/null; then echo present; "
        f"nft list table inet {layout.TABLE} 2>/dev/null | grep -m1 -o '{layout.HASH_MARK}[0-9a-f]*' || true; "
        "else echo missing; fi",
        f"echo '{_MARK}sysctl'; sysctl -e {' '.join(q(k) for k in sysctl_keys)} 2>/dev/null",
        f"echo '{_MARK}swaps'; tail -n +2 /proc/swaps",
        f"echo '{_MARK}sshd'; set -- $SSH_CONNECTION; "
        f"{layout.SSHD} -T -C \"user=$(id -un),host=$1,addr=$1,laddr=$3,lport=$4\" 2>&1 || echo '#sshd-failed'",
        f"echo '{_MARK}files'; for f in {kept}; do if [ -f \"$f\" ]; then printf '%s\\t' \"$f\"; "
        "base64 -w0 \"$f\"; echo; else printf '%s\\t-\\n' \"$f\"; fi; done",
        f"echo '{_MARK}packages'; {runtime_versions}",
        f"echo '{_MARK}ntp'; [ ! -d /run/systemd/system ] || timedatectl show -p NTPSynchronized --value 2>/dev/null "
        "|| true",
        f"echo '{_MARK}ruleset'; nft -j list table inet {layout.TABLE} 2>/dev/null || true",
        f"echo '{_MARK}resolv'; cat {layout.RESOLV_CONF} 2>/dev/null || true",
        f"echo '{_MARK}resolved'; [ ! -d /run/systemd/system ] || resolvectl dns 2>/dev/null || true",
        f"echo '{_MARK}units'; if [ -d /run/systemd/system ]; then "
        f"printf 'firewall %s\\n' \"$(systemctl is-enabled {layout.FIREWALL_UNIT}.service 2>/dev/null)\"; "
        "printf 'journald %s\\n' \"$(systemctl is-active systemd-journald.service 2>/dev/null)\"; fi",
        "exit 0",
    ]) + "\n"


def _sections(text: str) -> tuple[str, dict[str, list[str]]]:
    listing, _, rest = text.partition(_MARK)
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in (_MARK + rest).splitlines() if rest else []:
        if line.startswith(_MARK):
            current = sections.setdefault(line[len(_MARK):], [])
        elif current is not None:
            current.append(line)
    return listing, sections


def parse(text: str) -> Facts:
    listing, s = _sections(text)
    facts = Facts(paths=parse_probe(listing))
    ssh = (s.get("ssh") or [""])[0].split()
    if len(ssh) >= 3:
        facts.installer_ip, facts.server_ip = ssh[0], ssh[2]
    user = [line for line in s.get("user", []) if line.strip()]
    facts.user = user[0].strip() if user else ""
    facts.groups = user[1].split() if len(user) > 1 else []
    facts.systemd = (s.get("systemd") or ["no"])[0].strip() == "yes"
    facts.os_release = distro.parse_os_release("\n".join(s.get("os", [])))
    nft = [line.strip() for line in s.get("nft", []) if line.strip()]
    facts.nft = bool(nft) and nft[0] == "present"
    facts.table_hash = next((line.removeprefix(layout.HASH_MARK) for line in nft[1:]
                             if line.startswith(layout.HASH_MARK)), "")
    facts.sysctls = sysctl.parse_values("\n".join(s.get("sysctl", [])))
    facts.swaps = [line.split()[0] for line in s.get("swaps", []) if line.strip()]
    sshd_lines = s.get("sshd", [])
    if "#sshd-failed" in sshd_lines:
        facts.sshd_error = " | ".join(line for line in sshd_lines if line and line != "#sshd-failed")[-300:]
    else:
        facts.effective = sshd.parse_effective("\n".join(sshd_lines))
    for line in s.get("files", []):
        path, _, data = line.partition("\t")
        if path:
            facts.files[path] = None if data == "-" else base64.b64decode(data).decode(errors="replace")
    facts.packages = {name: version.strip() for name, _, version in
                      (line.strip().partition(" ") for line in s.get("packages", [])) if version.strip()}
    facts.ntp_synchronized = next((line.strip() for line in s.get("ntp", []) if line.strip()), "")
    clock = next((line.strip() for line in s.get("clock", []) if line.strip()), "")
    facts.clock = float(clock) if clock.replace(".", "", 1).isdigit() else None
    ruleset = "\n".join(s.get("ruleset", [])).strip()
    try:
        facts.ruleset = json.loads(ruleset) if ruleset else {}
    except ValueError:
        facts.ruleset = {}
    facts.resolv_conf = "\n".join(s.get("resolv", [])) + "\n"
    facts.resolved_dns = next((line.split(":", 1)[1].split() for line in s.get("resolved", [])
                               if line.startswith("Global:")), [])
    facts.units = {name: answer.strip() for name, _, answer in
                   (line.strip().partition(" ") for line in s.get("units", [])) if name}
    return facts
