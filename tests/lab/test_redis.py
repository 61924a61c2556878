"""Redis HA on the lab: real redis-server, Sentinel, HAProxy and redis-py, through the engine.

One cluster for the module, in order: fresh deploy, re-run (0 changes, 0 restarts), checks,
a power-off of the master (0 acknowledged writes lost), a re-run on the failed-over cluster
(nothing changes, the master is not moved back), the old master rebooted while writes go on
(never two masters UP in HAProxy), a settings change applied under writes (rolling restart
with a planned switchover, 0 lost), then cleanup (data kept unless purged).
Timings are printed, not asserted: bench/failover.py measures them over several rounds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import time
from collections.abc import Iterator

import pytest
import yaml
from engine_runs import Run, cleanup, drill_round, install, validate  # tests/lab is on sys.path
from listeners import lab_wildcard_listeners  # tests/lab is on sys.path
from rich.console import Console

from keybuzz.drills.probe import ProbeRunner
from keybuzz.drills.report import RoundResult
from keybuzz.engine import Engine, Stats, install_modules
from keybuzz.lab import Lab
from keybuzz.modules.redis import client, layout
from keybuzz.modules.redis.drill import HaproxySampler, master_hostname
from keybuzz.modules.redis.probe import RedisWriterProbe
from keybuzz.registry import load_site, module_by_name
from keybuzz.site import Site

pytestmark = pytest.mark.lab
MODULE = module_by_name("redis")


def current_master(site: Site) -> str | None:
    return asyncio.run(master_hostname(site))


def report(result: RoundResult) -> str:
    return (f"{result.scenario}: {result.target} -> {result.new_primary}, write outage {result.outage_s:.2f} s, "
            f"acked {result.acked}, lost {result.lost}, errors {result.errors}, rejoin {result.rejoin_s} s, "
            f"{result.details}")


@pytest.fixture(scope="module")
def site(lab: Lab) -> Iterator[Site]:
    """The lab's site with no Redis module on it (a previous run's data purged)."""
    site = load_site(lab.site_dir)
    cleanup(site, MODULE, purge_data=True)
    yield site


@pytest.fixture(scope="module")
def first_install(site: Site) -> Run:
    run = install(site, MODULE)
    print(f"\nredis deploy from nothing: {run.seconds:.1f} s, {run.stats.changes} changes, {run.stats.restarts} starts")
    return run


def test_deploy_then_rerun_changes_nothing(site: Site, first_install: Run) -> None:
    stats = first_install.stats
    assert stats.changes > 0 and stats.restarts == 2 * 3 + 2  # redis + sentinel per node, one HAProxy each
    rerun = install(site, MODULE)
    again = rerun.stats
    print(f"\nredis re-run: {rerun.seconds:.1f} s")
    assert (again.changes, again.restarts) == (0, 0), again
    assert current_master(site) == layout.initial_master(site).hostname


def test_no_listener_in_the_lab_binds_a_wildcard_address(lab: Lab, first_install: Run) -> None:
    assert lab_wildcard_listeners(lab) == []  # Redis, Sentinels, HAProxy and its gates


def test_validate_all_green(site: Site, first_install: Run) -> None:
    results = validate(site, MODULE)
    assert len(results) >= 8
    assert [r for r in results if not r.ok] == []


def test_poweroff_master_loses_no_acknowledged_write(lab: Lab, site: Site, first_install: Run) -> None:
    result = drill_round(site, lab, MODULE, "poweroff-master")
    print("\n" + report(result))
    assert result.target == layout.initial_master(site).hostname
    assert result.new_primary not in ("none", result.target)
    assert result.acked > 0 and result.lost == 0
    # Never two masters UP in one HAProxy. Across the two HAProxies, the dead master can still be UP
    # in one for a check interval while the other already has the new one: it takes no write then.
    assert result.details["max_up_per_haproxy"] == 1
    assert result.rejoin_s is not None  # the old master came back as a connected replica


def test_isolated_master_loses_at_most_a_second_of_writes_and_wait_writes_none(lab: Lab, site: Site,
                                                                              first_install: Run) -> None:
    """The master cut from the other redis servers only, HAProxy and the writer still reaching it.
    Plain writes: HAProxy's gate (a replica must confirm the check's write) takes it out within about a
    second, so at most a second of writes at the drill's rate is lost. WAIT 1 writes: none."""
    plain = drill_round(site, lab, MODULE, "isolate-master")
    print("\nisolate-master, plain writes: " + report(plain) + f", lost window {plain.lost_window_s} s")
    waited = drill_round(site, lab, MODULE, "isolate-master", {"wait": True})
    print("isolate-master, WAIT 1 writes: " + report(waited))
    per_second = 1 / 0.1  # the drill writes every 100 ms
    assert plain.acked > 0 and plain.lost <= per_second
    assert waited.acked > 0 and waited.lost == 0
    for result in (plain, waited):
        assert result.new_primary not in ("none", result.target) and result.rejoin_s is not None
        assert result.details["max_up_per_haproxy"] == 1


def test_rerun_after_failover_keeps_the_new_master(site: Site, first_install: Run) -> None:
    before = current_master(site)
    assert before != layout.initial_master(site).hostname  # the previous test failed the cluster over
    stats = install(site, MODULE).stats
    assert (stats.changes, stats.restarts) == (0, 0), stats
    assert current_master(site) == before  # not pointed back at redis-01


def test_rebooted_old_master_never_makes_two_masters(lab: Lab, site: Site,
                                                      first_install: Run) -> None:
    result = drill_round(site, lab, MODULE, "reboot-old-master")
    print("\n" + report(result))
    assert result.acked > 0 and result.lost == 0
    assert result.details["max_up_per_haproxy"] == 1 and result.details["haproxy_samples"] > 0
    assert result.rejoin_s is not None
    # The rebooted server's Sentinel starts from its kept view (the old master) and learns the new
    # one from its peers' hello messages: every check green within 30 s, the time printed.
    deadline = time.monotonic() + 30
    while (bad := [f"{r.name}: {r.detail}" for r in validate(site, MODULE) if not r.ok]) and \
            time.monotonic() < deadline:
        time.sleep(1)
    assert not bad, "\n".join(bad)
    print(f"every check green {30 - (deadline - time.monotonic()):.1f} s after the rejoin")


@dataclasses.dataclass
class Observed:
    """What the writer and the HAProxy sampler saw during an install."""

    outage: float
    acked: int
    lost: int
    errors: dict[str, int]
    details: dict[str, object]


def test_settings_change_restarts_without_losing_writes(lab: Lab, site: Site,
                                                       first_install: Run) -> None:
    """A redis.conf setting changes: replicas restart one by one, the master hands over
    (paused writes, SENTINEL FAILOVER) before its own restart; writes go on through the VIP."""
    config_path = lab.site_dir / "keybuzz.yaml"
    original = config_path.read_text()
    config = yaml.safe_load(original)
    config["tuning"]["sentinel"]["min_replicas_max_lag_s"] = 9
    master_before = current_master(site)

    async def go() -> tuple[Stats, Observed]:
        changed = load_site(lab.site_dir)
        probe = RedisWriterProbe(str(layout.vip(changed)), layout.REDIS_PORT,
                                 changed.secret("redis", "REDIS_PASSWORD"), f"keybuzz:test:settings:{time.time()}")
        runner, sampler = ProbeRunner(probe, 0.1), HaproxySampler(changed)
        runner.start()
        sampler.start()
        try:
            await asyncio.sleep(1)
            started = time.monotonic()
            async with Engine(changed, console=Console(file=io.StringIO())) as engine:
                await install_modules(engine, [MODULE], allow_missing_base_os=True)
            await asyncio.sleep(2)
        finally:
            await asyncio.to_thread(runner.stop)
            await sampler.stop()
        found = await asyncio.to_thread(probe.read_ids)
        history = runner.history
        return engine.stats, Observed(history.outage(started)[0], len(history.acked_ids()),
                                       len(history.acked_ids() - found), dict(history.errors(started)),
                                       sampler.details())

    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    try:
        stats, seen = asyncio.run(go())
    finally:
        config_path.write_text(original)
    print(f"\nsettings change under writes: {stats.restarts} restarts, gap {seen.outage:.2f} s, acked {seen.acked}, "
          f"lost {seen.lost}, errors {seen.errors}, {seen.details}")
    assert stats.restarts == 3  # one redis-server per node, no Sentinel, no HAProxy
    assert seen.acked > 0 and seen.lost == 0
    assert seen.details["max_up_per_haproxy"] == 1
    assert current_master(site) != master_before  # handed over, not restarted under the clients
    again = install(site, MODULE).stats  # back to the original setting
    assert again.restarts == 3


def test_cleanup_keeps_data_unless_purged(lab: Lab, site: Site, first_install: Run) -> None:
    paths = layout.host_paths(site)

    def present(host: str, path: str) -> bool:
        return lab.exec(host, ["test", "-e", path]).returncode == 0

    def containers(host: str) -> list[str]:
        return lab.exec(host, ["podman", "ps", "-a", "--format", "{{.Names}}"], check=True).stdout.split()

    initial = layout.initial_master(site).hostname
    if current_master(site) == initial:  # make it a failed-over cluster, whatever the earlier tests left
        sentinel_ip = str(site.server(initial).private_ip)
        asyncio.run(client.call(sentinel_ip, layout.SENTINEL_PORT, site.secret("redis", "REDIS_SENTINEL_PASSWORD"),
                                "SENTINEL", "FAILOVER", layout.MASTER_NAME))
        deadline = time.monotonic() + 30
        while current_master(site) in (initial, None) and time.monotonic() < deadline:
            time.sleep(0.5)
    master_before = current_master(site)
    assert master_before not in (initial, None)
    cleanup(site, MODULE, purge_data=False)
    assert not {"redis", "redis-sentinel"} & set(containers("redis-01"))
    assert "haproxy-redis" not in containers("haproxy-01")
    assert not present("redis-01", paths.redis_conf) and not present("redis-01", paths.env_file)
    assert present("redis-01", f"{paths.data}/server/appendonlydir")
    # Re-install over the kept data of a cluster whose master is no longer redis-01: the nodes
    # start together, each boot guard restores the node's last role, the last master stays master.
    again = install(site, MODULE)
    assert again.stats.restarts == 8, again.output
    bad = [f"{r.name}: {r.detail}" for r in validate(site, MODULE) if not r.ok]
    assert not bad, "\n".join(bad)
    assert current_master(site) == master_before
    print(f"\nre-install over kept data: {again.seconds:.1f} s, master still {master_before}")
    cleanup(site, MODULE, purge_data=True)
    assert not present("redis-01", paths.data)
