"""Credentials: one .env per service, generated once with a CSPRNG, 0600 in a 0700 folder.

Every loaded secret value is registered for redaction, so logging, exceptions shown to the
user and --json output can replace it with `***` wherever it would otherwise appear.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets as _csprng
import stat
import string
from dataclasses import dataclass, field
from pathlib import Path

from keybuzz.errors import InputError, InputErrors, display_path
from keybuzz.values import OPAQUE, OPAQUE_SECRET, PASSWORD, ValueKind

REDACTED = "***"
_ALPHABET = string.ascii_letters + string.digits
SECRET_SUFFIXES = ("_PASSWORD", "_TOKEN", "_COOKIE", "_SECRET", "_KEY")


@dataclass(frozen=True)
class CredentialSpec:
    """One key of a credentials file and the kind of value it holds (checked at load, with its line).
    A secret key (SECRET_SUFFIXES) is a PASSWORD unless its kind says otherwise; `generated=False` keys
    are the operator's to write (a paging URL): `init` leaves them out."""

    key: str
    default: str | None = None  # a fixed non-secret value (user names); None means generate
    length: int = 32
    kind: ValueKind | None = None
    generated: bool = True

    @property
    def value_kind(self) -> ValueKind:
        if self.kind is not None:
            return self.kind
        if is_secret_key(self.key):
            return PASSWORD
        raise ValueError(f"credential {self.key} declares no kind of value (CredentialSpec(kind=...))")


@dataclass(frozen=True)
class CredentialFile:
    """credentials/<service>.env as a module declares it: its keys, and the servers.tsv roles whose
    presence makes the file required (then every key must be there).

    Variable names follow SERVICE_PURPOSE_KIND so a later Vault migration maps them 1:1
    (e.g. vault kv put keybuzz/<service> SUPERUSER_PASSWORD=...)."""

    service: str
    specs: tuple[CredentialSpec, ...]
    roles: tuple[str, ...]


ADD_HINT = "run `keybuzz init SITE --credentials` to add what is missing (existing values are kept)"


def is_secret_key(key: str) -> bool:
    return key.endswith(SECRET_SUFFIXES)


def generate_secret(length: int = 32) -> str:
    """Alphanumeric only: safe unquoted in every config syntax we render (INI, YAML, HAProxy)."""
    return "".join(_csprng.choice(_ALPHABET) for _ in range(length))


class _Redactor:
    """Process-wide set of secret values to hide; longest first so substrings do not leak."""

    def __init__(self) -> None:
        self._values: list[str] = []

    def add(self, value: str) -> None:
        # Also the JSON-escaped form: --json output is redacted after serialisation.
        for form in {value, json.dumps(value)[1:-1]}:
            if len(form) >= 6 and form not in self._values:
                self._values.append(form)
        self._values.sort(key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for value in self._values:
            if value in text:
                text = text.replace(value, REDACTED)
        return text


redact = _Redactor()


def derived_secret(value: str) -> str:
    """A value computed from secrets (base64 of user:password, a password hash, a verifier): as secret as
    what it came from, so it is redacted wherever it would be shown, like a credential. Returns it."""
    redact.add(value)
    return value


class RedactingFilter(logging.Filter):
    """Attach to every handler: the formatted message is redacted before it is written."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """Format the message, traceback and stack now, redacted, so no handler sees a raw value."""
    try:
        message = record.getMessage()
    except (TypeError, ValueError):  # bad %-arguments: logging would report them, we must not raise
        message = f"{record.msg} (unformattable log arguments)"
    record.msg, record.args = redact(message), None
    if record.exc_info and record.exc_info[1] is not None:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.exc_info = None
    if record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    return record


@dataclass
class EnvFile:
    """A parsed .env file: its values, the line of each key, and the lines that could not be read."""

    values: dict[str, str] = field(default_factory=dict, repr=False)
    lines: dict[str, int] = field(default_factory=dict)
    errors: list[InputError] = field(default_factory=list)


def _unquoted(value: str) -> str:
    """A value written between a pair of matching quotes is the text between them."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def read_env(text: str, file: str) -> EnvFile:
    """KEY=value lines (`#` comments, blank lines); split on \n only, so line numbers are an editor's."""
    env = EnvFile()
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            env.errors.append(InputError(file, number, "not a KEY=value line", "write KEY=value, no spaces in KEY"))
            continue
        if key in env.lines:
            env.errors.append(InputError(file, number, f"{key} is set twice (first on line {env.lines[key]})",
                                         "keep one line: which one counts must not be a guess"))
            continue
        env.values[key], env.lines[key] = _unquoted(value.strip()), number
    return env


def parse_env(text: str, file: str) -> tuple[dict[str, str], list[InputError]]:
    env = read_env(text, file)
    return env.values, env.errors


def _kind_of(key: str, declared: dict[str, ValueKind]) -> ValueKind:
    """A declared key's kind. A key no module declares is only stored (third parties' keys for the
    applications): printable, and secret when its name says so."""
    return declared.get(key) or (OPAQUE_SECRET if is_secret_key(key) else OPAQUE)


def _write_private(path: Path, content: str) -> None:
    """Atomic write created 0600 from the start: the secret is never readable by others, and a crash
    leaves the old file or the new one, never an empty one (which would mean new passwords)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)  # a stale tmp keeps its old mode through O_CREAT: start from nothing
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


class CredentialStore:
    """The site's credentials/ folder."""

    def __init__(self, folder: Path):
        self.folder = folder

    def path(self, service: str) -> Path:
        return self.folder / f"{service}.env"

    def permission_errors(self) -> list[InputError]:
        errors = []
        if not self.folder.is_dir():
            return [InputError(display_path(self.folder), 0, "credentials folder is missing", ADD_HINT)]
        mode = stat.S_IMODE(self.folder.stat().st_mode)
        if mode & 0o077:
            errors.append(InputError(display_path(self.folder), 0, f"credentials folder is {mode:04o}, must be 0700",
                                     f"chmod 700 {self.folder}"))
        for file in sorted(self.folder.glob("*.env")):
            mode = stat.S_IMODE(file.stat().st_mode)
            if mode & 0o077:
                errors.append(InputError(display_path(file), 0, f"credentials file is {mode:04o}, must be 0600",
                                         f"chmod 600 {file}"))
        return errors

    def load(self, files: tuple[CredentialFile, ...] | list[CredentialFile] = ()) -> tuple[
            dict[str, dict[str, str]], list[InputError]]:
        """Every service's values, each secret registered for redaction, each value checked against the kind
        `files` declare for its key (a value of the wrong kind is an error at its line, never shown when secret)."""
        result: dict[str, dict[str, str]] = {}
        errors: list[InputError] = []
        if not self.folder.is_dir():
            return result, errors
        kinds = {f.service: {spec.key: spec.value_kind for spec in f.specs} for f in files}
        for file in sorted(self.folder.glob("*.env")):
            shown = display_path(file)
            try:
                text = file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                errors.append(InputError(shown, 0, f"cannot read: {type(exc).__name__}",
                                         "credentials files are UTF-8 text, readable by the installer"))
                continue
            env = read_env(text, shown)
            errors.extend(env.errors)
            declared = kinds.get(file.stem, {})
            for key, value in env.values.items():
                kind = _kind_of(key, declared)
                if kind.secret or is_secret_key(key):
                    redact.add(value)
                problem = kind.problem(value)
                if problem:
                    errors.append(InputError(shown, env.lines[key], f"{key}: {problem}", kind.hint))
            result[file.stem] = env.values
        return result, errors

    def missing_errors(self, files: list[CredentialFile]) -> list[InputError]:
        """Files or keys these services need that are absent (names only, never values)."""
        errors = []
        for file in files:
            path = self.path(file.service)
            if not path.is_file():
                errors.append(InputError(display_path(path), 0, "credentials file is missing", ADD_HINT))
                continue
            present, _ = parse_env(path.read_text(), display_path(path))
            missing = [spec.key for spec in file.specs if spec.key not in present and spec.generated]
            if missing:
                errors.append(InputError(display_path(path), 0, "missing " + ", ".join(missing), ADD_HINT))
        return errors

    def ensure(self, files: list[CredentialFile]) -> list[str]:
        """Create missing files and keys; never change an existing value. Returns what was added.

        An existing folder with open permissions is refused (InputErrors with the chmod), not fixed.
        """
        if self.folder.exists():
            problems = self.permission_errors()
            if problems:
                raise InputErrors(problems)
        else:
            self.folder.mkdir(mode=0o700, parents=True)
            os.chmod(self.folder, 0o700)
        added: list[str] = []
        for file in files:
            service = file.service
            path = self.path(service)
            existing: dict[str, str] = {}
            text = ""
            if path.exists():
                text = path.read_text()
                existing, _ = parse_env(text, str(path))
            missing = [spec for spec in file.specs if spec.key not in existing and spec.generated]
            if not missing:
                continue
            if text and not text.endswith("\n"):
                text += "\n"
            if not text:
                text = f"# keybuzz credentials for {service}: generated once, never regenerated. Keep 0600.\n"
            for spec in missing:
                value = spec.default if spec.default is not None else generate_secret(spec.length)
                if is_secret_key(spec.key):
                    redact.add(value)
                text += f"{spec.key}={value}\n"
                added.append(f"{service}.{spec.key}")
            _write_private(path, text)
        return added
