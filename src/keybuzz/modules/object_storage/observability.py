"""What Prometheus scrapes for the object store: the module's HAProxy, whose checks see each S3
node (the store's own metrics are not scraped in this version), and the alerts over it."""

from __future__ import annotations

from keybuzz.contract import AlertRule, DashboardPanel, MetricsEndpoint, lb_metrics
from keybuzz.modules.object_storage import layout
from keybuzz.site import Site

JOB = f"haproxy-{layout.MODULE}"
BACKEND = f'job="{JOB}",proxy="{layout.BACKEND}"'  # the S3 backend's series


def metrics(site: Site) -> list[MetricsEndpoint]:
    return [lb_metrics.metrics_endpoint(layout.MODULE, layout.stats_port(site))]


def alerts(site: Site) -> list[AlertRule]:
    return [
        AlertRule("ObjectStoreNodeDown",
                  f'max by (server) (haproxy_server_status{{job="{JOB}",proxy="{layout.BACKEND}",state="UP"}}) < 1',
                  "S3 node {{ $labels.server }} fails the checks of every HAProxy",
                  "the object store's containers on that server: `keybuzz validate minio`", severity="warning"),
        *lb_metrics.backend_alerts(layout.MODULE, (layout.BACKEND,)),
    ]


def panels() -> list[DashboardPanel]:
    return [
        DashboardPanel("S3 nodes UP per HAProxy", f"haproxy_backend_active_servers{{{BACKEND}}}"),
        DashboardPanel("S3 requests per second",
                       f"sum by (hostname) (rate(haproxy_backend_sessions_total{{{BACKEND}}}[1m]))", unit="ops"),
    ]
