"""Lint rules as modules and the core declare them: an id, a severity, and a check over the site
and its render that yields (where, what, how to fix)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from keybuzz.render import Plans
from keybuzz.site import Site

Severity = Literal["error", "warning", "info"]
Hit = tuple[str, str, str]  # (where, message, fix hint)


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: Severity
    where: str
    message: str
    hint: str


@dataclass
class LintInput:
    site: Site
    plans: Plans
    pending: list[str]  # what the version does not do yet for this site (modules not implemented)


@dataclass(frozen=True)
class Rule:
    id: str
    severity: Severity
    title: str
    check: Callable[[LintInput], Iterable[Hit]]
