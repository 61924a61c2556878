"""Cleanup of the DCS state: without it a re-install waits forever for the old leader
("waiting for leader to bootstrap"). RAFT state is a folder the engine removes with the module
(not a data folder); etcd keys are deleted here, while etcd still runs."""

from __future__ import annotations

import base64

from keybuzz.contract import DeployContext
from keybuzz.modules.postgres import api, layout
from keybuzz.modules.postgres.settings import PatroniTuning


def _b64(text: bytes) -> str:
    return base64.b64encode(text).decode()


def prefix_range(prefix: str) -> tuple[bytes, bytes]:
    """etcd's [key, range_end) covering every key under prefix."""
    key = prefix.encode()
    return key, key[:-1] + bytes([key[-1] + 1])


async def delete_dcs_keys(ctx: DeployContext) -> int:
    """Delete /<namespace>/<scope>/ from etcd (v3 JSON gateway); returns the number of keys deleted."""
    site = ctx.site
    if site.settings(PatroniTuning).dcs != "etcd":
        return 0
    key, end = prefix_range(f"{layout.NAMESPACE.rstrip('/')}/{layout.SCOPE}/")
    for server in site.with_role("db"):
        if ctx.dry_run:
            ctx.note(f"would delete etcd keys under {key.decode()}")
            return 0
        try:
            status, body = await api.call(str(server.private_ip), "/v3/kv/deleterange", method="POST",
                                          port=layout.ETCD_CLIENT_PORT, body={"key": _b64(key), "range_end": _b64(end)})
        except (OSError, TimeoutError):
            continue
        if status == 200 and isinstance(body, dict):
            deleted = int(body.get("deleted", 0))
            ctx.note(f"deleted {deleted} etcd key(s) under {key.decode()}")
            return deleted
    ctx.note("etcd unreachable on every db server: its data folder is removed with the module instead")
    return 0
