"""Site logs: logs/install.log (every action) and logs/errors.log (failures), always redacted."""

from __future__ import annotations

import logging
from pathlib import Path

from keybuzz.secrets import RedactingFilter

LOGGER_NAME = "keybuzz"
_FORMAT = "%(asctime)s %(levelname)s %(message)s"


def get_logger(name: str = "") -> logging.Logger:
    return logging.getLogger(f"{LOGGER_NAME}.{name}" if name else LOGGER_NAME)


def setup_site_logging(logs_dir: Path) -> None:
    """Idempotent: handlers are attached once per logs folder, each with the redaction filter."""
    logger = get_logger()
    logger.setLevel(logging.INFO)
    logs_dir.mkdir(parents=True, exist_ok=True)
    wanted = {logs_dir / "install.log": logging.INFO, logs_dir / "errors.log": logging.ERROR}
    present = {Path(h.baseFilename) for h in logger.handlers if isinstance(h, logging.FileHandler)}
    for path, level in wanted.items():
        if path.resolve() in {p.resolve() for p in present}:
            continue
        handler = logging.FileHandler(path)
        handler.setLevel(level)
        handler.setFormatter(logging.Formatter(_FORMAT))
        handler.addFilter(RedactingFilter())
        logger.addHandler(handler)
