"""Each lint rule fires on a crafted site and stays silent on the clean seed site.

Rules that read rendered plans (KB002-KB004) run on a tiny module defined here: it returns
HostPlans with crafted HAProxy/ProxySQL files, which is what the lint code reads.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from keybuzz.containers import ContainerSpec, Mount
from keybuzz.contract import LintInput, Module
from keybuzz.haproxy import Section, render_config
from keybuzz.lint import lint, rules
from keybuzz.registry import load_site
from keybuzz.render import FileSpec, HostPlan, Plans
from keybuzz.site import Site
from keybuzz.site.writer import ServerRow

DOCS = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
REDIS_IPS = ("10.0.0.123", "10.0.0.124", "10.0.0.125")


class CraftedModule(Module):
    """Puts the given files and containers on haproxy-01: enough for the plan-reading rules."""

    number, name, title, own_role = 99, "crafted", "crafted plans for lint tests", "haproxy"

    def __init__(self, files: list[FileSpec], containers: list[ContainerSpec] | None = None):
        self.files, self.containers = files, containers or []

    def render(self, site: Site) -> Plans:
        return {"haproxy-01": HostPlan("haproxy-01", files=list(self.files), containers=list(self.containers))}


def haproxy_file(*sections: Section, path: str = "/opt/keybuzz/redis/haproxy/haproxy.cfg") -> FileSpec:
    return FileSpec(path, render_config(list(sections), address="10.0.0.11", stats_port=8404))


def redis_backend(*extra: str, backup: bool = True) -> Section:
    servers = [f"server redis-{i} {ip}:6379 check" + (" backup" if backup and i else "")
               for i, ip in enumerate(REDIS_IPS)]
    return Section("backend", "be_redis", (*extra, *servers))


GOOD_REDIS = (Section("frontend", "fe_redis", ("bind 0.0.0.0:6379", "default_backend be_redis")),
              redis_backend("option tcp-check", "tcp-check send info\\ replication\\r\\nQUIT\\r\\n",
                            "tcp-check expect string role:master", backup=False))


def run_rule(rule_id: str, site: Site, module: Module) -> list[tuple[str, str, str]]:
    rule = next(r for r in rules() if r.id == rule_id)
    return list(rule.check(LintInput(site, module.render(site), [])))


def edit_config(site: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = yaml.safe_load((site / "keybuzz.yaml").read_text())
    change(data)
    (site / "keybuzz.yaml").write_text(yaml.safe_dump(data))


def by_rule(findings) -> dict[str, list]:
    out: dict[str, list] = {}
    for finding in findings:
        out.setdefault(finding.rule, []).append(finding)
    return out


def test_rule_ids_are_unique_and_documented():
    ids = [rule.id for rule in rules()]
    assert len(ids) == len(set(ids))
    documented = DOCS.read_text()
    for rule in rules():
        assert f"| {rule.id} | {rule.severity} |" in documented, rule.id


def test_clean_seed_site_has_no_error_and_the_expected_warnings(seed_site: Path):
    findings = lint(load_site(seed_site))
    assert [f for f in findings if f.severity == "error"] == []
    # KB026: the seed names no paging webhook
    assert sorted(f.rule for f in findings if f.severity == "warning") == ["KB006", "KB007", "KB012", "KB026"]
    assert all(f.hint for f in findings)


def test_a_clean_crafted_module_passes_the_plan_rules(seed_site: Path):
    site = load_site(seed_site)
    module = CraftedModule([haproxy_file(*GOOD_REDIS)],
                           [ContainerSpec("haproxy-redis", site.image("haproxy"), "crafted",
                                          env_file="/opt/keybuzz/redis/redis.env")])
    for rule_id in ("KB001", "KB002", "KB003", "KB004"):
        assert run_rule(rule_id, site, module) == [], rule_id


# KB001 -----------------------------------------------------------------------------------------

def test_kb001_a_secret_copied_into_keybuzz_yaml_is_named(seed_site: Path):
    site = load_site(seed_site)
    secret = site.secret("redis", "REDIS_PASSWORD")
    with (seed_site / "keybuzz.yaml").open("a") as handle:
        handle.write(f"# redis password, for convenience: {secret}\n")
    lines = (seed_site / "keybuzz.yaml").read_text().count("\n")
    findings = by_rule(lint(load_site(seed_site)))["KB001"]
    assert [(f.where, f.message) for f in findings] == [
        (f"keybuzz.yaml:{lines}", "contains the value of redis.REDIS_PASSWORD")]
    assert secret not in repr(findings)


def test_kb001_scans_logs_and_every_site_file_but_credentials(seed_site: Path):
    site = load_site(seed_site)
    token = site.secret("k3s", "K3S_TOKEN")
    (seed_site / "logs" / "install.log").write_text(f"joined with {token}\n")
    (seed_site / "notes.txt").write_text(f"line 1\nline 2 {site.secret('minio', 'MINIO_ROOT_PASSWORD')}\n")
    wheres = {(f.where, f.message) for f in lint(load_site(seed_site)) if f.rule == "KB001"}
    assert wheres == {("logs/install.log:1", "contains the value of k3s.K3S_TOKEN"),
                      ("notes.txt:2", "contains the value of minio.MINIO_ROOT_PASSWORD")}


def test_kb001_secret_in_rendered_plain_file_or_argv_but_not_in_a_secret_file(seed_site: Path):
    site = load_site(seed_site)
    secret = site.secret("redis", "REDIS_PASSWORD")
    module = CraftedModule(
        [FileSpec("/opt/keybuzz/redis/redis.conf", f"requirepass {secret}\n"),
         FileSpec("/opt/keybuzz/redis/secret.conf", f"requirepass {secret}\n", secret=True)],
        [ContainerSpec("redis", site.image("redis"), "crafted", command=("redis-server", "--requirepass", secret))])
    hits = run_rule("KB001", site, module)
    assert [where for where, _, _ in hits] == ["render haproxy-01:/opt/keybuzz/redis/redis.conf",
                                              "render haproxy-01: docker run redis"]
    assert all(message == "contains the value of redis.REDIS_PASSWORD" for _, message, _ in hits)


# KB002 ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("image, fragment", [
    ("redis:latest", "uses the tag 'latest'"),
    ("redis", "has no tag"),
    ("redis:7.2.4-alpine", "is not listed in versions.yaml"),
])
def test_kb002_unpinned_or_unlisted_image(seed_site: Path, image: str, fragment: str):
    site = load_site(seed_site)
    hits = run_rule("KB002", site, CraftedModule([], [ContainerSpec("redis", image, "crafted")]))
    assert len(hits) == 1 and fragment in hits[0][1] and hits[0][0] == "render haproxy-01: redis"


# KB003 ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", [
    haproxy_file(Section("frontend", "fe_pg", ("bind 10.0.0.10:5432", "default_backend be"))),
    haproxy_file(Section("listen", "redis", ("bind ipv4@10.0.0.10:6379",))),
    haproxy_file(Section("frontend", "fe", ("bind 0.0.0.0:5433,10.0.0.10:6432",))),
    FileSpec("/opt/keybuzz/proxysql/proxysql.cnf",
             'mysql_variables=\n{\n  interfaces="10.0.0.20:3306;0.0.0.0:6033"\n}\n'),
])
def test_kb003_binding_a_load_balancer_vip(seed_site: Path, spec: FileSpec):
    site = load_site(seed_site)
    hits = run_rule("KB003", site, CraftedModule([spec]))
    assert len(hits) == 1 and hits[0][1].startswith("binds the load-balancer VIP 10.0.0.")
    assert "private address" in hits[0][2]


def test_kb003_silent_for_wildcard_and_host_binds(seed_site: Path):
    site = load_site(seed_site)
    spec = haproxy_file(Section("frontend", "fe", ("bind 0.0.0.0:5432", "bind 10.0.0.11:8405", "bind :6379")))
    assert run_rule("KB003", site, CraftedModule([spec])) == []


# KB004 ------------------------------------------------------------------------------------------

def test_kb004_redis_round_robin(seed_site: Path):
    site = load_site(seed_site)
    spec = haproxy_file(redis_backend("balance roundrobin", "tcp-check expect string role:master", backup=False))
    hits = run_rule("KB004", site, CraftedModule([spec]))
    assert [message for _, message, _ in hits] == ["Redis backend balances round robin"]
    assert hits[0][0].endswith("backend be_redis")


def test_kb004_redis_ping_check_on_several_active_servers(seed_site: Path):
    # The seed's defect: PING answers on replicas too, so writes reach them.
    site = load_site(seed_site)
    spec = haproxy_file(redis_backend("option tcp-check", "tcp-check send PING\\r\\n", "tcp-check expect string +PONG",
                                      backup=False))
    hits = run_rule("KB004", site, CraftedModule([spec]))
    assert [message for _, message, _ in hits] == ["Redis backend has several active servers and no role:master check"]


def test_kb004_silent_for_non_redis_round_robin_backup_servers_and_sentinels(seed_site: Path):
    site = load_site(seed_site)
    replicas = Section("backend", "be_pg_replicas", ("balance roundrobin", "server db-1 10.0.0.121:5432 check",
                                                      "server db-2 10.0.0.122:5432 check"))
    votes = Section("backend", "sentinel_votes", ("option tcp-check",
                                                  *(f"server s{i} {ip}:26379 check" for i, ip in enumerate(REDIS_IPS))))
    files = [haproxy_file(replicas), haproxy_file(redis_backend()), haproxy_file(votes)]
    assert run_rule("KB004", site, CraftedModule(files)) == []


# Site rules -------------------------------------------------------------------------------------

@pytest.mark.parametrize("patroni, fragment", [
    ({"ttl": 10, "loop_wait": 2, "retry_timeout": 4}, "ttl 10 is below Patroni 4's minimum of 20"),
    ({"ttl": 20, "loop_wait": 10, "retry_timeout": 10}, "loop_wait 10 + 2 x retry_timeout 10 > ttl 20"),
    ({"ttl": 30, "loop_wait": 0, "retry_timeout": 4}, "loop_wait and retry_timeout must be at least 1"),
])
def test_kb005_patroni_timings(seed_site: Path, patroni: dict[str, int], fragment: str):
    edit_config(seed_site, lambda c: c["tuning"]["patroni"].update(patroni))
    findings = by_rule(lint(load_site(seed_site)))["KB005"]
    assert any(fragment in f.message for f in findings), findings
    assert all(f.severity == "error" for f in findings)


def test_kb006_raft_warns_and_etcd_does_not(seed_site: Path):
    assert "KB006" in by_rule(lint(load_site(seed_site)))
    edit_config(seed_site, lambda c: c["tuning"]["patroni"].update(dcs="etcd"))
    assert "KB006" not in by_rule(lint(load_site(seed_site)))


def test_kb007_minio_below_four_nodes(seed_site: Path, kb):
    assert by_rule(lint(load_site(seed_site)))["KB007"][0].message == "MinIO distributed mode on 3 nodes"
    rows = kb.small_rows() + [ServerRow(f"minio-{i}", f"10.0.0.{131 + i}", ("minio",)) for i in range(4)]
    kb.write_servers(seed_site, rows)
    assert "KB007" not in by_rule(lint(load_site(seed_site)))


def test_kb009_and_kb010_maria_without_proxysql(seed_site: Path, kb):
    rows = kb.small_rows() + [ServerRow(f"maria-{i}", f"10.0.0.{170 + i}", ("maria",)) for i in range(3)]
    kb.write_servers(seed_site, rows)
    found = by_rule(lint(load_site(seed_site)))
    assert found["KB009"][0].message == "3 maria servers but no proxysql server"
    assert found["KB010"][0].message == "load balancer 10.0.0.20 targets role proxysql but no server has it"
    assert found["KB010"][0].severity == "warning"


def test_kb008_pending_modules_are_listed(seed_site: Path):
    from keybuzz.contract import PendingModule

    pending = PendingModule(42, "later", "A later module", "app")
    findings = by_rule(lint(load_site(seed_site), [pending]))["KB008"]
    assert [f.severity for f in findings] == ["info"]
    assert "module 42 later (A later module): not in this version of keybuzz" in findings[0].message


def test_full_lint_over_a_crafted_module_reports_each_plan_rule(seed_site: Path):
    site = load_site(seed_site)
    secret = site.secret("postgres", "POSTGRES_APP_PASSWORD")
    module = CraftedModule(
        [haproxy_file(Section("frontend", "fe", ("bind 10.0.0.10:6379",)), redis_backend("balance roundrobin"),
                      path="/opt/keybuzz/redis/haproxy.cfg"),
         FileSpec("/opt/keybuzz/app.ini", f"password = {secret}\n")],
        [ContainerSpec("app", "app:latest", "crafted", mounts=(Mount("/a", "/b", read_only=True),))])
    found = by_rule(lint(site, [module]))
    assert {"KB001", "KB002", "KB003", "KB004"} <= set(found)
    assert all(f.severity == "error" for rule in ("KB001", "KB002", "KB003", "KB004") for f in found[rule])
