"""What Prometheus scrapes on the PostgreSQL servers, the alerts over it and the dashboard:
Patroni's own /metrics (leader, streaming, WAL positions), the PostgreSQL exporter (pg_monitor
login, on each db server) and the module's HAProxy."""

from __future__ import annotations

from urllib.parse import quote

from keybuzz.contract import AlertRule, DashboardPanel, Exporter, MetricsEndpoint, lb_metrics
from keybuzz.images import ImageSpec, LabRecipe
from keybuzz.modules.monitoring.settings import MonitoringSettings
from keybuzz.modules.postgres import layout
from keybuzz.modules.postgres.lb import READ_BACKEND, WRITE_BACKEND
from keybuzz.site import Site
from keybuzz.site.servers import Server

EXPORTER_PORT = 9187
EXPORTER_IMAGE = ImageSpec("postgres-exporter", "quay.io/prometheuscommunity/postgres-exporter:v0.15.0",
                           LabRecipe("0.11-bookworm", ("prometheus-postgres-exporter",), after=(
                               "ln -sf /usr/bin/prometheus-postgres-exporter /usr/bin/postgres_exporter",)))


def _exporter_env(site: Site, server: Server) -> str:
    creds = site.credentials[layout.MODULE]
    user, password = quote(creds["POSTGRES_MONITOR_USER"]), quote(creds["POSTGRES_MONITOR_PASSWORD"])
    return (f"DATA_SOURCE_NAME=postgresql://{user}:{password}@{server.private_ip}:{layout.PG_PORT}/postgres"
            "?sslmode=disable\n")


def metrics(site: Site) -> list[MetricsEndpoint]:
    # {ip}: the server's private address (the exporter's default is every interface).
    exporter = Exporter("postgres-exporter", "/bin/postgres_exporter",
                        (f"--web.listen-address={{ip}}:{EXPORTER_PORT}",), _exporter_env)
    return [MetricsEndpoint("patroni", "db", layout.REST_PORT),
            MetricsEndpoint("postgres", "db", EXPORTER_PORT, exporter=exporter),
            lb_metrics.metrics_endpoint(layout.MODULE, layout.stats_port(site))]


def alerts(site: Site) -> list[AlertRule]:
    lag_bytes = site.settings(MonitoringSettings).replication_lag_bytes
    patroni = 'job="patroni"'
    return [
        AlertRule("PostgresNoLeader", f"(sum(patroni_primary{{{patroni}}}) or vector(0)) < 1",
                  "no PostgreSQL leader: writes fail",
                  "Patroni elects one within its TTL; if not, `keybuzz validate postgres` and the Patroni logs"),
        AlertRule("PostgresTwoLeaders", f"sum(patroni_primary{{{patroni}}}) > 1",
                  "{{ $value }} PostgreSQL servers claim to be the leader",
                  "HAProxy refuses writes while two are UP; find the stale leader with `keybuzz validate postgres`"),
        AlertRule("PostgresNotRunning", f"patroni_postgres_running{{{patroni}}} == 0",
                  "{{ $labels.hostname }}: Patroni runs but PostgreSQL does not",
                  "the Patroni log on that server says why PostgreSQL does not start"),
        AlertRule("PostgresReplicaNotStreaming",
                  f"patroni_replica{{{patroni}}} == 1 unless on(hostname) patroni_postgres_streaming{{{patroni}}} == 1",
                  "{{ $labels.hostname }}: replica is not streaming from the leader",
                  "its WAL source is gone or it diverged: Patroni rewinds or reinitialises it; check its log",
                  severity="warning"),
        AlertRule("PostgresReplicationLag",
                  f"((scalar(max(patroni_xlog_location{{{patroni}}})) - patroni_xlog_replayed_location{{{patroni}}}) "
                  f"and on(hostname) patroni_replica{{{patroni}}} == 1) > {lag_bytes}",
                  "{{ $labels.hostname }}: replica is {{ $value | humanize1024 }}B behind the leader",
                  "a slow disk or network on the replica, or a long query holding replay", wait="slow",
                  severity="warning"),
        AlertRule("PostgresExporterCannotConnect", 'pg_up{job="postgres"} == 0',
                  "{{ $labels.hostname }}: the exporter cannot log in to PostgreSQL",
                  "PostgreSQL is down there, or the monitoring role is missing: "
                  "re-run `keybuzz install --only postgres`"),
        *lb_metrics.backend_alerts(layout.MODULE, (WRITE_BACKEND, READ_BACKEND), single_writer=(WRITE_BACKEND,)),
    ]


def panels() -> list[DashboardPanel]:
    return [
        DashboardPanel("Leader (1) per server", 'patroni_primary{job="patroni"}'),
        DashboardPanel("Replicas streaming", 'patroni_postgres_streaming{job="patroni"}'),
        DashboardPanel("Replication lag", 'scalar(max(patroni_xlog_location{job="patroni"})) - '
                       'patroni_xlog_replayed_location{job="patroni"}', unit="bytes"),
        DashboardPanel("Transactions per second",
                       'sum by (hostname) (rate(pg_stat_database_xact_commit{job="postgres"}[1m]))', unit="ops"),
        DashboardPanel("Connections", 'sum by (hostname) (pg_stat_activity_count{job="postgres"})'),
        DashboardPanel("HAProxy write backend UP servers",
                       f'haproxy_backend_active_servers{{job="haproxy-postgres",proxy="{WRITE_BACKEND}"}}'),
    ]
