"""Every value of a site file is typed where it is loaded: hostile text in any field is an input error at its line.

The hostile cases are the shapes an attacker with write access to one site file would try: shell
substitution, quotes, newlines (a second line in resolv.conf, fstab, pg_hba), NUL, `;`, spaces,
backslashes and Unicode look-alikes. They are inserted at the start, the middle and the end of a valid
value of every text field of keybuzz.yaml (every module's section), servers.tsv, versions.yaml and
every credentials file.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from keybuzz import registry
from keybuzz.errors import InputErrors
from keybuzz.secrets import CredentialStore
from keybuzz.site.servers import parse_servers_tsv
from keybuzz.site.versions import Versions
from keybuzz.site.yamlfile import load_yaml, validate_model
from keybuzz.values import PASSWORD, PLATFORM_ROOT, POSTGRES_NAME, ValueKind, untyped_text_fields

HOSTILE = ("$(id>/tmp/pwn)", "`id`", "'", '"', "\n", "\r", "\x00", ";", " ", "\t", "\\", "\u0430",
           "\u200b", "\uff0f", "\n nameserver 203.0.113.66", "all all 0.0.0.0/0 trust #")
# Values every optional or empty-by-default text field takes for the test (each must load as is).
SAMPLES: dict[str, Any] = {
    "registry": "registry.example.com:5000/keybuzz",
    "volumes": [{"role": "db", "use": "postgres.data", "device": "/dev/disk/by-id/scsi-0HC_Volume_1",
                 "options": ["noatime"]}],
    "base_os.installer": ["gateway", "install-01"],
    "base_os.ssh.allow_groups": ["admins"],
    "base_os.ssh.from_roles": ["install"],
    "base_os.firewall.open": [{"port": 9100, "role": "app", "allow_from": ["monitor"], "service": "node-exporter"}],
    "base_os.dns.search": ["keybuzz.io"],
}


def set_path(document: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = document
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value


def full_document() -> dict[str, Any]:
    """keybuzz.yaml with every field written out: the defaults, the seed's values, the samples above."""
    model = registry.schema().config_model()
    document = model().model_dump(mode="json")
    for key, value in copy.deepcopy(registry.example_config()).items():  # never change the example's own dicts
        document[key] = value if not isinstance(value, dict) else {**document.get(key, {}), **value}
    for dotted, value in SAMPLES.items():
        set_path(document, dotted, value)
    return document


def text_leaves(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from text_leaves(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from text_leaves(value, (*path, index))
    elif isinstance(node, str):
        yield path, node


DOCUMENT = full_document()
LEAVES = sorted(text_leaves(DOCUMENT), key=lambda item: [str(p) for p in item[0]])


def with_value(path: tuple[Any, ...], value: str) -> dict[str, Any]:
    document = yaml.safe_load(yaml.safe_dump(DOCUMENT))
    node = document
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return document


def config_errors(document: dict[str, Any]) -> list[Any]:
    located, errors = load_yaml(yaml.safe_dump(document, allow_unicode=True), "keybuzz.yaml")
    assert located is not None and not errors, errors
    return validate_model(registry.schema().config_model(), located, "keybuzz.yaml")[1], located


def test_the_full_document_loads_and_reaches_every_text_field() -> None:
    errors, _ = config_errors(DOCUMENT)
    assert errors == []
    dotted = {".".join(str(p) for p in path if not isinstance(p, int)) for path, _ in LEAVES}
    for expected in ("domain", "registry", "paths.data_root", "ssh.identity_file", "ssh.known_hosts",
                     "volumes.device", "volumes.options", "base_os.dns.search", "base_os.ntp_servers",
                     "base_os.firewall.open.service", "rabbitmq.vhost", "object_storage.buckets"):
        assert expected in dotted


def insertions(value: str) -> st.SearchStrategy[str]:
    middle = len(value) // 2
    return st.sampled_from(HOSTILE).flatmap(lambda bad: st.sampled_from(
        [bad + value, value[:middle] + bad + value[middle:], value + bad]))


@pytest.mark.parametrize("path, value", LEAVES, ids=[".".join(map(str, p)) for p, _ in LEAVES])
@settings(max_examples=6, deadline=None)
@given(data=st.data())
def test_hostile_text_in_any_keybuzz_yaml_field_is_refused_at_its_line(path: tuple[Any, ...], value: str,
                                                                         data: st.DataObject) -> None:
    hostile = data.draw(insertions(value))
    errors, located = config_errors(with_value(path, hostile))
    assert errors, f"{'.'.join(map(str, path))} accepted {hostile!r}"
    assert {e.line for e in errors} == {located.line_of(path)}, errors


SERVERS_HEADER = "hostname\tprivate_ip\tpublic_ip\troles\tfqdn\n"
SERVER_ROW = ["db-master-01", "10.0.0.120", "203.0.113.10", "db", "db-master-01.keybuzz.io"]


@pytest.mark.parametrize("column", range(len(SERVER_ROW)), ids=SERVERS_HEADER.split())
@settings(max_examples=6, deadline=None)
@given(data=st.data())
def test_hostile_text_in_a_servers_tsv_cell_is_refused(column: int, data: st.DataObject) -> None:
    row = list(SERVER_ROW)
    # A cell is read stripped (documented): text that is only spaces around the value is not hostile there.
    row[column] = data.draw(insertions(row[column]).filter(
        lambda cell: "\t" not in cell and "\n" not in cell and cell.strip() != row[column]))
    servers, errors = parse_servers_tsv(SERVERS_HEADER + "\t".join(row) + "\n", "servers.tsv")
    assert errors and not servers, row


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_hostile_text_in_versions_yaml_is_refused(data: st.DataObject) -> None:
    document = registry.seed_versions()
    section = data.draw(st.sampled_from(["images", "software"]))
    key = data.draw(st.sampled_from(sorted(document[section])))
    document[section][key] = data.draw(insertions(document[section][key]))
    located, _ = load_yaml(yaml.safe_dump(document, allow_unicode=True), "versions.yaml")
    assert located is not None
    versions, errors = validate_model(Versions, located, "versions.yaml")
    from keybuzz.site.versions import image_problem

    assert errors or (section == "images" and image_problem(versions.images[key])), document[section][key]


def credential_specs() -> list[tuple[str, str, str]]:
    """(service, key, a valid value) of every key every module declares."""
    found = []
    for file in registry.credential_files():
        for spec in file.specs:
            valid = spec.default or ("https://hooks.example.com/x" if spec.value_kind.what.startswith("an http")
                                     else "A1b2C3d4E5f6G7h8I9j0K1l2")
            found.append((file.service, spec.key, valid))
    return found


@pytest.mark.parametrize("service, key, valid", credential_specs(), ids=[f"{s}.{k}" for s, k, _ in credential_specs()])
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_hostile_text_in_a_credentials_value_is_refused_at_its_line(tmp_path_factory: pytest.TempPathFactory,
                                                                    service: str, key: str, valid: str,
                                                                    data: st.DataObject) -> None:
    # A line is read stripped: spaces or a line end after the value are not part of it.
    hostile = data.draw(insertions(valid).filter(lambda value: value.strip() != valid))
    folder = tmp_path_factory.mktemp("credentials")
    (folder / f"{service}.env").write_text(f"# comment\n{key}={hostile}\n")
    _, errors = CredentialStore(folder).load(registry.credential_files())
    assert errors and {e.line for e in errors} <= {2, 3}, (hostile, errors)  # a newline makes line 3
    if key.endswith(("_PASSWORD", "_SECRET", "_KEY", "_TOKEN", "_COOKIE")):
        assert not any(valid in str(e) for e in errors)  # a refused secret is never echoed


# -- every text field carries a kind ---------------------------------------------------------------------

def test_every_text_field_of_the_site_model_has_a_kind_or_an_anchored_pattern() -> None:
    assert untyped_text_fields(registry.schema().config_model()) == []
    # versions.images values are image references, checked by image_problem at their line by the loader.
    assert untyped_text_fields(Versions) == ["images"]


def test_a_module_section_with_an_untyped_text_field_is_refused() -> None:
    from keybuzz.site.config import Strict
    from keybuzz.site.schema import SettingsSection

    class Loose(Strict):
        name: str = "x"

    with pytest.raises(ValueError, match="name have no kind"):
        SettingsSection(("loose",), Loose)


def test_every_declared_credential_has_a_kind() -> None:
    for file in registry.credential_files():
        for spec in file.specs:
            assert isinstance(spec.value_kind, ValueKind), spec.key


@pytest.mark.parametrize("value, problem", [
    ("/opt/keybuzz", None), ("/opt/keybuzz/", None), ("/", "a system folder"), ("/etc", "a system folder"),
    ("//opt/keybuzz", "normalised"), ("/opt/../etc", "normalised"), ("opt/keybuzz", "is not"),
    ("/opt/kb$(id>/root/x)", "is not"),
])
def test_platform_roots(value: str, problem: str | None) -> None:
    if problem is None:
        assert PLATFORM_ROOT.check(value) == value.rstrip("/")
    else:
        with pytest.raises(ValueError, match=problem):
            PLATFORM_ROOT.check(value)


def test_a_refused_password_is_never_shown() -> None:
    found = PASSWORD.problem("correct horse battery")
    assert found is not None and "horse" not in found and "not shown" in found
    assert POSTGRES_NAME.problem("all") and POSTGRES_NAME.problem("keybuzz") is None


def test_the_seed_site_loads(seed_site: Path) -> None:
    try:
        registry.load_site(seed_site)
    except InputErrors as exc:  # pragma: no cover - shown when it fails
        pytest.fail(str(exc))
