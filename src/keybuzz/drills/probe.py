"""Writer probes: a client-library-specific writer run in a thread at a steady pace."""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod

from keybuzz.drills.history import History, WriteRecord
from keybuzz.secrets import redact


class WriterProbe(ABC):
    """One connection through the load balancer. Every call must bound its own time: client
    retries would hide the gap we measure (redis-py retries by default, for instance)."""

    @abstractmethod
    def write(self, write_id: int) -> None:
        """Write `write_id` durably as the service acknowledges it; raise on any failure.
        Reconnect lazily inside when the previous call failed."""

    @abstractmethod
    def read_ids(self) -> set[int]:
        """After the drill, through the new primary: every id present."""

    def classify(self, exc: BaseException) -> str:
        """A short error kind for the report (no secret: messages are redacted)."""
        text = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else "")
        return f"{type(exc).__name__}: {text[:80]}" if text else type(exc).__name__

    def close(self) -> None:  # noqa: B027 - optional hook
        """Drop the connection."""


class ProbeRunner:
    """Runs a probe in a background thread, one write every `interval` seconds."""

    def __init__(self, probe: WriterProbe, interval: float = 0.1, first_id: int = 1):
        self.probe, self.interval = probe, interval
        self.history = History()
        self._next_id = first_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="writer-probe", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.probe.close()

    def _loop(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            write_id, self._next_id = self._next_id, self._next_id + 1
            sent = time.monotonic()
            try:
                self.probe.write(write_id)
                error = None
            except Exception as exc:  # every failure is data for the drill
                error = self.probe.classify(exc)
            self.history.add(WriteRecord(write_id, sent, time.monotonic(), error))
            next_at = max(next_at + self.interval, time.monotonic())
            self._stop.wait(max(0.0, next_at - time.monotonic()))
