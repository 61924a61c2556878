"""The drill framework's own logic (timing, history analysis, loss counting) on an in-process store.

The store here is not a stand-in for a deployed service: it is a tiny deterministic target that
lets us check that the framework measures an outage and counts lost acknowledged writes right.
The real services are drilled in tests/lab.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest

from keybuzz.contract import RoundPlan, WriterProbe
from keybuzz.drills import History, WriteRecord, measure_round
from keybuzz.drills.report import DrillReport
from keybuzz.poll import WaitTimeout


def test_outage_spans_first_failure_to_first_later_success():
    history = History()
    for i, (sent, done, error) in enumerate([(0.0, 0.01, None), (1.0, 1.01, None), (1.1, 2.1, "timeout"),
                                             (2.2, 2.3, "refused"), (5.0, 5.05, None), (5.1, 5.12, None)]):
        history.add(WriteRecord(i, sent, done, error))
    outage, start, end = history.outage(since=0.5)
    assert (start, end) == (1.1, 5.05)
    assert outage == pytest.approx(3.95)
    assert history.errors(since=0.5) == {"timeout": 1, "refused": 1}
    assert history.acked_ids() == {0, 1, 4, 5}


def test_no_failure_means_no_outage():
    history = History()
    history.add(WriteRecord(1, 0.0, 0.1))
    assert history.outage(0.0) == (0.0, None, None)


def test_outage_without_recovery_runs_to_the_last_record():
    history = History()
    history.add(WriteRecord(1, 1.0, 1.5, "down"))
    history.add(WriteRecord(2, 2.0, 3.0, "down"))
    assert history.outage(0.0)[0] == pytest.approx(2.0)


class FlakyStore(WriterProbe):
    """Acknowledges writes into a set; while `down`, writes fail; `forget` drops acked ids."""

    def __init__(self) -> None:
        self.rows: set[int] = set()
        self.down = threading.Event()
        self.lock = threading.Lock()

    def write(self, write_id: int) -> None:
        if self.down.is_set():
            raise ConnectionError("store is down")
        with self.lock:
            self.rows.add(write_id)

    def read_ids(self) -> set[int]:
        with self.lock:
            return set(self.rows)

    def forget_last(self, count: int) -> None:
        with self.lock:
            for write_id in sorted(self.rows)[-count:]:
                self.rows.discard(write_id)


def test_measure_round_reports_outage_errors_and_lost_writes():
    store = FlakyStore()

    async def inject():
        store.down.set()
        store.forget_last(3)  # the "failover" lost the tail of acknowledged writes
        await asyncio.sleep(0.6)
        store.down.clear()

    async def recover():
        return 0.0

    async def new_primary():
        return "node-b"

    plan = RoundPlan(scenario="test", target="node-a", probe=store, inject=inject, recover=recover,
                     new_primary=new_primary, warmup_s=0.3, settle_s=0.3, observe_s=1.0, interval_s=0.02)
    started = time.monotonic()
    result = asyncio.run(measure_round(1, plan))
    assert time.monotonic() - started < 10
    assert result.lost == 3
    assert result.acked > 20
    assert 0.5 <= result.outage_s < 2.0
    assert result.errors and all("ConnectionError" in kind for kind in result.errors)
    assert result.new_primary == "node-b"


def test_report_summary_and_json(tmp_path):
    from keybuzz.drills.report import RoundResult

    report = DrillReport("postgres", "poweroff-leader", {"ttl": 20})
    report.rounds += [RoundResult(1, "poweroff-leader", "db-1", 21.0, 100, 0, {"timeout": 3}, "db-2", 4.0),
                      RoundResult(2, "poweroff-leader", "db-2", 23.0, 120, 2, {}, "db-3", 6.0),
                      RoundResult(3, "poweroff-leader", "db-3", 22.0, 110, 0, {}, "db-1", None)]
    summary = report.summary()
    assert summary["outage_median_s"] == 22.0
    assert summary["lost_total"] == 2 and summary["acked_total"] == 330
    assert summary["rejoin_max_s"] == 6.0
    saved = json.loads(report.save(tmp_path).read_text())
    assert saved["summary"]["rounds"] == 3
    assert saved["rounds"][0]["errors"] == {"timeout": 3}


def test_a_failed_round_still_undoes_its_fault():
    store = FlakyStore()
    restored = []

    async def inject():
        store.down.set()  # never comes back by itself

    async def recover():
        store.down.clear()
        restored.append(True)
        return None

    async def new_primary():
        return "node-a"

    plan = RoundPlan(scenario="test", target="node-a", probe=store, inject=inject, recover=recover,
                     new_primary=new_primary, warmup_s=0.2, settle_s=0.2, max_outage_s=0.5, interval_s=0.02)
    with pytest.raises(WaitTimeout, match=r"timed out after 0\.5 s waiting for writes through the load balancer "
                                          r"again after the fault"):
        asyncio.run(measure_round(1, plan))
    assert restored == [True] and not store.down.is_set()


def test_report_carries_the_alerts_of_each_round(tmp_path):
    from rich.console import Console

    from keybuzz.drills.alerts import AlertTiming
    from keybuzz.drills.report import RoundResult

    report = DrillReport("postgres", "poweroff-leader", {})
    timing = AlertTiming("HostDown{hostname=db-1,job=node}", pending_s=3.0, firing_s=7.1, resolved_s=29.2)
    pending_only = AlertTiming("RedisTwoMasters{}", pending_s=3.5, resolved_s=5.6)
    report.rounds.append(RoundResult(1, "poweroff-leader", "db-1", 23.0, 100, 0, {}, "db-2", 4.0,
                                     alerts=[timing, pending_only]))
    saved = json.loads(report.save(tmp_path).read_text())
    assert saved["rounds"][0]["alerts"][0] == {"alert": "HostDown{hostname=db-1,job=node}", "pending_s": 3.0,
                                               "firing_s": 7.1, "resolved_s": 29.2}
    assert "alerts_note" not in saved
    console = Console(width=250, record=True)
    console.print(report.table())
    text = console.export_text()
    assert "HostDown 7.1/29.2 s" in text and "RedisTwoMasters pending 3.5 s, never fired" in text

    unmonitored = DrillReport("postgres", "poweroff-leader", {}, alerts_note="not recorded: no monitor servers")
    unmonitored.rounds.append(RoundResult(1, "poweroff-leader", "db-1", 23.0, 100, 0, {}, "db-2", 4.0))
    assert json.loads(unmonitored.save(tmp_path).read_text())["alerts_note"] == "not recorded: no monitor servers"


def test_alert_times_follow_the_sites_monitoring_settings(site):
    import yaml

    from keybuzz.drills.session import alert_times
    from keybuzz.registry import load_site

    production = alert_times(site, hold=True)  # 15 s scrapes (10 s timeout), 15 s evaluations, for: 30 s
    assert (production.notice_s, production.hold_s, production.settle_s) == (40, 105, 150)
    assert (alert_times(site, hold=False).notice_s, alert_times(site, hold=False).hold_s) == (0, 0)
    config = site.root / "keybuzz.yaml"
    data = yaml.safe_load(config.read_text())
    data["monitoring"] = {"scrape_interval_s": 2, "evaluation_interval_s": 2, "down_for_s": 4}
    config.write_text(yaml.safe_dump(data))
    lab = alert_times(load_site(site.root), hold=True)
    assert (lab.notice_s, lab.hold_s, lab.settle_s) == (6, 19, 46)


def test_the_fault_is_held_while_any_alert_on_its_server_is_pending():
    """The hold decision alone, on a scripted alert list: an exporter's TargetDown firing first must
    not end the hold while the server's HostDown is still pending."""
    from keybuzz.drills.alerts import AlertWatch
    from keybuzz.modules.monitoring.api import Alert

    def alerts(*states: tuple[str, str]) -> list[Alert]:
        return [Alert(name, state, {"alertname": name, "hostname": "redis-1"}) for name, state in states]

    script = [alerts(("TargetDown", "pending")),
              alerts(("TargetDown", "firing"), ("HostDown", "pending")),
              alerts(("TargetDown", "firing"), ("HostDown", "pending")),
              alerts(("TargetDown", "firing"), ("HostDown", "firing")),
              alerts(("TargetDown", "firing"), ("HostDown", "firing"))]

    class ScriptedWatch(AlertWatch):
        async def _active(self) -> list[Alert]:
            return script.pop(0) if len(script) > 1 else script[0]

    async def run() -> tuple[float, dict[str, float | None]]:
        watch = ScriptedWatch(["http://unused"])
        watch.start(time.monotonic())
        held = await watch.hold_until_paged("redis-1", notice_s=0.2, timeout_s=10)
        timings = await watch.settle(0)
        return held, {t.alert.split("{")[0]: t.firing_s for t in timings}

    held, fired = asyncio.run(run())
    assert fired["HostDown"] is not None and fired["TargetDown"] is not None
    assert held < 5  # ended once nothing on the server was pending, well before the timeout
