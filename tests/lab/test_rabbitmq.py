"""RabbitMQ HA on the lab: real RabbitMQ nodes, HAProxy and pika, through the engine.

One cluster for the module, in order: fresh deploy, re-run (0 changes, 0 restarts), checks, one
round of each drill (power-off, crash, partition and isolation of the queue leader's node: 0
confirmed messages lost), a settings change rolled under a publisher with confirms (0 lost), a
node whose data folder is lost rejoining as a new member, the cold start of all nodes (back by
themselves), a forced boot the operator asked for, then cleanup (data kept unless purged).
Timings are printed, not asserted: bench/failover.py measures them over several rounds.
"""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from collections.abc import Iterator

import pika
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
from rich.console import Console

from keybuzz.drills.report import RoundResult
from keybuzz.engine import Engine, install_modules
from keybuzz.lab import Lab
from keybuzz.modules.rabbitmq import api, client, layout
from keybuzz.modules.rabbitmq.drill import Consumer, Publisher
from keybuzz.modules.rabbitmq.settings import RabbitmqSettings
from keybuzz.registry import load_site, module_by_name
from keybuzz.site import Site

pytestmark = pytest.mark.lab
MODULE = module_by_name("rabbitmq")
NODES = ("queue-01", "queue-02", "queue-03")


def report(result: RoundResult) -> str:
    return (f"{result.scenario}: {result.target} -> {result.new_primary}, publish gap {result.outage_s:.2f} s, "
            f"confirmed {result.acked}, lost {result.lost}, errors {result.errors}, rejoin {result.rejoin_s} s, "
            f"{result.details}")


def containers(lab: Lab, host: str) -> list[str]:
    return lab.exec(host, ["podman", "ps", "-a", "--format", "{{.Names}}"], check=True).stdout.split()


def present(lab: Lab, host: str, path: str) -> bool:
    return lab.exec(host, ["test", "-e", path]).returncode == 0


def whole(site: Site) -> list[str]:
    return api.cluster_problems(site, asyncio.run(api.views(site)))


def wait_whole(site: Site, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while (problems := whole(site)) and time.monotonic() < deadline:
        time.sleep(1)
    assert problems == []


def publish(site: Site, queue: str, count: int) -> None:
    connection = client.connect(site, str(layout.vip(site)), timeout=5)
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        client.declare_quorum_queue(channel, queue)
        for i in range(count):
            channel.basic_publish("", queue, str(i).encode(), pika.BasicProperties(delivery_mode=2), mandatory=True)
    finally:
        connection.close()


@pytest.fixture(scope="module")
def site(lab: Lab) -> Iterator[Site]:
    """The lab's site with no RabbitMQ module on it (a previous run's data purged)."""
    site = load_site(lab.site_dir)
    cleanup(site, MODULE, purge_data=True)
    yield site


@pytest.fixture(scope="module")
def first_install(site: Site) -> Run:
    run = install(site, MODULE)
    print(f"\nrabbitmq deploy from nothing: {run.seconds:.1f} s, {run.stats.changes} changes, "
          f"{run.stats.restarts} starts")
    return run


def test_deploy_then_rerun_changes_nothing(site: Site, first_install: Run) -> None:
    assert first_install.stats.restarts == 3 + 2  # one node per queue server, one HAProxy each
    assert "every node at once" in first_install.output  # a new cluster: nodes started together
    rerun = install(site, MODULE)
    print(f"\nrabbitmq re-run: {rerun.seconds:.1f} s")
    assert (rerun.stats.changes, rerun.stats.restarts) == (0, 0), rerun.output


def test_no_listener_in_the_lab_binds_a_wildcard_address(lab: Lab, first_install: Run) -> None:
    assert lab_wildcard_listeners(lab) == []  # AMQP, management, prometheus, epmd, distribution, HAProxy


def test_validate_all_green(site: Site, first_install: Run) -> None:
    results = validate(site, MODULE)
    names = " | ".join(r.name for r in results)
    assert "wrong password" in names and "without a type" in names and "HAProxy haproxy-02" in names
    assert [r for r in results if not r.ok] == []


def test_links_planted_from_inside_the_container_never_reach_a_host_file(lab: Lab, site: Site,
                                                                        first_install: Run) -> None:
    """The data folder belongs to the container's user: whatever it links there, install writes no host file."""
    paths, host = layout.host_paths(site), "queue-01"
    canary, cookie = "/etc/keybuzz-canary", layout.host_paths(site).cookie
    lab.exec(host, ["sh", "-c", f"echo root-only > {canary} && chmod 0600 {canary}"], check=True)
    in_container = [layout.SERVER_CONTAINER]

    def as_rabbitmq(script: str) -> None:
        lab.exec(host, ["podman", "exec", "--user", layout.IMAGE_USER, *in_container, "sh", "-c", script], check=True)

    def canary_state() -> str:
        return lab.exec(host, ["stat", "-c", "%u:%g %a %s", canary], check=True).stdout

    before = canary_state()
    # The temp name earlier versions wrote through, and a mode the next install puts back (0400).
    as_rabbitmq(f"ln -sf {canary} {layout.C_DATA_DIR}/.erlang.cookie.keybuzz-tmp && "
                f"chmod 0600 {layout.C_DATA_DIR}/.erlang.cookie")
    run = install(site, MODULE)
    assert run.stats.changes == 1 and run.stats.restarts == 0, run.output  # the cookie's mode, fixed
    assert "mode 0600 -> 0400" in run.output
    owner = lab.exec(host, ["stat", "-c", "%U %a", paths.data], check=True).stdout.split()[0]
    assert lab.exec(host, ["stat", "-c", "%U %a", cookie], check=True).stdout.split() == [owner, "400"]
    # The cookie itself swapped for a link: refused before anything is written, the link left to the operator.
    as_rabbitmq(f"cp {layout.C_DATA_DIR}/.erlang.cookie /tmp/cookie && rm -f {layout.C_DATA_DIR}/.erlang.cookie && "
                f"ln -s {canary} {layout.C_DATA_DIR}/.erlang.cookie")
    with pytest.raises(Exception, match="not a regular file"):
        install(site, MODULE)
    assert canary_state() == before and lab.exec(host, ["cat", canary], check=True).stdout == "root-only\n"
    as_rabbitmq(f"rm -f {layout.C_DATA_DIR}/.erlang.cookie {layout.C_DATA_DIR}/.erlang.cookie.keybuzz-tmp && "
                f"cp /tmp/cookie {layout.C_DATA_DIR}/.erlang.cookie")
    assert install(site, MODULE).stats.restarts == 0
    lab.exec(host, ["rm", "-f", canary], check=True)
    assert whole(site) == []


@pytest.mark.parametrize("scenario", ["poweroff-leader", "isolate-leader"])  # crash, partition: bench/failover.py
def test_losing_the_leaders_node_loses_no_confirmed_message(lab: Lab, site: Site, first_install: Run,
                                                            scenario: str) -> None:
    result = drill_round(site, lab, MODULE, scenario)
    print("\n" + report(result))
    assert result.acked > 0 and result.lost == 0
    assert result.new_primary not in ("none", result.target)  # the queue got a leader elsewhere
    assert result.rejoin_s is not None  # the node came back as a running member
    assert result.details["delivered"] >= result.acked  # at least once; duplicates are counted, not lost
    assert whole(site) == []


def test_settings_change_rolls_one_node_at_a_time_under_confirmed_publishes(lab: Lab, site: Site,
                                                                           first_install: Run) -> None:
    with changed_site(lab.site_dir, lambda c: c.setdefault("rabbitmq", {}).update(memory_limit="900MB")) as changed:
        vip = str(layout.vip(changed))
        queue = f"keybuzz.test.roll.{uuid.uuid4().hex[:8]}"
        consumer = Consumer(changed, vip, queue)
        probe = Publisher(changed, vip, queue, consumer)
        probe.ensure_queue()
        consumer.start()
        rolled = install_under_writes(changed, MODULE, probe)
    print(f"\nrolling memory_limit change under confirmed publishes: {rolled}")
    assert rolled.run.stats.restarts == 3  # the nodes, one at a time; HAProxy untouched
    assert rolled.acked > 0 and rolled.lost == 0
    assert whole(site) == []
    assert install(site, MODULE).stats.restarts == 3  # back to the original setting


def test_node_with_lost_data_rejoins_without_losing_the_queues(lab: Lab, site: Site, first_install: Run) -> None:
    queue = f"keybuzz.test.rejoin.{uuid.uuid4().hex[:8]}"
    publish(site, queue, 50)
    paths = layout.host_paths(site)
    lab.exec("queue-02", ["podman", "stop", "-t", "60", layout.SERVER_CONTAINER], check=True)
    lab.exec("queue-02", ["sh", "-c", f"rm -rf {paths.data}/mnesia"], check=True)
    run = install(site, MODULE)
    print(f"\nrejoin after a lost data folder: {run.seconds:.1f} s")
    assert "forget queue-02's old membership" in run.output and "quorum queues grown" in run.output
    wait_whole(site)
    state = asyncio.run(api.queue(site, site.settings(RabbitmqSettings).vhost, queue))
    assert state is not None and sorted(state.members) == [f"rabbit@{n}" for n in NODES]
    connection = client.connect(site, str(layout.vip(site)), timeout=5)
    try:
        channel = connection.channel()
        assert channel.queue_declare(queue, passive=True).method.message_count == 50
        channel.queue_delete(queue)
    finally:
        connection.close()
    assert [r for r in validate(site, MODULE) if not r.ok] == []


def test_cold_start_of_every_node_comes_back_by_itself(lab: Lab, site: Site, first_install: Run) -> None:
    result = drill_round(site, lab, MODULE, "cold-start")
    print("\n" + report(result) + f"; whole cluster {result.rejoin_s} s after the boot")
    assert result.acked > 0 and result.lost == 0
    assert result.rejoin_s is not None
    assert whole(site) == []


def test_forced_boot_marks_each_stopped_node_and_rabbitmq_consumes_the_mark(lab: Lab, site: Site,
                                                                            first_install: Run) -> None:
    for host in reversed(NODES):
        lab.exec(host, ["podman", "stop", "-t", "60", layout.SERVER_CONTAINER], check=True)
    buffer = io.StringIO()

    async def go() -> None:
        async with Engine(site, console=Console(file=buffer, width=200), verbose=True,
                          force_boot=frozenset({"rabbitmq"})) as engine:
            await install_modules(engine, [MODULE], allow_missing_base_os=True)

    asyncio.run(go())
    assert buffer.getvalue().count("force boot: the node will not wait") == 3
    marks = [f"{layout.host_paths(site).data}/mnesia/rabbit@{host}/force_load" for host in NODES]
    assert not any(present(lab, host, mark) for host, mark in zip(NODES, marks, strict=True))  # read at boot
    assert whole(site) == []


def test_cleanup_keeps_data_unless_purged(lab: Lab, site: Site, first_install: Run) -> None:
    paths = layout.host_paths(site)
    cleanup(site, MODULE, purge_data=False)
    assert layout.SERVER_CONTAINER not in containers(lab, "queue-01")
    assert layout.HAPROXY_CONTAINER not in containers(lab, "haproxy-01")
    assert not present(lab, "queue-01", paths.rabbitmq_conf)
    assert present(lab, "queue-01", f"{paths.data}/mnesia")
    cleanup(site, MODULE, purge_data=True)
    assert not present(lab, "queue-01", paths.data)
