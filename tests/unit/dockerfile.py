"""A Dockerfile read as data, for the tests of the production image recipes (no registry here)."""

from __future__ import annotations

import re
from pathlib import Path


def instructions(image_dir: Path) -> list[tuple[str, str]]:
    """Dockerfile instructions with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", (image_dir / "Dockerfile").read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result
