"""`keybuzz validate rabbitmq`: the seed's two checks (connectivity, cluster) and the ones a quorum
cluster behind HAProxy needs: no partition, no alarm, quorum queues with every member, HAProxy's
view of the members, and a real publish with confirms, consume and ack through the VIP."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable

import pika
from pika.adapters.blocking_connection import BlockingChannel

from keybuzz.contract import CheckResult, DeployContext
from keybuzz.contract.checks import concurrently
from keybuzz.haproxy import up_by_haproxy
from keybuzz.modules.rabbitmq import api, client, layout, lb
from keybuzz.modules.rabbitmq.settings import RabbitmqSettings
from keybuzz.poll import describe
from keybuzz.site import Site

CHECK_QUEUE = "keybuzz.check"
UNTYPED_QUEUE = "keybuzz.check.untyped"


async def check_cluster(site: Site) -> CheckResult:
    name = f"{len(layout.nodes(site))} running nodes, no partition, no alarm"
    problems = api.cluster_problems(site, await api.views(site))
    return CheckResult(name, not problems, "; ".join(problems) or "every node sees every node running")


def _round_trip(site: Site, vip: str, body: bytes) -> bytes | None:
    connection = client.connect(site, vip)
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        client.declare_quorum_queue(channel, CHECK_QUEUE)
        channel.basic_publish("", CHECK_QUEUE, body, pika.BasicProperties(delivery_mode=2), mandatory=True)
        for _ in range(50):
            method, _props, got = channel.basic_get(CHECK_QUEUE)
            if method is not None:
                channel.basic_ack(method.delivery_tag)
                if got == body:
                    return got
            else:
                connection.sleep(0.1)
        return None
    finally:
        connection.close()


async def check_round_trip(site: Site, vip: str) -> CheckResult:
    name = "through the LB: declare a quorum queue, publish with confirms, consume, ack"
    body = secrets.token_hex(8).encode()
    try:
        got = await asyncio.to_thread(_round_trip, site, vip, body)
    except Exception as exc:  # pika's errors, as they come
        return CheckResult(name, False, describe(exc))
    return CheckResult(name, got == body, f"{vip}:{layout.AMQP_PORT} as the application user"
                       if got == body else "the published message did not come back")


async def check_wrong_password(site: Site, vip: str) -> CheckResult:
    name = "a wrong password is refused"
    params = client.parameters(site, vip)
    params.credentials = pika.PlainCredentials(site.credentials[layout.MODULE]["RABBITMQ_APP_USER"],
                                               "wrong-" + secrets.token_hex(8))
    try:
        await asyncio.to_thread(lambda: pika.BlockingConnection(params).close())
    except pika.exceptions.ProbableAuthenticationError:
        return CheckResult(name, True, "ACCESS_REFUSED")
    except Exception as exc:
        return CheckResult(name, False, f"refused for another reason: {describe(exc)}")
    return CheckResult(name, False, "a wrong password was accepted")


async def check_queue_members(site: Site) -> CheckResult:
    name = f"the check queue has {len(layout.nodes(site))} members, all online, and a leader"
    found = await api.queue(site, site.settings(RabbitmqSettings).vhost, CHECK_QUEUE)
    if found is None:
        return CheckResult(name, False, "the queue is missing or no node answered")
    wanted = sorted(layout.node_name(s) for s in layout.nodes(site))
    ok = found.queue_type == "quorum" and sorted(found.members) == wanted and sorted(found.online) == wanted \
        and found.leader in wanted
    return CheckResult(name, ok, f"{found.queue_type}, leader {found.leader or 'none'}, members "
                                 f"{', '.join(found.members)}, online {', '.join(found.online)}")


def _on_channel(site: Site, vip: str, use: Callable[[BlockingChannel], object]) -> None:
    connection = client.connect(site, vip)
    try:
        use(connection.channel())
    finally:
        connection.close()


async def check_default_queue_type(site: Site, vip: str) -> CheckResult:
    """Behavioural: a queue declared without a type through the VIP, its type read back, deleted."""
    name = "a queue declared without a type is a quorum queue (vhost default)"
    vhost = site.settings(RabbitmqSettings).vhost
    try:
        # No x-queue-type: the vhost's default decides.
        await asyncio.to_thread(_on_channel, site, vip, lambda ch: ch.queue_declare(UNTYPED_QUEUE, durable=True))
        found = await api.queue(site, vhost, UNTYPED_QUEUE)
        await asyncio.to_thread(_on_channel, site, vip, lambda ch: ch.queue_delete(UNTYPED_QUEUE))
    except Exception as exc:  # pika's errors, as they come
        return CheckResult(name, False, describe(exc))
    queue_type = found.queue_type if found else "unknown (the queue was not found)"
    return CheckResult(name, queue_type == "quorum", f"vhost {vhost}: {queue_type}")


async def check_no_guest(site: Site) -> CheckResult:
    status, _ = await api.call(site, str(layout.nodes(site)[0].private_ip), "/users/guest")
    return CheckResult("no guest user", status == 404, "guest absent" if status == 404 else f"guest present ({status})")


async def check_haproxy(site: Site) -> list[CheckResult]:
    healthy = sorted(v.hostname for v in await api.views(site) if v.reachable)
    hosts = {s.hostname: str(s.private_ip) for s in site.with_role("haproxy")}
    results = []
    for host, up in (await up_by_haproxy(hosts, layout.stats_port(site), lb.BACKEND)).items():
        name = f"HAProxy {host}: every healthy node UP, no other"
        if isinstance(up, str):
            results.append(CheckResult(name, False, up))
        else:
            results.append(CheckResult(name, sorted(up) == healthy,
                                       f"UP {', '.join(up) or 'none'}; healthy {', '.join(healthy) or 'none'}"))
    return results


async def validate(ctx: DeployContext) -> list[CheckResult]:
    site = ctx.site
    results = [await check_cluster(site)]
    vip = layout.vip(site)
    if vip is None:
        results.append(CheckResult("through the LB", False, f"no load balancer lists port {layout.AMQP_PORT}",
                                   available=False))
        through_vip = []
    else:
        through_vip = [check_round_trip(site, vip), check_wrong_password(site, vip),
                       check_default_queue_type(site, vip)]
    return results + await concurrently(*through_vip, check_queue_members(site), check_no_guest(site),
                                        check_haproxy(site))
