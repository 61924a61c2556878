"""Object storage on the lab: real SeaweedFS (the lab site's backend), real HAProxy, boto3 through the
load balancer, all through the engine.

One cluster for the module, in order: fresh deploy, re-run (0 changes, 0 restarts), checks, every drill
scenario (0 acknowledged objects lost or corrupt, the storage server back), a settings change applied
one server at a time under writes (the leader's last, handed over first; 0 lost), then cleanup (data
kept unless purged: a re-install over it still serves an object written before). Gaps are printed and
bounded generously; bench/object_storage.py measures them over rounds.
"""

from __future__ import annotations

import asyncio
import secrets
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
from keybuzz.modules.object_storage import layout, s3, state
from keybuzz.modules.object_storage.drill import S3WriterProbe
from keybuzz.registry import load_site, module_by_name
from keybuzz.site import Site

pytestmark = pytest.mark.lab
MODULE = module_by_name("minio")


def report(result: RoundResult) -> str:
    return (f"{result.scenario}: {result.target} -> {result.new_primary}, PUT outage {result.outage_s:.2f} s, "
            f"acked {result.acked}, lost {result.lost}, errors {result.errors}, rejoin {result.rejoin_s} s, "
            f"{result.details}")


# The HTTP status a URL answers, printed by a Python run inside a lab host.
HTTP_STATUS = """import sys, urllib.error, urllib.request
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=5).status)
except urllib.error.HTTPError as exc:
    print(exc.code)"""


def leader(site: Site) -> str | None:
    return asyncio.run(state.leader(site))


@pytest.fixture(scope="module")
def site(lab: Lab) -> Iterator[Site]:
    """The lab's site (backend seaweedfs, its S3 port behind lb-internal), no object storage on it yet."""
    site = load_site(lab.site_dir)
    assert layout.settings(site).backend == "seaweedfs" and layout.vip_url(site)
    cleanup(site, MODULE, purge_data=True)
    yield site


@pytest.fixture(scope="module")
def first_install(site: Site) -> Run:
    run = install(site, MODULE)
    print(f"\nobject storage deploy from nothing: {run.seconds:.1f} s, {run.stats.changes} changes, "
          f"{run.stats.restarts} starts")
    return run


def test_deploy_then_rerun_changes_nothing(site: Site, first_install: Run) -> None:
    stats = first_install.stats
    assert stats.changes > 0 and stats.restarts == 5 * 3 + 2  # five containers per storage server, one HAProxy each
    rerun = install(site, MODULE)
    print(f"\nobject storage re-run: {rerun.seconds:.1f} s")
    assert (rerun.stats.changes, rerun.stats.restarts) == (0, 0), rerun.output


def test_no_listener_in_the_lab_binds_a_wildcard_address(lab: Lab, first_install: Run) -> None:
    assert lab_wildcard_listeners(lab) == []  # masters, volume servers, filers, gateways, HAProxy


def test_the_guard_refuses_file_ids_to_a_server_outside_its_list(lab: Lab, site: Site, first_install: Run) -> None:
    """haproxy-01 may reach the masters (its S3 check asks /cluster/healthz) but is not in the guard's list:
    the leader's /dir/assign, which hands out write tokens, answers it 401; the installer (validate) gets file
    ids. A follower forwards the request to the leader from its own address, which is listed: on the masters
    the list fences the leader only (docs/object_storage.md)."""
    leader_host = leader(site)
    assert leader_host
    master = layout.master_address(site.server(leader_host))
    answers = {path: lab.exec("haproxy-01", ["python3", "-c", HTTP_STATUS, f"http://{master}{path}"],
                              check=True).stdout.strip() for path in ("/dir/assign", "/cluster/healthz")}
    assert answers == {"/dir/assign": "401", "/cluster/healthz": "200"}
    assert asyncio.run(state.assign_problem(site, leader_host)) is None


def test_validate_all_green(site: Site, first_install: Run) -> None:
    results = validate(site, MODULE)
    assert len(results) >= 13 and all(r.available for r in results)
    assert [r for r in results if not r.ok] == []


def test_application_key_reaches_only_its_buckets(site: Site, first_install: Run) -> None:
    """The application key through the LB endpoint: its buckets only; the admin key sees every one."""
    url = str(layout.vip_url(site))
    assert s3.bucket_names(s3.application(site, url)) == ["keybuzz"]
    assert s3.bucket_names(s3.admin(site, url)) == ["keybuzz", "keybuzz-ops"]


# poweroff-follower (no leader change), crash, partition: bench/object_storage.py and bench/failover.py.
@pytest.mark.parametrize("scenario", ["poweroff-node", "isolate-node"])
def test_drill_loses_no_acknowledged_object(lab: Lab, site: Site, first_install: Run, scenario: str) -> None:
    result = drill_round(site, lab, MODULE, scenario)
    print("\n" + report(result))
    details = result.details
    assert result.acked > 0 and result.lost == 0
    assert details["missing_while_down"] == 0 and details["corrupt_while_down"] == 0
    assert details["corrupt_after_back"] == 0
    assert result.rejoin_s is not None
    # Generous bounds on a shared machine (bench/ measures): a leader change costs SeaweedFS's 15 s warm-up.
    assert float(details["put_gap_s"]) < 60 and float(details["get_gap_s"]) < 30
    assert result.new_primary not in ("none", result.target)


def test_validate_right_after_a_leader_change_waits_out_the_warm_up(lab: Lab, site: Site, first_install: Run) -> None:
    """The leader's master restarted: validate at once waits through the new leader's 15 s of refused
    writes, says it did, and every check is green."""
    before = leader(site)
    assert before
    lab.exec(before, ["podman", "restart", "-t", "0", layout.MASTER], timeout=60)
    results = validate(site, MODULE)
    raft = next(r for r in results if r.name.startswith("one master leader"))
    print(f"\nvalidate right after a restart of the leader's master: {raft.detail}")
    assert [r for r in results if not r.ok] == []
    assert "(after " in raft.detail


def test_settings_change_rolls_one_server_at_a_time_under_writes(lab: Lab, site: Site, first_install: Run) -> None:
    """A master setting changes: one storage server at a time, the leader's last with its leadership handed
    over first; writes through the LB go on, nothing acknowledged is lost."""
    before = leader(site)
    with changed_site(lab.site_dir, lambda c: c["object_storage"]["seaweedfs"].update(volume_size_limit_mb=2048)
                      ) as changed:
        probe = S3WriterProbe(changed, str(layout.vip_url(changed)), "keybuzz", f"keybuzz-test/{secrets.token_hex(4)}")
        rolled = install_under_writes(changed, MODULE, probe, settle_s=2.0)
    print(f"\nrolling master change under writes: {rolled}")
    run, acked, lost = rolled.run, rolled.acked, rolled.lost
    assert run.stats.restarts == 3  # one master per storage server, nothing else
    assert "hand the primary role over" in run.output and leader(site) not in (before, None)
    assert acked > 0 and lost == 0
    assert install(site, MODULE).stats.restarts == 3  # back to the original setting
    assert [r for r in validate(site, MODULE) if not r.ok] == []


def test_cleanup_keeps_data_unless_purged(lab: Lab, site: Site, first_install: Run) -> None:
    paths = layout.host_paths(site)
    url = str(layout.vip_url(site))
    app = s3.application(site, url, timeout=10)
    key = f"keybuzz-test/kept-{secrets.token_hex(4)}"
    digest = s3.put(app, "keybuzz", key, secrets.token_bytes(1024))

    def present(host: str, path: str) -> bool:
        return lab.exec(host, ["test", "-e", path]).returncode == 0

    def containers(host: str) -> list[str]:
        return lab.exec(host, ["podman", "ps", "-a", "--format", "{{.Names}}"], check=True).stdout.split()

    cleanup(site, MODULE, purge_data=False)
    assert not set(layout.SEAWEEDFS_CONTAINERS) & set(containers("minio-01"))
    assert layout.HAPROXY_CONTAINER not in containers("haproxy-01")
    assert not present("minio-01", paths.security) and not present("minio-01", paths.identities)
    assert all(present("minio-01", paths.component(c)) for c in ("master", "volume", "filer"))
    again = install(site, MODULE)
    assert again.stats.restarts == 5 * 3 + 2, again.output
    assert s3.get_digest(app, "keybuzz", key) == digest  # the kept data serves what was written before
    app.delete_object(Bucket="keybuzz", Key=key)
    assert [r for r in validate(site, MODULE) if not r.ok] == []
    cleanup(site, MODULE, purge_data=True)
    assert not present("minio-01", paths.seaweedfs)
