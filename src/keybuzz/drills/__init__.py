"""Failover drills shared by every module (Jepsen's idea, kept small).

A writer probe sends one write with a unique id every interval through the load balancer,
on its own short timeouts, and records every acknowledged id. A fault is injected; when the
writes flow again the history is analysed: write outage, errors by kind, and which
acknowledged ids are missing on the new primary afterwards (acknowledged writes lost).

Modules provide the WriterProbe (client library specific), the read-back of ids and the
wait for the old primary to rejoin; this package provides the timing, the history analysis,
and the report; faults are handed in (the lab's, or the container CLI's on real servers).
"""

from keybuzz.drills.history import History, WriteRecord
from keybuzz.drills.report import DrillReport, RoundResult
from keybuzz.drills.runner import measure_round

__all__ = ["DrillReport", "History", "RoundResult", "WriteRecord", "measure_round"]
