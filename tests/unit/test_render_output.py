"""`render --out`: per-host folders, secret values redacted everywhere, never over a foreign folder."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest

from keybuzz.containers import ContainerCli, ContainerSpec, Mount
from keybuzz.contract import Module, NotImplementedInThisVersion
from keybuzz.registry import MODULES, load_site
from keybuzz.render import DirSpec, FileSpec, HostPlan, Plans
from keybuzz.render_output import MARKER, RenderRefused, write_render
from keybuzz.renders import Renders
from keybuzz.site import Site


class RedisLike(Module):
    """Renders what a real module does with a secret: a 0600 file and an --env-file, on every redis server."""

    number, name, title, own_role = 4, "redis", "crafted redis", "redis"

    def render(self, site: Site) -> Plans:
        password = site.secret("redis", "REDIS_PASSWORD")
        plans: Plans = {}
        for server in site.with_role("redis"):
            plans[server.hostname] = HostPlan(
                server.hostname,
                directories=[DirSpec("/opt/keybuzz/redis/data", 0o750, "999", data=True)],
                files=[FileSpec("/opt/keybuzz/redis/redis.conf", f"bind {server.private_ip}\nrequirepass {password}\n",
                                secret=True),
                       FileSpec("/opt/keybuzz/redis/redis.env", f"REDIS_PASSWORD={password}\n", secret=True),
                       FileSpec("/opt/keybuzz/redis/README", "no secret here\n")],
                containers=[ContainerSpec("redis", site.image("redis"), "redis",
                                          env_file="/opt/keybuzz/redis/redis.env",
                                          mounts=(Mount("/opt/keybuzz/redis/redis.conf", "/etc/redis.conf", True),))])
        return plans


def every_text(root: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in root.rglob("*") if p.is_file())


def test_per_host_folders_with_redacted_files_and_a_manifest(seed_site: Path, tmp_path: Path, kb):
    site = load_site(seed_site)
    out = tmp_path / "render"
    summary = write_render(site, out, [RedisLike()])
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "redis-01", "redis-02", "redis-03"]
    assert (summary.hosts, summary.files, summary.containers, summary.pending) == (3, 9, 3, [])
    host = out / "redis-02"
    conf = host / "files" / "opt/keybuzz/redis/redis.conf"
    assert conf.read_text() == "bind 10.0.0.124\nrequirepass ***\n"
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    assert stat.S_IMODE((host / "files/opt/keybuzz/redis/README").stat().st_mode) == 0o644
    manifest = json.loads((host / "manifest.json").read_text())
    assert manifest["modules"] == ["4 redis"] and manifest["roles"] == ["redis"]
    assert manifest["directories"][0]["mode"] == "0750"
    files = {f["path"]: f for f in manifest["files"]}
    assert files["/opt/keybuzz/redis/redis.env"]["secret"] is True
    assert files["/opt/keybuzz/redis/redis.env"]["mode"] == "0600"
    assert files["/opt/keybuzz/redis/redis.env"]["sha256"] is None  # no offline guessing of a secret file
    assert all(len(f["sha256"]) == 64 for f in manifest["files"] if not f["secret"])
    argv = manifest["containers"][0]["argv"]
    assert argv[:2] == ["docker", "run"] and "--env-file" in argv and "redis:7.2.5-alpine" in argv
    text = every_text(out)
    for value in kb.secret_values(seed_site):
        assert value not in text


def test_every_server_of_a_pending_module_gets_a_folder_saying_so(seed_site: Path, tmp_path: Path):
    site = load_site(seed_site)
    k3s = next(m for m in MODULES if m.name == "k3s")
    assert not k3s.implemented
    summary = write_render(site, tmp_path / "out", [k3s])
    k3s_servers = [s.hostname for s in site.servers if s.has("k3s-master") or s.has("k3s-worker")]
    assert summary.hosts == len(k3s_servers) == 8 and summary.files == 0
    assert summary.pending and "k3s" in summary.pending[0]
    manifest = json.loads((tmp_path / "out" / k3s_servers[0] / "manifest.json").read_text())
    assert manifest["not_in_this_version"] == ["9 k3s"] and manifest["files"] == []


def test_refuses_a_foreign_folder_and_replaces_an_earlier_render(seed_site: Path, tmp_path: Path, kb):
    site = load_site(seed_site)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    before = kb.tree(tmp_path)
    with pytest.raises(RenderRefused):
        write_render(site, foreign, [RedisLike()])
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(RenderRefused):
        write_render(site, tmp_path / "a-file", [RedisLike()])
    (tmp_path / "a-file").unlink()
    assert kb.tree(tmp_path) == before

    out = tmp_path / "out"
    write_render(site, out, [RedisLike()])
    (out / "redis-01" / "stale").write_text("from an older render")
    write_render(site, out, [RedisLike()])
    assert not (out / "redis-01" / "stale").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foreign", "out", "site"], "no staging folder left behind"


@pytest.mark.parametrize("module", MODULES, ids=lambda m: f"{m.number}-{m.name}")
def test_registry_modules_never_put_a_secret_in_argv_or_plain_files(seed_site: Path, module: Module, kb):
    """Every registry module on the seed site: pending ones say so, landed ones keep secrets in secret files."""
    site = load_site(seed_site)
    if not module.implemented:
        with pytest.raises(NotImplementedInThisVersion, match=f"module {module.number} {module.name}"):
            module.render(site)
        return
    plans = module.render(site)
    values = kb.secret_values(seed_site)
    for plan in plans.values():
        for spec in plan.files:
            if not spec.secret:
                assert isinstance(spec.content, str) and not any(v in spec.content for v in values), spec.path
            else:  # 0600, or 0400 where the service wants it read-only (the Erlang cookie)
                assert spec.mode in (0o600, 0o400), spec.path
        for container in plan.containers:
            argv = " ".join(ContainerCli(site.config.container_cli).run(container, "h"))
            assert not any(v in argv for v in values), container.name


class Escaping(Module):
    number, name, title, own_role = 98, "escaping", "a buggy module", "redis"

    def render(self, site: Site) -> Plans:
        return {"redis-01": HostPlan("redis-01", files=[FileSpec("/opt/../../../../escaped", "x")])}


def test_a_file_path_with_dotdot_never_escapes_the_output(seed_site: Path, tmp_path: Path):
    with pytest.raises(ValueError, match=r"contains '\.\.'"):
        write_render(load_site(seed_site), tmp_path / "out", [Escaping()])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]


def derived_forms(site: Site) -> dict[str, str]:
    """What files may hold instead of a raw secret: base64 of every user:password pair of a credentials file
    (HTTP basic auth), RabbitMQ's password hashes (definitions.json), the monitoring login's bcrypt hash
    (web.yml), each also JSON-escaped."""
    from keybuzz.modules.rabbitmq import conf as rabbitmq_conf

    forms: dict[str, str] = {}
    for service, values in site.credentials.items():
        users = [(k, v) for k, v in values.items() if k.endswith("_USER")]
        secrets = [(k, v) for k, v in values.items() if k.endswith(("_PASSWORD", "_SECRET", "_KEY", "_TOKEN"))]
        for user_key, user in users:
            for secret_key, secret in secrets:
                token = base64.b64encode(f"{user}:{secret}".encode()).decode()
                forms[f"base64 {service} {user_key}:{secret_key}"] = token
    rabbit = site.credentials.get("rabbitmq", {})
    for key in ("RABBITMQ_ADMIN", "RABBITMQ_APP", "RABBITMQ_MONITOR"):
        user, password = rabbit[f"{key}_USER"], rabbit[f"{key}_PASSWORD"]
        forms[f"rabbitmq hash {key}"] = rabbitmq_conf.password_hash(password, rabbitmq_conf._salt(site, user))
    monitoring = site.credentials.get("monitoring", {})
    if monitoring:
        from keybuzz.modules.monitoring import layout as monitoring_layout
        from keybuzz.modules.monitoring import webauth

        forms["bcrypt of the monitoring login"] = webauth.password_hash(
            *monitoring_layout.web_login(site), monitoring[monitoring_layout.WEB_SALT_KEY])
    return forms | {f"{name} (JSON)": json.dumps(value)[1:-1] for name, value in forms.items()}


def test_secrets_derived_from_credentials_never_reach_the_render_output(seed_site: Path, tmp_path: Path):
    site = load_site(seed_site)
    out = tmp_path / "render"
    write_render(site, out)
    text = every_text(out)
    leaked = [name for name, form in derived_forms(site).items() if form in text]
    assert leaked == []
    assert "RABBITMQ_CHECK_AUTH=***" in text  # the file is there, its value redacted


class CountingRender(RedisLike):
    """RedisLike that counts its renders, and fails them once told to."""

    calls = 0
    broken = False

    def render(self, site: Site) -> Plans:
        self.calls += 1
        if self.broken:
            raise ValueError("redis: cannot render")
        return super().render(site)


def test_renders_each_module_once_per_command_and_a_failed_render_fails_every_reader(site: Site) -> None:
    module, broken = CountingRender(), CountingRender()
    broken.name, broken.broken = "broken", True
    renders = Renders(site)
    first = renders(module)
    assert renders(module) is first and module.calls == 1
    assert sorted(first) == sorted(s.hostname for s in site.with_role("redis"))
    for _ in range(2):
        with pytest.raises(ValueError, match="cannot render"):
            renders(broken)
    assert broken.calls == 1
