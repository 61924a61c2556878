"""Read a site folder, validate every file, and report all problems at once."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

from keybuzz.errors import InputError, InputErrors, display_path
from keybuzz.secrets import CredentialStore
from keybuzz.site.config import CoreConfig
from keybuzz.site.model import Site
from keybuzz.site.schema import SiteSchema
from keybuzz.site.servers import Server, parse_servers_tsv
from keybuzz.site.versions import Versions, image_problem
from keybuzz.site.yamlfile import LocatedYaml, load_yaml, validate_model

SERVERS_FILE = "servers.tsv"
CONFIG_FILE = "keybuzz.yaml"
VERSIONS_FILE = "versions.yaml"
CREDENTIALS_DIR = "credentials"


def _read(path: Path, errors: list[InputError]) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        errors.append(InputError(display_path(path), 0, "file is missing",
                                 "run `keybuzz init DIR` to write an example site"))
    except UnicodeDecodeError as exc:
        errors.append(InputError(display_path(path), 0, f"not UTF-8 ({exc.reason})", "save the file as UTF-8"))
    except OSError as exc:
        errors.append(InputError(display_path(path), 0, f"cannot read ({exc.strerror})", "check the path and rights"))
    return None


def _load_config(root: Path, schema: SiteSchema, errors: list[InputError]) -> tuple[Any, LocatedYaml | None]:
    path = root / CONFIG_FILE
    text = _read(path, errors)
    if text is None:
        return None, None
    located, yaml_errors = load_yaml(text, display_path(path))
    errors.extend(yaml_errors)
    if located is None:
        return None, None
    config, model_errors = validate_model(schema.config_model(), located, display_path(path))
    errors.extend(model_errors)
    return config, located


def located_config(root: Path, name: str = CONFIG_FILE) -> LocatedYaml | None:
    """keybuzz.yaml (or versions.yaml) read again with the line of every key, for checks of a loaded site
    that point at lines (None when it cannot be read or parsed: the load has said why)."""
    path = root / name
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return load_yaml(text, display_path(path))[0]


def _load_versions(root: Path, errors: list[InputError]) -> Versions | None:
    path = root / VERSIONS_FILE
    text = _read(path, errors)
    if text is None:
        return None
    located, yaml_errors = load_yaml(text, display_path(path))
    errors.extend(yaml_errors)
    if located is None:
        return None
    versions, model_errors = validate_model(Versions, located, display_path(path))
    errors.extend(model_errors)
    if versions:
        for name, ref in versions.images.items():
            problem = image_problem(ref)
            if problem:
                errors.append(InputError(display_path(path), located.line_of(("images", name)),
                                         f"image {name} {ref!r} {problem}",
                                         "the seed's rule: never `latest`, always a precise version"))
    return versions


def _raw_network(located: LocatedYaml | None) -> ipaddress.IPv4Network | None:
    """network.cidr even when another key of keybuzz.yaml is wrong, so servers are still range-checked."""
    if located is None or not isinstance(located.data, dict):
        return None
    raw = located.data.get("network", {})
    try:
        return ipaddress.IPv4Network(raw.get("cidr", "10.0.0.0/16") if isinstance(raw, dict) else "")
    except (ValueError, TypeError):
        return None


def _load_balancer_errors(config: CoreConfig, servers: list[Server], located: LocatedYaml | None,
                          file: str) -> list[InputError]:
    """A VIP is an address of the private network that no server owns (the managed LB holds it)."""
    errors = []
    owners = {s.private_ip: s.hostname for s in servers}
    for index, lb in enumerate(config.load_balancers):
        line = located.line_of(("load_balancers", index, "vip")) if located else 0
        if lb.vip not in config.network.cidr:
            errors.append(InputError(file, line, f"load balancer {lb.name} VIP {lb.vip} is outside "
                                     f"{config.network.cidr}",
                                     "the VIP is the load balancer's private address: pick one in network.cidr"))
        if lb.vip in owners:
            errors.append(InputError(file, line, f"load balancer {lb.name} VIP {lb.vip} is also {owners[lb.vip]}'s "
                                     "private_ip", "give the load balancer an address no server uses"))
    return errors


def load_site(root: Path, schema: SiteSchema | None = None, *, require_credentials: bool = True) -> Site:
    """Load and validate; raises InputErrors with every problem of every file.

    `schema` holds what the modules add (keybuzz.registry.load_site passes the registry's); without
    it only the core is known, and a module's keybuzz.yaml section is an unknown key."""
    schema = schema or SiteSchema()
    errors: list[InputError] = []
    if not root.is_dir():
        raise InputErrors([InputError(display_path(root), 0, "site folder not found",
                                      "pass --site DIR or run `keybuzz init DIR`")])
    config, located_config = _load_config(root, schema, errors)
    versions = _load_versions(root, errors)
    servers_path = root / SERVERS_FILE
    servers: list[Server] = []
    servers_ok = False
    text = _read(servers_path, errors)
    if text is not None:
        network = config.network.cidr if config else _raw_network(located_config)
        servers, server_errors = parse_servers_tsv(text, display_path(servers_path), network, schema.quorums)
        errors.extend(server_errors)
        servers_ok = not server_errors
    if config is not None:
        errors.extend(_load_balancer_errors(config, servers, located_config, display_path(root / CONFIG_FILE)))
    credentials: dict[str, dict[str, str]] = {}
    if require_credentials:
        store = CredentialStore(root / CREDENTIALS_DIR)
        errors.extend(store.permission_errors())
        credentials, cred_errors = store.load(schema.credentials)
        errors.extend(cred_errors)
        needed = [file for file in schema.credentials if any(s.has(r) for s in servers for r in file.roles)]
        if store.folder.is_dir():
            errors.extend(store.missing_errors(needed))
    if config is None or versions is None or not servers_ok:
        raise InputErrors(errors)
    # Cross-file checks need a whole inventory; they still run when only credentials are wrong.
    site = Site(root=root, servers=servers, config=config, versions=versions, credentials=credentials, schema=schema)
    for check in schema.checks:
        errors.extend(check(site, display_path(servers_path)))
    if errors:
        raise InputErrors(errors)
    return site
