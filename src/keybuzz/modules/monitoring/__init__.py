"""Monitoring of the stateful tier (Prometheus, Alertmanager, exporters, alert rules, dashboards)."""

from keybuzz.modules.monitoring.module import MODULE

__all__ = ["MODULE"]
