"""The record of every write a probe attempted, and what it tells about availability."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True)
class WriteRecord:
    id: int
    sent: float  # time.monotonic() when the write started
    done: float  # when it returned or failed
    error: str | None = None  # error kind, None when acknowledged
    server: str | None = None  # which server acknowledged it, when the probe can tell (PostgreSQL can)

    @property
    def acked(self) -> bool:
        return self.error is None


class History:
    """Thread-safe: the probe thread appends while the drill reads."""

    def __init__(self) -> None:
        self._records: list[WriteRecord] = []
        self._lock = threading.Lock()

    def add(self, record: WriteRecord) -> None:
        with self._lock:
            self._records.append(record)

    @property
    def records(self) -> list[WriteRecord]:
        with self._lock:
            return list(self._records)

    def acked_ids(self) -> set[int]:
        return {r.id for r in self.records if r.acked}

    def errors(self, since: float = 0.0) -> Counter[str]:
        return Counter(r.error for r in self.records if r.error and r.sent >= since)

    def outage(self, since: float) -> tuple[float, float | None, float | None]:
        """Seconds without a successful write after `since`: from the first failed write's start
        to the first later acknowledged write's return. (0, None, None) when nothing failed."""
        records = sorted((r for r in self.records if r.sent >= since), key=lambda r: r.sent)
        first_fail = next((r for r in records if not r.acked), None)
        if first_fail is None:
            return 0.0, None, None
        recovered = next((r for r in records if r.acked and r.sent > first_fail.sent), None)
        if recovered is None:
            last = records[-1].done
            return last - first_fail.sent, first_fail.sent, None
        return recovered.done - first_fail.sent, first_fail.sent, recovered.done

    def last_ack_after(self, since: float, ids: set[int] | None = None, server: str | None = None) -> float:
        """Seconds from `since` to the last acknowledgement after it, among `ids` (e.g. the lost ones)
        or from `server` (e.g. the old primary); 0 when there is none."""
        done = [r.done for r in self.records if r.acked and r.sent >= since
                and (ids is None or r.id in ids) and (server is None or r.server == server)]
        return round(max(done) - since, 3) if done else 0.0

    def healthy_streak(self, now: float, seconds: float) -> bool:
        """True when every write of the last `seconds` succeeded (and there were some)."""
        recent = [r for r in self.records if r.sent >= now - seconds]
        return bool(recent) and all(r.acked for r in recent)
