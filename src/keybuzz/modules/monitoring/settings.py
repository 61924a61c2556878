"""keybuzz.yaml `monitoring:`: how often Prometheus looks, and how long a fault lasts before it pages."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from keybuzz.site.config import Strict


class NotifySettings(Strict):
    """Where Alertmanager sends a page. `webhook`: Alertmanager's JSON webhook (most paging services
    and chat tools take it, or a relay does) to the URL in credentials/alerting.env
    `ALERTING_WEBHOOK_URL_SECRET`, which the operator writes (it comes from the paging service, not from
    keybuzz). `none`: alerts are evaluated and grouped, and sent nowhere; lint warns."""

    receiver: Literal["none", "webhook"] = "none"
    send_resolved: bool = True  # a second message when the alert is over
    group_wait_s: int = Field(default=10, ge=0, le=600)  # the first page of a group waits for its siblings
    group_interval_s: int = Field(default=60, ge=1, le=3600)  # later changes to a group (new alerts, resolved)
    repeat_interval: str = Field(default="4h", pattern=r"^[1-9][0-9]*(m|h|d)$")  # still firing: sent again


class MonitoringSettings(Strict):
    """Production defaults page after 30 s of a target, a member or a leader missing: long enough
    that a restart does not wake anyone, short enough that a real outage is known within a minute.
    The lab looks every 5 s and pages after 10 s (two scrapes: a fresh start's first evaluations
    see no series yet), so a drill's fault fires its alert within the round; every 2 s cost the
    shared 2-core machine about half a core (two Prometheus servers, the exporters) and made other
    services' checks time out."""

    scrape_interval_s: int = Field(default=15, ge=1, le=300)
    evaluation_interval_s: int = Field(default=15, ge=1, le=300)
    down_for_s: int = Field(default=30, ge=0, le=3600)  # `for:` of the availability alerts
    lag_for_s: int = Field(default=120, ge=0, le=3600)  # `for:` of replication lag and disk alerts
    replication_lag_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    disk_used_percent: int = Field(default=80, ge=1, le=99)
    retention: str = Field(default="15d", pattern=r"^[1-9][0-9]*(h|d|w)$")
    notify: NotifySettings = NotifySettings()
