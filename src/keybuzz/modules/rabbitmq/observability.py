"""What Prometheus scrapes on the RabbitMQ servers (the rabbitmq_prometheus plugin, no login),
the alerts over it and the dashboard, and the module's HAProxy."""

from __future__ import annotations

from keybuzz.contract import AlertRule, DashboardPanel, MetricsEndpoint, lb_metrics
from keybuzz.modules.rabbitmq import layout
from keybuzz.modules.rabbitmq.lb import BACKEND
from keybuzz.site import Site

ALARMS = ("memory_used_watermark", "free_disk_space_watermark", "file_descriptor_limit")


def metrics(site: Site) -> list[MetricsEndpoint]:
    return [MetricsEndpoint("rabbitmq", "queue", layout.PROMETHEUS_PORT),
            lb_metrics.metrics_endpoint(layout.MODULE, layout.stats_port(site))]


def alerts(site: Site) -> list[AlertRule]:
    nodes = len(layout.nodes(site))
    alarm = " or ".join(f'rabbitmq_alarms_{a}{{job="rabbitmq"}} > 0' for a in ALARMS)
    return [
        AlertRule("RabbitmqAlarm", alarm,
                  "{{ $labels.hostname }}: a RabbitMQ alarm (memory, disk or file descriptors) blocks publishers",
                  "free memory or disk on that node (limits: keybuzz.yaml rabbitmq)"),
        AlertRule("RabbitmqNodeDown", f'(count(up{{job="rabbitmq"}} == 1) or vector(0)) < {nodes}',
                  "{{ $value }} of " + str(nodes) + " RabbitMQ nodes answer",
                  "quorum queues keep a majority; bring the node back: `keybuzz validate rabbitmq`"),
        *lb_metrics.backend_alerts(layout.MODULE, (BACKEND,)),
    ]


def panels() -> list[DashboardPanel]:
    return [
        DashboardPanel("Messages ready", 'sum by (hostname) (rabbitmq_queue_messages_ready{job="rabbitmq"})'),
        DashboardPanel("Published per second",
                       'sum by (hostname) (rate(rabbitmq_channel_messages_published_total{job="rabbitmq"}[1m]))',
                       unit="ops"),
        DashboardPanel("Connections", 'rabbitmq_connections{job="rabbitmq"}'),
        DashboardPanel("HAProxy UP nodes",
                       f'haproxy_backend_active_servers{{job="haproxy-rabbitmq",proxy="{BACKEND}"}}'),
    ]
