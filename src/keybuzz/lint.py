"""`keybuzz lint`: the seed's definitive-design rules and ours, each with an id and a fix hint."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from keybuzz.haproxy import parse_config
from keybuzz.modules import Module
from keybuzz.render import Plans
from keybuzz.render_output import render_modules
from keybuzz.secrets import is_secret_key
from keybuzz.site import Site
from keybuzz.site.versions import image_problem

Severity = Literal["error", "warning", "info"]
Hit = tuple[str, str, str]  # (where, message, fix hint)


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: Severity
    where: str
    message: str
    hint: str


@dataclass
class LintInput:
    site: Site
    plans: Plans
    pending: list[str]


@dataclass(frozen=True)
class Rule:
    id: str
    severity: Severity
    title: str
    check: Callable[[LintInput], Iterable[Hit]]


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


def _rendered_texts(plans: Plans, cli: str) -> Iterable[tuple[str, str]]:
    for host, plan in plans.items():
        for spec in plan.files:
            if not spec.secret:
                yield f"render {host}:{spec.path}", spec.content
        for container in plan.containers:
            yield f"render {host}: {cli} run {container.name}", " ".join(container.run_argv(cli, "0"))


def check_secrets_outside_credentials(data: LintInput) -> Iterable[Hit]:
    secrets = _secret_values(data.site)
    texts = [*_site_texts(data.site), *_rendered_texts(data.plans, data.site.config.container_cli)]
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
            for address in _bind_addresses(spec.path, spec.content):
                if address in vips:
                    yield f"render {host}:{spec.path}", f"binds the load-balancer VIP {address}", \
                        "bind 0.0.0.0 (definitive design A): the managed load balancer owns the VIP"


SENTINEL_PORT = "26379"


def _is_redis_data(address: str, redis_ips: set[str]) -> bool:
    """A redis server's address on a port other than Sentinel's (Sentinel backends only vote)."""
    ip, _, port = address.rpartition(":")
    return ip in redis_ips and port != SENTINEL_PORT


def check_redis_not_round_robin(data: LintInput) -> Iterable[Hit]:
    """A Redis backend must send traffic to the master only: no round robin, a role:master check."""
    redis_ips = {str(s.private_ip) for s in data.site.with_role("redis")}
    for host, plan in data.plans.items():
        for spec in plan.files:
            if "haproxy" not in spec.path:
                continue
            for section, body in parse_config(spec.content).items():
                if not section.startswith(("backend", "listen")):
                    continue
                servers = [line.split() for line in body if line.startswith("server ")]
                if not any(len(s) > 2 and _is_redis_data(s[2], redis_ips) for s in servers):
                    continue
                where = f"render {host}:{spec.path} {section}"
                if any(re.match(r"balance\s+roundrobin\b", line) for line in body):
                    yield where, "Redis backend balances round robin", \
                        "always the master only (definitive design C): check role:master and keep one UP"
                active = [s for s in servers if "backup" not in s[3:]]
                master_check = any("role:master" in line for line in body if line.startswith("tcp-check expect"))
                if len(active) > 1 and not master_check:
                    yield where, "Redis backend has several active servers and no role:master check", \
                        "add `tcp-check expect string role:master` so writes only reach the master"


def check_patroni_raft(data: LintInput) -> Iterable[Hit]:
    if data.site.with_role("db") and data.site.config.tuning.patroni.dcs == "raft":
        yield "keybuzz.yaml tuning.patroni.dcs", "Patroni's RAFT DCS is deprecated upstream since Patroni 3.0", \
            "set tuning.patroni.dcs: etcd for a supported DCS (3 etcd members on the db servers)"


def check_patroni_timings(data: LintInput) -> Iterable[Hit]:
    tuning = data.site.config.tuning.patroni
    if tuning.ttl < 20:
        yield "keybuzz.yaml tuning.patroni.ttl", f"ttl {tuning.ttl} is below Patroni 4's minimum of 20", \
            "Patroni would silently use 20; set ttl: 20 or more"
    if tuning.loop_wait + 2 * tuning.retry_timeout > tuning.ttl:
        yield "keybuzz.yaml tuning.patroni", (
            f"loop_wait {tuning.loop_wait} + 2 x retry_timeout {tuning.retry_timeout} > ttl {tuning.ttl}"), \
            "Patroni 4 would silently rewrite these; e.g. ttl 20, loop_wait 2, retry_timeout 4"
    if tuning.loop_wait < 1 or tuning.retry_timeout < 1:
        yield "keybuzz.yaml tuning.patroni", "loop_wait and retry_timeout must be at least 1", "use whole seconds >= 1"


def check_minio_nodes(data: LintInput) -> Iterable[Hit]:
    count = len(data.site.with_role("minio"))
    if 0 < count < 4:
        yield "servers.tsv", f"MinIO distributed mode on {count} nodes", \
            "upstream wants at least 4 nodes for erasure coding; MinIO community images also stopped in 2025"


def check_maria_without_proxysql(data: LintInput) -> Iterable[Hit]:
    maria = data.site.with_role("maria")
    if maria and not data.site.with_role("proxysql"):
        vips = [str(lb.vip) for lb in data.site.config.load_balancers if lb.target_role == "proxysql"]
        behind = f" behind {', '.join(vips)}" if vips else ""
        yield "servers.tsv", f"{len(maria)} maria servers but no proxysql server", \
            f"clients reach Galera through ProxySQL{behind} (definitive design A); add 2 proxysql servers"


def check_load_balancer_targets(data: LintInput) -> Iterable[Hit]:
    for lb in data.site.config.load_balancers:
        if not data.site.with_role(lb.target_role):
            yield f"keybuzz.yaml load_balancers {lb.name}", \
                f"load balancer {lb.vip} targets role {lb.target_role} but no server has it", \
                f"add {lb.target_role} servers or remove the load balancer from keybuzz.yaml"


def check_modules_pending(data: LintInput) -> Iterable[Hit]:
    for message in data.pending:
        yield "modules", message, "the module's issue has not landed; its servers only get what landed modules give"


RULES: list[Rule] = [
    Rule("KB001", "error", "no secret value outside credentials/", check_secrets_outside_credentials),
    Rule("KB002", "error", "every image pinned in versions.yaml, never latest", check_images_pinned),
    Rule("KB003", "error", "HAProxy/ProxySQL never bind a load-balancer VIP", check_no_vip_bind),
    Rule("KB004", "error", "Redis behind HAProxy never round robin", check_redis_not_round_robin),
    Rule("KB005", "error", "Patroni timings valid for Patroni 4", check_patroni_timings),
    Rule("KB006", "warning", "Patroni RAFT DCS deprecated upstream", check_patroni_raft),
    Rule("KB007", "warning", "MinIO distributed needs 4+ nodes", check_minio_nodes),
    Rule("KB009", "warning", "MariaDB reached through ProxySQL", check_maria_without_proxysql),
    Rule("KB010", "warning", "every load balancer has servers behind it", check_load_balancer_targets),
    Rule("KB008", "info", "modules not implemented yet", check_modules_pending),
]


def lint(site: Site, modules: list[Module] | None = None) -> list[Finding]:
    """Every rule over the site and the render of `modules` (default: the registry)."""
    plans, pending = render_modules(site, modules)
    data = LintInput(site, plans, pending)
    findings = [Finding(rule.id, rule.severity, where, message, hint)
                for rule in RULES for where, message, hint in rule.check(data)]
    return findings

