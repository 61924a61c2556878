"""keybuzz.yaml `monitoring:`: how often Prometheus looks, and how long a fault lasts before it pages."""

from __future__ import annotations

from pydantic import Field

from keybuzz.site.config import Strict


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
