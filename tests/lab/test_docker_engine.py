"""Docker's engine as production runs it: a dockerd in every lab host (`lab up --engine docker`), the
docker CLI path of the engine against it (run with `--restart unless-stopped`, `--env-file`, `--user`,
`inspect`), and a power loss of every server at once brought back by dockerd's own restart policy: the lab
starts no container at boot on docker.

RabbitMQ is the module driven here (its cold start needs no operator, and its publisher confirms count
the acknowledged writes); the other modules' lab tests run on podman. Its own lab: the servers of the
queue and haproxy roles and their load balancer, in a folder next to the session lab's, the /16 after
its subnet (shared with the dry-run file's lab, never at the same time: both are module-scoped on one
worker).
"""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pika
import pytest
from engine_runs import drill_round, install, validate  # tests/lab is on sys.path

from keybuzz.lab import Lab, kernel
from keybuzz.modules.rabbitmq import client, layout
from keybuzz.registry import load_site, module_by_name
from keybuzz.site import Site

pytestmark = pytest.mark.lab
MODULE = module_by_name("rabbitmq")
NODES = ("queue-01", "queue-02", "queue-03")
QUEUE_SETTLE_S = 5.0


@pytest.fixture(scope="module")
def docker_lab(lab: Lab) -> Iterator[Lab]:
    made = Lab(lab.dir.parent / f"{lab.dir.name}-docker")
    if made.exists():
        made.down()  # left by an interrupted run: start from hosts that never had keybuzz
    made.up("roles:queue,haproxy", ipaddress.IPv4Network((int(lab.subnet.network_address) + 2 ** 16, 16)),
            engine="docker")
    try:
        yield made
    finally:
        if made.exists():
            made.down()


@pytest.fixture(scope="module")
def site(docker_lab: Lab) -> Site:
    site = load_site(docker_lab.site_dir)
    assert site.config.container_cli == "docker"
    run = install(site, MODULE)
    print(f"\nrabbitmq on docker from nothing: {run.seconds:.1f} s, {run.stats.changes} changes")
    return site


def inspect(lab: Lab, host: str, name: str) -> dict:
    return json.loads(lab.exec(host, ["docker", "inspect", name], check=True).stdout)[0]


def started_at(lab: Lab, host: str, name: str) -> float:
    text = inspect(lab, host, name)["State"]["StartedAt"]  # RFC 3339 with nanoseconds
    return datetime.fromisoformat(text[:26].rstrip("Z") + "+00:00").timestamp()


def test_every_host_runs_its_own_dockerd_and_no_podman_container(docker_lab: Lab) -> None:
    ids = {}
    for host in docker_lab.hosts:
        info = json.loads(docker_lab.exec(host, ["docker", "info", "--format", "{{json .}}"], check=True).stdout)
        assert info["Driver"] == "overlay2" and info["CgroupDriver"] == "cgroupfs", host
        ids[host] = info["ID"]
        assert docker_lab.exec(host, ["podman", "ps", "-aq"], check=True).stdout.strip() == "", host
    assert len(set(ids.values())) == len(ids)  # one engine per host, never a shared one


def test_install_on_docker_validates_green_and_a_rerun_changes_nothing(docker_lab: Lab, site: Site) -> None:
    assert [r for r in validate(site, MODULE) if not r.ok] == []
    again = install(site, MODULE)
    assert (again.stats.changes, again.stats.restarts) == (0, 0), again.output
    rabbit = inspect(docker_lab, "queue-01", "rabbitmq")
    assert rabbit["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert rabbit["HostConfig"]["NetworkMode"] == "host"
    assert rabbit["Config"]["User"] == "rabbitmq"  # its data folder owned by that user's uid, read from the image
    haproxy = inspect(docker_lab, "haproxy-01", "haproxy-rabbitmq")
    assert haproxy["State"]["Running"] and haproxy["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    # --env-file reached dockerd: the health checks' credential is in the container's environment
    assert "RABBITMQ_CHECK_AUTH" in {item.partition("=")[0] for item in haproxy["Config"]["Env"]}


def test_cold_start_drill_comes_back_by_dockerd_alone(docker_lab: Lab, site: Site) -> None:
    before = time.time()
    result = drill_round(site, docker_lab, MODULE, "cold-start")
    print(f"\ndocker cold start: publish gap {result.outage_s:.2f} s, confirmed {result.acked}, lost {result.lost}, "
          f"whole cluster {result.rejoin_s} s after the boot")
    assert result.acked > 0 and result.lost == 0 and result.rejoin_s is not None
    for node in NODES:  # the lab started nothing on docker: each node's dockerd did, after the boot
        assert started_at(docker_lab, node, "rabbitmq") > before, node


def test_power_loss_of_every_server_keeps_every_confirmed_message(docker_lab: Lab, site: Site) -> None:
    queue = "docker-power-loss"
    connection = client.connect(site, str(layout.vip(site)), timeout=5)
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        client.declare_quorum_queue(channel, queue)
        # Measured here, on podman as on docker: a quorum queue declared within a second of every node
        # losing power came back empty (RabbitMQ 3.10 had not yet recorded its Raft member on disk; one
        # declared 3 s or more before kept all 50 messages published right before the cut).
        time.sleep(QUEUE_SETTLE_S)
        for i in range(50):
            channel.basic_publish("", queue, str(i).encode(), pika.BasicProperties(delivery_mode=2), mandatory=True)
    finally:
        connection.close()
    servers = [h for h in docker_lab.hosts if not docker_lab.host(h).lb]
    for host in servers:
        docker_lab.poweroff(host)
    powered = time.monotonic()
    try:
        for host in servers:
            assert docker_lab.boot(host) == []  # dockerd starts the containers, not the lab
        count, last = None, ""
        deadline = time.monotonic() + 120
        while count is None and time.monotonic() < deadline:
            try:
                connection = client.connect(site, str(layout.vip(site)), timeout=3)
                try:
                    count = connection.channel().queue_declare(queue, passive=True).method.message_count
                finally:
                    connection.close()
            except Exception as exc:  # refused, reset or not yet elected: try again until the deadline
                last = f"{type(exc).__name__}: {exc}"
                time.sleep(1)
        assert count is not None, f"no answer through the VIP 120 s after the boot; last error: {last}"
        print(f"\npower loss of {len(servers)} servers on docker: the queue answers through the VIP "
              f"{time.monotonic() - powered:.1f} s after the power-off")
        assert count == 50
    finally:
        docker_lab.restore()


def test_down_leaves_no_engine_process_cgroup_or_mount(docker_lab: Lab, site: Site) -> None:
    prefix = f"kblab-{docker_lab.names.lab_id}-"
    assert list(Path("/sys/fs/cgroup/memory").glob(prefix + "*")), "the hosts' dockerd cgroup parents exist"
    netns = [h.netns for h in docker_lab.hosts.values()]
    docker_lab.down()
    assert not docker_lab.exists() and not any(kernel.pids_in(n) for n in netns)
    root = Path("/sys/fs/cgroup")
    assert [p for c in root.iterdir() if c.is_dir() for p in c.glob(prefix + "*")] == []
    assert kernel.mounts_under(docker_lab.dir) == []
