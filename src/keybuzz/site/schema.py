"""What a site is validated against beyond its core: the sections, credentials and cross-file checks
the modules declare. The site layer knows no module; the registry hands it a SiteSchema.

A module's keybuzz.yaml section is a pydantic model at a path, e.g. ("tuning", "patroni") or
("object_storage",). The full keybuzz.yaml model is the core model plus every declared section,
each with its defaults, so a site that omits a section gets the module's defaults.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, create_model

from keybuzz.errors import InputError
from keybuzz.secrets import CredentialFile
from keybuzz.site.config import CoreConfig, Strict
from keybuzz.values import untyped_text_fields

if TYPE_CHECKING:
    from keybuzz.site.model import Site


@dataclass(frozen=True, eq=False)
class SettingsSection:
    """A module's part of keybuzz.yaml: `model` (a Strict pydantic model with defaults) at `path`."""

    path: tuple[str, ...]
    model: type[BaseModel]
    example: dict[str, Any] | None = None  # written by `keybuzz init --example seed`, so users see the knobs
    lab: dict[str, Any] | None = None  # what the lab's own site sets instead (e.g. a backend the lab can run)

    def __post_init__(self) -> None:
        if not self.path or self.path[0] in CoreConfig.model_fields:
            raise ValueError(f"settings path {self.path} is empty or a core keybuzz.yaml key")
        untyped = untyped_text_fields(self.model)
        if untyped:  # a site value reaches shells and config files: it must have a kind (keybuzz.values)
            raise ValueError(f"settings {'.'.join(self.path)}: text field(s) {', '.join(untyped)} have no kind: "
                             "use a keybuzz.values kind (NAME.type, ...), a Literal or Field(pattern=r'^...$')")


@dataclass(frozen=True)
class Quorum:
    """The servers of `role` form a quorum: at least `minimum`, an odd count (a majority survives a split).
    Checked by the servers.tsv parser over every readable row, with the row errors."""

    role: str
    minimum: int = 3
    why: str = "a majority must survive the loss of one server"


# A cross-file check: (the loaded site, servers.tsv as shown to the user) -> every problem found.
SiteCheck = Callable[["Site", str], list[InputError]]


@dataclass(frozen=True)
class SiteSchema:
    sections: tuple[SettingsSection, ...] = ()
    credentials: tuple[CredentialFile, ...] = ()
    quorums: tuple[Quorum, ...] = ()
    checks: tuple[SiteCheck, ...] = ()

    def config_model(self) -> type[BaseModel]:
        return _config_model(self.sections)

    def credential_file(self, service: str) -> CredentialFile:
        for file in self.credentials:
            if file.service == service:
                return file
        raise KeyError(f"no module declares credentials/{service}.env")


def _group(name: str, children: dict[str, Any]) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for key, child in children.items():
        model = child if isinstance(child, type) else _group(f"{name}_{key}", child)
        fields[key] = (model, model())
    return create_model(name, __base__=Strict, **fields)


@lru_cache(maxsize=16)
def _config_model(sections: tuple[SettingsSection, ...]) -> type[BaseModel]:
    tree: dict[str, Any] = {"tuning": {}}  # `tuning:` always exists (failover timings live there)
    for section in sections:
        node = tree
        for key in section.path[:-1]:
            node = node.setdefault(key, {})
            if isinstance(node, type):
                raise ValueError(f"settings path {section.path} goes through another section")
        if section.path[-1] in node:
            raise ValueError(f"two modules declare the keybuzz.yaml section {'.'.join(section.path)}")
        node[section.path[-1]] = section.model
    fields: dict[str, Any] = {}
    for key, child in tree.items():
        model = child if isinstance(child, type) else _group(key.capitalize(), child)
        fields[key] = (model, model())
    return create_model("KeybuzzConfig", __base__=CoreConfig, **fields)
