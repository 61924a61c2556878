"""versions.yaml: every image pinned by tag (and digest where known), never `latest`."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

from keybuzz.values import KEY, VERSION

_IMAGE_REF = re.compile(
    r"(?P<repo>[a-z0-9]+(?:[._\-/:][a-z0-9]+)*?)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[a-f0-9]{64}))?"
)


class ImageRef(str):
    """`repo[:tag][@sha256:...]`, parsed once."""

    @property
    def parts(self) -> tuple[str, str | None, str | None]:
        match = _IMAGE_REF.fullmatch(self)
        if not match:
            return str(self), None, None
        return match["repo"], match["tag"], match["digest"]

    @property
    def tag(self) -> str | None:
        return self.parts[1]

    @property
    def digest(self) -> str | None:
        return self.parts[2]


def image_problem(ref: str) -> str | None:
    """Why an image reference is not acceptably pinned, or None when it is."""
    match = _IMAGE_REF.fullmatch(ref)
    if not match:
        return "is not an image reference (repo:tag[@sha256:digest])"
    if match["tag"] is None and match["digest"] is None:
        return "has no tag: pin a version"
    if match["tag"] == "latest":
        return "uses the tag 'latest': pin an exact version"
    return None


class Versions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    images: dict[KEY.type, str]  # each value checked by image_problem, with its line
    software: dict[KEY.type, VERSION.type] = {}

    def image(self, name: str) -> ImageRef:
        return ImageRef(self.images[name])
