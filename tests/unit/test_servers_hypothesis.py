"""Property-based: random and mangled servers.tsv never crash the parser, valid ones round-trip."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keybuzz.errors import InputError, InputErrors
from keybuzz.registry import load_site, write_example_site
from keybuzz.site import example
from keybuzz.site.servers import COLUMNS, ROLES, parse_servers_tsv
from keybuzz.site.writer import ServerRow, servers_tsv

NET = ipaddress.IPv4Network("10.0.0.0/16")
LOCATED = re.compile(r"^servers\.tsv:\d+: ", re.DOTALL)
SEED_TEXT = servers_tsv(example.seed_servers(), example.SEED_COMMENT)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_only_input_errors(text: str) -> list[InputError]:
    servers, errors = parse_servers_tsv(text, "servers.tsv", NET)
    assert isinstance(servers, list) and isinstance(errors, list)
    for error in errors:
        assert isinstance(error, InputError)
        assert LOCATED.match(str(error)), str(error)
        assert error.line >= 1 and error.line <= text.count("\n") + 1
        assert len(str(error)) < 600, "a message must stay readable even for a huge line"
    return errors


@FAST
@given(st.text())
def test_random_text(text: str):
    check_only_input_errors(text)


@FAST
@given(st.binary(max_size=2000))
def test_random_bytes_decoded(data: bytes):
    check_only_input_errors(data.decode("utf-8", errors="replace"))
    check_only_input_errors(data.decode("latin-1"))


@FAST
@given(st.lists(st.lists(st.text(max_size=30), max_size=7), max_size=20))
def test_random_cells_under_a_valid_header(rows: list[list[str]]):
    body = "\n".join("\t".join(cells) for cells in rows)
    check_only_input_errors("\t".join(COLUMNS) + "\n" + body)


@FAST
@given(st.data())
def test_mangled_seed_inventory(data: st.DataObject):
    lines = SEED_TEXT.split("\n")
    for _ in range(data.draw(st.integers(1, 5))):
        index = data.draw(st.integers(0, len(lines) - 1))
        line = lines[index]
        mangle = data.draw(st.sampled_from(["drop_tab", "unicode", "huge", "shuffle", "cut", "dup", "crlf"]))
        if mangle == "drop_tab" and "\t" in line:
            line = line.replace("\t", "", 1)
        elif mangle == "unicode":
            at = data.draw(st.integers(0, len(line)))
            line = line[:at] + data.draw(st.text(min_size=1, max_size=5)) + line[at:]
        elif mangle == "huge":
            line = line + "x" * data.draw(st.integers(10_000, 200_000))
        elif mangle == "shuffle":
            line = "\t".join(data.draw(st.permutations(line.split("\t"))))
        elif mangle == "cut":
            line = line[: data.draw(st.integers(0, len(line)))]
        elif mangle == "dup":
            lines.insert(index, line)
        elif mangle == "crlf":
            line += "\r"
        lines[index] = line
    check_only_input_errors("\n".join(lines))


@FAST
@given(st.permutations(list(range(len(COLUMNS)))))
def test_shuffled_columns_parse_the_same(order: list[int]):
    reference, _ = parse_servers_tsv(SEED_TEXT, "servers.tsv", NET)
    shuffled = []
    for line in SEED_TEXT.split("\n"):
        cells = line.split("\t")
        shuffled.append("\t".join(cells[i] for i in order) if len(cells) == len(COLUMNS) else line)
    servers, errors = parse_servers_tsv("\n".join(shuffled), "servers.tsv", NET)
    assert errors == []
    assert servers == reference


LABEL = st.from_regex(r"[a-z][a-z0-9]{0,10}(-[a-z0-9]{1,8}){0,2}", fullmatch=True)


@st.composite
def inventories(draw: st.DrawFn) -> list[ServerRow]:
    names = draw(st.lists(LABEL, min_size=1, max_size=30, unique=True))
    hosts = draw(st.lists(st.integers(1, 65534), min_size=len(names), max_size=len(names), unique=True))
    plain_roles = [r for r in ROLES if r not in ("db", "redis", "queue", "maria", "k3s-master")]
    rows = []
    for index, (name, host) in enumerate(zip(names, hosts, strict=True)):
        roles = tuple(draw(st.lists(st.sampled_from(plain_roles), min_size=1, max_size=3, unique=True)))
        public = draw(st.sampled_from(["", f"203.0.113.{index + 1}"]))
        fqdn = draw(st.sampled_from(["", f"{name}.keybuzz.io", f"{name}.example.org"]))
        rows.append(ServerRow(name, str(NET[host]), roles, public_ip=public, fqdn=fqdn))
    quorum = draw(st.sampled_from([0, 1, 3, 5]))
    taken = {row.private_ip for row in rows}
    free = (str(ip) for ip in NET.hosts() if str(ip) not in taken)
    rows += [ServerRow(f"qdb-{i}", next(free), ("db",)) for i in range(quorum)]
    return rows


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inventories())
def test_valid_generated_inventory_round_trips(rows: list[ServerRow]):
    servers, errors = parse_servers_tsv(servers_tsv(rows, "generated"), "servers.tsv", NET)
    assert errors == []
    back = [ServerRow(s.hostname, str(s.private_ip), s.roles, str(s.public_ip or ""), s.fqdn) for s in servers]
    assert back == rows


@pytest.fixture(scope="module")
def site_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:

    root = tmp_path_factory.mktemp("hyp") / "site"
    write_example_site(root)
    return root


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=500))
def test_load_site_with_random_servers_tsv_raises_input_errors_only(site_dir: Path, data: bytes):
    (site_dir / "servers.tsv").write_bytes(data)
    with pytest.raises(InputErrors) as caught:
        load_site(site_dir)
    assert caught.value.errors and all(isinstance(e, InputError) for e in caught.value.errors)
