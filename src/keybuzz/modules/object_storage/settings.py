"""keybuzz.yaml `object_storage:`: the backend, the buckets, the client endpoint and each backend's tuning."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from keybuzz.site.config import Strict
from keybuzz.values import ValueKind

# S3 bucket names: 3-63 lowercase letters, digits, dots and hyphens, starting and ending alphanumeric.
BUCKET_NAME = r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]"
BUCKET = ValueKind("an S3 bucket name", BUCKET_NAME, "3-63 lowercase letters, digits, dots and hyphens, starting "
                   "and ending with a letter or digit", max_length=63)
# keybuzz's own admin-only bucket: validate proves the application key is refused there.
OPS_BUCKET = "keybuzz-ops"


class SeaweedfsTuning(Strict):
    """SeaweedFS 4.48's own defaults notice a powered-off node after ~80 s (hard-coded gRPC keepalives, no
    flag): PUTs failed and reads stalled that long. The peer watch closes every TCP session to a peer that
    stops answering TCP connects, so the masters drop it at once (docs/object_storage.md, measured)."""

    copies: int = Field(default=2, ge=2, le=3)  # of each object, on distinct servers: survives copies - 1 lost
    volume_size_limit_mb: int = Field(default=1024, ge=64, le=30000)
    max_volumes: int = Field(default=0, ge=0)  # per server; 0 = free disk / volume size
    # The masters' raft heartbeat timeout (`-heartbeatInterval`, x 1-1.25); a leader steps down when a
    # majority was silent for its lease, the smaller of this and 500 ms. SeaweedFS's 300 ms made the lab's
    # leader step down twice in 30 s of container starts; every new leader refuses writes for 15 s, next
    # to which a second costs ~0.7 s more to notice a dead leader (docs/object_storage.md).
    raft_heartbeat_ms: int = Field(default=1000, ge=300, le=10000)
    # A peer is silent after `peer_silent_probes` unanswered TCP connects in a row (~3.5 s with these). The
    # timeout counts the start of the probe process too: a busy server must not take a live peer for silent
    # (cutting its sessions moves the master leader), so not less than a second, three in a row.
    peer_probe_interval_ms: int = Field(default=250, ge=100, le=10000)
    peer_probe_timeout_ms: int = Field(default=1000, ge=100, le=10000)
    peer_silent_probes: int = Field(default=3, ge=1, le=20)


class MinioSettings(Strict):
    console_port: int = Field(default=9001, ge=1, le=65535)


class ObjectStorageSettings(Strict):
    """`minio` is the seed's pinned release (archived upstream, not runnable here); `seaweedfs` is the
    maintained way out that the lab runs. Clients use `http://<endpoint_name>.<domain>:<port>`, a DNS name
    for the VIP of the load balancer that lists `port` (keybuzz.yaml `load_balancers`)."""

    backend: Literal["minio", "seaweedfs"] = "minio"
    buckets: list[BUCKET.type] = Field(default_factory=lambda: ["keybuzz"], min_length=1)
    endpoint_name: str = Field(default="s3", pattern=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
    port: int = Field(default=9000, ge=1, le=65535)
    seaweedfs: SeaweedfsTuning = SeaweedfsTuning()
    minio: MinioSettings = MinioSettings()

    @field_validator("buckets")
    @classmethod
    def _bucket_names(cls, buckets: list[str]) -> list[str]:
        bad = [b for b in buckets if ".." in b]
        if bad:
            raise ValueError(f"invalid S3 bucket name(s) {', '.join(bad)}: two dots in a row")
        if len(set(buckets)) != len(buckets):
            raise ValueError("a bucket is listed twice")
        if OPS_BUCKET in buckets:
            raise ValueError(f"{OPS_BUCKET} is keybuzz's own admin-only bucket; pick another name")
        return buckets
