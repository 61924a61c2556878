"""Images as modules declare them: the versions.yaml key, the seed's pin, and how the lab gets one.

Production pulls the pinned reference from a registry. The lab has no registry: it builds its
images from Debian packages (a LabRecipe), serves a key from another lab image (a LabAlias: etcd
lives in the lab's patroni image), or cannot run the service at all (lab=None, with the reason).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LabRecipe:
    """A lab image built on the lab's Debian base; every field is part of its tag hash."""

    label: str  # human part of the tag
    packages: tuple[str, ...]
    wheels: tuple[str, ...] = ()  # pip wheels built on the control machine, at /wheelhouse during the build
    before: tuple[str, ...] = ()  # shell run before apt-get install
    after: tuple[str, ...] = ()  # shell run after it


@dataclass(frozen=True)
class LabAlias:
    """This key is served, in the lab, by the image of another key."""

    key: str
    why: str


@dataclass(frozen=True)
class ImageSpec:
    key: str  # versions.yaml `images:` key
    seed: str  # the pinned production reference (the seed's section F, corrected where it no longer works)
    lab: LabRecipe | LabAlias | None = None
    note: str = ""  # why the seed's pin was changed, or why the lab cannot run it


@dataclass(frozen=True)
class SoftwarePin:
    """A pinned version that is not an image (versions.yaml `software:`), e.g. K3s or pgvector."""

    key: str
    version: str
