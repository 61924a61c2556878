"""Facts earlier runs learned that cannot change under the same key (an image id names its content), kept
in the site folder so a re-run does not ask the servers again. Losing the folder only costs time."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

CACHE_DIR = ".keybuzz-cache"


class JsonCache:
    """A small str -> str map in one JSON file, read once, written atomically when it changed."""

    def __init__(self, path: Path):
        self.path = path
        self._values: dict[str, str] = {}
        self._changed = False
        try:
            loaded = json.loads(path.read_text())
        except (OSError, ValueError):
            loaded = {}
        if isinstance(loaded, dict):
            self._values = {k: v for k, v in loaded.items() if isinstance(k, str) and isinstance(v, str)}

    def __contains__(self, key: str) -> bool:
        return key in self._values

    def __getitem__(self, key: str) -> str:
        return self._values[key]

    def remember(self, key: str, value: str) -> None:
        if self._values.get(key) != value:
            self._values[key], self._changed = value, True

    def save(self) -> None:
        if not self._changed:
            return
        try:
            self.path.parent.mkdir(mode=0o700, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        except OSError:  # a read-only site folder: the next run asks the servers again
            return
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(self._values, handle, indent=1, sort_keys=True)
            os.replace(tmp, self.path)
            self._changed = False
        finally:
            Path(tmp).unlink(missing_ok=True)
