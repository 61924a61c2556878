"""The four core verbs end to end through the real Typer app: init, inventory, lint, render."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from keybuzz.cli import app
from keybuzz.secrets import generate_secret
from keybuzz.site.servers import parse_servers_tsv

runner = CliRunner(env={"COLUMNS": "200", "KEYBUZZ_SITE": None})


def kb_run(*args: str):
    return runner.invoke(app, list(args))


@pytest.fixture
def cli_site(tmp_path: Path) -> Path:
    result = kb_run("init", str(tmp_path / "site"), "--example", "seed")
    assert result.exit_code == 0, result.stderr
    return tmp_path / "site"


def test_init_writes_the_seed_site(cli_site: Path, kb):
    assert sorted(p.name for p in cli_site.iterdir()) == ["credentials", "keybuzz.yaml", "logs", "servers.tsv",
                                                          "versions.yaml"]
    servers, errors = parse_servers_tsv((cli_site / "servers.tsv").read_text(), "servers.tsv")
    assert errors == [] and len(servers) == 49
    ips = {s.hostname: str(s.private_ip) for s in servers}
    assert {name: ips[name] for name in ("haproxy-01", "haproxy-02", "db-master-01", "redis-01", "queue-03",
                                         "maria-01", "proxysql-02", "k3s-master-01", "minio-01")} == {
        "haproxy-01": "10.0.0.11", "haproxy-02": "10.0.0.12", "db-master-01": "10.0.0.120",
        "redis-01": "10.0.0.123", "queue-03": "10.0.0.128", "maria-01": "10.0.0.170", "proxysql-02": "10.0.0.174",
        "k3s-master-01": "10.0.0.100", "minio-01": "10.0.0.134"}
    assert stat.S_IMODE((cli_site / "credentials").stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in (cli_site / "credentials").iterdir())
    assert len(kb.secret_values(cli_site)) >= 15


def test_init_refuses_an_existing_site_and_changes_nothing(cli_site: Path, tmp_path: Path, kb):
    before = kb.tree(tmp_path)
    result = kb_run("init", str(cli_site))
    assert result.exit_code == 2
    assert "refusing to overwrite" in result.stderr
    (tmp_path / "plain-file").write_text("x")
    assert kb_run("init", str(tmp_path / "plain-file")).exit_code == 2
    assert kb_run("init", str(tmp_path / "other"), "--example", "mars").exit_code == 2
    (tmp_path / "plain-file").unlink()
    assert kb.tree(tmp_path) == before


def test_init_credentials_adds_only_what_is_missing(cli_site: Path, kb):
    redis = cli_site / "credentials" / "redis.env"
    kept = redis.read_text().splitlines()[1]
    redis.write_text(kept + "\n")
    before = {p.name: p.read_bytes() for p in (cli_site / "credentials").iterdir() if p.name != "redis.env"}
    result = kb_run("init", str(cli_site), "--credentials")
    assert result.exit_code == 0 and "redis.REDIS_SENTINEL_PASSWORD" in result.stdout
    assert redis.read_text().startswith(kept + "\n")
    assert {p.name: p.read_bytes() for p in (cli_site / "credentials").iterdir() if p.name != "redis.env"} == before
    os.chmod(cli_site / "credentials", 0o755)
    result = kb_run("init", str(cli_site), "--credentials")
    assert result.exit_code == 2 and f"chmod 700 {cli_site / 'credentials'}" in result.stderr


def test_lint_on_the_seed_site_exits_0_with_the_expected_warnings(cli_site: Path, kb):
    result = kb_run("lint", "--site", str(cli_site), "--json")
    assert result.exit_code == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["errors"] == 0
    warnings = {f["rule"]: f for f in report["findings"] if f["severity"] == "warning"}
    assert sorted(warnings) == ["KB006", "KB007", "KB012", "KB026"]
    assert "deprecated" in warnings["KB006"]["message"] and "3 nodes" in warnings["KB007"]["message"]
    assert "sent nowhere" in warnings["KB026"]["message"] and warnings["KB026"]["where"].startswith("keybuzz.yaml:")
    table = kb_run("lint", "--site", str(cli_site))
    assert table.exit_code == 0 and "0 error(s), 4 warning(s)" in table.stdout and "KB006" in table.stdout
    for value in kb.secret_values(cli_site):
        assert value not in result.stdout + table.stdout


def test_lint_exits_1_on_an_error_finding(cli_site: Path):
    path = cli_site / "keybuzz.yaml"
    path.write_text(path.read_text().replace("ttl: 20", "ttl: 10"))
    result = kb_run("lint", "--site", str(cli_site), "--json")
    assert result.exit_code == 1
    assert [f["rule"] for f in json.loads(result.stdout)["findings"] if f["severity"] == "error"] == ["KB005"]


def test_inventory_table_and_json(cli_site: Path, kb):
    table = kb_run("inventory", "--site", str(cli_site))
    assert table.exit_code == 0
    assert "49 servers" in table.stdout and "db-master-01" in table.stdout and "10.0.0.134" in table.stdout
    result = kb_run("inventory", "--site", str(cli_site), "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert len(data["servers"]) == 49
    assert data["roles"]["db"] == ["db-master-01", "db-slave-01", "db-slave-02"]
    assert data["roles"]["minio"] == ["minio-02", "minio-03", "minio-01"]
    db = next(s for s in data["servers"] if s["hostname"] == "db-master-01")
    assert db["private_ip"] == "10.0.0.120" and any(m.startswith("3 postgres") for m in db["modules"])
    for value in kb.secret_values(cli_site):
        assert value not in result.stdout + table.stdout


def test_render_writes_per_host_folders_and_refuses_a_foreign_folder(cli_site: Path, tmp_path: Path, kb):
    out = tmp_path / "render"
    result = kb_run("render", "--site", str(cli_site), "--out", str(out))
    assert result.exit_code == 0, result.stderr
    hosts = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert len(hosts) == 49 and "db-master-01" in hosts
    manifest = json.loads((out / "db-master-01" / "manifest.json").read_text())
    assert manifest["hostname"] == "db-master-01" and manifest["roles"] == ["db"]
    text = "".join(p.read_text() for p in out.rglob("*") if p.is_file())
    for value in kb.secret_values(cli_site):
        assert value not in text
    assert kb_run("render", "--site", str(cli_site), "--out", str(out)).exit_code == 0, "re-render replaces"

    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes").write_text("keep")
    before = kb.tree(tmp_path)
    result = kb_run("render", "--site", str(cli_site), "--out", str(foreign))
    assert result.exit_code == 2 and "not an earlier render output" in result.stderr
    assert kb_run("render", "--site", str(cli_site), "--out", str(out), "--module", "nope").exit_code == 2
    assert kb.tree(tmp_path) == before


def test_render_one_module(cli_site: Path, tmp_path: Path):
    result = kb_run("render", "--site", str(cli_site), "--out", str(tmp_path / "r"), "--module", "7")
    assert result.exit_code == 0
    assert sorted(p.name for p in (tmp_path / "r").iterdir() if p.is_dir()) == ["maria-01", "maria-02", "maria-03"]


BAD_SERVERS = (
    "hostname\tprivate_ip\tpublic_ip\troles\tfqdn\n"
    "db-1\t10.0.0.120\t\tdb\t\n"            # 2
    "db-2\t10.0.0.120\t\tdb\t\n"            # 3 duplicate IP (and 2 db: even quorum)
    "Bad_Host\t10.0.0.5\t\tapp\t\n"         # 4 RFC 1123
    "redis-1\t10.1.0.1\t\tredis\t\n"        # 5 outside the network
    "x\t10.0.0.6\tpassword=hunter2\tapp\t\n"  # 6 secret-looking
)


@pytest.mark.parametrize("verb", [["lint"], ["lint", "--json"], ["inventory"], ["inventory", "--json"],
                                  ["render", "--out", "OUT"]])
def test_bad_input_every_error_at_once_exit_2_nothing_written(cli_site: Path, tmp_path: Path, kb, verb):
    (cli_site / "servers.tsv").write_text(BAD_SERVERS)
    (cli_site / "keybuzz.yaml").write_text("network:\n  cidr: 10.0.0.0/16\n  gateway: 10.0.0.1\n")
    (cli_site / "versions.yaml").write_text("images:\n  redis: redis:latest\n")
    before = kb.tree(tmp_path)
    args = [str(tmp_path / "out") if a == "OUT" else a for a in verb]
    result = kb_run(*args, "--site", str(cli_site))
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    expected = [
        "servers.tsv:3: duplicate private_ip 10.0.0.120 (already on line 2)",
        "servers.tsv:3: 2 servers with role db: a quorum needs an odd count",
        "servers.tsv:4: hostname 'Bad_Host' is not a valid RFC 1123 name",
        "servers.tsv:5: private_ip 10.1.0.1 is outside the private network 10.0.0.0/16",
        "servers.tsv:6: column public_ip looks like a secret",
        "keybuzz.yaml:3: unknown key network.gateway",
        "versions.yaml:2: image redis 'redis:latest' uses the tag 'latest'",
    ]
    for fragment in expected:
        assert sum(fragment in line for line in lines) == 1, (fragment, lines)
    assert "hunter2" not in result.stderr + result.stdout
    assert "nothing was changed" in result.stderr
    assert kb.tree(tmp_path) == before


def test_a_secret_in_a_bad_file_is_redacted_in_cli_errors(cli_site: Path, kb):
    secret = kb.secret_values(cli_site)[0]
    with (cli_site / "keybuzz.yaml").open("a") as handle:
        handle.write(f"{secret}: pasted by mistake\n")
    result = kb_run("lint", "--site", str(cli_site))
    assert result.exit_code == 2
    assert "unknown key ***" in result.stderr and secret not in result.stderr + result.stdout


def test_open_credentials_are_refused_with_the_chmod(cli_site: Path):
    os.chmod(cli_site / "credentials" / "postgres.env", 0o644)
    result = kb_run("inventory", "--site", str(cli_site))
    assert result.exit_code == 2
    assert f"chmod 600 {cli_site / 'credentials' / 'postgres.env'}" in result.stderr


def test_missing_site_is_a_usage_error(tmp_path: Path):
    result = kb_run("lint", "--site", str(tmp_path / "nowhere"))
    assert result.exit_code == 2 and "site folder not found" in result.stderr


def test_new_user_commands_through_the_real_executable(tmp_path: Path):
    """`keybuzz init /tmp/s --example seed && keybuzz lint --site /tmp/s && keybuzz inventory --site /tmp/s`."""
    site = str(tmp_path / "s")
    for args in (["init", site, "--example", "seed"], ["lint", "--site", site], ["inventory", "--site", site]):
        proc = subprocess.run([sys.executable, "-m", "keybuzz", *args], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, (args, proc.stderr)
    assert "db-master-01" in proc.stdout


def test_an_unexpected_crash_prints_a_redacted_traceback():
    value = generate_secret()
    code = (f"import keybuzz.cli\nfrom keybuzz.secrets import redact\nredact.add({value!r})\n"
            f"raise RuntimeError('connect failed with ' + {value!r})")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "RuntimeError: connect failed with ***" in proc.stderr and value not in proc.stderr


def test_tables_keep_names_and_addresses_whole_in_80_columns() -> None:
    import io

    from rich.console import Console

    from keybuzz.cli.output import table

    rows = [(f"haproxy-{i:02d}", f"10.77.0.{i}", "haproxy", "up", "up", "12", "34",
             "haproxy-postgres, pgbouncer, haproxy-redis, haproxy-rabbitmq") for i in range(10, 13)]
    out = io.StringIO()
    Console(file=out, width=80).print(table("lab", ("=host", "=IP", "roles", "state", "link", "#procs", "#RSS MB",
                                                    "containers"), rows))
    text = out.getvalue()
    assert max(len(line) for line in text.splitlines()) <= 80
    for host, ip, *_ in rows:
        assert host in text and ip in text, text  # whole: a cut one ends in "…"
