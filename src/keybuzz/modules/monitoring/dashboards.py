"""Grafana dashboards, one per module with panels, built with grafanalib from the modules'
DashboardPanel declarations (never hand-written JSON). No Grafana server runs in this version:
they are rendered to the monitor servers for a Grafana to provision; tests check every query
against a live Prometheus."""

from __future__ import annotations

from typing import Any

from grafanalib import core

from keybuzz.contract import DashboardPanel, Module
from keybuzz.site import Site

DATASOURCE = "${datasource}"
WIDTH, HEIGHT, PER_ROW = 12, 8, 2


def _panel(panel: DashboardPanel, index: int) -> core.TimeSeries:
    return core.TimeSeries(
        title=panel.title, dataSource=DATASOURCE, unit=panel.unit,
        targets=[core.Target(expr=panel.expr, legendFormat=panel.legend, refId="A")],
        gridPos=core.GridPos(h=HEIGHT, w=WIDTH, x=(index % PER_ROW) * WIDTH, y=(index // PER_ROW) * HEIGHT))


def dashboard(module: Module, panels: list[DashboardPanel]) -> dict[str, Any]:
    board = core.Dashboard(
        title=f"keybuzz {module.name}", uid=f"keybuzz-{module.name}"[:40], tags=["keybuzz", module.name],
        timezone="utc", refresh="10s",
        templating=core.Templating(list=[core.Template(name="datasource", type="datasource", query="prometheus",
                                                       label="Prometheus", default="Prometheus")]),
        panels=[_panel(p, i) for i, p in enumerate(panels)]).auto_panel_ids()
    return _plain(board.to_json_data())


def _plain(value: Any) -> Any:
    """grafanalib's objects as plain JSON values (what its own encoder does, recursively)."""
    if hasattr(value, "to_json_data"):
        return _plain(value.to_json_data())
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def dashboards(site: Site, modules: list[Module]) -> dict[str, dict[str, Any]]:
    """Dashboard file name -> its JSON model, for the modules on this site that declare panels."""
    return {module.name: dashboard(module, panels) for module in modules if (panels := module.panels(site))}
