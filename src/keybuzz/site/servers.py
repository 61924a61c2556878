"""servers.tsv: the inventory, one server per line, parsed with every error collected."""

from __future__ import annotations

import ipaddress
import itertools
import re
from collections import Counter
from dataclasses import dataclass

from keybuzz.errors import InputError
from keybuzz.site.roles import ROLES
from keybuzz.site.schema import Quorum

__all__ = ["ROLES", "Server", "parse_servers_tsv"]
COLUMNS: tuple[str, ...] = ("hostname", "private_ip", "public_ip", "roles", "fqdn")
REQUIRED_COLUMNS: tuple[str, ...] = ("hostname", "private_ip", "roles")

_HOSTNAME = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_FQDN_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_SECRET_ASSIGNMENT = re.compile(r"(?i)(pass(word|wd)?|secret|token|api[_-]?key)\s*[=:]")
_TOKEN_RUN = re.compile(r"[A-Za-z0-9+/=]{16,}")
_SHOWN = 40  # longest value echoed back in a message (a mangled line can be megabytes)


@dataclass(frozen=True)
class Server:
    hostname: str
    private_ip: ipaddress.IPv4Address
    public_ip: ipaddress.IPv4Address | None
    roles: tuple[str, ...]
    fqdn: str
    line: int

    def has(self, role: str) -> bool:
        return role in self.roles


def _char_class(char: str) -> str:
    return "l" if char.islower() else "u" if char.isupper() else "d" if char.isdigit() else "o"


def _looks_like_secret(value: str) -> bool:
    """An assignment (`password=`), or a long run that switches letter case/digits like a random token.

    Host names are words joined by '-' and '.', so they never form such a run.
    """
    if _SECRET_ASSIGNMENT.search(value):
        return True
    for run in _TOKEN_RUN.findall(value):
        classes = [_char_class(c) for c in run]
        switches = sum(a != b for a, b in itertools.pairwise(classes)) / (len(run) - 1)
        if len(set(classes)) >= 2 and switches > 0.3 and len(set(run)) >= 10:
            return True
    return False


def _show(value: str) -> str:
    """A value quoted for a message, cut short."""
    return repr(value if len(value) <= _SHOWN else value[:_SHOWN] + "...")


def _parse_ip(value: str, column: str, file: str, line: int,
              errors: list[InputError]) -> ipaddress.IPv4Address | None:
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        errors.append(InputError(file, line, f"{column} {_show(value)} is not a valid IP address",
                                 "write a dotted IPv4 address such as 10.0.0.120"))
        return None
    if not isinstance(ip, ipaddress.IPv4Address):
        errors.append(InputError(file, line, f"{column} {_show(value)} is IPv6", "use the server's IPv4 address"))
        return None
    return ip


def _valid_hostname(name: str) -> bool:
    return bool(_HOSTNAME.fullmatch(name))


def _valid_fqdn(name: str) -> bool:
    labels = name.rstrip(".").split(".")
    return len(name) <= 253 and len(labels) >= 2 and all(_FQDN_LABEL.fullmatch(label) for label in labels)


def parse_servers_tsv(
    text: str, file: str, network: ipaddress.IPv4Network | None = None, quorums: tuple[Quorum, ...] = ()
) -> tuple[list[Server], list[InputError]]:
    """Parse servers.tsv; never raises on bad input, returns every problem found instead.
    `quorums` (the modules' declarations) are counted over every readable row."""
    errors: list[InputError] = []
    servers: list[Server] = []
    rows: list[tuple[int, dict[str, str]]] = []
    text = text.removeprefix("\ufeff")
    header: list[str] | None = None
    # Split on \n only: line numbers must match what an editor shows (splitlines also breaks on \f, \x1c...).
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip("\r")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cells = [cell.strip() for cell in line.split("\t")]
        if header is None:
            header = _parse_header(cells, file, number, errors)
            if header is None:
                return [], errors
            continue
        if len(cells) != len(header):
            errors.append(InputError(
                file, number, f"{len(cells)} columns where the header has {len(header)}",
                "separate columns with one tab; leave optional cells empty between tabs"))
            continue
        row = dict(zip(header, cells, strict=True))
        rows.append((number, row))
        server = _parse_row(row, file, number, network, errors)
        if server:
            servers.append(server)
    if header is None:
        errors.append(InputError(file, 1, "no header line",
                                 "start with: " + "\\t".join(COLUMNS)))
    elif not servers and not errors:
        errors.append(InputError(file, 1, "no server listed", "add one line per server after the header"))
    errors.extend(_cross_checks(rows, file, quorums))
    return servers, errors


def _parse_header(cells: list[str], file: str, line: int, errors: list[InputError]) -> list[str] | None:
    """Column names; None when rows cannot be read (missing or repeated column)."""
    names = [c.lower() for c in cells]
    readable = True
    for name in names:
        if name not in COLUMNS:  # reported, but the rows are still checked with the known columns
            shown = "(a value that looks like a secret)" if _looks_like_secret(name) else _show(name)
            errors.append(InputError(file, line, f"unknown column {shown}",
                                     "columns are: " + ", ".join(COLUMNS)))
    for name, count in Counter(names).items():
        if count > 1:
            readable = False
            errors.append(InputError(file, line, f"column {_show(name)} appears {count} times", "keep one"))
    for name in REQUIRED_COLUMNS:
        if name not in names:
            readable = False
            errors.append(InputError(file, line, f"missing column {name!r}",
                                     "the header must name hostname, private_ip and roles"))
    return names if readable else None


def _parse_row(row: dict[str, str], file: str, line: int, network: ipaddress.IPv4Network | None,
               errors: list[InputError]) -> Server | None:
    secret_columns = [column for column, value in row.items() if value and _looks_like_secret(value)]
    for column in secret_columns:
        errors.append(InputError(file, line, f"column {column} looks like a secret (value not shown)",
                                 "secrets belong in credentials/*.env, never in servers.tsv"))
    if secret_columns:
        return None  # its other checks would echo the value
    before = len(errors)
    hostname = row["hostname"]
    if not _valid_hostname(hostname):
        errors.append(InputError(file, line, f"hostname {_show(hostname)} is not a valid RFC 1123 name",
                                 "use lower-case letters, digits and '-', at most 63, not at the ends"))
    private_ip = _parse_ip(row["private_ip"], "private_ip", file, line, errors)
    if private_ip is not None and network is not None and private_ip not in network:
        errors.append(InputError(file, line, f"private_ip {private_ip} is outside the private network {network}",
                                 "fix the address or network.cidr in keybuzz.yaml"))
    elif private_ip is not None and network is not None and network.prefixlen < 31 and \
            private_ip in (network.network_address, network.broadcast_address):
        errors.append(InputError(file, line, f"private_ip {private_ip} is the network or broadcast address of "
                                 f"{network}", "use a host address"))
    public_ip = None
    if row.get("public_ip"):
        public_ip = _parse_ip(row["public_ip"], "public_ip", file, line, errors)
    roles = tuple(r.strip() for r in row["roles"].split(",") if r.strip())
    if not roles:
        errors.append(InputError(file, line, "no role", "roles is a comma-separated list: " + ",".join(ROLES)))
    for role in roles:
        if role not in ROLES:
            errors.append(InputError(file, line, f"unknown role {_show(role)}", "known roles: " + ", ".join(ROLES)))
    for role, count in Counter(roles).items():
        if count > 1:
            errors.append(InputError(file, line, f"role {_show(role)} listed {count} times", "list it once"))
    fqdn = row.get("fqdn", "")
    if fqdn and not _valid_fqdn(fqdn):
        errors.append(InputError(file, line, f"fqdn {_show(fqdn)} is not a valid domain name",
                                 "e.g. db-master-01.keybuzz.io, or leave it empty"))
    if len(errors) > before or private_ip is None:
        return None
    return Server(hostname, private_ip, public_ip, roles, fqdn, line)


def _unique_value(column: str, value: str) -> str | None:
    """The value to compare for duplicates, or None when the cell is empty or invalid (reported elsewhere)."""
    if column == "hostname":
        return value if _valid_hostname(value) else None
    if column == "fqdn":
        return value.lower().rstrip(".") if value and _valid_fqdn(value) else None
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        return None


def _cross_checks(rows: list[tuple[int, dict[str, str]]], file: str, quorums: tuple[Quorum, ...]) -> list[InputError]:
    """Duplicates and quorum sizes, over every readable row (also rows with their own errors)."""
    errors: list[InputError] = []
    seen: dict[tuple[str, str], int] = {}
    by_role: dict[str, list[int]] = {}
    for line, row in rows:
        if any(value and _looks_like_secret(value) for value in row.values()):
            continue
        for column in ("hostname", "private_ip", "public_ip", "fqdn"):
            value = _unique_value(column, row.get(column, ""))
            if value is None:
                continue
            if (column, value) in seen:
                errors.append(InputError(file, line, f"duplicate {column} {value}",
                                         f"already on line {seen[(column, value)]}"))
            seen.setdefault((column, value), line)
        for role in {r.strip() for r in row["roles"].split(",")}:
            by_role.setdefault(role, []).append(line)
    for quorum in quorums:
        lines = by_role.get(quorum.role, [])
        if lines and len(lines) % 2 == 0:
            errors.append(InputError(
                file, lines[-1], f"{len(lines)} servers with role {quorum.role}: a quorum needs an odd count",
                "use 3 (or 5) so a majority survives the loss of one"))
        elif lines and len(lines) < quorum.minimum:
            errors.append(InputError(
                file, lines[-1], f"{len(lines)} servers with role {quorum.role}: at least {quorum.minimum} needed "
                f"({quorum.why})", f"add servers with role {quorum.role}"))
    return errors
