"""Site logs: logs/install.log (every action) and logs/errors.log (failures), always redacted.

Redaction happens when a record is created (a log record factory), so every handler of the
process sees the redacted text: ours, a console handler, pytest's, a library's.
"""

from __future__ import annotations

import logging
from pathlib import Path

from keybuzz.secrets import RedactingFilter, redact_record

LOGGER_NAME = "keybuzz"
_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
_installed: list[bool] = []


def install_redaction() -> None:
    """Idempotent: wrap the process's log record factory with the redaction."""
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        return redact_record(previous(*args, **kwargs))

    logging.setLogRecordFactory(factory)
    _installed.append(True)


def get_logger(name: str = "") -> logging.Logger:
    install_redaction()
    return logging.getLogger(f"{LOGGER_NAME}.{name}" if name else LOGGER_NAME)


def setup_site_logging(logs_dir: Path) -> None:
    """Idempotent: handlers are attached once per logs folder, each with the redaction filter too.
    A handler whose file was removed meanwhile (logs folder cleared, site rebuilt) is replaced: it
    would write on into a deleted file."""
    logger = get_logger()
    logger.setLevel(logging.INFO)
    logs_dir.mkdir(parents=True, exist_ok=True)
    wanted = {logs_dir / "install.log": logging.INFO, logs_dir / "errors.log": logging.ERROR}
    for handler in [h for h in logger.handlers if isinstance(h, logging.FileHandler)]:
        if not Path(handler.baseFilename).exists():
            logger.removeHandler(handler)
            handler.close()
    present = {Path(h.baseFilename).resolve() for h in logger.handlers if isinstance(h, logging.FileHandler)}
    for path, level in wanted.items():
        if path.resolve() in present:
            continue
        handler = logging.FileHandler(path)
        handler.setLevel(level)
        handler.setFormatter(logging.Formatter(_FORMAT))
        handler.addFilter(RedactingFilter())
        logger.addHandler(handler)
