"""`keybuzz validate minio`: the seed's one check (connectivity) and what its single node lacked: every
node healthy, every object replicated, the endpoint behind the load balancer on every gateway, and the
application key confined to its buckets, with boto3 through the load balancer."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable

from keybuzz.contract import CheckResult, DeployContext
from keybuzz.contract.checks import seen_detail, seen_within
from keybuzz.modules.object_storage import layout, s3, state
from keybuzz.modules.object_storage.settings import OPS_BUCKET
from keybuzz.poll import describe
from keybuzz.site import Site
from keybuzz.site.servers import Server

SEEN_BOUND_S = 5.0  # filers replicate metadata to their peers asynchronously (milliseconds when healthy)
SETTLE_S = 30.0  # a new master leader's 15 s warm-up, the volume servers' 8 s to report in, and a margin
MINIO_NOT_HERE = ("MinIO is not exercised by keybuzz's lab (no MinIO image or binary is reachable from its "
                  "machine, and its community edition is archived); backend seaweedfs runs for real there")
MINIO_NO_APP_KEY = ("this version does not create the application user on MinIO (it needs MinIO's admin API: "
                    "`mc admin user add` and a bucket policy, docs/object_storage.md)")


def _key() -> str:
    return f"keybuzz-check/{secrets.token_hex(8)}"


async def _run(name: str, call: Callable[[], CheckResult]) -> CheckResult:
    """A boto3 round trip in a thread; its S3 error, never its credentials, in the result."""
    try:
        return await asyncio.to_thread(call)
    except Exception as exc:
        return CheckResult(name, False, f"{s3.error_code(exc)}: {describe(exc)}")


def _denied(name: str, what: str, call: Callable[[], object]) -> CheckResult:
    try:
        call()
    except Exception as exc:
        code = s3.error_code(exc)
        return CheckResult(name, code in ("AccessDenied", "403"), f"{what}: {code}")
    return CheckResult(name, False, f"{what} was allowed")


async def check_nodes(site: Site) -> list[CheckResult]:
    answers = await asyncio.gather(*(state.node_problems(site, s) for s in layout.storage_servers(site)))
    return [CheckResult(f"{server.hostname}: master, volume server, filer and S3 gateway healthy", not problems,
                        "; ".join(problems) or "every health endpoint answers 200")
            for server, problems in zip(layout.storage_servers(site), answers, strict=True)]


async def check_raft(site: Site) -> tuple[CheckResult, str | None]:
    """Waits up to SETTLE_S for a leader change to settle, and says so: every leader change (a stall of
    its server past its 500 ms raft lease is one) refuses writes for 15 s while the volume servers
    report in again, and validating then would fail every S3 check on a cluster that heals itself."""
    name = "one master leader, every volume server registered with it, file ids handed out"
    started, settling = time.monotonic(), ""
    while True:
        problems, leader = await state.raft_problems(site)
        if not problems and leader:
            problem = await state.assign_problem(site, leader)
            problems = [problem] if problem else []
        waited = time.monotonic() - started
        if not problems:
            note = f" (after {waited:.1f} s: {settling})" if settling else ""
            return CheckResult(name, True, f"leader {leader}{note}"), leader
        if waited >= SETTLE_S:
            return CheckResult(name, False, f"still after {SETTLE_S:g} s: " + "; ".join(problems)), None
        settling = "; ".join(problems)
        await asyncio.sleep(0.5)


async def check_replication(site: Site, leader: str | None) -> CheckResult:
    copies = layout.settings(site).seaweedfs.copies
    name = f"every volume has {copies} replicas on distinct servers"
    if leader is None:
        return CheckResult(name, False, "no healthy master leader to ask")
    try:
        problems, count = await state.replication_problems(site, leader, copies)
    except (OSError, TimeoutError, ValueError) as exc:
        return CheckResult(name, False, describe(exc))
    return CheckResult(name, not problems and count > 0, "; ".join(problems) or f"{count} volumes")


async def check_minio_nodes(site: Site) -> list[CheckResult]:
    answers = await asyncio.gather(*(state.healthz(s, layout.MINIO_PORT, "/minio/health/live")
                                     for s in layout.storage_servers(site)))
    return [CheckResult(f"{server.hostname}: MinIO live", answer is None, answer or "/minio/health/live 200")
            for server, answer in zip(layout.storage_servers(site), answers, strict=True)]


async def check_haproxy(site: Site) -> list[CheckResult]:
    results = []
    for host, up in (await state.haproxy_up(site)).items():
        problems = state.all_up_problems(site, {host: up})
        results.append(CheckResult(f"HAProxy {host}: every S3 gateway UP", not problems,
                                   "; ".join(problems) or f"UP: {', '.join(sorted(up))}"))
    return results


def round_trip_name(who: str) -> str:
    return f"{who}: list buckets, PUT, GET, DELETE through the load balancer"


def round_trip(site: Site, url: str, conn: s3.S3Client, who: str) -> CheckResult:
    """List the buckets, PUT, GET (same sha256), DELETE, as `who`, through the load balancer."""
    name = round_trip_name(who)
    bucket, key, body = layout.settings(site).buckets[0], _key(), secrets.token_bytes(64)
    names = s3.bucket_names(conn)
    missing = [b for b in layout.settings(site).buckets if b not in names]
    if missing:
        return CheckResult(name, False, f"buckets not listed: {', '.join(missing)}")
    digest = s3.put(conn, bucket, key, body)
    same = s3.get_digest(conn, bucket, key) == digest
    conn.delete_object(Bucket=bucket, Key=key)
    keys = s3.keys_under(conn, bucket, key)
    ok = same and not keys
    return CheckResult(name, ok, f"{url}, bucket {bucket}" if ok else
                       ("read back another content" if not same else "the object is still listed after DELETE"))


def app_confined(site: Site, url: str) -> list[CheckResult]:
    """The application key: only its buckets, no admin operation, and a wrong secret refused."""
    app = s3.application(site, url)
    listed = s3.bucket_names(app)
    wanted = sorted(layout.settings(site).buckets)
    results = [CheckResult("the application key lists only its buckets", listed == wanted,
                           f"lists {', '.join(listed) or 'nothing'}")]
    results.append(_denied("the application key is denied a bucket it does not own", f"PUT into {OPS_BUCKET}",
                           lambda: app.put_object(Bucket=OPS_BUCKET, Key=_key(), Body=b"x")))
    results.append(_denied("the application key is denied admin operations", "CreateBucket",
                           lambda: app.create_bucket(Bucket=f"keybuzz-check-{secrets.token_hex(4)}")))
    creds = site.credentials["minio"]
    wrong = s3.client(url, creds["MINIO_APP_USER"], secrets.token_hex(16))
    try:
        wrong.list_objects_v2(Bucket=wanted[0])
        results.append(CheckResult("a wrong secret is refused", False, "a request signed with a wrong secret passed"))
    except Exception as exc:
        code = s3.error_code(exc)
        results.append(CheckResult("a wrong secret is refused", code in ("SignatureDoesNotMatch", "403"), code))
    return results


async def check_every_gateway_reads(site: Site, url: str) -> CheckResult:
    """An object written through the load balancer is readable from every S3 gateway directly."""
    name = "an object written through the LB is readable from every S3 gateway"
    app = s3.application(site, url)
    bucket, key = layout.settings(site).buckets[0], _key()
    try:
        digest = await asyncio.to_thread(s3.put, app, bucket, key, secrets.token_bytes(64))
    except Exception as exc:
        return CheckResult(name, False, f"PUT: {s3.error_code(exc)}")

    def reader(server: Server) -> Callable[[], Awaitable[bool]]:
        conn = s3.application(site, layout.gateway_url(site, server))

        async def read() -> bool:
            return await asyncio.to_thread(s3.get_digest, conn, bucket, key) == digest
        return read

    try:
        seen, missing = await seen_within(SEEN_BOUND_S, {s.hostname: reader(s) for s in layout.storage_servers(site)})
    finally:
        await asyncio.to_thread(app.delete_object, Bucket=bucket, Key=key)
    return CheckResult(name, not missing, seen_detail(seen, missing, SEEN_BOUND_S))


async def through_lb(site: Site) -> list[CheckResult]:
    url = layout.vip_url(site)
    if url is None:
        return [CheckResult("through the load balancer", False,
                            f"no load balancer lists port {layout.settings(site).port} in keybuzz.yaml "
                            "(load_balancers): clients have no endpoint", available=False)]
    if layout.settings(site).backend == "minio":
        who, conn = "the root key", s3.admin(site, url)
    else:
        who, conn = "the application key", s3.application(site, url)
    results = [await _run(round_trip_name(who), lambda: round_trip(site, url, conn, who))]
    if layout.settings(site).backend == "minio":
        return [*results, CheckResult("the application key", False, MINIO_NO_APP_KEY, available=False)]
    try:
        results += await asyncio.to_thread(app_confined, site, url)
    except Exception as exc:
        results.append(CheckResult("the application key confined to its buckets", False,
                                   f"{s3.error_code(exc)}: {describe(exc)}"))
    results.append(await check_every_gateway_reads(site, url))
    return results


async def validate(ctx: DeployContext) -> list[CheckResult]:
    site = ctx.site
    if layout.settings(site).backend == "minio":
        results = [CheckResult("MinIO backend", False, MINIO_NOT_HERE, available=False)]
        return [*results, *await check_minio_nodes(site), *await check_haproxy(site), *await through_lb(site)]
    raft, leader = await check_raft(site)
    results = [raft, *await check_nodes(site), *await check_haproxy(site), *await through_lb(site)]
    # After the writes above: SeaweedFS creates its volumes on the first write.
    return [*results, await check_replication(site, leader)]
