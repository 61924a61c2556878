"""rabbitmq.conf, rabbitmq-env.conf, enabled_plugins and definitions.json as rendered, and a parser of
rabbitmq.conf's `key = value` format for checks and tests. No password in any of them: the
definitions hold salted SHA-256 hashes (RabbitMQ's own format) and are a secret file anyway."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

from keybuzz.modules.rabbitmq import layout
from keybuzz.modules.rabbitmq.settings import RabbitmqSettings, RabbitmqTuning
from keybuzz.secrets import derived_secret
from keybuzz.site import Site
from keybuzz.site.servers import Server

PLUGINS = ("rabbitmq_management", "rabbitmq_prometheus")
HASHING = "rabbit_password_hashing_sha256"


def rabbitmq_conf(site: Site, server: Server) -> str:
    settings, tuning = site.settings(RabbitmqSettings), site.settings(RabbitmqTuning)
    ip = server.private_ip
    lines = [
        f"# Rendered by keybuzz for {server.hostname}: edits are overwritten on the next install.",
        "cluster_formation.peer_discovery_backend = classic_config",
        *(f"cluster_formation.classic_config.nodes.{i} = {layout.node_name(s)}"
          for i, s in enumerate(layout.nodes(site), start=1)),
        # A node cut off in a minority stops serving instead of accepting writes the majority never sees.
        "cluster_partition_handling = pause_minority",
        f"net_ticktime = {tuning.net_ticktime_s}",
        f"listeners.tcp.1 = {ip}:{layout.AMQP_PORT}",
        f"management.tcp.ip = {ip}",
        f"management.tcp.port = {layout.MANAGEMENT_PORT}",
        f"prometheus.tcp.ip = {ip}",
        f"prometheus.tcp.port = {layout.PROMETHEUS_PORT}",
        "loopback_users.guest = true",
        f"vm_memory_high_watermark.absolute = {settings.memory_limit}",
        f"disk_free_limit.absolute = {settings.disk_free_limit}",
        f"load_definitions = {layout.C_DEFINITIONS}",
        "log.console = true",
        "log.console.level = info",
        "log.file = false",
        "",
    ]
    return "\n".join(lines)


def env_conf(server: Server) -> str:
    """Sourced by rabbitmq-server: the node name, and epmd on the private address (plus loopback,
    which epmd always adds) instead of every interface."""
    return (f"# Rendered by keybuzz for {server.hostname}.\n"
            f"NODENAME={layout.node_name(server)}\nUSE_LONGNAME=false\n"
            f"export ERL_EPMD_ADDRESS={server.private_ip}\n")


def advanced_config(site: Site, server: Server) -> str:
    """Erlang terms for what rabbitmq.conf cannot set on every supported version: the node-to-node
    listener on the private address only (the default is every interface, public ones included)
    and the quorum queues' failure detector poll interval (no rabbitmq.conf key in the lab's 3.10)."""
    poll_ms = site.settings(RabbitmqTuning).failure_detector_poll_ms
    ip = ",".join(str(server.private_ip).split("."))
    return ("%% Rendered by keybuzz: edits are overwritten on the next install.\n"
            f"[{{kernel, [{{inet_dist_use_interface, {{{ip}}}}}]}},\n"
            f" {{aten, [{{poll_interval, {poll_ms}}}]}}].\n")


def enabled_plugins() -> str:
    return f"[{','.join(PLUGINS)}].\n"


def password_hash(password: str, salt: bytes) -> str:
    """RabbitMQ's rabbit_password_hashing_sha256: base64(salt + sha256(salt + password))."""
    return derived_secret(base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode())


def _salt(site: Site, user: str) -> bytes:
    """Deterministic per user (a re-run renders the same file) and unguessable without the cookie."""
    cookie = site.secret(layout.MODULE, "RABBITMQ_ERLANG_COOKIE").encode()
    return hmac.new(cookie, f"salt:{user}".encode(), hashlib.sha256).digest()[:4]


def definitions(site: Site) -> str:
    """Users (admin, application, monitoring), the application vhost with quorum queues by default,
    permissions; imported at every boot (load_definitions) and by deploy when it changed."""
    creds = site.credentials[layout.MODULE]
    vhost = site.settings(RabbitmqSettings).vhost
    users = [(creds["RABBITMQ_ADMIN_USER"], creds["RABBITMQ_ADMIN_PASSWORD"], ["administrator"]),
             (creds["RABBITMQ_APP_USER"], creds["RABBITMQ_APP_PASSWORD"], []),
             (creds["RABBITMQ_MONITOR_USER"], creds["RABBITMQ_MONITOR_PASSWORD"], ["monitoring"])]
    admin, app, _ = (u[0] for u in users)
    document = {
        "users": [{"name": name, "password_hash": password_hash(password, _salt(site, name)),
                   "hashing_algorithm": HASHING, "tags": tags} for name, password, tags in users],
        # default_queue_type: queues declared without x-queue-type are quorum queues (3.10+).
        "vhosts": [{"name": "/"}, {"name": vhost, "metadata": {"description": "keybuzz application vhost",
                                                               "tags": [], "default_queue_type": "quorum"}}],
        "permissions": [{"user": admin, "vhost": name, "configure": ".*", "write": ".*", "read": ".*"}
                        for name in ("/", vhost)]
                       + [{"user": app, "vhost": vhost, "configure": ".*", "write": ".*", "read": ".*"}],
    }
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def parse_conf(text: str) -> dict[str, str]:
    """rabbitmq.conf's `key = value` lines (comments and blanks dropped); a repeated key keeps the last."""
    values = {}
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values
