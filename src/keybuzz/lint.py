"""`keybuzz lint`: the core's rules and every module's, each with an id and a fix hint.

The core rules look at what every module renders (secrets, pinned images, VIP binds, load
balancer targets); the module rules (KB004 Redis, KB005/KB006 Patroni, ...) live in the
modules' folders and come through the registry.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from keybuzz import registry
from keybuzz.containers import ContainerCli
from keybuzz.contract import Finding, Hit, LintInput, Module, Rule
from keybuzz.render import Plans
from keybuzz.render_output import render_modules
from keybuzz.renders import Renders
from keybuzz.secrets import is_secret_key
from keybuzz.site import Site
from keybuzz.site.versions import image_problem


def _secret_values(site: Site) -> dict[str, str]:
    return {value: f"{service}.{key}" for service, values in site.credentials.items()
            for key, value in values.items() if is_secret_key(key) and len(value) >= 6}


def _site_texts(site: Site) -> Iterable[tuple[str, str]]:
    for path in sorted(site.root.rglob("*")):
        if path.is_file() and "credentials" not in path.relative_to(site.root).parts:
            try:
                yield str(path.relative_to(site.root)), path.read_text(errors="replace")
            except OSError:
                continue


def _rendered_texts(plans: Plans, cli: ContainerCli) -> Iterable[tuple[str, str]]:
    for host, plan in plans.items():
        for spec in plan.files:
            if not spec.secret and isinstance(spec.content, str):
                yield f"render {host}:{spec.path}", spec.content
        for container in plan.containers:
            yield f"render {host}: {cli.name} run {container.name}", " ".join(cli.run(container, "0"))
        for service in plan.services:
            yield f"render {host}: service {service.name}", service.unit


def check_secrets_outside_credentials(data: LintInput) -> Iterable[Hit]:
    secrets = _secret_values(data.site)
    texts = [*_site_texts(data.site), *_rendered_texts(data.plans, ContainerCli(data.site.config.container_cli))]
    for where, text in texts:
        for value, name in secrets.items():
            index = text.find(value)
            if index >= 0:
                line = f":{text.count(chr(10), 0, index) + 1}" if not where.startswith("render ") else ""
                yield f"{where}{line}", f"contains the value of {name}", \
                    "secrets belong in credentials/*.env and secret files (0600) only; reference, never copy"


def check_images_pinned(data: LintInput) -> Iterable[Hit]:
    pinned = set(data.site.versions.images.values())
    for host, plan in data.plans.items():
        for container in plan.containers:
            problem = image_problem(container.image)
            if problem:
                yield f"render {host}: {container.name}", f"image {container.image} {problem}", \
                    "pin it in versions.yaml"
            elif container.image not in pinned:
                yield f"render {host}: {container.name}", f"image {container.image} is not listed in versions.yaml", \
                    "every image must come from versions.yaml"


_BIND = re.compile(r"^\s*bind\s+(\S+)", re.MULTILINE)
_PROXYSQL_IFACE = re.compile(r"interfaces\s*=\s*\"([^\"]+)\"")


def _bind_addresses(spec_path: str, content: str) -> list[str]:
    """Addresses of HAProxy `bind a:p[,b:p]` (with an optional ipv4@) and ProxySQL `interfaces="a:p;b:p"`."""
    items: list[str] = []
    if "haproxy" in spec_path:
        items += [part for bind in _BIND.findall(content) for part in bind.split(",")]
    for iface in _PROXYSQL_IFACE.findall(content):
        items += iface.split(";")
    return [item.rsplit(":", 1)[0].removeprefix("ipv4@").strip("[]") for item in items]


def check_no_vip_bind(data: LintInput) -> Iterable[Hit]:
    vips = {str(lb.vip) for lb in data.site.config.load_balancers}
    for host, plan in data.plans.items():
        for spec in plan.files:
            if not isinstance(spec.content, str):
                continue
            for address in _bind_addresses(spec.path, spec.content):
                if address in vips:
                    yield f"render {host}:{spec.path}", f"binds the load-balancer VIP {address}", \
                        "bind the server's private address (design A): the managed load balancer owns the VIP"


def check_load_balancer_targets(data: LintInput) -> Iterable[Hit]:
    for lb in data.site.config.load_balancers:
        if not data.site.with_role(lb.target_role):
            yield f"keybuzz.yaml load_balancers {lb.name}", \
                f"load balancer {lb.vip} targets role {lb.target_role} but no server has it", \
                f"add {lb.target_role} servers or remove the load balancer from keybuzz.yaml"


def check_modules_pending(data: LintInput) -> Iterable[Hit]:
    for message in data.pending:
        yield "modules", message, "its servers get only what the implemented modules give them"


# The core's rules; module rules come from the registry (`rules()`), KB008 is listed last.
RULES: list[Rule] = [
    Rule("KB001", "error", "no secret value outside credentials/", check_secrets_outside_credentials),
    Rule("KB002", "error", "every image pinned in versions.yaml, never latest", check_images_pinned),
    Rule("KB003", "error", "HAProxy/ProxySQL never bind a load-balancer VIP", check_no_vip_bind),
    Rule("KB010", "warning", "every load balancer has servers behind it", check_load_balancer_targets),
]
PENDING_RULE = Rule("KB008", "info", "modules not in this version", check_modules_pending)


def rules() -> list[Rule]:
    """Every rule: the core's and every registered module's sorted by id, then KB008."""
    return [*sorted([*RULES, *registry.lint_rules()], key=lambda r: r.id), PENDING_RULE]


def lint(site: Site, modules: list[Module] | None = None, renders: Renders | None = None) -> list[Finding]:
    """Every rule over the site and the render of `modules` (default: the registry)."""
    plans, pending = render_modules(site, registry.MODULES if modules is None else modules, renders)
    data = LintInput(site, plans, pending)
    return [Finding(rule.id, rule.severity, where, message, hint)
            for rule in rules() for where, message, hint in rule.check(data)]
