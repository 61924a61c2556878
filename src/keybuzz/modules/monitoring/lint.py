"""The module's lint rules: a page has somewhere to go, and the webhook it goes to is written down."""

from __future__ import annotations

from collections.abc import Iterable

from keybuzz.contract import Hit, LintInput, Rule
from keybuzz.modules.monitoring import layout
from keybuzz.modules.monitoring.settings import MonitoringSettings
from keybuzz.site.loader import CONFIG_FILE, located_config

SERVICE, KEY = layout.WEBHOOK_CREDENTIALS


def _where(data: LintInput) -> str:
    located = located_config(data.site.root)
    return f"{CONFIG_FILE}:{located.line_of(('monitoring', 'notify', 'receiver')) if located else 1}"


def check_webhook_written(data: LintInput) -> Iterable[Hit]:
    """receiver: webhook needs its URL (that it is an http(s) URL is checked when the site is loaded)."""
    if not layout.monitors(data.site) or data.site.settings(MonitoringSettings).notify.receiver != "webhook":
        return
    if layout.webhook_url(data.site) is None:
        yield _where(data), f"monitoring.notify.receiver is webhook but credentials/{SERVICE}.env has no {KEY}", \
            f"write {KEY}=<the paging service's webhook URL> into credentials/{SERVICE}.env (chmod 600)"


def check_pages_go_somewhere(data: LintInput) -> Iterable[Hit]:
    if layout.monitors(data.site) and data.site.settings(MonitoringSettings).notify.receiver == "none":
        yield _where(data), "alerts are evaluated and grouped but sent nowhere (monitoring.notify.receiver: none)", \
            f"set monitoring.notify.receiver: webhook and write {KEY} into credentials/{SERVICE}.env " \
            "(docs/monitoring.md)"


RULES = (
    Rule("KB025", "error", "a webhook receiver has its URL", check_webhook_written),
    Rule("KB026", "warning", "alerts are sent to someone", check_pages_go_somewhere),
)
