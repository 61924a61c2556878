"""Module 3 on the lab: real Patroni, PostgreSQL, HAProxy, PgBouncer and psycopg, through the
engine's install path and the lab's load balancer (VIP .10).

Reads like Patroni's own acceptance tests: deploy from nothing, converge again with 0 changes
and 0 restarts, every check green, a switchover and a power-off of the leader measured by the
drill framework (acknowledged writes looked up on the new leader), a re-run on the failed-over
cluster that leaves the new leader in place, then cleanup and re-install. Timings are printed,
not asserted (bench/ and docs/postgres.md hold the numbers).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_runs import Run, cleanup, drill_round, install, validate  # tests/lab is on sys.path
from listeners import lab_wildcard_listeners  # tests/lab is on sys.path

from keybuzz.drills.probe import ProbeRunner
from keybuzz.lab import Lab
from keybuzz.modules.postgres import MODULE, api, layout, vectors
from keybuzz.modules.postgres.client import query
from keybuzz.modules.postgres.drill import PostgresWriterProbe
from keybuzz.modules.postgres.settings import PatroniTuning
from keybuzz.registry import load_site
from keybuzz.site import Site

pytestmark = pytest.mark.lab


def leader(site: Site) -> str:
    found = api.leader_of(asyncio.run(api.cluster_states(site)))
    assert found is not None, "no single leader"
    return found.hostname


def containers(lab: Lab, host: str) -> set[str]:
    out = lab.exec(host, ["podman", "ps", "-a", "--format", "{{.Names}}"], check=True).stdout
    return set(out.split())


@pytest.fixture(scope="module")
def site(lab: Lab) -> Iterator[Site]:
    loaded = load_site(Path(lab.site_dir))
    cleanup(loaded, MODULE, purge_data=True)
    yield loaded
    lab.restore()
    cleanup(loaded, MODULE, purge_data=True)


@pytest.fixture(scope="module")
def installed(site: Site) -> Run:
    return install(site, MODULE)


def test_install_from_nothing(site: Site, installed: Run) -> None:
    print(f"\npostgres module from nothing: {installed.seconds:.1f} s, {installed.stats.changes} changes")
    assert installed.stats.changes > 0
    states = asyncio.run(api.cluster_states(site))
    assert api.healthy(states, site.config.tuning.patroni.maximum_lag_on_failover)
    assert leader(site) == site.with_role("db")[0].hostname  # only the first db server bootstraps


def test_no_listener_in_the_lab_binds_a_wildcard_address(lab: Lab, installed: Run) -> None:
    assert lab_wildcard_listeners(lab) == []  # HAProxy, PgBouncer, Patroni (REST, raft), PostgreSQL


def test_rerun_changes_nothing(site: Site, installed: Run) -> None:
    again = install(site, MODULE)
    print(f"\nno-op re-run: {again.seconds:.1f} s")
    assert (again.stats.changes, again.stats.restarts) == (0, 0), again.output


def test_validate_all_green_with_pgvector_and_the_lab_gaps_reported(site: Site, installed: Run) -> None:
    """PostgreSQL 16 + pgvector for real (HNSW on the primary and every replica); what the lab's build
    lacks is reported as a lab gap, and the lab site's smaller preload list is said to differ."""
    results = {r.name: r for r in validate(site, MODULE)}
    failed = [f"{r.name}: {r.detail}" for r in results.values() if r.available and not r.ok]
    assert failed == []
    vector = [r for name, r in results.items() if name.startswith("pgvector")]
    assert len(vector) == 2 and all(r.ok and r.available for r in vector)
    assert "found by the index" in vector[0].detail
    gaps = {name: r.detail for name, r in results.items() if not r.available}
    assert sorted(gaps) == ["ICU collations (the production build has them)",
                            "pg_stat_statements: preloaded (query statistics), as in production"]
    assert all("lab gap" in detail for detail in gaps.values())
    assert "production's ['pg_stat_statements']" in gaps["pg_stat_statements: preloaded (query statistics), as in "
                                                          "production"]
    green = [name for name, r in results.items() if r.available and r.ok]
    volumes = [name for name in green if name.startswith("volume ")]
    assert len(green) - len(volumes) == 11 and len(volumes) == 2 * len(site.with_role("db"))  # data and WAL
    vip = str(site.config.load_balancers[0].vip)
    assert int(query(site, vip, layout.WRITE_PORT, "SHOW server_version_num")[0][0]) // 10000 == 16
    assert query(site, vip, layout.WRITE_PORT, f"SELECT count(*) FROM {vectors.TABLE}") == [(0,)]  # rows cleaned


def test_pgvector_check_fails_without_the_extension_and_install_brings_it_back(site: Site, lab: Lab,
                                                                             installed: Run) -> None:
    superuser = site.credentials["postgres"]["POSTGRES_SUPERUSER_USER"]
    database = site.credentials["postgres"]["POSTGRES_APP_DATABASE"]
    lab.exec(leader(site), ["podman", "exec", "-i", "--user", layout.IMAGE_USER, layout.PATRONI_CONTAINER, "psql",
                            "-X", "-h", layout.C_SOCKET_DIR, "-U", superuser, "-d", database, "-v", "ON_ERROR_STOP=1"],
             check=True, input_text="DROP EXTENSION vector CASCADE;\n")  # also drops the check table's column
    broken = {r.name: r for r in validate(site, MODULE)}[vectors.PRIMARY_NAME]
    assert broken.available and not broken.ok and "run `keybuzz install`" in broken.detail
    again = install(site, MODULE)
    assert "CREATE EXTENSION vector" in again.output and again.stats.restarts == 0, again.output
    assert [f"{r.name}: {r.detail}" for r in validate(site, MODULE) if r.available and not r.ok] == []


def test_secrets_stay_off_the_hosts_argv_and_patroni_yml(site: Site, lab: Lab, installed: Run) -> None:
    host = site.with_role("db")[0].hostname
    paths = layout.host_paths(site)
    patroni_yml = lab.exec(host, ["cat", paths.patroni_yml], check=True).stdout
    inspect = lab.exec(host, ["podman", "inspect", "--format", "{{.Config.Cmd}} {{.Args}}", "patroni"],
                       check=True).stdout
    mode = lab.exec(host, ["stat", "-c", "%a", paths.patroni_env], check=True).stdout.strip()
    assert mode == "600"
    for key, value in site.credentials["postgres"].items():
        if key.endswith("_PASSWORD"):
            assert value not in patroni_yml and value not in inspect and value not in installed.output


def test_switchover_round(site: Site, lab: Lab, installed: Run) -> None:
    result = drill_round(site, lab, MODULE, "switchover")
    print(f"\nswitchover: outage {result.outage_s:.2f} s, lost {result.lost}/{result.acked}, "
          f"errors {result.errors}, rejoin {result.rejoin_s} s")
    assert result.acked > 0 and result.lost == 0
    assert result.new_primary != result.target and result.rejoin_s is not None


def test_rerun_after_failover_keeps_the_new_leader(site: Site, installed: Run) -> None:
    before = leader(site)
    again = install(site, MODULE)
    assert (again.stats.changes, again.stats.restarts) == (0, 0), again.output
    assert leader(site) == before


def with_patroni(site: Site, **updates: object) -> Site:
    """The same site with other tuning.patroni values, in memory (the lab's keybuzz.yaml stays as it is)."""
    tuning = site.config.tuning
    patroni = tuning.patroni.model_copy(update=updates)
    config = site.config.model_copy(update={"tuning": tuning.model_copy(update={"patroni": patroni})})
    return dataclasses.replace(site, config=config)


def test_dcs_setting_goes_through_patroni_without_restart(site: Site, installed: Run) -> None:
    ttl = site.config.tuning.patroni.ttl + 4  # lives in the DCS only: no container needs recreating
    try:
        run = install(with_patroni(site, ttl=ttl), MODULE)
        assert run.stats.changes >= 1 and run.stats.restarts == 0, run.output
        assert "PATCH /config: DCS settings differ from keybuzz.yaml: ['ttl']" in run.output
        status, config = asyncio.run(api.call(str(site.server(leader(site)).private_ip), "/config"))
        assert status == 200 and config["ttl"] == ttl
    finally:
        back = install(site, MODULE)
    assert back.stats.restarts == 0, back.output


def test_image_change_hands_the_leader_over_before_recreating_it(site: Site, lab: Lab, installed: Run) -> None:
    """An image upgrade (here: the same image pinned by digest) recreates every Patroni container,
    replicas first; the leader is switched over first instead of being killed under the clients."""
    ref = site.image("patroni")
    db = site.with_role("db")[0].hostname
    digest = lab.exec(db, ["podman", "image", "inspect", "--format", "{{.Digest}}", ref], check=True).stdout.strip()
    images = {**site.versions.images, "patroni": f"{ref}@{digest}"}
    pinned = dataclasses.replace(site, versions=site.versions.model_copy(update={"images": images}))
    old_leader = leader(site)
    probe = PostgresWriterProbe(site, str(site.config.load_balancers[0].vip))
    probe.ensure_table()
    runner = ProbeRunner(probe, 0.1)
    runner.start()
    try:
        run = install(pinned, MODULE)
    finally:
        runner.stop()
    outage, _, _ = runner.history.outage(0.0)
    acked = runner.history.acked_ids()
    lost = acked - probe.read_ids()
    print(f"\nimage upgrade under writes: {run.seconds:.1f} s, {run.stats.restarts} restarts, "
          f"write outage {outage:.2f} s, lost {len(lost)}/{len(acked)}")
    assert run.stats.restarts == 3 and "POST /switchover: leader handed over" in run.output, run.output
    assert leader(site) != old_leader and not lost
    back = install(site, MODULE)  # the tag alone again: same dance, cluster healthy afterwards
    assert back.stats.restarts == 3
    assert [f"{r.name}: {r.detail}" for r in validate(site, MODULE) if r.available and not r.ok] == []


def test_poweroff_leader_round_loses_nothing(site: Site, lab: Lab, installed: Run) -> None:
    try:
        result = drill_round(site, lab, MODULE, "poweroff-leader")
    finally:
        lab.restore()
    print(f"\npoweroff-leader: outage {result.outage_s:.2f} s, lost {result.lost}/{result.acked}, "
          f"rejoin {result.rejoin_s} s after boot")
    assert result.acked > 0 and result.lost == 0
    assert result.new_primary != result.target and result.rejoin_s is not None


def test_isolated_leader_acknowledges_nothing_that_is_lost(site: Site, lab: Lab, installed: Run) -> None:
    """The leader cut from the other db servers only, HAProxy and the writer still reaching it: with the
    default synchronous replication it acknowledges nothing the failover loses."""
    assert site.settings(PatroniTuning).synchronous_mode  # the default under test
    try:
        result = drill_round(site, lab, MODULE, "isolate-leader")
    finally:
        lab.restore()
    print(f"\nisolate-leader: outage {result.outage_s:.2f} s, lost {result.lost}/{result.acked}, old leader "
          f"acknowledged for {result.old_primary_acked_s} s after the fault, rejoin {result.rejoin_s} s")
    assert result.acked > 0 and result.lost == 0
    assert result.old_primary_acked_s is not None and result.old_primary_acked_s < 1.0
    assert result.new_primary != result.target and result.outage_s < 40


def test_cleanup_then_reinstall(site: Site, lab: Lab, installed: Run) -> None:
    cleanup(site, MODULE, purge_data=False)
    paths = layout.host_paths(site)
    for server in site.with_role("db"):
        assert "patroni" not in containers(lab, server.hostname)
        assert lab.exec(server.hostname, ["test", "-e", paths.raft]).returncode != 0  # DCS state removed
        assert lab.exec(server.hostname, ["test", "-d", paths.data]).returncode == 0  # data kept
    for server in site.with_role("haproxy"):
        assert not {"haproxy-postgres", "pgbouncer"} & containers(lab, server.hostname)
    again = install(site, MODULE)
    print(f"\nre-install over kept data: {again.seconds:.1f} s")
    failed = [f"{r.name}: {r.detail}" for r in validate(site, MODULE) if r.available and not r.ok]
    assert failed == []


def test_etcd_variant_installs_validates_and_cleans_its_keys(site: Site, lab: Lab, installed: Run) -> None:
    cleanup(site, MODULE, purge_data=True)
    etcd_site = with_patroni(site, dcs="etcd")
    try:
        first = install(etcd_site, MODULE)
        print(f"\npostgres module from nothing with etcd: {first.seconds:.1f} s")
        db = site.with_role("db")[0].hostname
        assert "etcd-postgres" in containers(lab, db)
        failed = [f"{r.name}: {r.detail}" for r in validate(etcd_site, MODULE) if r.available and not r.ok]
        assert failed == []
        again = install(etcd_site, MODULE)
        assert (again.stats.changes, again.stats.restarts) == (0, 0), again.output
    finally:
        cleanup(etcd_site, MODULE, purge_data=True)
