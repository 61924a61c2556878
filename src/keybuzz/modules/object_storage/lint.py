"""The module's lint rules: MinIO's node count and its archived upstream, and an endpoint behind the LB."""

from __future__ import annotations

from collections.abc import Iterable

from keybuzz.contract import Hit, LintInput, Rule
from keybuzz.modules.object_storage import layout

WAY_OUT = "set object_storage.backend: seaweedfs (maintained, Apache-2.0; docs/object_storage.md)"


def check_minio_nodes(data: LintInput) -> Iterable[Hit]:
    count = len(layout.storage_servers(data.site))
    if layout.settings(data.site).backend == "minio" and 0 < count < 4:
        yield "servers.tsv", f"MinIO distributed mode on {count} nodes", \
            "upstream wants at least 4 nodes for erasure coding; MinIO community images also stopped in 2025"


def check_minio_archived(data: LintInput) -> Iterable[Hit]:
    if layout.storage_servers(data.site) and layout.settings(data.site).backend == "minio":
        yield "keybuzz.yaml object_storage.backend", (
            "MinIO's community edition stopped publishing images in October 2025 and its repository was "
            "archived in 2026: no security fixes"), WAY_OUT


def check_endpoint_behind_lb(data: LintInput) -> Iterable[Hit]:
    port = layout.settings(data.site).port
    if layout.storage_servers(data.site) and layout.vip(data.site) is None:
        yield "keybuzz.yaml load_balancers", f"no load balancer lists the S3 port {port}", \
            f"add {port} to the ports of the load balancer in front of the haproxy servers (lb-internal): clients " \
            f"then use {layout.client_endpoint(data.site)}, never one storage server"


RULES = (
    Rule("KB007", "warning", "MinIO distributed needs 4+ nodes", check_minio_nodes),
    Rule("KB012", "warning", "MinIO upstream archived", check_minio_archived),
    Rule("KB013", "warning", "S3 endpoint behind the internal load balancer", check_endpoint_behind_lb),
)
