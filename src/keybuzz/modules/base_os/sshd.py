"""SSH hardening as data: the drop-in, the edit that makes sshd read it first, `sshd -T` parsed back,
and the one question that matters before a reload: can the installer still log in? Pure."""

from __future__ import annotations

import fnmatch
import ipaddress
from collections.abc import Iterable

from keybuzz.modules.base_os import layout
from keybuzz.modules.base_os.settings import SshHardening

INCLUDE_NOTE = "# keybuzz: drop-ins first, so base_os settings win (sshd keeps the first value of a keyword)"


def wanted(ssh: SshHardening) -> dict[str, str]:
    """sshd_config keyword -> value (as the drop-in writes it)."""
    values = {
        "PubkeyAuthentication": "yes",
        "PasswordAuthentication": "no",
        "KbdInteractiveAuthentication": "no",
        "PermitEmptyPasswords": "no",
        "PermitRootLogin": "prohibit-password",
        "MaxAuthTries": str(ssh.max_auth_tries),
        "LoginGraceTime": str(ssh.login_grace_time_s),
        "X11Forwarding": "no",
        "AllowAgentForwarding": "no",
        "AllowTcpForwarding": "no",
        "PermitTunnel": "no",
        "ClientAliveInterval": str(ssh.client_alive_interval_s),
        "ClientAliveCountMax": "3",
        "UseDNS": "no",
    }
    if ssh.allow_users:
        values["AllowUsers"] = " ".join(ssh.allow_users)
    if ssh.allow_groups:
        values["AllowGroups"] = " ".join(ssh.allow_groups)
    return values


def dropin(ssh: SshHardening) -> str:
    lines = ["# Rendered by keybuzz (module base_os): edits are overwritten on the next install.",
             f"# Read before every other sshd setting ({layout.SSHD_CONFIG} includes it first)."]
    lines += [f"{key} {value}" for key, value in wanted(ssh).items()]
    return "\n".join(lines) + "\n"


def _directive(line: str) -> str:
    stripped = line.strip()
    return "" if not stripped or stripped.startswith("#") else " ".join(stripped.split())


def include_first(main: str) -> str:
    """sshd_config with the drop-in Include as its first directive (Debian's default already is)."""
    lines = main.splitlines()
    first = next((_directive(line) for line in lines if _directive(line)), "")
    if first == layout.SSHD_INCLUDE:
        return main
    rest = [line for line in lines if _directive(line) != layout.SSHD_INCLUDE and line != INCLUDE_NOTE]
    return "\n".join([INCLUDE_NOTE, layout.SSHD_INCLUDE, *rest]) + "\n"


def parse_effective(output: str) -> dict[str, list[str]]:
    """`sshd -T` output: keyword (lower case) -> its values; repeated keywords (allowusers) accumulate."""
    found: dict[str, list[str]] = {}
    for line in output.splitlines():
        key, _, value = line.strip().partition(" ")
        if key and value and key.isalnum():
            found.setdefault(key.lower(), []).append(value.strip())
    return found


# sshd -T spells some values its own way.
_SAME = {"prohibit-password": {"prohibit-password", "without-password"}}


def effective_problems(ssh: SshHardening, effective: dict[str, list[str]]) -> list[str]:
    """Keywords whose value in force differs from the drop-in's (a setting read before it wins)."""
    problems = []
    for key, value in wanted(ssh).items():
        current = effective.get(key.lower(), [])
        if key in ("AllowUsers", "AllowGroups"):
            missing = [v for v in value.split() if v not in " ".join(current).split()]
            if missing:
                problems.append(f"{key} in force lacks {' '.join(missing)}")
        elif not current or current[0] not in _SAME.get(value, {value}):
            problems.append(f"{key} is {current[0] if current else 'unset'} in force, wanted {value}")
    return problems


def _host_matches(pattern: str, address: str) -> bool:
    try:
        return ipaddress.IPv4Address(address) in ipaddress.IPv4Network(pattern, strict=False)
    except ValueError:
        return fnmatch.fnmatchcase(address, pattern)


def user_allowed(user: str, address: str, groups: Iterable[str], allow_users: list[str],
                 allow_groups: list[str]) -> str | None:
    """Why sshd would refuse `user` from `address` under these AllowUsers/AllowGroups (None: it lets it in).
    With both set, a user must pass both (sshd checks DenyUsers, AllowUsers, DenyGroups, AllowGroups)."""
    if allow_users:
        def passes(pattern: str) -> bool:
            name, _, host = pattern.partition("@")
            return fnmatch.fnmatchcase(user, name) and (not host or _host_matches(host, address))

        if not any(passes(p) for p in allow_users):
            return f"AllowUsers {' '.join(allow_users)} does not let {user}@{address} in"
    if allow_groups:
        mine = set(groups)
        if not any(fnmatch.fnmatchcase(g, p) for p in allow_groups for g in mine):
            held = ", ".join(sorted(mine)) or "?"
            return f"AllowGroups {' '.join(allow_groups)} holds none of {user}'s groups ({held})"
    return None


def installer_problems(user: str, address: str, groups: Iterable[str], effective: dict[str, list[str]]) -> list[str]:
    """From `sshd -T -C user=...,addr=...`: would the installer's key login still work?"""
    problems = []
    if effective.get("pubkeyauthentication", ["yes"])[0] != "yes":
        problems.append("PubkeyAuthentication is off")
    if user == "root" and effective.get("permitrootlogin", ["yes"])[0] == "no":
        problems.append("PermitRootLogin no refuses root")
    if "publickey" not in effective.get("authenticationmethods", ["any"])[0] and \
            effective.get("authenticationmethods", ["any"])[0] != "any":
        problems.append(f"AuthenticationMethods {effective['authenticationmethods'][0]} needs more than a key")
    refusal = user_allowed(user, address, groups, " ".join(effective.get("allowusers", [])).split(),
                           " ".join(effective.get("allowgroups", [])).split())
    if refusal:
        problems.append(refusal)
    return problems
