"""SeaweedFS on one storage server, as data: a raft master, a volume server, a filer, the S3 gateway and
the peer watch, one container each, and the files they read. Pure.

- Masters: hashicorp raft (`-raftHashicorp`): an isolated leader steps down within a second and a planned
  restart hands the leadership over first (`cluster.raft.transferLeader`, goraft has no transfer).
- Volume servers heartbeat to their local master only: after the leader's loss each reaches the new one in
  5 s (new leader) or 8 s (redirect); a seed list sent some through the dead node first (+5 s each).
- Filers keep metadata in a local leveldb2 store, replicated to their peers by SeaweedFS (eventually
  consistent, within milliseconds when nothing is cut); every S3 gateway prefers its local filer.
- security.toml signs volume and filer HTTP access with JWTs (direct writes without one: 401), and its guard
  answers the masters' and volume servers' guarded HTTP endpoints only to the storage servers and the installer.
- Every component listens on the server's private address (`-ip`, and 127.0.0.1 that SeaweedFS adds itself).
- The peer watch: SeaweedFS notices a silent peer (power-off, cut link) only when gRPC keepalives give up,
  ~80 s measured; the watch closes every TCP session to a peer that stops answering connects, and the
  masters, volume servers and filers then fail over within a second (docs/object_storage.md).
"""

from __future__ import annotations

import json
import shlex

from keybuzz.containers import ContainerSpec, Mount
from keybuzz.modules.base_os.firewall import collapsed, installer_addresses
from keybuzz.modules.base_os.settings import BaseOsSettings
from keybuzz.modules.object_storage import layout
from keybuzz.modules.object_storage.settings import SeaweedfsTuning
from keybuzz.render import DirSpec, FileSpec, HostPlan
from keybuzz.site import Site
from keybuzz.site.servers import Server

COMPONENTS = ("master", "volume", "filer")  # their data folders
# The gateway's extra listeners (Iceberg catalog 8181, Lance 9101) are off: nothing here uses them.
S3_EXTRA_OFF = ("-port.iceberg=0", "-port.lance=0")
JWT_EXPIRY_S = 10

PEERWATCH_BODY = r"""
set -u
trap 'exit 0' TERM INT  # PID 1 of its container: no default signal handling
declare -A misses
log() { echo "keybuzz-peerwatch: $*" >&2; }
log "watching $PEERS on port $PORT every ${INTERVAL}s (silent after $SILENT_AFTER unanswered connects)"
while true; do
    for peer in $PEERS; do
        # A refused connect is an answer (the host is up); a timeout or an unreachable host is silence.
        if out=$(timeout "$TIMEOUT" bash -c ": </dev/tcp/$peer/$PORT" 2>&1) || [[ $out == *"refused"* ]]; then
            if [ "${misses[$peer]:-0}" -ge "$SILENT_AFTER" ]; then log "$peer answers again"; fi
            misses[$peer]=0
            continue
        fi
        misses[$peer]=$(( ${misses[$peer]:-0} + 1 ))
        if [ "${misses[$peer]}" -ge "$SILENT_AFTER" ]; then
            if [ "${misses[$peer]}" -eq "$SILENT_AFTER" ]; then
                log "$peer silent for $SILENT_AFTER connects: closing every TCP session to it"
            fi
            ss -K dst "$peer" >/dev/null 2>&1 ||
                log "ss -K dst $peer failed: it needs CAP_NET_ADMIN and a kernel with INET_DIAG_DESTROY"
        fi
    done
    sleep "$INTERVAL"
done
"""


def tuning(site: Site) -> SeaweedfsTuning:
    return layout.settings(site).seaweedfs


def replication(site: Site) -> str:
    """SeaweedFS's placement code: copies on distinct servers of one rack (the site has one rack)."""
    return f"00{tuning(site).copies - 1}"


def _peers_first(site: Site, server: Server, port: int) -> str:
    """This server first, then the others: components prefer their local peer."""
    others = [s for s in layout.storage_servers(site) if s.hostname != server.hostname]
    return ",".join(f"{s.private_ip}:{port}" for s in [server, *others])


def master_command(site: Site, server: Server) -> tuple[str, ...]:
    masters = ",".join(layout.master_address(s) for s in layout.storage_servers(site))
    return ("-logtostderr", "master", f"-ip={server.private_ip}", f"-port={layout.MASTER_PORT}",
            f"-mdir={layout.C_DATA}", f"-peers={masters}", "-raftHashicorp", f"-defaultReplication={replication(site)}",
            f"-volumeSizeLimitMB={tuning(site).volume_size_limit_mb}",
            f"-heartbeatInterval={tuning(site).raft_heartbeat_ms}ms", "-telemetry=false")


def volume_command(site: Site, server: Server) -> tuple[str, ...]:
    return ("-logtostderr", "volume", f"-ip={server.private_ip}", f"-port={layout.VOLUME_PORT}",
            f"-dir={layout.C_DATA}", f"-max={tuning(site).max_volumes}", f"-master={layout.master_address(server)}")


def filer_command(site: Site, server: Server) -> tuple[str, ...]:
    return ("-logtostderr", "filer", f"-ip={server.private_ip}", f"-port={layout.FILER_PORT}",
            f"-master={_peers_first(site, server, layout.MASTER_PORT)}")


def gateway_command(site: Site, server: Server) -> tuple[str, ...]:
    return ("-logtostderr", "s3", f"-ip.bind={server.private_ip}", f"-port={layout.S3_PORT}",
            f"-filer={_peers_first(site, server, layout.FILER_PORT)}", f"-config={layout.C_IDENTITIES}",
            "-autoCreateBucket=false", "-allowDeleteBucketNotEmpty=false", *S3_EXTRA_OFF)


def toml_string(text: str) -> str:
    """A TOML basic string: JSON's string escapes are TOML's (quote, backslash, control characters)."""
    return json.dumps(text)


def guard_white_list(site: Site) -> tuple[str, ...]:
    """Who the guard lets call the masters' guarded HTTP endpoints (/dir/assign hands out write tokens, /vol/*,
    /col/delete) and write or delete on volume servers: the storage servers and the installer (validate reads
    /dir/status, /dir/assign, /vol/status). A fence behind the firewall, not a credential: SeaweedFS takes the
    client's address from X-Forwarded-For when a request carries one, and 4.48's filer ignores the list."""
    servers = [str(s.private_ip) for s in layout.storage_servers(site)]
    return collapsed([*servers, *installer_addresses(site, site.settings(BaseOsSettings))])


def security_toml(site: Site) -> str:
    """JWT keys: volume servers and filers refuse HTTP reads and writes not signed by the cluster; the guard's list."""
    volume_key = site.secret("minio", "MINIO_VOLUME_JWT_KEY")
    filer_key = site.secret("minio", "MINIO_FILER_JWT_KEY")
    lines = ["# Rendered by keybuzz: edits are overwritten on the next install."]
    for section, key in (("jwt.signing", volume_key), ("jwt.signing.read", volume_key),
                         ("jwt.filer_signing", filer_key), ("jwt.filer_signing.read", filer_key)):
        lines += [f"[{section}]", f"key = {toml_string(key)}", f"expires_after_seconds = {JWT_EXPIRY_S}", ""]
    lines += ["[guard]", f"white_list = {toml_string(','.join(guard_white_list(site)))}", ""]
    return "\n".join(lines)


def filer_toml() -> str:
    return "\n".join(["# Rendered by keybuzz: the filer's metadata in an embedded store, synced with its peers.",
                      "[leveldb2]", "enabled = true", f"dir = {toml_string(layout.C_DATA)}", ""])


def identities(site: Site) -> dict[str, object]:
    """The S3 identities: the admin (root credentials) and the application, limited to the site's buckets."""
    creds = site.credentials["minio"]
    app_actions = [f"{action}:{bucket}" for bucket in layout.settings(site).buckets
                   for action in ("Read", "List", "Tagging", "Write")]
    return {"identities": [
        {"name": "admin", "credentials": [{"accessKey": creds["MINIO_ROOT_USER"],
                                           "secretKey": creds["MINIO_ROOT_PASSWORD"]}],
         "actions": ["Admin", "Read", "List", "Tagging", "Write"]},
        {"name": "application", "credentials": [{"accessKey": creds["MINIO_APP_USER"],
                                                 "secretKey": creds["MINIO_APP_PASSWORD"]}],
         "actions": app_actions},
    ]}


def peerwatch_script(site: Site, server: Server) -> str:
    watch = tuning(site)
    peers = " ".join(str(s.private_ip) for s in layout.storage_servers(site) if s.hostname != server.hostname)
    values = {"PEERS": peers, "PORT": str(layout.MASTER_PORT), "INTERVAL": f"{watch.peer_probe_interval_ms / 1000:g}",
              "TIMEOUT": f"{watch.peer_probe_timeout_ms / 1000:g}", "SILENT_AFTER": str(watch.peer_silent_probes)}
    head = ["#!/bin/bash", f"# Rendered by keybuzz for {server.hostname}: edits are overwritten on the next install."]
    head += [f"{key}={shlex.quote(value)}" for key, value in values.items()]
    return "\n".join(head) + "\n" + PEERWATCH_BODY.lstrip("\n")


def node_plan(site: Site, server: Server) -> HostPlan:
    paths = layout.host_paths(site)
    image = site.image("seaweedfs")
    security = Mount(paths.security, layout.C_SECURITY, read_only=True)

    def weed(name: str, component: str | None, command: tuple[str, ...], *extra: Mount,
             watched: tuple[str, ...] = ()) -> ContainerSpec:
        data = (Mount(paths.component(component), layout.C_DATA),) if component else ()
        return ContainerSpec(name=name, image=image, module=layout.MODULE, entrypoint=layout.C_WEED, command=command,
                             mounts=(*data, security, *extra), restart_on=(paths.security, *watched))

    containers = [
        weed(layout.MASTER, "master", master_command(site, server)),
        weed(layout.VOLUME, "volume", volume_command(site, server)),
        weed(layout.FILER, "filer", filer_command(site, server),
             Mount(paths.filer_toml, layout.C_FILER_TOML, read_only=True), watched=(paths.filer_toml,)),
        weed(layout.GATEWAY, None, gateway_command(site, server),
             Mount(paths.identities, layout.C_IDENTITIES, read_only=True), watched=(paths.identities,)),
        ContainerSpec(name=layout.PEERWATCH, image=site.image("peerwatch"), module=layout.MODULE,
                      entrypoint="/bin/bash", command=(layout.C_PEERWATCH,),
                      mounts=(Mount(paths.peerwatch, layout.C_PEERWATCH, read_only=True),),
                      cap_add=("NET_ADMIN",), restart_on=(paths.peerwatch,)),
    ]
    return HostPlan(
        hostname=server.hostname,
        directories=[DirSpec(paths.seaweedfs, 0o755, data=True),
                     *(DirSpec(paths.component(c), 0o700, data=True) for c in COMPONENTS),
                     DirSpec(paths.conf, 0o755), DirSpec(paths.secrets, 0o700)],
        files=[FileSpec(paths.filer_toml, filer_toml()),
               FileSpec(paths.peerwatch, peerwatch_script(site, server), mode=0o755),
               FileSpec(paths.security, security_toml(site), secret=True),
               FileSpec(paths.identities, json.dumps(identities(site), indent=2) + "\n", secret=True)],
        containers=containers,
    )
