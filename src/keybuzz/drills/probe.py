"""The writer probe's runner: a module's WriterProbe called in a thread at a steady pace."""

from __future__ import annotations

import threading
import time

from keybuzz.contract import WriterProbe
from keybuzz.drills.history import History, WriteRecord


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
            server = None
            try:
                server = self.probe.write(write_id)
                error = None
            except Exception as exc:  # every failure is data for the drill
                error = self.probe.classify(exc)
            self.history.add(WriteRecord(write_id, sent, time.monotonic(), error, server))
            next_at = max(next_at + self.interval, time.monotonic())
            self._stop.wait(max(0.0, next_at - time.monotonic()))
