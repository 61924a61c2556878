"""SSH to the site's hosts: one connection per host reused for a whole run, clear per-host errors.

Known hosts: `ssh.known_hosts` in keybuzz.yaml is an OpenSSH known_hosts file (relative paths are
taken from the site folder, `~` is expanded) and host keys are checked strictly against it: an
unknown or changed key is a per-host error, never a silent accept. `known_hosts: null` turns the
check off only together with `insecure_accept_any_host_key: true` (the site refuses one without the
other; a warning is logged on every run); use it only on a network you trust. The lab writes its own
known_hosts next to its site.
"""

from __future__ import annotations

import asyncio
import shlex
import time
from asyncio.subprocess import DEVNULL, PIPE
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import asyncssh

from keybuzz.containers import ContainerCli
from keybuzz.errors import OperationFailed
from keybuzz.logs import get_logger
from keybuzz.poll import describe
from keybuzz.secrets import redact

if TYPE_CHECKING:
    from keybuzz.site import Site

log = get_logger("ssh")
MAX_SESSIONS_PER_HOST = 8


@dataclass(frozen=True)
class RunResult:
    exit_status: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


class HostUnreachable(OperationFailed):
    """No SSH session could be opened to this host (after retries)."""


class CommandFailed(OperationFailed):
    """A remote command exited non-zero; the message carries its (redacted) stderr."""


@dataclass(frozen=True)
class SshSettings:
    """keybuzz.yaml `ssh:` with paths resolved against the site folder."""

    user: str
    port: int
    identity_file: Path
    known_hosts: Path | None
    connect_timeout: float
    command_timeout: float
    retries: int
    parallelism: int

    @classmethod
    def from_site(cls, site: Site) -> SshSettings:
        ssh = site.config.ssh

        def resolve(value: str) -> Path:
            path = Path(value).expanduser()
            return path if path.is_absolute() else (site.root / path)

        return cls(user=ssh.user, port=ssh.port, identity_file=resolve(ssh.identity_file),
                   known_hosts=resolve(ssh.known_hosts) if ssh.known_hosts else None,
                   connect_timeout=ssh.connect_timeout_s, command_timeout=ssh.command_timeout_s,
                   retries=ssh.retries, parallelism=ssh.parallelism)


def _options(settings: SshSettings) -> asyncssh.SSHClientConnectionOptions:
    """Read the key and known_hosts once for every connection of the run."""
    try:
        key = asyncssh.read_private_key(str(settings.identity_file))
    except (OSError, asyncssh.KeyImportError) as exc:
        raise OperationFailed(f"cannot read SSH identity file {settings.identity_file}: {exc}",
                              step="ssh setup") from None
    if settings.known_hosts is None:
        log.warning("ssh.insecure_accept_any_host_key: host keys are NOT checked; anyone on the path can pose "
                    "as a server and receive its secrets")
        known_hosts = None
    else:
        try:
            known_hosts = asyncssh.read_known_hosts(str(settings.known_hosts))
        except OSError as exc:
            raise OperationFailed(f"cannot read known_hosts {settings.known_hosts}: {exc}", step="ssh setup",
                                  resume="add the hosts' keys to it (ssh-keyscan) or set ssh.known_hosts") from None
    return asyncssh.SSHClientConnectionOptions(
        username=settings.user, client_keys=[key], known_hosts=known_hosts, agent_path=None, gss_host=None,
        preferred_auth="publickey", connect_timeout=settings.connect_timeout, login_timeout=settings.connect_timeout,
        keepalive_interval=15, keepalive_count_max=3, encryption_algs=_ciphers(), compression_algs=None)


def _ciphers() -> list[str]:
    """AES-GCM first: one C call per packet, where asyncssh's chacha20-poly1305 spends measurable Python
    time per packet (profiled: ~15 % of a 50-host no-op). Every default stays acceptable."""
    preferred = ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com"]
    defaults = [alg.decode() for alg in asyncssh.encryption.get_default_encryption_algs()]
    return [alg for alg in preferred if alg in defaults] + [alg for alg in defaults if alg not in preferred]


class SshPool:
    """Connections keyed by hostname; opened on first use, at most `parallelism` handshakes at once."""

    def __init__(self, settings: SshSettings, addresses: dict[str, str], container_cli: str):
        self.settings = settings
        self.addresses = addresses
        self.container_cli = container_cli
        self._options: asyncssh.SSHClientConnectionOptions | None = None
        self._connections: dict[str, asyncssh.SSHClientConnection] = {}
        self._failures: dict[str, HostUnreachable] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._handshakes = asyncio.Semaphore(settings.parallelism)
        self._sessions: dict[str, asyncio.Semaphore] = {}
        self.opened = 0  # SSH handshakes done: one per host per run when connections are reused

    def sessions(self, hostname: str) -> asyncio.Semaphore:
        """Commands at once on one connection: OpenSSH refuses more than MaxSessions (10) channels."""
        return self._sessions.setdefault(hostname, asyncio.Semaphore(MAX_SESSIONS_PER_HOST))

    def host(self, hostname: str) -> SshHost:
        if hostname not in self.addresses:
            raise KeyError(f"unknown host {hostname!r}: not in servers.tsv")
        return SshHost(self, hostname, self.addresses[hostname])

    async def connection(self, hostname: str, *, timeout: float | None = None,
                         retries: int | None = None) -> asyncssh.SSHClientConnection:
        """The live connection to this host; a host that failed stays failed for this run.
        `timeout`/`retries` override the site's for this attempt (the pre-checks answer in seconds)."""
        lock = self._locks.setdefault(hostname, asyncio.Lock())
        async with lock:
            conn = self._connections.get(hostname)
            if conn is not None and not conn.is_closed():
                return conn
            if hostname in self._failures:
                raise self._failures[hostname]
            try:
                conn = await self._connect(hostname, timeout, retries)
            except HostUnreachable as exc:
                self._failures[hostname] = exc
                raise
            self._connections[hostname] = conn
            self.opened += 1
            return conn

    async def _connect(self, hostname: str, timeout: float | None, retries: int | None) -> asyncssh.SSHClientConnection:
        if self._options is None:
            self._options = _options(self.settings)
        address, port = self.addresses[hostname], self.settings.port
        attempts = (self.settings.retries if retries is None else retries) + 1
        limit = timeout or self.settings.connect_timeout
        last = ""
        for attempt in range(1, attempts + 1):
            try:
                async with self._handshakes:
                    return await asyncio.wait_for(
                        asyncssh.connect(address, port, options=self._options, config=None,
                                         connect_timeout=limit, login_timeout=limit), timeout=limit + 1)
            except asyncssh.HostKeyNotVerifiable as exc:
                raise HostUnreachable(
                    f"{hostname} ({address}:{port}): host key not verified ({exc.reason}); "
                    f"check {self.settings.known_hosts}", host=hostname, step="ssh connect") from None
            except asyncssh.PermissionDenied:
                raise HostUnreachable(f"{hostname} ({address}:{port}): permission denied for user "
                                      f"{self.settings.user} with key {self.settings.identity_file}",
                                      host=hostname, step="ssh connect") from None
            except (TimeoutError, OSError, asyncssh.Error) as exc:
                last = describe(exc, waited=limit)
                log.warning("host=%s step=ssh-connect result=retry attempt=%d/%d error=%s",
                            hostname, attempt, attempts, last)
                if attempt < attempts:
                    await asyncio.sleep(min(0.5 * attempt, 2.0))
        raise HostUnreachable(f"{hostname} ({address}:{port}) unreachable over SSH after {attempts} attempt(s): "
                              f"{last}", host=hostname, step="ssh connect")

    async def close(self) -> None:
        connections = list(self._connections.values())
        self._connections.clear()
        for conn in connections:
            conn.close()
        await asyncio.gather(*(conn.wait_closed() for conn in connections), return_exceptions=True)


class SshHost:
    """HostHandle over the pool's connection: argv is shell-quoted, stdin carries any secret."""

    def __init__(self, pool: SshPool, hostname: str, address: str):
        self.pool = pool
        self.hostname = hostname
        self.address = address

    async def run(self, argv: Sequence[str], *, check: bool = True, timeout: float | None = None,
                  stdin: str | None = None) -> RunResult:
        return await self.shell(shlex.join(argv), check=check, timeout=timeout, stdin=stdin)

    async def shell(self, command: str, *, check: bool = True, timeout: float | None = None,
                    stdin: str | None = None) -> RunResult:
        """Run a shell command line (built by our own code, never from user text)."""
        conn = await self.pool.connection(self.hostname)
        limit = timeout if timeout is not None else self.pool.settings.command_timeout
        started = time.monotonic()
        try:
            async with self.pool.sessions(self.hostname):
                # No input (None or ""): stdin is closed at once, or a command reading it (`cat` writing an
                # empty file) would wait for an EOF that asyncssh only sends after some input.
                proc = await conn.run(command, input=stdin or None, stdin=PIPE if stdin else DEVNULL,
                                      timeout=limit, check=False)
        except asyncssh.TimeoutError:
            raise CommandFailed(f"{self.hostname}: `{redact(_short(command))}` still running after {limit:g} s",
                                host=self.hostname, step=_short(command)) from None
        except (asyncssh.Error, OSError) as exc:
            raise HostUnreachable(f"{self.hostname}: SSH session lost ({exc})", host=self.hostname,
                                  step=_short(command)) from None
        result = RunResult(exit_status=proc.exit_status if proc.exit_status is not None else 255,
                           stdout=_text(proc.stdout), stderr=_text(proc.stderr))
        log.debug("host=%s cmd=%s rc=%d duration=%.3fs", self.hostname, _short(command), result.exit_status,
                  time.monotonic() - started)
        if check and not result.ok:
            detail = (result.stderr or result.stdout).strip().splitlines()[-3:]
            raise CommandFailed(f"{self.hostname}: `{redact(_short(command))}` exited {result.exit_status}: "
                                f"{redact(' | '.join(detail))}", host=self.hostname, step=_short(command))
        return result

    async def put(self, local: str, remote: str) -> None:
        """Copy a control-machine file (a binary) over the host's connection (SFTP), 0600 until installed."""
        conn = await self.pool.connection(self.hostname)
        try:
            async with self.pool.sessions(self.hostname), conn.start_sftp_client() as sftp:
                await sftp.put(local, remote)
                await sftp.chmod(remote, 0o600)
        except (asyncssh.Error, OSError) as exc:
            raise HostUnreachable(f"{self.hostname}: copy of {local} to {remote} failed ({exc})", host=self.hostname,
                                  step=f"upload {remote}") from None

    async def container_exec(self, container: str, argv: Sequence[str], *, check: bool = True,
                             timeout: float | None = None, user: str | None = None) -> RunResult:
        command = ContainerCli(self.pool.container_cli).exec(container, argv, user=user)
        return await self.run(command, check=check, timeout=timeout)


def _text(value: object) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _short(command: str, limit: int = 120) -> str:
    first = command.strip().splitlines()[0] if command.strip() else command
    return first if len(first) <= limit else first[: limit - 3] + "..."
