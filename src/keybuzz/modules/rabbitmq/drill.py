"""Failover drills of the RabbitMQ module: a publisher with confirms and a consumer acking each
message, both through the load balancer VIP, on a quorum queue of their own.

A message counts as acknowledged when the broker confirmed it; lost when it was confirmed and
never delivered, neither to the consumer during the round nor when the queue is drained after
it. Delivery is at least once: duplicates (a message redelivered after a connection was cut
before its ack) are counted, not called losses. The fault hits the node holding the queue's
leader; `cold-start` powers every node off and boots them all together.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
import uuid

import pika

from keybuzz.contract import DrillContext, RoundPlan, WriterProbe, power_cycle_all
from keybuzz.modules.rabbitmq import api, client, layout
from keybuzz.modules.rabbitmq.settings import RabbitmqSettings, RabbitmqTuning
from keybuzz.poll import NotYet, wait_until
from keybuzz.site import Site

SCENARIOS: dict[str, str] = {
    "poweroff-leader": "power off the server holding the queue's leader (peers see silence)",
    "crash-leader": "kill every process of the server holding the queue's leader (peers get resets)",
    "partition-leader": "cut the leader's server off the network, then heal it",
    "isolate-leader": "cut the leader's server from the other queue servers only: HAProxy and the clients "
                      "still reach it (pause_minority must stop it)",
    "cold-start": "power every node off, then boot them all at once: the cluster must come back by itself",
}
FAULT_KIND = {"poweroff-leader": "poweroff", "crash-leader": "crash", "partition-leader": "partition",
              "isolate-leader": "isolate", "cold-start": "poweroff"}
CONFIRM_TIMEOUT_S = 2.0
HEALTHY_TIMEOUT_S = 300.0
REJOIN_TIMEOUT_S = 300.0
# A node back from isolation can be seen running, then reported partitioned by its peers a moment
# later (pause_minority then restarts it once more): whole means whole for this long.
STEADY_S = 5.0


class ConfirmTimeout(Exception):
    """The broker neither confirmed nor refused the message in time: not acknowledged."""


class Publisher(WriterProbe):
    """One persistent message per call, published with confirms, bounded by CONFIRM_TIMEOUT_S."""

    def __init__(self, site: Site, host: str, queue: str, consumer: Consumer):
        self.site, self.host, self.queue, self.consumer = site, host, queue, consumer
        self._connection: pika.BlockingConnection | None = None
        self._channel: pika.adapters.blocking_connection.BlockingChannel | None = None

    def _open(self) -> pika.adapters.blocking_connection.BlockingChannel:
        if self._channel is None or not self._channel.is_open:
            self.close()
            self._connection = client.connect(self.site, self.host, timeout=CONFIRM_TIMEOUT_S, heartbeat=2)
            self._channel = self._connection.channel()
            self._channel.confirm_delivery()
        return self._channel

    def ensure_queue(self) -> None:
        client.declare_quorum_queue(self._open(), self.queue)

    def write(self, write_id: int) -> None:
        channel = self._open()
        assert self._connection is not None

        def expire() -> None:  # raised inside the blocking wait for the confirm, which it ends
            raise ConfirmTimeout(f"no confirm within {CONFIRM_TIMEOUT_S:g} s")

        # BlockingConnection.call_later only fires in process_data_events; the wait for a confirm
        # runs the adapter's I/O loop, whose own timers fire there.
        ioloop = self._connection._impl.ioloop
        timer = ioloop.call_later(CONFIRM_TIMEOUT_S, expire)
        try:
            channel.basic_publish("", self.queue, str(write_id).encode(),
                                  pika.BasicProperties(delivery_mode=2, message_id=str(write_id)), mandatory=True)
        except Exception:
            self._abandon()
            raise
        finally:
            ioloop.remove_timeout(timer)

    def read_ids(self) -> set[int]:
        """Every id delivered during the round, plus what the queue still holds (drained now)."""
        self.consumer.stop()
        return self.consumer.delivered_ids() | self.consumer.drain()

    def classify(self, exc: BaseException) -> str:
        if isinstance(exc, pika.exceptions.NackError):
            return "nack"
        return super().classify(exc)

    def _abandon(self) -> None:
        """Drop a failed connection now and close it in the background: a broker whose channel
        waits for a queue leader answers the close handshake only when it has one (measured: 6 s),
        and the next write must not wait for that."""
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            threading.Thread(target=_close_quietly, args=(connection,), name="rabbitmq-close", daemon=True).start()

    def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            _close_quietly(connection)


def _close_quietly(connection: pika.BlockingConnection) -> None:
    if connection.is_open:
        with contextlib.suppress(Exception):  # a broken connection cannot always be closed cleanly
            connection.close()


class Consumer:
    """A thread consuming the queue through the VIP and acking each message (at-least-once delivery)."""

    def __init__(self, site: Site, host: str, queue: str):
        self.site, self.host, self.queue = site, host, queue
        self.deliveries: list[tuple[int, float]] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rabbitmq-consumer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                connection = client.connect(self.site, self.host, timeout=2.0, heartbeat=2)
            except Exception:  # every failure is data: retry shortly
                self.errors += 1
                self._stop.wait(0.2)
                continue
            try:
                channel = connection.channel()
                channel.basic_qos(prefetch_count=20)
                for method, _props, body in channel.consume(self.queue, inactivity_timeout=0.2):
                    if self._stop.is_set():
                        break
                    if method is None:
                        continue
                    self.deliveries.append((int(body), time.monotonic()))
                    channel.basic_ack(method.delivery_tag)
            except Exception:
                self.errors += 1
                self._stop.wait(0.2)
            finally:
                with contextlib.suppress(Exception):
                    connection.close()

    def delivered_ids(self) -> set[int]:
        return {message_id for message_id, _ in self.deliveries}

    def drain(self) -> set[int]:
        """What is left in the queue, consumed and acked through the VIP, then the queue deleted."""
        connection = client.connect(self.site, self.host, timeout=5.0)
        try:
            channel = connection.channel()
            found: set[int] = set()
            while True:
                method, _props, body = channel.basic_get(self.queue)
                if method is None:
                    break
                found.add(int(body))
                channel.basic_ack(method.delivery_tag)
            channel.queue_delete(self.queue)
            return found
        finally:
            connection.close()

    def details(self, since: float) -> dict[str, object]:
        """The longest stretch without a delivery after `since`, duplicates, reconnects."""
        times = [since, *sorted(t for _, t in self.deliveries if t >= since)]
        gap = max((b - a for a, b in itertools.pairwise(times)), default=0.0)
        ids = [message_id for message_id, _ in self.deliveries]
        return {"consumer_gap_s": round(gap, 2), "delivered": len(ids), "duplicates": len(ids) - len(set(ids)),
                "consumer_errors": self.errors}


async def healthy(site: Site) -> bool:
    problems = api.cluster_problems(site, await api.views(site))
    if problems:
        raise NotYet("; ".join(problems))
    return True


async def steadily_healthy(site: Site) -> float:
    """Waits until the cluster has been whole for STEADY_S; returns when that streak began."""
    since: list[float] = []

    async def probe() -> bool:
        try:
            await healthy(site)
        except Exception:
            since.clear()
            raise
        if not since:
            since.append(time.monotonic())
        if time.monotonic() - since[0] < STEADY_S:
            raise NotYet(f"whole for {time.monotonic() - since[0]:.1f} of {STEADY_S:g} s")
        return True

    await wait_until(f"every node a running member, no partition, for {STEADY_S:g} s", probe,
                     timeout=REJOIN_TIMEOUT_S, interval=0.5, module=layout.MODULE)
    return since[0]


async def leader_of(site: Site, queue: str) -> str:
    found = await api.queue(site, site.settings(RabbitmqSettings).vhost, queue)
    if found is None or not found.leader:
        raise NotYet(f"queue {queue} has no leader yet")
    return layout.hostname_of(site, found.leader)


class RabbitmqDrills:
    """Mixed into RabbitmqModule: its drill hooks."""

    def drill_settings(self, dctx: DrillContext) -> dict[str, object]:
        site = dctx.ctx.site
        return {"net_ticktime_s": site.settings(RabbitmqTuning).net_ticktime_s,
                "cluster_partition_handling": "pause_minority", "confirm_timeout_s": CONFIRM_TIMEOUT_S,
                "haproxy_check": "management API local-alarms, inter 1s fall 2 rise 2"}

    async def prepare_drill(self, dctx: DrillContext) -> None:
        await wait_until("a healthy RabbitMQ cluster", lambda: healthy(dctx.ctx.site), timeout=HEALTHY_TIMEOUT_S,
                         interval=1, module=layout.MODULE)

    async def plan_round(self, dctx: DrillContext, scenario: str, number: int) -> RoundPlan:
        site = dctx.ctx.site
        vip = layout.vip(site)
        if vip is None:
            raise ValueError(f"no load balancer lists port {layout.AMQP_PORT}: the drill goes through the VIP")
        await wait_until("a healthy RabbitMQ cluster", lambda: healthy(site), timeout=HEALTHY_TIMEOUT_S, interval=1,
                         module=layout.MODULE)
        queue = f"keybuzz.drill.{scenario}.{uuid.uuid4().hex[:8]}"
        consumer = Consumer(site, vip, queue)
        probe = Publisher(site, vip, queue, consumer)
        await asyncio.to_thread(probe.ensure_queue)
        leader = await wait_until(f"the leader of {queue}", lambda: leader_of(site, queue), timeout=30, interval=0.5,
                                  module=layout.MODULE)
        consumer.start()
        kind = FAULT_KIND[scenario]
        targets = [s.hostname for s in layout.nodes(site)] if scenario == "cold-start" else [leader]
        peers = [s.hostname for s in layout.nodes(site) if s.hostname != leader]
        faulted_at: dict[str, float] = {}  # "t": the fault; "back": the nodes booted (cold start) or restored

        async def inject() -> None:
            faulted_at["t"] = time.monotonic()
            if scenario == "cold-start":
                faulted_at["back"] = await power_cycle_all(dctx.faults, kind, targets)
            else:
                await dctx.faults.inject(kind, leader, peers)

        async def recover() -> float | None:
            """Seconds from the restore (for a cold start, from the boot in inject) to the start of a
            steady whole cluster."""
            if scenario != "cold-start":
                await dctx.faults.restore(kind, leader)
                faulted_at["back"] = time.monotonic()
            whole_since = await steadily_healthy(site)
            return round(whole_since - faulted_at["back"], 2)

        return RoundPlan(scenario=scenario, target=",".join(targets), probe=probe, inject=inject, recover=recover,
                         new_primary=lambda: leader_of(site, queue), max_outage_s=HEALTHY_TIMEOUT_S,
                         settle_s=3.0, details=lambda: consumer.details(faulted_at.get("t", 0.0)))
