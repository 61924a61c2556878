"""keybuzz.yaml: network, load balancers, container CLI, paths, SSH and failover tuning."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Strict(BaseModel):
    """Unknown keys are errors: a typo must never silently fall back to a default."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Network(Strict):
    cidr: ipaddress.IPv4Network = ipaddress.IPv4Network("10.0.0.0/16")


class LoadBalancer(Strict):
    """A managed load balancer (Hetzner in production, a TCP HAProxy host in the lab)."""

    name: str
    vip: ipaddress.IPv4Address
    target_role: Literal["haproxy", "proxysql"]
    ports: list[int] = Field(min_length=1)

    @field_validator("ports")
    @classmethod
    def _ports_in_range(cls, ports: list[int]) -> list[int]:
        for port in ports:
            if not 1 <= port <= 65535:
                raise ValueError(f"port {port} is outside 1-65535")
        if len(set(ports)) != len(ports):
            raise ValueError("a port is listed twice")
        return ports


def _default_load_balancers() -> list[LoadBalancer]:
    return [
        LoadBalancer(name="lb-internal", vip=ipaddress.IPv4Address("10.0.0.10"), target_role="haproxy",
                     ports=[5432, 5433, 6432, 6379, 5672]),
        LoadBalancer(name="lb-mariadb", vip=ipaddress.IPv4Address("10.0.0.20"), target_role="proxysql",
                     ports=[3306]),
    ]


class Paths(Strict):
    data_root: str = "/opt/keybuzz"
    config_root: str = "/opt/keybuzz"

    @field_validator("data_root", "config_root")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must be an absolute path")
        return value.rstrip("/") or "/"


class Ssh(Strict):
    user: str = "root"
    port: int = Field(default=22, ge=1, le=65535)
    identity_file: str = "~/.ssh/id_ed25519"
    known_hosts: str | None = "~/.ssh/known_hosts"
    connect_timeout_s: float = Field(default=10.0, gt=0)
    command_timeout_s: float = Field(default=300.0, gt=0)
    retries: int = Field(default=2, ge=0, le=10)
    parallelism: int = Field(default=20, ge=1, le=256)


class PatroniTuning(Strict):
    """Patroni timings. Defaults are the fastest valid for Patroni 4 (measured ~21 s outage)."""

    dcs: Literal["raft", "etcd"] = "raft"
    ttl: int = 20
    loop_wait: int = 2
    retry_timeout: int = 4
    maximum_lag_on_failover: int = 1048576
    synchronous_mode: bool = False


_PG_SIZE = r"^[1-9][0-9]*(kB|MB|GB|TB)$"


class PostgresTuning(Strict):
    """PostgreSQL sizes, stored in Patroni's DCS; from settings, never from the host (a container
    or a lab namespace sees the whole machine's memory). Defaults are the seed's values."""

    max_connections: int = Field(default=200, ge=10, le=10000)
    shared_buffers: str = Field(default="256MB", pattern=_PG_SIZE)
    effective_cache_size: str = Field(default="1GB", pattern=_PG_SIZE)
    work_mem: str = Field(default="4MB", pattern=_PG_SIZE)
    maintenance_work_mem: str = Field(default="64MB", pattern=_PG_SIZE)
    wal_keep_size: str = Field(default="1GB", pattern=_PG_SIZE)
    min_wal_size: str = Field(default="1GB", pattern=_PG_SIZE)
    max_wal_size: str = Field(default="4GB", pattern=_PG_SIZE)


class SentinelTuning(Strict):
    """Sentinel timings; down-after 1000 ms measured a ~4 s write gap on power-off."""

    down_after_ms: int = Field(default=1000, ge=100)
    failover_timeout_ms: int = Field(default=10000, ge=1000)
    min_replicas_to_write: int = Field(default=1, ge=0)
    min_replicas_max_lag_s: int = Field(default=10, ge=1)


class Tuning(Strict):
    patroni: PatroniTuning = PatroniTuning()
    postgres: PostgresTuning = PostgresTuning()
    sentinel: SentinelTuning = SentinelTuning()


class HaproxySettings(Strict):
    stats_port: int = Field(default=8404, ge=1, le=65535)


class KeybuzzConfig(Strict):
    network: Network = Network()
    domain: str = "keybuzz.io"
    dns_servers: list[ipaddress.IPv4Address] = [ipaddress.IPv4Address("1.1.1.1"),
                                                 ipaddress.IPv4Address("8.8.8.8")]
    container_cli: Literal["docker", "podman"] = "docker"
    registry: str | None = None
    load_balancers: list[LoadBalancer] = Field(default_factory=_default_load_balancers)
    paths: Paths = Paths()
    ssh: Ssh = Ssh()
    tuning: Tuning = Tuning()
    haproxy: HaproxySettings = HaproxySettings()

    @field_validator("load_balancers")
    @classmethod
    def _unique_vips(cls, load_balancers: list[LoadBalancer]) -> list[LoadBalancer]:
        vips = [lb.vip for lb in load_balancers]
        if len(set(vips)) != len(vips):
            raise ValueError("two load balancers share a VIP")
        return load_balancers

    def load_balancer_for(self, port: int) -> LoadBalancer | None:
        return next((lb for lb in self.load_balancers if port in lb.ports), None)
