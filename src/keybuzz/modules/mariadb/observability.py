"""What Prometheus scrapes on the MariaDB servers, the alerts over it and the dashboard:
mysqld_exporter on each node (the module's monitoring user: USAGE only, enough for SHOW GLOBAL
STATUS and the wsrep counters; the collectors that need more are off)."""

from __future__ import annotations

from keybuzz.contract import AlertRule, DashboardPanel, Exporter, MetricsEndpoint
from keybuzz.images import ImageSpec, LabRecipe
from keybuzz.modules.mariadb import layout
from keybuzz.site import Site
from keybuzz.site.servers import Server

EXPORTER_PORT = 9104
# v0.15 reads its login from a my.cnf only; v0.14 (Debian's too) takes DATA_SOURCE_NAME.
EXPORTER_IMAGE = ImageSpec("mysqld-exporter", "prom/mysqld-exporter:v0.14.0",
                           LabRecipe("0.14-bookworm", ("prometheus-mysqld-exporter",), after=(
                               "ln -sf /usr/bin/prometheus-mysqld-exporter /usr/bin/mysqld_exporter",)))
SYNCED = 4  # wsrep_local_state of a member that serves clients
OFF_COLLECTORS = ("slave_status", "info_schema.innodb_cmp", "info_schema.innodb_cmpmem",
                  "info_schema.query_response_time")


def _env(site: Site, server: Server) -> str:
    creds = site.credentials[layout.MODULE]
    return (f"DATA_SOURCE_NAME={creds['MARIADB_MONITOR_USER']}:{creds['MARIADB_MONITOR_PASSWORD']}"
            f"@({server.private_ip}:{layout.MYSQL_PORT})/\n")


def metrics(site: Site) -> list[MetricsEndpoint]:
    # {ip}: the server's private address (the exporter's default is every interface).
    args = (f"--web.listen-address={{ip}}:{EXPORTER_PORT}", *(f"--no-collect.{c}" for c in OFF_COLLECTORS))
    return [MetricsEndpoint("mariadb", "maria", EXPORTER_PORT,
                            exporter=Exporter("mysqld-exporter", "/bin/mysqld_exporter", args, _env))]


def alerts(site: Site) -> list[AlertRule]:
    nodes = len(site.with_role("maria"))
    return [
        AlertRule("MariadbDown", 'mysql_up{job="mariadb"} == 0', "{{ $labels.hostname }}: MariaDB does not answer",
                  "the mariadb container there: its log; `keybuzz install --only mariadb` rejoins it"),
        AlertRule("GaleraNotPrimary", 'mysql_global_status_wsrep_cluster_status{job="mariadb"} != 1',
                  "{{ $labels.hostname }}: Galera member outside the primary component: it refuses queries",
                  "a partition or a lost majority: `keybuzz validate mariadb`; install bootstraps after a full stop"),
        AlertRule("GaleraNodeNotSynced", f'mysql_global_status_wsrep_local_state{{job="mariadb"}} != {SYNCED}',
                  "{{ $labels.hostname }}: Galera member not Synced (state {{ $value }}): it serves no client",
                  "a joiner in state transfer clears by itself; a stuck one: `keybuzz validate mariadb`",
                  severity="warning"),
        AlertRule("GaleraClusterTooSmall", f'mysql_global_status_wsrep_cluster_size{{job="mariadb"}} < {nodes}',
                  "{{ $labels.hostname }} sees {{ $value }} of " + str(nodes) + " Galera members",
                  "one more loss stops writes: bring the missing member back", severity="warning"),
    ]


def panels() -> list[DashboardPanel]:
    return [
        DashboardPanel("Galera cluster size", 'mysql_global_status_wsrep_cluster_size{job="mariadb"}'),
        DashboardPanel("Member state (4 = Synced)", 'mysql_global_status_wsrep_local_state{job="mariadb"}'),
        DashboardPanel("Queries per second", 'rate(mysql_global_status_queries{job="mariadb"}[1m])', unit="ops"),
        DashboardPanel("Flow control paused", 'mysql_global_status_wsrep_flow_control_paused{job="mariadb"}'),
    ]
