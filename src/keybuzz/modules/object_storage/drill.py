"""Failover drills of the object storage module (its drill hooks of keybuzz.contract.Module).

Every round writes through the load balancer (one PUT of a small unique object every 100 ms, its
sha256 recorded, 2 s timeouts, no client retries) while a reader GETs earlier objects and compares their
sha256. The fault hits the storage server of the master leader (the worst case: a raft election and
every volume server re-registering) or, for poweroff-follower, another one. The round's details hold the
PUT gap and GET gap (longest time without a successful PUT or GET after the fault), the acknowledged
objects missing or corrupt while the server is down (the framework counts them again once it is back),
and the leader before and after.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import threading
import time

from keybuzz.contract import DrillContext, RoundPlan, WriterProbe
from keybuzz.modules.object_storage import layout, s3, state
from keybuzz.poll import NotYet, wait_until
from keybuzz.site import Site

SCENARIOS: dict[str, str] = {
    "poweroff-node": "power off the storage server of the master leader (peers see silence): another leader, "
                     "every volume server re-registers, HAProxy drops its gateway",
    "poweroff-follower": "power off a storage server whose master follows: its volumes and its gateway go",
    "crash-node": "kill every process of the leader's storage server (peers get resets)",
    "partition-node": "cut the leader's storage server off the network, then heal it",
    "isolate-node": "cut the leader's storage server from the other storage servers only: HAProxy and the "
                    "clients still reach its gateway",
}
FAULT_KINDS: dict[str, tuple[str, ...]] = {
    "poweroff-node": ("poweroff", "stop"),
    "poweroff-follower": ("poweroff", "stop"),
    "crash-node": ("crash",),
    "partition-node": ("partition",),
    "isolate-node": ("isolate",),
}
HEALTHY_TIMEOUT_S = 120.0
REJOIN_TIMEOUT_S = 120.0
CLIENT_TIMEOUT_S = 2.0
READ_INTERVAL_S = 0.1
READ_AFTER_S = 1.0  # the reader picks objects acknowledged at least this long ago (filers sync in ms)


def longest_gap(successes: list[float], since: float, until: float) -> float:
    """Longest time without a success in [since, until], counting from the last success before `since`."""
    before = [t for t in successes if t < since]
    last, worst = (before[-1] if before else since), 0.0
    for t in sorted(t for t in successes if since <= t <= until):
        worst, last = max(worst, t - last), t
    return round(max(worst, until - last), 3)


class S3WriterProbe(WriterProbe):
    """Each acknowledged PUT is an object (its sha256 kept) that must be intact after the fault."""

    def __init__(self, site: Site, url: str, bucket: str, prefix: str):
        self.bucket, self.prefix = bucket, prefix
        self._conn = s3.application(site, url, timeout=CLIENT_TIMEOUT_S)
        self._read_conn = s3.application(site, url, timeout=10.0)
        self._lock = threading.Lock()
        self.digests: dict[int, str] = {}
        self.acked_at: dict[int, float] = {}  # monotonic time each PUT was acknowledged
        self.corrupt: set[int] = set()

    def key(self, write_id: int) -> str:
        return f"{self.prefix}/{write_id}"

    def write(self, write_id: int) -> None:
        digest = s3.put(self._conn, self.bucket, self.key(write_id), f"{write_id}:".encode() + secrets.token_bytes(48))
        with self._lock:
            self.digests[write_id] = digest
            self.acked_at[write_id] = time.monotonic()

    def acknowledged(self) -> dict[int, str]:
        with self._lock:
            return dict(self.digests)

    def acknowledged_before(self, moment: float) -> list[tuple[int, str]]:
        with self._lock:
            return [(i, self.digests[i]) for i, at in self.acked_at.items() if at <= moment]

    def verify(self) -> tuple[set[int], set[int], set[int]]:
        """GET every acknowledged object: (intact, missing, corrupt). Raises on an error that is not an
        answer (timeouts, 5xx): the caller retries."""
        intact, missing, corrupt = set(), set(), set()
        for write_id, digest in self.acknowledged().items():
            try:
                got = s3.get_digest(self._read_conn, self.bucket, self.key(write_id))
            except Exception as exc:
                if s3.error_code(exc) not in ("NoSuchKey", "404"):
                    raise
                missing.add(write_id)
                continue
            (intact if got == digest else corrupt).add(write_id)
        return intact, missing, corrupt

    def read_ids(self) -> set[int]:
        intact, _, corrupt = self.verify()
        self.corrupt = corrupt
        # Drill objects do not stay in a production bucket.
        s3.delete_keys(self._read_conn, self.bucket, s3.keys_under(self._read_conn, self.bucket, self.prefix + "/"))
        return intact

    def classify(self, exc: BaseException) -> str:
        code = s3.error_code(exc)
        return code if code[:1].isupper() and code.isalnum() else super().classify(exc)


class Reader:
    """GETs of earlier acknowledged objects at a steady pace in a thread, each checked against its sha256."""

    def __init__(self, site: Site, url: str, writer: S3WriterProbe):
        self.writer = writer
        self._conn = s3.application(site, url, timeout=CLIENT_TIMEOUT_S)
        self.successes: list[float] = []
        self.failures: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="reader-probe", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            ready = self.writer.acknowledged_before(started - READ_AFTER_S)
            if ready:
                write_id, digest = random.choice(ready)
                try:
                    same = s3.get_digest(self._conn, self.writer.bucket, self.writer.key(write_id)) == digest
                    kind = None if same else "corrupt"
                except Exception as exc:
                    kind = s3.error_code(exc)
                if kind is None:
                    self.successes.append(time.monotonic())
                else:
                    self.failures[kind] = self.failures.get(kind, 0) + 1
            self._stop.wait(max(0.0, READ_INTERVAL_S - (time.monotonic() - started)))


async def cluster_healthy(site: Site) -> bool:
    problems = await state.cluster_problems(site)
    problems += state.all_up_problems(site, await state.haproxy_up(site))
    if problems:
        raise NotYet("; ".join(problems))
    return True


async def wait_healthy(site: Site) -> None:
    await wait_until("a healthy storage cluster, every gateway UP in every HAProxy", lambda: cluster_healthy(site),
                     timeout=HEALTHY_TIMEOUT_S, interval=0.5, module=layout.MODULE)


async def pick_target(site: Site, scenario: str) -> tuple[str, str]:
    """(target, leader): the leader's server, or for poweroff-follower another one."""
    leader = await state.leader(site)
    if leader is None:
        raise ValueError("no master leader named by a majority of the masters")
    if scenario != "poweroff-follower":
        return leader, leader
    return next(s.hostname for s in layout.storage_servers(site) if s.hostname != leader), leader


def fault_kind(scenario: str, offered: tuple[str, ...]) -> str:
    """The scenario's fault, by preference, among those these servers offer (the lab: all; real servers: stop)."""
    for kind in FAULT_KINDS[scenario]:
        if kind in offered:
            return kind
    raise ValueError(f"scenario {scenario} needs a fault among {', '.join(FAULT_KINDS[scenario])}; these servers "
                     f"offer {', '.join(offered)}")


class StorageDrills:
    """Mixed into the module: its drill hooks."""

    def drill_settings(self, dctx: DrillContext) -> dict[str, object]:
        chosen = layout.settings(dctx.ctx.site)
        tuning = chosen.seaweedfs
        return {"backend": chosen.backend, "copies": tuning.copies,
                "peer_watch": f"connect every {tuning.peer_probe_interval_ms} ms, timeout "
                              f"{tuning.peer_probe_timeout_ms} ms, silent after {tuning.peer_silent_probes}",
                "writer": "PUT of a 50-byte object every 100 ms through the LB, 2 s timeouts, no retries",
                "reader": "GET of an earlier object every 100 ms through the LB, sha256 compared"}

    async def prepare_drill(self, dctx: DrillContext) -> None:
        """A round starts only on a healthy cluster with every gateway UP behind the load balancer."""
        site = dctx.ctx.site
        if layout.settings(site).backend != "seaweedfs":
            raise ValueError("drills need backend seaweedfs (MinIO is not exercised by keybuzz's lab)")
        if layout.vip_url(site) is None:
            raise ValueError(f"no load balancer lists port {layout.settings(site).port}: the drill writes through it")
        await wait_healthy(site)

    async def finish_drill(self, dctx: DrillContext) -> None:
        """Nothing to put back: prepare_drill only waits for a healthy cluster."""

    async def plan_round(self, dctx: DrillContext, scenario: str, number: int) -> RoundPlan:
        site = dctx.ctx.site
        kind = fault_kind(scenario, dctx.faults.kinds)
        await wait_healthy(site)
        target, leader_before = await pick_target(site, scenario)
        url = str(layout.vip_url(site))
        prefix = f"keybuzz-drill/{scenario}-{number}-{secrets.token_hex(4)}"
        probe = S3WriterProbe(site, url, layout.settings(site).buckets[0], prefix)
        reader = Reader(site, url, probe)
        peers = [s.hostname for s in layout.storage_servers(site) if s.hostname != target]
        seen: dict[str, object] = {"leader_before": leader_before}
        marks: dict[str, float] = {}

        async def inject() -> None:
            reader.start()
            marks["fault"] = time.monotonic()
            await dctx.faults.inject(kind, target, peers)

        async def recover() -> float | None:
            marks["writes_end"] = time.monotonic()
            reader.stop()
            try:
                _, missing, corrupt = await asyncio.to_thread(probe.verify)
                seen.update(missing_while_down=len(missing), corrupt_while_down=len(corrupt))
            except Exception as exc:  # the write path is back, but not every GET answered: said, not hidden
                seen["missing_while_down"] = f"not verified ({s3.error_code(exc)})"
            started = time.monotonic()
            await dctx.faults.restore(kind, target)
            await wait_until(f"{target} back: the cluster healthy, its gateway UP in every HAProxy",
                             lambda: cluster_healthy(site), timeout=REJOIN_TIMEOUT_S, interval=0.5, where=target,
                             module=layout.MODULE)
            return time.monotonic() - started

        async def new_primary() -> str | None:
            leader = await state.leader(site)  # None while there is none: the drill runner asks again
            seen["leader_after"] = leader
            return leader

        def details() -> dict[str, object]:
            fault, end = marks.get("fault", 0.0), marks.get("writes_end", time.monotonic())
            return {**seen, "put_gap_s": longest_gap(sorted(probe.acked_at.values()), fault, end),
                    "get_gap_s": longest_gap(reader.successes, fault, end), "get_errors": dict(reader.failures),
                    "gets_ok": len(reader.successes), "corrupt_after_back": len(probe.corrupt)}

        return RoundPlan(scenario=scenario, target=target, probe=probe, inject=inject, recover=recover,
                         new_primary=new_primary, settle_s=5.0, observe_s=15.0, max_outage_s=120.0, details=details)
