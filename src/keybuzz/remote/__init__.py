"""Remote hosts over SSH: connections, one-shot probes and idempotent operations with dry-run."""

from keybuzz.remote.converge import HostOutcome, Reporter, converge_host, due_actions, remove_host
from keybuzz.remote.edits import ensure_line, ensure_sysctl
from keybuzz.remote.ssh import CommandFailed, HostUnreachable, RunResult, SshHost, SshPool, SshSettings

__all__ = ["CommandFailed", "HostOutcome", "HostUnreachable", "Reporter", "RunResult", "SshHost", "SshPool",
           "SshSettings",
           "converge_host", "due_actions", "ensure_line", "ensure_sysctl", "remove_host"]
