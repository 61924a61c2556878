"""Credentials: CSPRNG values generated once, 0700/0600, and never a value in a log line."""

from __future__ import annotations

import logging
import os
import shutil
import stat
from pathlib import Path

import pytest

from keybuzz.errors import InputErrors
from keybuzz.logs import get_logger, setup_site_logging
from keybuzz.registry import credential_files
from keybuzz.secrets import (
    REDACTED,
    CredentialStore,
    generate_secret,
    is_secret_key,
    parse_env,
    redact,
)

FILES = credential_files()  # every module's credentials/<service>.env
# What init writes: every key keybuzz generates (an operator's own keys, the paging URL, are theirs to write).
SERVICE_CREDENTIALS = {file.service: generated for file in FILES
                       if (generated := tuple(spec for spec in file.specs if spec.generated))}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_generated_secrets_are_alphanumeric_random_and_of_the_asked_length():
    values = {generate_secret(32) for _ in range(200)}
    assert len(values) == 200
    assert all(len(v) == 32 and v.isascii() and v.isalnum() for v in values)
    assert len(generate_secret(48)) == 48
    # 200 x 32 characters from 62 symbols: every symbol shows up (a broken generator would not).
    assert len(set("".join(values))) == 62


def test_ensure_writes_every_service_0600_in_a_0700_folder(tmp_path: Path):
    store = CredentialStore(tmp_path / "credentials")
    added = store.ensure(FILES)
    assert mode(store.folder) == 0o700
    assert sorted(p.name for p in store.folder.iterdir()) == sorted(f"{s}.env" for s in SERVICE_CREDENTIALS)
    for service, specs in SERVICE_CREDENTIALS.items():
        path = store.path(service)
        assert mode(path) == 0o600
        values, errors = parse_env(path.read_text(), str(path))
        assert errors == [] and list(values) == [spec.key for spec in specs]
        for spec in specs:
            if spec.default is not None:
                assert values[spec.key] == spec.default
            else:
                assert len(values[spec.key]) == spec.length and values[spec.key].isalnum()
    assert len(added) == sum(len(specs) for specs in SERVICE_CREDENTIALS.values())
    assert store.permission_errors() == []


def test_a_second_ensure_never_changes_a_value_and_only_adds_missing_keys(tmp_path: Path):
    store = CredentialStore(tmp_path / "credentials")
    store.ensure(FILES)
    before = {p.name: p.read_bytes() for p in store.folder.iterdir()}
    assert store.ensure(FILES) == []
    assert {p.name: p.read_bytes() for p in store.folder.iterdir()} == before

    redis = store.path("redis")
    kept = "REDIS_PASSWORD=chosen-by-the-operator-1234\n"
    redis.write_text(kept)  # the operator set their own value and dropped a key
    store.path("k3s").unlink()
    assert sorted(store.ensure(FILES)) == ["k3s.K3S_TOKEN", "redis.REDIS_MONITOR_PASSWORD", "redis.REDIS_MONITOR_USER",
                                           "redis.REDIS_SENTINEL_PASSWORD"]
    text = redis.read_text()
    assert text.startswith(kept) and text.count("REDIS_SENTINEL_PASSWORD=") == 1
    assert mode(redis) == 0o600 and mode(store.path("k3s")) == 0o600
    for name, content in before.items():
        if name not in ("redis.env", "k3s.env"):
            assert (store.folder / name).read_bytes() == content


@pytest.mark.parametrize("target, chmod, fix", [
    ("", 0o755, "chmod 700"),
    ("postgres.env", 0o640, "chmod 600"),
])
def test_open_permissions_are_refused_with_the_chmod_to_fix_them(tmp_path: Path, target: str, chmod: int, fix: str):
    store = CredentialStore(tmp_path / "credentials")
    store.ensure(FILES)
    path = store.folder / target if target else store.folder
    os.chmod(path, chmod)
    before = {p.name: p.read_bytes() for p in store.folder.iterdir()}
    errors = store.permission_errors()
    assert len(errors) == 1 and f"{fix} {path}" in str(errors[0]) and f"{chmod:04o}" in str(errors[0])
    with pytest.raises(InputErrors) as caught:
        store.ensure(FILES)  # never fixes permissions silently, never writes through open ones
    assert f"{fix} {path}" in str(caught.value)
    assert mode(path) == chmod
    assert {p.name: p.read_bytes() for p in store.folder.iterdir()} == before


def test_parse_env_reports_bad_lines_without_their_content():
    values, errors = parse_env("# c\nA_PASSWORD=x=y\n\nnot a line s3cr3tvalue\nB KEY=1\n", "x.env")
    assert values == {"A_PASSWORD": "x=y"}
    assert [e.line for e in errors] == [4, 5]
    assert all("s3cr3tvalue" not in str(e) for e in errors)


def test_secret_names_follow_the_vault_convention():
    for service, specs in SERVICE_CREDENTIALS.items():
        for spec in specs:
            assert spec.key.isupper() and spec.key.isidentifier()
            assert is_secret_key(spec.key) == (spec.default is None), spec.key
        assert service.isidentifier()


def test_redaction_hides_the_longest_value_first():
    long, short = generate_secret(40), None
    short = long[:12]
    redact.add(short)
    redact.add(long)
    assert redact(f"a {long} b {short} c") == f"a {REDACTED} b {REDACTED} c"


@pytest.fixture
def site_logs(tmp_path: Path):
    logger = get_logger()
    handlers = list(logger.handlers)
    setup_site_logging(tmp_path / "logs")
    yield tmp_path / "logs"
    for handler in logger.handlers[len(handlers):]:
        handler.close()
        logger.removeHandler(handler)


def test_no_secret_value_in_any_log_line_or_traceback(tmp_path: Path, site_logs: Path,
                                                      caplog: pytest.LogCaptureFixture):
    store = CredentialStore(tmp_path / "credentials")
    store.ensure(FILES)
    credentials, _ = CredentialStore(tmp_path / "credentials").load()
    secret = credentials["postgres"]["POSTGRES_SUPERUSER_PASSWORD"]
    token = credentials["k3s"]["K3S_TOKEN"]
    log = get_logger("test")
    with caplog.at_level(logging.INFO, logger="keybuzz"):
        log.info("connecting with password %s", secret)
        log.info(f"join token {token} in an f-string")
        try:
            raise RuntimeError(f"psql failed: password authentication for {secret}")
        except RuntimeError:
            log.exception("step failed")
        log.error("stack", stack_info=True, extra={"unrelated": 1})
        log.warning("bad args %s %s", secret)  # must not raise, must not leak
    install = (site_logs / "install.log").read_text()
    errors = (site_logs / "errors.log").read_text()
    captured = caplog.text + "".join(r.getMessage() for r in caplog.records)
    for text in (install, errors, captured):
        assert secret not in text and token not in text
    assert install.count(REDACTED) >= 3
    assert "RuntimeError: psql failed: password authentication for ***" in errors
    assert "connecting with password ***" in install


def test_setup_site_logging_is_idempotent(site_logs: Path):
    count = len(get_logger().handlers)
    setup_site_logging(site_logs)
    assert len(get_logger().handlers) == count
    get_logger("x").info("once")
    assert (site_logs / "install.log").read_text().count("once") == 1


def test_a_removed_logs_folder_is_written_again(site_logs: Path):
    """A site rebuilt under a running process (the lab's `down` then `up`) gets its logs back."""
    count = len(get_logger().handlers)
    shutil.rmtree(site_logs)
    setup_site_logging(site_logs)
    assert len(get_logger().handlers) == count
    get_logger("x").info("after the rebuild")
    assert "after the rebuild" in (site_logs / "install.log").read_text()


def test_every_credential_name_is_documented_for_the_vault_migration():
    docs = (Path(__file__).resolve().parents[2] / "docs" / "site.md").read_text()
    for service, specs in SERVICE_CREDENTIALS.items():
        assert f"`{service}.env`" in docs
        for spec in specs:
            assert f"`{spec.key}`" in docs, spec.key


def test_a_site_shown_in_a_traceback_holds_no_secret(seed_site, kb) -> None:
    from keybuzz.registry import load_site

    shown = repr(load_site(seed_site))
    assert "credentials" not in shown
    assert not [value for value in kb.secret_values(seed_site) if value in shown]


def test_a_rendered_secret_file_shown_in_a_traceback_holds_no_secret() -> None:
    from keybuzz.render import FileSpec, HostPlan

    plan = HostPlan("db-1", files=[FileSpec("/opt/keybuzz/x.env", "X_PASSWORD=abcdefgh12345678", secret=True)])
    assert "abcdefgh12345678" not in repr(plan)


def test_json_escaped_secret_is_redacted_too() -> None:
    import json

    from keybuzz.secrets import redact

    value = 'pa"ss\\wörd-123'
    redact.add(value)
    assert value not in redact(f"x {value} y")
    assert json.dumps(value)[1:-1] not in redact(json.dumps({"v": value}))


def test_a_stale_world_readable_tmp_file_never_holds_a_secret(tmp_path) -> None:
    import stat

    from keybuzz.secrets import CredentialStore

    folder = tmp_path / "credentials"
    folder.mkdir(mode=0o700)
    stale = folder / ".redis.env.tmp"
    stale.write_text("old")
    stale.chmod(0o644)
    CredentialStore(folder).ensure([f for f in FILES if f.service == "redis"])
    written = folder / "redis.env"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600 and "REDIS_PASSWORD=" in written.read_text()
    assert not stale.exists()


def test_a_short_or_empty_secret_is_refused_at_its_line(seed_site) -> None:
    from keybuzz.errors import InputErrors
    from keybuzz.registry import load_site

    env = seed_site / "credentials" / "redis.env"
    lines = env.read_text().splitlines()
    number = next(i for i, line in enumerate(lines, start=1) if line.startswith("REDIS_PASSWORD="))
    lines[number - 1] = "REDIS_PASSWORD=abc"
    env.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputErrors) as caught:
        load_site(seed_site)
    messages = [str(e) for e in caught.value.errors]
    assert any(f"redis.env:{number}: REDIS_PASSWORD: the value (not shown) is not a usable password: 3 characters, "
               "8-256 allowed" in m for m in messages), messages
    assert not any("abc" in m for m in messages)
