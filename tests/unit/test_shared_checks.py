"""The pieces every module shares: the wait primitive, HAProxy's stats and its one-UP rule, the
replication-within-bound check, rolling changes, and the render values filled at deploy."""

from __future__ import annotations

import asyncio
import stat
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest

from keybuzz.containers import ContainerCli, ContainerSpec
from keybuzz.contract.checks import seen_detail, seen_within
from keybuzz.contract.rolling import roll
from keybuzz.haproxy import one_up_problems, one_up_rule, parse_config, parse_stats_csv, up_servers
from keybuzz.poll import NotYet, WaitTimeout, describe, wait_until
from keybuzz.remote.ssh import RunResult
from keybuzz.render import (
    DirSpec,
    FileSpec,
    FilledAtDeploy,
    HostPlan,
    ImageUser,
    PlanConflict,
    filled,
    image_users,
    merge_plans,
)

STATS = ("# pxname,svname,qcur,status,\n"
         "redis,FRONTEND,,OPEN,\n"
         "redis,redis-01,0,DOWN,\n"
         "redis,redis-02,0,UP 1/2,\n"
         "redis,BACKEND,0,UP,\n"
         "redis_votes_redis-02,redis-01,0,UP,\n")


def test_wait_until_returns_the_value_and_a_timeout_names_what_where_and_the_last_reason() -> None:
    calls = []

    async def eventually() -> str | None:
        calls.append(1)
        return "ready" if len(calls) == 3 else None

    assert asyncio.run(wait_until("x", eventually, timeout=5, interval=0.01)) == "ready"

    async def never() -> bool:
        raise NotYet("redis-02 is not a connected replica of redis-01 (link down)")

    with pytest.raises(WaitTimeout) as caught:
        asyncio.run(wait_until("replicas linked", never, timeout=0.2, interval=0.05, where="redis-02"))
    assert str(caught.value) == ("timed out after 0.2 s waiting for replicas linked on redis-02 (last error: "
                                 "redis-02 is not a connected replica of redis-01 (link down))")
    assert caught.value.host == "redis-02"


def test_a_hanging_probe_is_cut_at_the_deadline_and_never_reported_as_a_bare_name() -> None:
    async def hangs() -> bool:
        await asyncio.sleep(30)
        return True

    started = time.monotonic()
    with pytest.raises(WaitTimeout) as caught:
        asyncio.run(wait_until("the master", hangs, timeout=0.3, interval=0.1))
    assert time.monotonic() - started < 2
    assert "last error: TimeoutError: no answer within" in str(caught.value)
    assert not str(caught.value).rstrip(")").endswith("TimeoutError:")
    assert describe(TimeoutError()) == "TimeoutError: no answer in time"
    assert describe(ConnectionRefusedError(111, "Connection refused")) == "ConnectionRefusedError: [Errno 111] " \
                                                                          "Connection refused"


def test_stats_csv_and_the_exactly_one_up_rule() -> None:
    states = parse_stats_csv(STATS)
    assert up_servers(states, "redis") == ["redis-02"]
    assert one_up_problems({"haproxy-01": ["redis-02"], "haproxy-02": ["redis-02"]}, "redis-02") == []
    assert one_up_problems({"haproxy-01": ["redis-01", "redis-02"]}, "redis-02") == [
        "haproxy-01: UP redis-01, redis-02 (want only redis-02)"]
    assert one_up_problems({"haproxy-01": "stats unreachable (TimeoutError: no answer)"}, "redis-02") == [
        "haproxy-01: stats unreachable (TimeoutError: no answer)"]
    assert one_up_problems({"haproxy-01": []}, None) == ["no single primary to compare with"]
    rule = parse_config(f"listen w\n    {one_up_rule('w')}\n")["listen w"]
    assert rule == ["tcp-request connection reject unless { nbsrv(w) eq 1 }"]


def test_seen_within_times_each_reader_and_names_the_missing() -> None:
    started = time.monotonic()

    async def fast() -> bool:
        return True

    async def later() -> bool:
        return time.monotonic() - started > 0.1

    async def never() -> bool:
        raise ConnectionRefusedError("down")

    seen, missing = asyncio.run(seen_within(0.5, {"a": fast, "b": later, "c": never}, interval=0.01))
    assert set(seen) == {"a", "b"} and missing == ["c"]
    assert seen["a"] < 0.1 <= seen["b"] < 0.5
    assert seen_detail(seen, missing, 0.5).endswith("not seen on c within 0.5 s")


class RecordingContext:
    """Our own DeployContext's calls, recorded: roll() is orchestration over it, not a service."""

    dry_run = False
    cli = ContainerCli("podman")

    def __init__(self, changed: set[str], labels: dict[str, str]):
        self.changed_hosts, self.labels = changed, labels  # labels: the spec hash each host's container carries
        self.calls: list[str] = []

    @asynccontextmanager
    async def phase(self, name: str) -> AsyncIterator[None]:
        self.calls.append(f"phase {name}")
        yield

    async def converge(self, hostnames: Sequence[str], plans: dict) -> int:
        self.calls.append(f"converge {','.join(hostnames)}")
        return 1 if hostnames[0] in self.changed_hosts else 0

    async def due(self, hostnames: Sequence[str], plans: dict) -> frozenset[str]:
        self.calls.append(f"due {','.join(hostnames)}")
        return frozenset(h for h in hostnames if h in self.changed_hosts)

    async def wait_for(self, what: str, probe, *, timeout: float, interval: float = 1.0, where: str = "") -> None:
        assert await probe()
        self.calls.append(f"gate {where}")

    def host(self, hostname: str) -> SimpleNamespace:
        async def run(argv: list[str], **kwargs: object) -> RunResult:
            assert argv[:2] == ["podman", "inspect"]
            return RunResult(0, self.labels[hostname] + "\n", "")

        return SimpleNamespace(run=run)


def test_roll_goes_one_host_at_a_time_primary_last_handed_over_only_when_recreated_skipping_unchanged() -> None:
    plans = {h: HostPlan(h, containers=[ContainerSpec("db", "img:1", "m")]) for h in ("a", "b", "c")}
    current = plans["a"].container("db").spec_hash({})
    handed: list[str] = []

    async def hand_over(host: str) -> None:
        handed.append(host)

    async def settled(host: str) -> bool:
        return True

    ctx = RecordingContext(changed={"a", "b"}, labels={"a": current, "b": "older", "c": current})
    asyncio.run(roll(ctx, ["a", "b", "c"], plans, primary="b", container="db", hand_over=hand_over,
                     settled=settled, what=lambda h: "healthy", timeout=5))
    assert ctx.calls[0] == "due a,c,b"  # every host asked at once, the primary last
    assert [c for c in ctx.calls if c.startswith(("converge", "gate"))] == [
        "converge a", "gate a", "converge b", "gate b"]  # c has nothing to change: not visited
    assert handed == ["b"] and "phase hand the primary role over from b before recreating it" in ctx.calls
    ctx = RecordingContext(changed=set(), labels={"a": current, "b": current, "c": current})
    asyncio.run(roll(ctx, ["a", "b"], plans, primary="a", container="db", hand_over=hand_over, settled=settled,
                     what=lambda h: "healthy", timeout=5, gate_unchanged=True))
    assert [c for c in ctx.calls if c.startswith(("converge", "gate", "phase"))] == ["gate b", "gate a"]
    assert handed == ["b"]  # the primary's container stays: no hand-over


def test_filled_at_deploy_values_and_image_users_are_declared_in_render() -> None:
    user = ImageUser("pgbouncer:1", "postgres")
    plan = HostPlan("lb", [DirSpec("/d", owner=user)],
                    [FileSpec("/u.txt", FilledAtDeploy("userlist", "the verifier"), owner=user, secret=True)])
    assert image_users({"lb": plan}) == {("lb", user)}
    with pytest.raises(ValueError, match=r"/u\.txt: its content \(the verifier\) is filled at deploy"):
        _ = plan.files[0].sha256
    done = filled({"lb": plan}, {"userlist": '"app" "SCRAM..."\n'})
    assert done["lb"].files[0].text == '"app" "SCRAM..."\n' and isinstance(plan.files[0].content, FilledAtDeploy)


def test_merge_plans_keeps_identical_declarations_once_and_refuses_conflicts() -> None:
    a = {"h": HostPlan("h", [DirSpec("/d")], [FileSpec("/f", "x")])}
    b = {"h": HostPlan("h", [DirSpec("/d")], [FileSpec("/f", "x"), FileSpec("/g", "y")])}
    merged = merge_plans(a, b)["h"]
    assert [d.path for d in merged.directories] == ["/d"] and [f.path for f in merged.files] == ["/f", "/g"]
    with pytest.raises(PlanConflict, match="h: two plans declare /f differently"):
        merge_plans(a, {"h": HostPlan("h", files=[FileSpec("/f", "other")])})


def test_a_cache_keeps_what_it_learned_and_survives_a_broken_file(tmp_path: Path) -> None:
    from keybuzz.cache import JsonCache

    path = tmp_path / ".keybuzz-cache" / "image-users.json"
    cache = JsonCache(path)
    assert "sha256:abc postgres" not in cache
    cache.remember("sha256:abc postgres", "999:999")
    cache.save()
    again = JsonCache(path)
    assert again["sha256:abc postgres"] == "999:999" and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    path.write_text("{not json")
    assert "sha256:abc postgres" not in JsonCache(path)  # a broken cache costs a read, never a run


def test_independent_checks_run_at_once_in_their_order() -> None:
    from keybuzz.contract.checks import concurrently

    async def slow(value: str, delay: float) -> str:
        await asyncio.sleep(delay)
        return value

    async def many() -> list[str]:
        return [await slow("b", 0.1), await slow("c", 0.1)]

    started = time.monotonic()
    assert asyncio.run(concurrently(slow("a", 0.2), many(), slow("d", 0.0))) == ["a", "b", "c", "d"]
    assert time.monotonic() - started < 0.35  # 0.2 s, not 0.4 s
