"""Write a site folder (used by `keybuzz init` and by the lab); never overwrites an existing one."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from keybuzz.secrets import CredentialFile, CredentialStore
from keybuzz.site.loader import CONFIG_FILE, CREDENTIALS_DIR, SERVERS_FILE, VERSIONS_FILE
from keybuzz.site.servers import COLUMNS


@dataclass(frozen=True)
class ServerRow:
    hostname: str
    private_ip: str
    roles: tuple[str, ...]
    public_ip: str = ""
    fqdn: str = ""


class SiteExists(Exception):
    pass


def servers_tsv(rows: list[ServerRow], comment: str) -> str:
    lines = [f"# {line}" for line in comment.splitlines()]
    lines.append("\t".join(COLUMNS))
    for row in rows:
        lines.append("\t".join((row.hostname, row.private_ip, row.public_ip, ",".join(row.roles), row.fqdn)))
    return "\n".join(lines) + "\n"


def write_site(root: Path, rows: list[ServerRow], config: dict[str, Any], versions: dict[str, Any],
               comment: str, credentials: list[CredentialFile]) -> list[str]:
    """Write into a temporary folder, then rename: a failure leaves nothing half-written.
    Every credentials file of `credentials` is generated (the registry's: every module's)."""
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise SiteExists(f"{root} already exists and is not an empty folder; refusing to overwrite a site")
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        (staging / SERVERS_FILE).write_text(servers_tsv(rows, comment))
        header = "# keybuzz site settings; every key is optional, unknown keys are errors.\n"
        (staging / CONFIG_FILE).write_text(header + yaml.safe_dump(config, sort_keys=False))
        header = "# Pinned images: never `latest`; add @sha256:... after the tag where the digest is known.\n"
        (staging / VERSIONS_FILE).write_text(header + yaml.safe_dump(versions, sort_keys=False))
        (staging / "logs").mkdir()
        added = CredentialStore(staging / CREDENTIALS_DIR).ensure(credentials)
        os.chmod(staging, 0o755)
        if root.exists():
            root.rmdir()
        staging.rename(root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return added
