"""pika as the application user through the load balancer, with its own short timeouts and no
retries, so checks, gates and drills see what really happens. The password goes straight to
pika's credentials, never into a log line."""

from __future__ import annotations

import pika

from keybuzz.modules.rabbitmq import layout
from keybuzz.modules.rabbitmq.settings import RabbitmqSettings
from keybuzz.site import Site

QUORUM = {"x-queue-type": "quorum"}


def parameters(site: Site, host: str, *, timeout: float = 3.0, heartbeat: int = 5) -> pika.ConnectionParameters:
    creds = site.credentials[layout.MODULE]
    return pika.ConnectionParameters(
        host=host, port=layout.AMQP_PORT, virtual_host=site.settings(RabbitmqSettings).vhost,
        credentials=pika.PlainCredentials(creds["RABBITMQ_APP_USER"], creds["RABBITMQ_APP_PASSWORD"]),
        connection_attempts=1, retry_delay=0, socket_timeout=timeout, stack_timeout=timeout,
        blocked_connection_timeout=timeout, heartbeat=heartbeat, client_properties={"connection_name": "keybuzz"})


def connect(site: Site, host: str, **kwargs: float) -> pika.BlockingConnection:
    return pika.BlockingConnection(parameters(site, host, **kwargs))  # type: ignore[arg-type]


def declare_quorum_queue(channel: pika.adapters.blocking_connection.BlockingChannel, name: str) -> None:
    """Durable and explicitly quorum: the drills and checks do not depend on the vhost default."""
    channel.queue_declare(name, durable=True, arguments=QUORUM)
