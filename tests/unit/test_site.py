"""The site as a whole: keybuzz.yaml and versions.yaml validation, defaults, cross-file checks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keybuzz.errors import InputErrors
from keybuzz.registry import load_site, schema
from keybuzz.site import Site
from keybuzz.site.writer import ServerRow


def errors_of(root: Path) -> list[str]:
    """Messages with the site folder prefix removed (paths are shown absolute outside the cwd)."""
    with pytest.raises(InputErrors) as caught:
        load_site(root)
    return [str(e).replace(f"{root}/", "") for e in caught.value.errors]


def only(messages: list[str], fragment: str) -> str:
    found = [m for m in messages if fragment in m]
    assert len(found) == 1, (fragment, messages)
    return found[0]


def test_seed_site_loads(seed_site: Path):
    site = load_site(seed_site)
    assert len(site.servers) == 49
    assert [s.hostname for s in site.with_role("haproxy")] == ["haproxy-01", "haproxy-02"]
    assert site.image("redis") == "redis:7.2.5-alpine" and site.image("redis").tag == "7.2.5-alpine"
    assert site.data_dir("postgres") == "/opt/keybuzz/postgres"
    assert len(site.secret("postgres", "POSTGRES_SUPERUSER_PASSWORD")) == 32
    assert site.config.load_balancer_for(6379).vip.exploded == "10.0.0.10"
    assert site.config.load_balancer_for(3306).target_role == "proxysql"


@pytest.mark.parametrize("text", ["", "# nothing set\n", "{}\n", "container_cli: podman\n"])
def test_an_almost_empty_keybuzz_yaml_uses_the_defaults(seed_site: Path, text: str):
    (seed_site / "keybuzz.yaml").write_text(text)
    config = load_site(seed_site).config
    assert config.network.cidr.exploded == "10.0.0.0/16"
    assert [(str(lb.vip), lb.target_role, lb.ports) for lb in config.load_balancers] == [
        ("10.0.0.10", "haproxy", [5432, 5433, 6432, 6379, 5672, 9000]), ("10.0.0.20", "proxysql", [3306])]
    assert (config.tuning.patroni.ttl, config.tuning.patroni.loop_wait, config.tuning.patroni.retry_timeout) == \
        (20, 2, 4)
    assert config.tuning.sentinel.down_after_ms == 1000
    assert config.paths.data_root == "/opt/keybuzz"
    assert config.container_cli == ("podman" if "podman" in text else "docker")


def test_written_keybuzz_yaml_matches_the_model_defaults(seed_site: Path):
    written = yaml.safe_load((seed_site / "keybuzz.yaml").read_text())
    model = schema().config_model()
    assert model.model_validate(written) == model()


def test_unknown_and_invalid_keys_located_at_their_line(seed_site: Path):
    (seed_site / "keybuzz.yaml").write_text(
        "network:\n"                      # 1
        "  cidr: 10.0.0.0/16\n"           # 2
        "  mtu: 1450\n"                   # 3 unknown nested key
        "contaner_cli: docker\n"          # 4 typo
        "tuning:\n"                       # 5
        "  patroni:\n"                    # 6
        "    dcs: zookeeper\n"            # 7 invalid value
        "    ttl: soon\n"                 # 8 invalid int
        "load_balancers:\n"               # 9
        "  - name: lb\n"                  # 10
        "    vip: 10.0.0.999\n"           # 11 invalid address in a list item
        "    target_role: haproxy\n"      # 12
        "    ports: [5432, 70000]\n"      # 13 port out of range
    )
    messages = errors_of(seed_site)
    assert only(messages, "unknown key network.mtu").startswith("keybuzz.yaml:3: ")
    assert only(messages, "unknown key contaner_cli").startswith("keybuzz.yaml:4: ")
    assert only(messages, "tuning.patroni.dcs").startswith("keybuzz.yaml:7: ")
    assert only(messages, "tuning.patroni.ttl").startswith("keybuzz.yaml:8: ")
    assert only(messages, "load_balancers.0.vip").startswith("keybuzz.yaml:11: ")
    assert only(messages, "port 70000 is outside").startswith("keybuzz.yaml:13: ")
    assert all(m.endswith(")") for m in messages), "every error carries a hint"


@pytest.mark.parametrize("text, line, fragment", [
    ("network:\n  cidr: 10.0.0.0/16\n tuning: {}\n", 3, "YAML syntax error"),
    ("domain: keybuzz.io\nload_balancers: [\n  {name: a\n", 4, "YAML syntax error"),
    ("domain: a.io\n\ndomain: b.io\n", 3, "key 'domain' appears twice (first on line 1)"),
    ("domain: keybuzz.io\nregistry: !!python/object:os.system x\n", 2, "YAML error"),
])
def test_yaml_errors_carry_the_line(seed_site: Path, text: str, line: int, fragment: str):
    (seed_site / "keybuzz.yaml").write_text(text)
    assert only(errors_of(seed_site), fragment).startswith(f"keybuzz.yaml:{line}: ")


@pytest.mark.parametrize("ref, fragment", [
    ("redis:latest", "uses the tag 'latest'"),
    ("redis", "has no tag"),
    ("Redis 7", "is not an image reference"),
])
def test_unpinned_images_refused_at_their_line(seed_site: Path, ref: str, fragment: str):
    text = (seed_site / "versions.yaml").read_text()
    lines = text.splitlines()
    number = next(i for i, line in enumerate(lines, start=1) if line.strip().startswith("redis:"))
    (seed_site / "versions.yaml").write_text(text.replace("redis:7.2.5-alpine", ref))
    assert only(errors_of(seed_site), fragment).startswith(f"versions.yaml:{number}: image redis")


def test_digest_next_to_the_tag_is_accepted(seed_site: Path):
    digest = "sha256:" + "a" * 64
    text = (seed_site / "versions.yaml").read_text().replace("haproxy:2.8.5", f"haproxy:2.8.5@{digest}")
    (seed_site / "versions.yaml").write_text(text)
    assert load_site(seed_site).image("haproxy").digest == digest


def test_unknown_key_in_versions(seed_site: Path):
    with (seed_site / "versions.yaml").open("a") as handle:
        handle.write("charts:\n  ingress: 4.11.0\n")
    assert "unknown key charts" in only(errors_of(seed_site), "charts")


def test_every_file_is_reported_at_once(seed_site: Path):
    (seed_site / "keybuzz.yaml").write_text("network: {cidr: 10.0.0.0/16, vlan: 4000}\n")
    (seed_site / "versions.yaml").write_text("images:\n  redis: redis:latest\n")
    (seed_site / "servers.tsv").write_text("hostname\tprivate_ip\troles\ndb-1\t10.0.0.1\tdatabase\n")
    os.chmod(seed_site / "credentials" / "redis.env", 0o644)
    messages = errors_of(seed_site)
    only(messages, "unknown key network.vlan")
    only(messages, "uses the tag 'latest'")
    only(messages, "unknown role 'database'")
    assert "chmod 600" in only(messages, "redis.env: credentials file is 0644, must be 0600")


def test_missing_files_are_all_reported(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    messages = errors_of(tmp_path / "empty")
    for name in ("servers.tsv", "keybuzz.yaml", "versions.yaml"):
        only(messages, f"{name}: file is missing")
    only(messages, "credentials folder is missing")


def test_site_folder_not_found(tmp_path: Path):
    assert "site folder not found" in only(errors_of(tmp_path / "nope"), "not found")


def test_role_a_module_needs_is_missing_even_with_credential_errors(seed_site: Path, kb):
    rows = [row for row in kb.small_rows() if "haproxy" not in row.roles]
    kb.write_servers(seed_site, rows)
    os.chmod(seed_site / "credentials", 0o755)
    messages = errors_of(seed_site)
    assert "add haproxy servers" in only(messages, "servers with role db but none with role haproxy")
    assert "chmod 700" in only(messages, "credentials folder is 0755, must be 0700")


@pytest.mark.parametrize("vip, fragment", [
    ("192.168.0.10", "VIP 192.168.0.10 is outside 10.0.0.0/16"),
    ("10.0.0.11", "VIP 10.0.0.11 is also haproxy-01's private_ip"),
])
def test_load_balancer_vip_must_be_a_free_private_address(seed_site: Path, vip: str, fragment: str):
    text = (seed_site / "keybuzz.yaml").read_text()
    lines = text.splitlines()
    number = next(i for i, line in enumerate(lines, start=1) if "10.0.0.10" in line)
    (seed_site / "keybuzz.yaml").write_text(text.replace("10.0.0.10", vip))
    assert only(errors_of(seed_site), fragment).startswith(f"keybuzz.yaml:{number}: ")


def test_missing_credential_keys_are_named_with_the_fix(seed_site: Path):
    path = seed_site / "credentials" / "redis.env"
    path.write_text("".join(line + "\n" for line in path.read_text().splitlines()
                            if not line.startswith("REDIS_SENTINEL_PASSWORD")))
    (seed_site / "credentials" / "k3s.env").unlink()
    messages = errors_of(seed_site)
    assert "keybuzz init SITE --credentials" in only(messages, "redis.env: missing REDIS_SENTINEL_PASSWORD")
    only(messages, "k3s.env: credentials file is missing")


def test_credentials_of_absent_services_are_not_required(seed_site: Path, kb):
    kb.write_servers(seed_site, [*kb.small_rows(), ServerRow("proxysql-01", "10.0.0.173", ("proxysql",)),
                                 *[ServerRow(f"maria-0{i}", f"10.0.0.{170 + i}", ("maria",)) for i in range(3)]])
    for service in ("rabbitmq", "minio", "k3s"):
        (seed_site / "credentials" / f"{service}.env").unlink()
    assert len(load_site(seed_site).servers) == 12


LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))


@pytest.mark.parametrize("text, fragment", [
    ("[" * 1200 + "]" * 1200, "nested too deeply"),
    ("network: &n\n  cidr: *n\n", "refers to itself"),
    (LAUGHS, "once aliases are expanded"),
    ("? [a, b]\n: 1\n", "a key is a list or a mapping"),
])
def test_hostile_yaml_is_an_input_error(seed_site: Path, text: str, fragment: str):
    (seed_site / "keybuzz.yaml").write_text(text)
    only(errors_of(seed_site), fragment)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(config=st.text(max_size=300), versions=st.text(max_size=300))
def test_random_yaml_files_give_input_errors_or_a_site(seed_site: Path, config: str, versions: str):
    (seed_site / "keybuzz.yaml").write_text(config)
    (seed_site / "versions.yaml").write_text(versions)
    try:
        load_site(seed_site)
    except InputErrors as exc:
        assert exc.errors and all(e.line >= 0 for e in exc.errors)


def test_two_load_balancers_sharing_a_vip(seed_site: Path):
    text = (seed_site / "keybuzz.yaml").read_text()
    number = text.splitlines().index("load_balancers:") + 1
    (seed_site / "keybuzz.yaml").write_text(text.replace("10.0.0.20", "10.0.0.10"))
    assert only(errors_of(seed_site), "share a VIP").startswith(f"keybuzz.yaml:{number}: load_balancers")


def test_a_port_leads_to_its_load_balancers_vip_and_an_address_to_its_server(site: Site) -> None:
    assert site.config.vip_for(5432) == "10.0.0.10" and site.config.vip_for(3306) == "10.0.0.20"
    assert site.config.vip_for(1) is None
    first = site.servers[0]
    assert site.hostname_at(str(first.private_ip)) == first.hostname
    assert site.hostname_at("192.0.2.1") is None
