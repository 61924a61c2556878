"""What Prometheus scrapes on the Redis servers, the alerts over it and the dashboard: one
redis_exporter per Redis and one per Sentinel (the module's ACL user keybuzz-monitor: INFO, latency
and SENTINEL queries only, see bootguard.py), and the module's HAProxy."""

from __future__ import annotations

from collections.abc import Callable

from keybuzz.contract import AlertRule, DashboardPanel, Exporter, MetricsEndpoint, lb_metrics
from keybuzz.images import ImageSpec, LabRecipe
from keybuzz.modules.redis import layout
from keybuzz.modules.redis.lb import BACKEND
from keybuzz.site import Site
from keybuzz.site.servers import Server

EXPORTER_PORT = 9121
EXPORTER_IMAGE = ImageSpec("redis-exporter", "oliver006/redis_exporter:v1.62.0",
                           LabRecipe("1.45-bookworm", ("prometheus-redis-exporter",), after=(
                               "ln -sf /usr/bin/prometheus-redis-exporter /redis_exporter",)))
SENTINEL_EXPORTER_PORT = 9122


def _env(port: int) -> Callable[[Site, Server], str]:
    def env(site: Site, server: Server) -> str:
        return (f"REDIS_ADDR=redis://{server.private_ip}:{port}\n"
                f"REDIS_USER={site.secret('redis', 'REDIS_MONITOR_USER')}\n"
                f"REDIS_PASSWORD={site.secret('redis', 'REDIS_MONITOR_PASSWORD')}\n")
    return env


def _exporter(port: int, listen: int) -> Exporter:
    """On the server's private address. `--config-command=-`: no CONFIG GET * (the ACL refuses it;
    1.62 skips it, 1.45 sends `-`, an unknown command): redis_config_maxmemory, _maxclients and
    _io_threads are not exported (redis_memory_max_bytes comes from INFO)."""
    return Exporter("redis-exporter", "/redis_exporter",
                    (f"--web.listen-address={{ip}}:{listen}", "--config-command=-"), _env(port))


def metrics(site: Site) -> list[MetricsEndpoint]:
    return [MetricsEndpoint("redis", "redis", EXPORTER_PORT, exporter=_exporter(layout.REDIS_PORT, EXPORTER_PORT)),
            MetricsEndpoint("sentinel", "redis", SENTINEL_EXPORTER_PORT,
                            exporter=_exporter(layout.SENTINEL_PORT, SENTINEL_EXPORTER_PORT)),
            lb_metrics.metrics_endpoint(layout.MODULE, layout.stats_port(site))]


def alerts(site: Site) -> list[AlertRule]:
    master = 'redis_instance_info{job="redis",role="master"}'
    return [
        AlertRule("RedisDown", 'redis_up{job="redis"} == 0',
                  "{{ $labels.hostname }}: Redis does not answer its exporter",
                  "the redis container there: its log, then `keybuzz validate redis`"),
        AlertRule("RedisNoMaster", f"(count({master}) or vector(0)) < 1", "no Redis master: writes fail",
                  "the Sentinels fail over within down_after_ms; if not, `keybuzz validate redis`"),
        AlertRule("RedisTwoMasters", f"count({master}) > 1", "{{ $value }} Redis servers are masters",
                  "HAProxy sends clients to one; the other's writes will be lost: `keybuzz validate redis`"),
        AlertRule("RedisMasterWithoutReplicas", f'redis_connected_slaves{{job="redis"}} < 1 and on(hostname) {master}',
                  "{{ $labels.hostname }}: the Redis master has no replica: a failover now loses data",
                  "the replicas are down or cannot sync: their logs, then `keybuzz validate redis`",
                  severity="warning"),
        AlertRule("SentinelsDisagree",
                  'count(count by (master_address) (redis_sentinel_master_status{job="sentinel"})) > 1',
                  "the Sentinels name {{ $value }} different Redis masters",
                  "a partition or a stale Sentinel: `keybuzz validate redis` shows which names which"),
        AlertRule("SentinelQuorumLost",
                  f'(count(redis_sentinel_masters{{job="sentinel"}}) or vector(0)) < {layout.quorum(site)}',
                  f"only {{{{ $value }}}} Sentinels answer, {layout.quorum(site)} are needed: no failover is possible",
                  "bring the Sentinels back before anything else fails"),
        *lb_metrics.backend_alerts(layout.MODULE, (BACKEND,), single_writer=(BACKEND,)),
    ]


def panels() -> list[DashboardPanel]:
    return [
        DashboardPanel("Master (1) per server", 'redis_instance_info{job="redis",role="master"}'),
        DashboardPanel("Connected replicas", 'redis_connected_slaves{job="redis"}'),
        DashboardPanel("Commands per second", 'rate(redis_commands_processed_total{job="redis"}[1m])', unit="ops"),
        DashboardPanel("Memory used", 'redis_memory_used_bytes{job="redis"}', unit="bytes"),
        DashboardPanel("Masters named by the Sentinels",
                       'count by (master_address) (redis_sentinel_master_status{job="sentinel"})',
                       legend="{{master_address}}"),
        DashboardPanel("HAProxy UP servers",
                       f'haproxy_backend_active_servers{{job="haproxy-redis",proxy="{BACKEND}"}}'),
    ]
