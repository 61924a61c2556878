"""Drill results: per round and summarised; a Rich table on screen, JSON in logs/drills/."""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.table import Table

from keybuzz.drills.alerts import AlertTiming
from keybuzz.secrets import redact


@dataclass
class RoundResult:
    round: int
    scenario: str
    target: str  # the host the fault hit
    outage_s: float  # write unavailability
    acked: int
    lost: int
    errors: dict[str, int] = field(default_factory=dict)
    new_primary: str = ""
    rejoin_s: float | None = None  # old primary back as a healthy replica, from its boot
    lost_window_s: float = 0.0  # from the fault to the last acknowledged write that was then lost
    old_primary_acked_s: float | None = None  # from the fault to the old primary's last acknowledgement
    details: dict[str, object] = field(default_factory=dict)
    alerts: list[AlertTiming] = field(default_factory=list)  # the monitoring's alerts, timed from the fault
    fault_held_s: float = 0.0  # the fault kept on after writes recovered, for a pending alert to fire

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


@dataclass
class DrillReport:
    module: str
    scenario: str
    settings: dict[str, object]
    rounds: list[RoundResult] = field(default_factory=list)
    alerts_note: str = ""  # why alerts were not recorded (no monitor servers, Prometheus unreachable)

    def summary(self) -> dict[str, object]:
        outages = [r.outage_s for r in self.rounds]
        rejoins = [r.rejoin_s for r in self.rounds if r.rejoin_s is not None]
        return {
            "rounds": len(self.rounds),
            "outage_median_s": round(statistics.median(outages), 2) if outages else None,
            "outage_max_s": round(max(outages), 2) if outages else None,
            "acked_total": sum(r.acked for r in self.rounds),
            "lost_total": sum(r.lost for r in self.rounds),
            "lost_max_round": max((r.lost for r in self.rounds), default=0),
            "errors_total": sum(r.error_count for r in self.rounds),
            "rejoin_max_s": round(max(rejoins), 2) if rejoins else None,
            "lost_window_max_s": max((r.lost_window_s for r in self.rounds), default=0.0),
        }

    def to_dict(self) -> dict[str, object]:
        return {"module": self.module, "scenario": self.scenario, "settings": self.settings,
                "rounds": [asdict(r) for r in self.rounds], "summary": self.summary(),
                **({"alerts_note": self.alerts_note} if self.alerts_note else {})}

    def save(self, logs_dir: Path) -> Path:
        folder = logs_dir / "drills"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.module}-{self.scenario}-{time.strftime('%Y%m%dT%H%M%S')}.json"
        path.write_text(redact(json.dumps(self.to_dict(), indent=2, default=str)) + "\n")
        return path

    def table(self) -> Table:
        table = Table(title=f"{self.module} failover drill: {self.scenario}")
        for column in ("round", "fault on", "write outage", "acked", "lost", "lost window", "old primary acked",
                       "errors", "new primary", "rejoin", "alerts fired/resolved"):
            table.add_column(column, justify="right" if column in ("acked", "lost", "errors") else "left",
                             no_wrap=column in ("fault on", "new primary"))
        for r in self.rounds:
            table.add_row(str(r.round), r.target, f"{r.outage_s:.2f} s", str(r.acked), str(r.lost),
                          f"{r.lost_window_s:.2f} s" if r.lost else "-",
                          f"{r.old_primary_acked_s:.2f} s" if r.old_primary_acked_s is not None else "-",
                          str(r.error_count), r.new_primary,
                          f"{r.rejoin_s:.1f} s" if r.rejoin_s is not None else "-",
                          _alerts_cell(r.alerts) or self.alerts_note or "-",
                          style="red" if r.lost else None)
        s = self.summary()
        table.caption = (f"median outage {s['outage_median_s']} s, max {s['outage_max_s']} s; "
                         f"lost {s['lost_total']} of {s['acked_total']} acknowledged")
        return table


def _alerts_cell(alerts: list[AlertTiming]) -> str:
    """'HostDown 6.1/24.3 s': fired and resolved, seconds from the fault; one line per alert."""
    return "\n".join(t.text() for t in alerts)
