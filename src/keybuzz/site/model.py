"""The loaded site: everything a render or a deploy needs, validated as one unit."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from keybuzz.site.schema import SiteSchema
from keybuzz.site.servers import Server
from keybuzz.site.versions import ImageRef, Versions

M = TypeVar("M", bound=BaseModel)


@dataclass
class Site:
    root: Path
    servers: list[Server]
    config: Any  # the schema's keybuzz.yaml model: CoreConfig fields plus the modules' sections
    versions: Versions
    # repr=False: a Site shown in a traceback or a test failure must not print the passwords.
    credentials: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)
    schema: SiteSchema = field(default_factory=SiteSchema, repr=False)

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    def with_role(self, role: str) -> list[Server]:
        return [s for s in self.servers if s.has(role)]

    def hostname_at(self, ip: str) -> str | None:
        """The server whose private address is `ip` (services name their peers by address)."""
        return next((s.hostname for s in self.servers if str(s.private_ip) == ip), None)

    def server(self, hostname: str) -> Server:
        for server in self.servers:
            if server.hostname == hostname:
                return server
        raise KeyError(hostname)

    def image(self, name: str) -> ImageRef:
        return self.versions.image(name)

    def secret(self, service: str, key: str) -> str:
        return self.credentials[service][key]

    def settings(self, model: type[M]) -> M:
        """A module's keybuzz.yaml section, by its model (`site.settings(PatroniTuning).ttl`)."""
        for section in self.schema.sections:
            if section.model is model:
                value = self.config
                for key in section.path:
                    value = getattr(value, key)
                return value  # type: ignore[no-any-return]
        raise KeyError(f"no keybuzz.yaml section is declared with {model.__name__}")

    def data_dir(self, module: str) -> str:
        return f"{self.config.paths.data_root}/{module}"

    def config_dir(self, module: str) -> str:
        return f"{self.config.paths.config_root}/{module}"
