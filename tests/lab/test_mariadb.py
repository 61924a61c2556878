"""MariaDB Galera and the proxies on the lab: real MariaDB 10.11 + Galera 4, the health agents, the
HAProxy stand-in for ProxySQL on the proxysql servers, PyMySQL through lb-mariadb, through the engine.

One cluster for the module, in order: fresh deploy of both modules, re-run (0 changes, 0 restarts),
checks, the writer's node powered off and cut from its peers only (0 committed writes lost), a proxy
powered off, a settings change rolled under writes, every node stopped cleanly (nobody bootstraps by
itself; `install` reads each position and bootstraps the most advanced), the cold start of all nodes
after a power loss (back by itself), then cleanup (data kept unless purged). Timings are printed,
not asserted: bench/failover.py measures them over several rounds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from engine_runs import (  # tests/lab is on sys.path
    Run,
    changed_site,
    cleanup,
    drill_round,
    install,
    install_under_writes,
    validate,
)
from listeners import lab_wildcard_listeners

from keybuzz.drills.report import RoundResult
from keybuzz.lab import Lab
from keybuzz.modules.mariadb import client, layout
from keybuzz.modules.mariadb.checks import states
from keybuzz.modules.mariadb.drill import GaleraWriterProbe, vip
from keybuzz.modules.mariadb.state import cluster_problems
from keybuzz.registry import load_site, module_by_name
from keybuzz.site import Site

pytestmark = pytest.mark.lab
MARIADB = module_by_name("mariadb")
PROXYSQL = module_by_name("proxysql")
NODES = ("maria-01", "maria-02", "maria-03")


def report(result: RoundResult) -> str:
    return (f"{result.scenario}: {result.target} -> {result.new_primary}, write gap {result.outage_s:.2f} s, "
            f"committed {result.acked}, lost {result.lost}, errors {result.errors}, rejoin {result.rejoin_s} s")


def whole(site: Site) -> list[str]:
    return cluster_problems(site, asyncio.run(states(site)))


def wait_whole(site: Site, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while (problems := whole(site)) and time.monotonic() < deadline:
        time.sleep(1)
    assert problems == []


def present(lab: Lab, host: str, path: str) -> bool:
    return lab.exec(host, ["test", "-e", path]).returncode == 0


@pytest.fixture(scope="module")
def site(lab: Lab) -> Iterator[Site]:
    """The lab's site (proxysql.engine: haproxy, the stand-in) with neither module on it."""
    site = load_site(lab.site_dir)
    cleanup(site, PROXYSQL, purge_data=True)
    cleanup(site, MARIADB, purge_data=True)
    yield site


@pytest.fixture(scope="module")
def first_install(site: Site) -> tuple[Run, Run]:
    maria, proxies = install(site, MARIADB), install(site, PROXYSQL)
    print(f"\nmariadb from nothing: {maria.seconds:.1f} s, {maria.stats.changes} changes; "
          f"proxies: {proxies.seconds:.1f} s")
    return maria, proxies


def test_deploy_then_rerun_changes_nothing(site: Site, first_install: tuple[Run, Run]) -> None:
    maria, proxies = first_install
    assert "new cluster: bootstrap on maria-01" in maria.output
    assert maria.stats.restarts == 2 * 3 and proxies.stats.restarts == 2
    for module in (MARIADB, PROXYSQL):
        again = install(site, module)
        print(f"\n{module.name} re-run: {again.seconds:.1f} s")
        assert (again.stats.changes, again.stats.restarts) == (0, 0), again.output


def test_no_listener_in_the_lab_binds_a_wildcard_address(lab: Lab, first_install: tuple[Run, Run]) -> None:
    assert lab_wildcard_listeners(lab) == []  # MariaDB, Galera, health agents, stand-ins


def test_validate_both_modules(site: Site, first_install: tuple[Run, Run]) -> None:
    maria = validate(site, MARIADB)
    proxies = validate(site, PROXYSQL)
    assert [r for r in maria if not r.ok] == []
    assert [r for r in proxies if not r.ok and r.available] == []
    standin = [r for r in proxies if not r.available]
    assert len(standin) == 1 and "stand-in" in standin[0].detail  # said, not passed


@pytest.mark.parametrize("scenario", ["poweroff-writer", "isolate-writer"])
def test_losing_the_writer_loses_no_committed_write(lab: Lab, site: Site, first_install: tuple[Run, Run],
                                                    scenario: str) -> None:
    result = drill_round(site, lab, MARIADB, scenario)
    print("\n" + report(result))
    assert result.acked > 0 and result.lost == 0
    assert result.new_primary not in ("", result.target)
    assert result.rejoin_s is not None
    assert whole(site) == []


def test_a_proxy_powered_off_costs_seconds_and_no_write(lab: Lab, site: Site, first_install: tuple[Run, Run]) -> None:
    result = drill_round(site, lab, PROXYSQL, "poweroff-proxy")
    print("\n" + report(result))
    assert result.acked > 0 and result.lost == 0
    assert result.new_primary != result.target  # the other proxy carries the writes


def test_settings_change_rolls_one_node_at_a_time_under_writes(lab: Lab, site: Site,
                                                              first_install: tuple[Run, Run]) -> None:
    with changed_site(lab.site_dir, lambda c: c.setdefault("mariadb", {}).update(max_connections=600)) as changed:
        probe = GaleraWriterProbe(changed, *vip(changed))
        probe.ensure_table()
        rolled = install_under_writes(changed, MARIADB, probe)
    print(f"\nrolling max_connections change: {rolled}")
    assert rolled.run.stats.restarts == 3 and rolled.acked > 0 and rolled.lost == 0
    assert whole(site) == []
    assert install(site, MARIADB).stats.restarts == 3  # back to the original setting


def test_after_a_clean_stop_of_every_node_install_bootstraps_the_most_advanced(lab: Lab, site: Site,
                                                                              first_install: tuple[Run, Run]) -> None:
    host, port = vip(site)
    client.query(site, host, "CREATE TABLE IF NOT EXISTS keybuzz_test_stop (id INT PRIMARY KEY)", port=port)
    client.query(site, host, "REPLACE INTO keybuzz_test_stop VALUES (1), (2), (3)", port=port)
    last = str(site.server("maria-03").private_ip)
    for extra, node in enumerate(NODES, start=4):  # one after the other, a commit in between: the last is newest
        lab.exec(node, ["podman", "stop", "-t", "120", layout.SERVER_CONTAINER], check=True, timeout=180)
        if node != NODES[-1]:
            client.query(site, last, "INSERT INTO keybuzz_test_stop VALUES (%s)", (extra,))
    for node in NODES:  # started again by hand (a reboot): none may bootstrap by itself
        lab.exec(node, ["podman", "start", layout.SERVER_CONTAINER], check=True)
    time.sleep(10)
    assert all(not s.primary for s in asyncio.run(states(site)))
    run = install(site, MARIADB)
    print(f"\nrecovery after a clean stop: {run.seconds:.1f} s")
    assert "last committed position" in run.output and "cold start: bootstrap on maria-03" in run.output
    wait_whole(site)
    rows = client.query(site, host, "SELECT id FROM keybuzz_test_stop ORDER BY id", port=port)
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5]  # the commits only maria-03 had
    client.query(site, host, "DROP TABLE keybuzz_test_stop", port=port)


def test_cold_start_after_a_power_loss_comes_back_by_itself(lab: Lab, site: Site,
                                                           first_install: tuple[Run, Run]) -> None:
    result = drill_round(site, lab, MARIADB, "cold-start")
    print("\n" + report(result) + f"; whole cluster {result.rejoin_s} s after the boot")
    assert result.acked > 0 and result.lost == 0 and result.rejoin_s is not None
    assert whole(site) == []


def test_cleanup_keeps_data_unless_purged(lab: Lab, site: Site, first_install: tuple[Run, Run]) -> None:
    paths = layout.host_paths(site)
    cleanup(site, PROXYSQL, purge_data=True)
    cleanup(site, MARIADB, purge_data=False)
    assert not present(lab, "maria-01", paths.my_cnf)
    assert present(lab, "maria-01", paths.grastate)
    cleanup(site, MARIADB, purge_data=True)
    emptied = f"mountpoint -q {paths.data} && [ -z \"$(ls -A {paths.data})\" ]"
    assert lab.exec("maria-01", ["sh", "-c", emptied]).returncode == 0  # the volume: emptied, still mounted
