"""Module 7, MariaDB Galera: 3 synchronous nodes, a health agent per node, automatic cold start."""

from __future__ import annotations

from keybuzz.contract import (
    CheckResult,
    DeployContext,
    Module,
    Port,
    Quorum,
    VolumePath,
)
from keybuzz.images import ImageSpec, LabRecipe
from keybuzz.modules.mariadb import checks, deploy, layout, lint, observability, render
from keybuzz.modules.mariadb.drill import SCENARIOS, MariadbDrills
from keybuzz.modules.mariadb.settings import GaleraTuning, MariadbSettings
from keybuzz.render import Plans
from keybuzz.secrets import CredentialFile, CredentialSpec
from keybuzz.site import Site
from keybuzz.site.schema import SettingsSection
from keybuzz.values import MARIADB_NAME

MARIADB_IMAGE = "mariadb:10.11.10"  # LTS (maintained to 2028); the official image ships Galera 4
HEALTH_IMAGE = "keybuzz/galera-health:1.0-py3.11"


class MariadbModule(MariadbDrills, Module):
    number = 7
    name = "mariadb"
    title = "MariaDB Galera HA"
    own_role = "maria"
    quorum = Quorum("maria", 3, "Galera needs a majority to keep a primary component")
    settings = (SettingsSection(("mariadb",), MariadbSettings,
                                example={"database": "erpnext", "innodb_buffer_pool_size": "512M",
                                         "innodb_flush_log_at_trx_commit": 1}),
                SettingsSection(("tuning", "galera"), GaleraTuning,
                                example={"suspect_timeout_s": 5, "inactive_timeout_s": 15}))
    credentials = CredentialFile("mariadb", (
        CredentialSpec("MARIADB_ROOT_PASSWORD"),
        CredentialSpec("MARIADB_SST_USER", "mariabackup", kind=MARIADB_NAME),
        CredentialSpec("MARIADB_SST_PASSWORD"),
        CredentialSpec("MARIADB_APP_USER", "erpnext", kind=MARIADB_NAME),
        CredentialSpec("MARIADB_APP_PASSWORD"),
        CredentialSpec("MARIADB_MONITOR_USER", "monitor", kind=MARIADB_NAME),
        CredentialSpec("MARIADB_MONITOR_PASSWORD"),
    ), roles=("maria", "proxysql"))
    images = (
        ImageSpec(layout.MODULE, MARIADB_IMAGE, LabRecipe("10.11-bookworm", ("mariadb-server", "galera-4",
                                                                             "mariadb-backup", "socat")),
                  note="seed: bitnami/mariadb-galera (no longer pulls); the official image has Galera 4"),
        ImageSpec("galera-health", HEALTH_IMAGE, LabRecipe("1.0-bookworm", ("python3", "python3-pymysql")),
                  note="built by keybuzz from images/galera-health (python:3.11-slim + PyMySQL)"),
        observability.EXPORTER_IMAGE,
    )
    lint_rules = lint.RULES
    observability = observability
    scenarios = SCENARIOS

    def ports(self, site: Site) -> list[Port]:
        return [
            Port(layout.MYSQL_PORT, "maria", "MariaDB", ("proxysql", "maria", "install")),
            Port(layout.GALERA_PORT, "maria", "Galera replication", ("maria",)),
            Port(layout.IST_PORT, "maria", "Galera incremental state transfer", ("maria",)),
            Port(layout.SST_PORT, "maria", "Galera full state transfer (mariabackup)", ("maria",)),
            Port(layout.HEALTH_PORT, "maria", "Galera health agent", ("proxysql", "maria", "install", "monitor")),
        ]

    def volume_paths(self, site: Site) -> list[VolumePath]:
        return [VolumePath("data", "maria", layout.host_paths(site).data, "datadir")]

    def render(self, site: Site) -> Plans:
        return render.render(site)

    async def deploy(self, ctx: DeployContext, plans: Plans) -> None:
        await deploy.deploy(ctx, plans)

    async def validate(self, ctx: DeployContext) -> list[CheckResult]:
        return await checks.validate(ctx)


MODULE = MariadbModule()
