"""The kinds of value a site file holds, each with the characters it may contain, checked where it is loaded.

A site value ends up in a root shell, a config file, SQL, pg_hba, nftables or fstab. Each kind
below allows only characters that none of those gives a meaning to: a value of that kind stays one
word, one line, one token wherever it goes (and is still quoted by each format's writer). A value
that is not of its kind is an input error at its file and line, like any other.

Every class is ASCII only, matched on the whole value: a Cyrillic `а` in a name that looks like
`a` is refused, as are newlines, NUL, quotes, `$`, backticks, `;` and spaces.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_IPV4 = r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
# Printable ASCII that no shell, config syntax (INI, TOML, YAML, JSON, Redis, HAProxy, my.cnf, pg_hba),
# URL userinfo or env file treats specially, once percent-encoded where a URL holds it.
PASSWORD_SYMBOLS = "!%*+,-./:=?@^_~"
# Paths the platform must never own: a data_root there would put services' data in the system's folders.
_SYSTEM_PATHS = ("/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/proc", "/root", "/run",
                 "/sbin", "/sys", "/tmp", "/usr", "/var")


@dataclass(frozen=True)
class ValueKind:
    """One kind of site value: `what` it is, the whole-value `form` it must match, how to fix it."""

    what: str
    form: str  # a regular expression over the whole value (re.fullmatch)
    hint: str
    max_length: int = 255
    min_length: int = 1
    secret: bool = False  # never echoed in a message
    extra: tuple[Any, ...] = field(default=(), compare=False)  # further checks: value -> problem or None
    trailing_slash: bool = False  # a path written with a trailing '/' is that path (an editor's habit)

    def problem(self, value: str) -> str | None:
        """Why `value` is not of this kind (without showing a secret), or None."""
        shown = "the value (not shown)" if self.secret else _show(value)
        if not isinstance(value, str):
            return f"{shown} is not a string"
        if len(value) < self.min_length or len(value) > self.max_length:
            size = f"{self.min_length}-{self.max_length}" if self.min_length > 1 else f"at most {self.max_length}"
            return f"{shown} is not {self.what}: {len(value)} characters, {size} allowed"
        if not re.fullmatch(self.form, value):
            return f"{shown} is not {self.what}"
        for check in self.extra:
            found = check(value)
            if found:
                return f"{shown} is not {self.what}: {found}"
        return None

    def check(self, value: str) -> str:
        """Pydantic's validator: the value, or ValueError with the problem and the hint."""
        if self.trailing_slash and len(value) > 1:
            value = value.rstrip("/") or "/"
        found = self.problem(value)
        if found:
            raise ValueError(f"{found} ({self.hint})")
        return value

    @property
    def type(self) -> Any:
        """`str` of this kind, for a pydantic field (the kind rides along for tests and docs)."""
        return Annotated[str, AfterValidator(self.check), self]


def _show(value: object, limit: int = 40) -> str:
    text = str(value)
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _normalised_path(value: str) -> str | None:
    parts = value.split("/")[1:]
    if value != "/" and (any(p in ("", ".", "..") for p in parts)):
        return "write it normalised: no '//', '/./', '/../' and no trailing '/'"
    return None


def _not_system_path(value: str) -> str | None:
    if value in _SYSTEM_PATHS or value.startswith(("/proc/", "/sys/", "/dev/")):
        return "a system folder: give the platform a folder of its own, e.g. /opt/keybuzz"
    return None


def _not_hba_keyword(value: str) -> str | None:
    """pg_hba gives these names a meaning (`all` databases...): a role or database never takes one."""
    if value in ("all", "sameuser", "samerole", "samegroup", "replication", "public", "none"):
        return "a word pg_hba.conf and PostgreSQL reserve"
    return None


def _dns_length(value: str) -> str | None:
    return "longer than 253 characters" if len(value.rstrip(".")) > 253 else None


ABSOLUTE_PATH = ValueKind(
    "an absolute path", r"/[A-Za-z0-9._/-]*",
    "absolute, normalised, made of letters, digits, '.', '_', '-' and '/'", extra=(_normalised_path,),
    trailing_slash=True)
DEVICE_PATH = ValueKind(
    "a device path", r"/dev/[A-Za-z0-9._/:+-]*", "a /dev path of letters, digits and . _ / : + -",
    extra=(_normalised_path,))
PLATFORM_ROOT = ValueKind(
    "a folder for the platform", r"/[A-Za-z0-9._/-]*",
    "an absolute folder of letters, digits, '.', '_', '-' and '/', e.g. /opt/keybuzz",
    extra=(_normalised_path, _not_system_path), trailing_slash=True)
LOCAL_PATH = ValueKind(
    "a path on this machine", r"[A-Za-z0-9._/~+@-]+",
    "letters, digits and . _ / ~ + @ -; relative paths are taken from the site folder")
DNS_NAME = ValueKind(
    "a DNS name", rf"{_LABEL}(?:\.{_LABEL})*\.?",
    "RFC 1123: labels of letters, digits and '-' (not at their ends), joined by dots",
    max_length=254, extra=(_dns_length,))
HOST = ValueKind(
    "a DNS name or IPv4 address", rf"(?:{_IPV4})|(?:{_LABEL}(?:\.{_LABEL})*\.?)",
    "a name such as ntp1.hetzner.de or an address such as 10.0.0.1", max_length=254, extra=(_dns_length,))
REGISTRY = ValueKind(
    "a container registry", rf"(?:{_LABEL}(?:\.{_LABEL})*)(?::[0-9]{{1,5}})?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*",
    "host[:port][/path], e.g. registry.example.com:5000/keybuzz")
NAME = ValueKind(
    "a name", r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?",
    "letters, digits, '.', '_' and '-', starting and ending with a letter or digit", max_length=63)
POSIX_USER = ValueKind(
    "a Unix user or group name", r"[a-z_][a-z0-9_-]*",
    "lower-case letters, digits, '_' and '-', starting with a letter or '_'", max_length=32)
SSHD_PATTERN = ValueKind(
    "an sshd AllowUsers/AllowGroups pattern", r"[A-Za-z0-9_.*?!-]+(?:@[A-Za-z0-9_.*?!:/-]+)?",
    "a user or group name, with * and ? wildcards and an optional @host part (no spaces, quotes or #)",
    max_length=128)
VERSION = ValueKind(
    "a version", r"[A-Za-z0-9](?:[A-Za-z0-9.+:~_-]*[A-Za-z0-9])?",
    "letters, digits and . + : ~ _ -, e.g. 1.33.5+k3s1 or 5:27.3.1-1~debian.12~bookworm", max_length=128)
KEY = ValueKind(
    "a key", r"[a-z0-9](?:[a-z0-9_-]*[a-z0-9])?", "lower-case letters, digits, '_' and '-'", max_length=63)
MOUNT_OPTION = ValueKind(
    "a mount option", r"[A-Za-z0-9_][A-Za-z0-9_.=:/+-]*",
    "one option such as noatime or logbsize=256k: letters, digits and _ . = : / + -", max_length=128)
RESOLVER_OPTION = ValueKind(
    "a resolv.conf option", r"[a-z][a-z0-9-]*(?::[0-9]{1,4})?", "e.g. timeout:2, attempts:2, rotate, edns0",
    max_length=32)
DESCRIPTION = ValueKind(
    "a short description", r"[A-Za-z0-9][A-Za-z0-9._/+-]*",
    "letters, digits and . _ / + - (use '-' between words)", max_length=60)
PASSWORD = ValueKind(
    "a usable password", rf"[A-Za-z0-9{re.escape(PASSWORD_SYMBOLS)}]+",
    f"8-256 ASCII letters, digits and {' '.join(PASSWORD_SYMBOLS)}: no space, quote, backslash, $, #, ; or `; "
    "delete the line and run `keybuzz init SITE --credentials` for a generated one",
    min_length=8, max_length=256, secret=True)
ERLANG_COOKIE = ValueKind(
    "an Erlang cookie", r"[A-Za-z0-9]+", "20-255 ASCII letters and digits", min_length=20, secret=True)
POSTGRES_NAME = ValueKind(
    "a PostgreSQL role or database name", r"[a-z_][a-z0-9_]*",
    "lower-case letters, digits and '_', starting with a letter or '_' (an unquoted SQL identifier), "
    "not a pg_hba keyword", max_length=63, extra=(_not_hba_keyword,))
MARIADB_NAME = ValueKind(
    "a MariaDB user name", r"[A-Za-z0-9_]+", "letters, digits and '_'", max_length=32)
SERVICE_USER = ValueKind(
    "a service user name", r"[A-Za-z0-9_](?:[A-Za-z0-9._-]*[A-Za-z0-9_])?",
    "letters, digits, '.', '_' and '-' (no ':' or '@': it goes into HTTP basic auth and ACLs)", max_length=64)
S3_ACCESS_KEY = ValueKind(
    "an S3 access key", r"[A-Za-z0-9_.-]+", "3-128 letters, digits, '_', '.' and '-'", min_length=3, max_length=128)
HTTPS_URL = ValueKind(
    "an http(s) URL", r"https?://[A-Za-z0-9._~:/?#\[\]@%&+,=-]+",
    "the full URL the service gave you, https://...; percent-encode spaces and quotes", max_length=2048,
    secret=True)

# A credential no module declares (a third party's key kept in the site for the applications): keybuzz
# only stores it and never renders it into a file or a command, so any printable ASCII is kept as is.
OPAQUE = ValueKind("a printable value", r"[!-~](?:[ -~]*[!-~])?", "printable ASCII, no control character",
                   max_length=4096)
OPAQUE_SECRET = ValueKind("a printable secret", OPAQUE.form, OPAQUE.hint, max_length=4096, secret=True)


def kind_of(metadata: list[Any]) -> ValueKind | None:
    """The ValueKind in a pydantic field's metadata (tests check that every text field has one)."""
    return next((m for m in metadata if isinstance(m, ValueKind)), None)


def _text_types(annotation: Any, metadata: list[Any]) -> Iterator[list[Any]]:
    """The metadata of each `str` inside an annotation (lists, dicts, unions, Annotated)."""
    if annotation is str:
        yield metadata
    elif typing.get_origin(annotation) is typing.Annotated:
        base, *extra = typing.get_args(annotation)
        yield from _text_types(base, [*metadata, *extra])
    elif typing.get_origin(annotation) is not typing.Literal and not (
            isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        for arg in typing.get_args(annotation):
            yield from _text_types(arg, [])


def _typed(metadata: list[Any]) -> bool:
    """A ValueKind, or an anchored pattern (`Field(pattern=r"^...$")`, also inside Annotated)."""
    metadata = [*metadata, *(inner for m in metadata for inner in getattr(m, "metadata", []))]
    patterns = [getattr(m, "pattern", None) for m in metadata]
    return kind_of(metadata) is not None or any(p and p.startswith("^") and p.endswith("$") for p in patterns)


def untyped_text_fields(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Dotted names of the text fields of `model` (nested models included) that have neither a kind nor
    an anchored pattern: a module's keybuzz.yaml section may have none (SettingsSection refuses it)."""
    found = []
    for name, info in model.model_fields.items():
        found += [prefix + name for metadata in _text_types(info.annotation, list(info.metadata))
                  if not _typed(metadata)]
        for arg in [info.annotation, *typing.get_args(info.annotation)]:
            for inner in [arg, *typing.get_args(arg)]:
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    found += untyped_text_fields(inner, f"{prefix}{name}.")
    return found
