"""The module registry, numbered as in the seed (2 base_os ... 9 k3s), and the site-wide tables
built from what each module declares: keybuzz.yaml sections, credentials, images, lint rules,
ports per host, cross-file requirements. Adding a module is one folder and one line in MODULES.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from keybuzz.contract import Module, Port, Rule
from keybuzz.errors import InputError, display_path
from keybuzz.images import ImageSpec
from keybuzz.modules import pending
from keybuzz.modules.base_os import MODULE as BASE_OS
from keybuzz.modules.mariadb import MODULE as MARIADB
from keybuzz.modules.monitoring import MODULE as MONITORING
from keybuzz.modules.object_storage import MODULE as OBJECT_STORAGE
from keybuzz.modules.postgres import MODULE as POSTGRES
from keybuzz.modules.proxysql import MODULE as PROXYSQL
from keybuzz.modules.rabbitmq import MODULE as RABBITMQ
from keybuzz.modules.redis import MODULE as REDIS
from keybuzz.secrets import CredentialFile
from keybuzz.site import Site, example
from keybuzz.site import load_site as load_site_with
from keybuzz.site.loader import CONFIG_FILE, located_config
from keybuzz.site.schema import SiteSchema
from keybuzz.site.writer import write_site
from keybuzz.volumes import plan as volume_plan

MODULES: list[Module] = [
    BASE_OS.reading_ports(lambda site: host_ports(site)),
    POSTGRES,
    REDIS,
    RABBITMQ,
    OBJECT_STORAGE,
    MARIADB,
    PROXYSQL,
    pending.K3S,
    MONITORING.reading_modules(lambda site: site_modules(site)),
]


def site_modules(site: Site) -> list[Module]:
    """The implemented modules with servers on this site, in install order (what monitoring covers)."""
    return [m for m in MODULES if m.implemented and m.hosts(site)]


def module_by_name(name: str, modules: list[Module] | None = None) -> Module:
    for module in modules or MODULES:
        if module.name == name or str(module.number) == name:
            return module
    known = ", ".join(f"{m.number} {m.name}" for m in modules or MODULES)
    raise KeyError(f"unknown module {name!r}; known: {known}")


# -- the site: sections, credentials, requirements -------------------------------------------------

def credential_files(modules: list[Module] | None = None) -> list[CredentialFile]:
    chosen = modules or MODULES
    return [m.credentials for m in chosen if m.credentials] + [f for m in chosen for f in m.operator_credentials]


def schema(modules: list[Module] | None = None) -> SiteSchema:
    """What a site is validated against: the core plus every module's declarations."""
    chosen = tuple(modules or MODULES)
    return _schema(chosen)


@cache
def _schema(modules: tuple[Module, ...]) -> SiteSchema:
    def requirements(site: Site, servers_file: str) -> list[InputError]:
        return requirement_errors(site, servers_file, list(modules))

    return SiteSchema(sections=tuple(s for m in modules for s in m.settings),
                      credentials=tuple(credential_files(list(modules))),
                      quorums=tuple(m.quorum for m in modules if m.quorum), checks=(requirements,))


def load_site(root: Path, *, require_credentials: bool = True, modules: list[Module] | None = None) -> Site:
    """Load and validate a site against the registry (every problem at once: InputErrors)."""
    return load_site_with(root, schema(modules), require_credentials=require_credentials)


def requirement_errors(site: Site, servers_file: str, modules: list[Module] | None = None) -> list[InputError]:
    """Cross-file checks: companion roles, module-specific needs, port collisions (quorum sizes are
    counted by the servers.tsv parser, with its other errors)."""
    errors: list[InputError] = []
    for module in modules or MODULES:
        for need in module.role_needs:
            users = site.with_role(need.role)
            if users and not site.with_role(need.needs):
                errors.append(InputError(servers_file, users[0].line,
                                         f"servers with role {need.role} but none with role {need.needs}",
                                         f"{need.why}; add {need.needs} servers"))
        errors.extend(InputError(servers_file, 0, message) for message in module.requirements(site))
    return errors + port_errors(site, servers_file, modules) + volume_errors(site, modules)


def volume_errors(site: Site, modules: list[Module] | None = None) -> list[InputError]:
    """keybuzz.yaml `volumes` against servers.tsv and the data paths the modules declare."""
    if not site.config.volumes:
        return []
    return volume_plan.site_errors(site, modules or MODULES, display_path(site.root / CONFIG_FILE),
                                   located_config(site.root))


# -- ports -----------------------------------------------------------------------------------------

def host_ports(site: Site, modules: list[Module] | None = None) -> dict[str, list[tuple[Module, Port]]]:
    """Per server: every (module, port) it listens on, from the modules that run on it."""
    table: dict[str, list[tuple[Module, Port]]] = {s.hostname: [] for s in site.servers}
    for module in modules or MODULES:
        if not module.hosts(site):
            continue
        for port in module.ports(site):
            for server in site.with_role(port.role):
                table[server.hostname].append((module, port))
    return table


def port_errors(site: Site, servers_file: str, modules: list[Module] | None = None) -> list[InputError]:
    """Two services on one port of one server (two roles on one server, or two modules' HAProxy slots)."""
    errors = []
    for hostname, ports in host_ports(site, modules).items():
        seen: dict[tuple[int, str], tuple[Module, Port]] = {}
        for module, port in ports:
            key = (port.number, port.protocol)
            # One listener declared for each role of a multi-role server (the node exporter) is one.
            if key in seen and (seen[key][0], seen[key][1].service) != (module, port.service):
                other_module, other = seen[key]
                errors.append(InputError(
                    servers_file, site.server(hostname).line,
                    f"{hostname}: {port.protocol} port {port.number} is wanted by {other_module.name} "
                    f"({other.service}, role {other.role}) and {module.name} ({port.service}, role {port.role})",
                    "give these roles separate servers" if other.role != port.role
                    else "change keybuzz.yaml haproxy.stats_port or the module's port"))
            seen.setdefault(key, (module, port))
    return errors


# -- images, lint rules, example site --------------------------------------------------------------

def images(modules: list[Module] | None = None) -> dict[str, ImageSpec]:
    """versions.yaml key -> ImageSpec over every module; one key declared two ways is a bug."""
    table: dict[str, ImageSpec] = {}
    for module in modules or MODULES:
        for spec in module.images:
            if table.setdefault(spec.key, spec) != spec:
                raise ValueError(f"image {spec.key} is declared differently by two modules (module {module.name})")
    return table


def lint_rules(modules: list[Module] | None = None) -> list[Rule]:
    return [rule for module in modules or MODULES for rule in module.lint_rules]


def seed_versions() -> dict[str, Any]:
    return {"images": {key: spec.seed for key, spec in images().items()},
            "software": {pin.key: pin.version for m in MODULES for pin in m.software}}


def example_config(*, lab: bool = False) -> dict[str, Any]:
    """The seed's core settings plus every module's example section (so users see the knobs); with
    `lab`, the sections' lab values over them (the lab's own site)."""
    config = example.seed_config()
    for module in MODULES:
        for section in module.settings:
            values = {**(section.example or {}), **((section.lab or {}) if lab else {})}
            if not values:
                continue
            node = config
            for key in section.path[:-1]:
                node = node.setdefault(key, {})
            node[section.path[-1]] = values
    return config


def write_example_site(directory: Path) -> list[str]:
    """`keybuzz init DIR --example seed`: the seed's 49 servers, pinned images, generated credentials."""
    return write_site(directory, example.seed_servers(), example_config(), seed_versions(), example.SEED_COMMENT,
                      credential_files())
