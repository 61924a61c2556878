"""render(site): the files and containers of the RabbitMQ module per host. Pure, no I/O.

The container runs as the image's rabbitmq user from the start: its data folder and Erlang cookie
are owned by that user (an ImageUser: uid 999 in the official image, another in Debian's
package), the cookie 0400 in the data folder (its HOME), never in argv or the environment.
"""

from __future__ import annotations

import base64
from dataclasses import replace

from keybuzz import haproxy
from keybuzz.containers import ContainerSpec, Mount
from keybuzz.modules.rabbitmq import conf, layout, lb
from keybuzz.render import DirSpec, FileSpec, HostPlan, Plans, merge_plans
from keybuzz.secrets import derived_secret
from keybuzz.site import Site
from keybuzz.site.servers import Server

STOP_TIMEOUT_S = 60  # a node stops its queues and syncs before it exits

SCRIPT = """#!/bin/sh
# Rendered by keybuzz: the container's entrypoint (the official image and Debian's package keep
# rabbitmq-server in different places). Runs as the image's rabbitmq user. The server script
# itself, never Debian's /usr/sbin wrapper: only the script stops the node on SIGTERM, so that
# a container stop is a clean shutdown and not a kill at the stop timeout.
set -eu
for server in /opt/rabbitmq/sbin/rabbitmq-server /usr/lib/rabbitmq/bin/rabbitmq-server; do
    if [ -x "$server" ]; then exec "$server"; fi
done
echo "keybuzz-rabbitmq: no rabbitmq-server in this image" >&2
exit 1
"""


def _node(site: Site, server: Server) -> HostPlan:
    paths = layout.host_paths(site)
    owner = layout.image_user(site)
    cookie = site.secret(layout.MODULE, "RABBITMQ_ERLANG_COOKIE")
    container = ContainerSpec(
        name=layout.SERVER_CONTAINER, image=site.image(layout.MODULE), module=layout.MODULE,
        entrypoint="/bin/sh", command=(layout.C_SCRIPT,), user=layout.IMAGE_USER, hostname=server.hostname,
        # Nodes reach each other as rabbit@<hostname>: resolved here, whatever the servers' DNS says.
        extra_hosts=tuple((s.hostname, str(s.private_ip)) for s in layout.nodes(site)),
        mounts=(Mount(paths.conf, layout.C_CONF_DIR, read_only=True), Mount(paths.data, layout.C_DATA_DIR)),
        stop_timeout_s=STOP_TIMEOUT_S,
        # definitions.json is not watched: a changed one is imported into the running cluster.
        restart_on=(paths.rabbitmq_conf, paths.advanced_config, paths.env_conf, paths.plugins, paths.script),
    )
    return HostPlan(server.hostname, directories=[
        DirSpec(paths.conf, 0o755),
        DirSpec(paths.data, 0o750, owner=owner, data=True),
    ], files=[
        FileSpec(paths.rabbitmq_conf, conf.rabbitmq_conf(site, server)),
        FileSpec(paths.advanced_config, conf.advanced_config(site, server)),
        FileSpec(paths.env_conf, conf.env_conf(server)),
        FileSpec(paths.plugins, conf.enabled_plugins()),
        FileSpec(paths.script, SCRIPT, mode=0o755),
        FileSpec(paths.definitions, conf.definitions(site), mode=0o600, owner=owner, secret=True),
        FileSpec(paths.cookie, cookie, mode=0o400, owner=owner, secret=True),
    ], containers=[container])


def check_auth(site: Site) -> str:
    """The monitoring user's basic-auth token for HAProxy's health checks (in its 0600 env file)."""
    creds = site.credentials[layout.MODULE]
    token = base64.b64encode(f"{creds['RABBITMQ_MONITOR_USER']}:{creds['RABBITMQ_MONITOR_PASSWORD']}".encode())
    return f"RABBITMQ_CHECK_AUTH={derived_secret(token.decode())}\n"


def _haproxy(site: Site, server: Server) -> HostPlan:
    paths = layout.host_paths(site)
    spec = haproxy.container(layout.HAPROXY_CONTAINER, layout.MODULE, site.image("haproxy"), paths.haproxy_cfg)
    spec = replace(spec, env_file=paths.haproxy_env)
    return HostPlan(server.hostname, directories=[DirSpec(paths.haproxy, 0o755), DirSpec(paths.secrets, 0o700)],
                    files=[FileSpec(paths.haproxy_cfg, lb.haproxy_cfg(site, server)),
                           FileSpec(paths.haproxy_env, check_auth(site), secret=True)],
                    containers=[spec])


def render(site: Site) -> Plans:
    return merge_plans({s.hostname: _node(site, s) for s in layout.nodes(site)},
                       {s.hostname: _haproxy(site, s) for s in site.with_role("haproxy")})
