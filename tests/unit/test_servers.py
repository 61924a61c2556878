"""servers.tsv parser: the documented format (docs/site.md), every error collected as file:line: what (hint)."""

from __future__ import annotations

import ipaddress
import re

import pytest

from keybuzz.errors import InputError
from keybuzz.registry import schema
from keybuzz.secrets import generate_secret
from keybuzz.site import example
from keybuzz.site.servers import parse_servers_tsv
from keybuzz.site.writer import servers_tsv

NET = ipaddress.IPv4Network("10.0.0.0/16")
HEADER = "hostname\tprivate_ip\tpublic_ip\troles\tfqdn"
LOCATED = re.compile(r"^servers\.tsv:\d+: .+ \(.+\)$")  # file:line: what (hint)


def parse(text: str, network: ipaddress.IPv4Network | None = NET):
    return parse_servers_tsv(text, "servers.tsv", network, schema().quorums)


def lines_of(errors: list[InputError], fragment: str) -> list[int]:
    return [e.line for e in errors if fragment in e.message]


def test_seed_inventory_parses_to_49_servers_with_the_seed_ips():
    servers, errors = parse(servers_tsv(example.seed_servers(), example.SEED_COMMENT))
    assert errors == []
    assert len(servers) == 49
    by_name = {s.hostname: s for s in servers}
    assert str(by_name["db-master-01"].private_ip) == "10.0.0.120"
    assert str(by_name["minio-01"].private_ip) == "10.0.0.134"
    assert str(by_name["install-01"].public_ip) == "91.98.128.153"
    assert by_name["k3s-worker-05"].roles == ("k3s-worker",)


def test_bom_crlf_comments_and_blank_lines():
    text = "\ufeff# inventory\r\n\r\n" + HEADER + "\r\n  # indented comment\r\n" \
        "haproxy-01\t10.0.0.11\t\thaproxy\t\r\n\r\napp-01\t10.0.0.200\t203.0.113.5\tapp,monitor\tapp-01.keybuzz.io\r\n"
    servers, errors = parse(text)
    assert errors == []
    assert [(s.hostname, s.line) for s in servers] == [("haproxy-01", 5), ("app-01", 7)]
    assert servers[0].public_ip is None and servers[0].fqdn == ""
    assert servers[1].roles == ("app", "monitor") and str(servers[1].public_ip) == "203.0.113.5"


def test_header_in_any_order_and_optional_columns_may_be_absent():
    servers, errors = parse("roles\tHOSTNAME\tprivate_ip\napp\tapp-01\t10.0.0.200\n")
    assert errors == []
    assert (servers[0].hostname, str(servers[0].private_ip), servers[0].roles) == ("app-01", "10.0.0.200", ("app",))


def test_line_numbers_count_newlines_only():
    # A form feed inside a cell must not shift the line numbers an editor shows.
    text = HEADER + "\napp-01\t10.0.0.200\t\tapp\t\napp\x0c02\t10.0.0.201\t\tapp\t\nbad host\t10.0.0.202\t\tapp\t\n"
    _, errors = parse(text)
    assert lines_of(errors, "RFC 1123") == [3, 4]


def test_unknown_column_is_an_error_and_rows_are_still_checked():
    _, errors = parse("hostname\tprivate_ip\troles\tzone\napp-01\t10.0.0.999\tapp\tfsn1\n")
    messages = [str(e) for e in errors]
    assert any("servers.tsv:1: unknown column 'zone'" in m for m in messages)
    assert lines_of(errors, "not a valid IP") == [2]


@pytest.mark.parametrize("header, fragment", [
    ("hostname\tprivate_ip", "missing column 'roles'"),
    ("hostname\tprivate_ip\troles\troles", "column 'roles' appears 2 times"),
])
def test_unreadable_header(header: str, fragment: str):
    servers, errors = parse(header + "\napp-01\t10.0.0.200\tapp\n")
    assert servers == []
    assert lines_of(errors, fragment) == [1]


def test_no_header_and_no_server():
    assert lines_of(parse("# only a comment\n\n")[1], "no header line") == [1]
    assert lines_of(parse(HEADER + "\n")[1], "no server listed") == [1]


def test_every_error_at_once_located_with_a_hint():
    rows = [
        "haproxy-01\t10.0.0.11\t\thaproxy\t",                 # 2 ok
        "haproxy-02\t10.0.0.12\thaproxy",                     # 3 wrong column count
        "db-1\t10.0.0.120\t\tdb,webserver\t",                  # 4 unknown role
        "haproxy-01\t10.0.0.121\t\tdb\t",                      # 5 duplicate hostname
        "db-3\t10.0.0.120\t\tdb\t",                            # 6 duplicate private IP
        "db-4\t192.168.1.4\t\tdb\t",                           # 7 outside network
        "db-5\t10.0.0.300\t\tdb\t",                            # 8 invalid IP
        "DB_6\t10.0.0.126\t\tdb\t",                            # 9 not RFC 1123
        "db-7\t10.0.0.127\tnot-an-ip\tdb\tnot a domain",       # 10 invalid public IP and fqdn
        "db-8\tfe80::1\t\tdb\t",                               # 11 IPv6
        "redis-1\t10.0.0.130\t\tredis\t",                      # 12
        "redis-2\t10.0.0.131\t\tredis\t",                      # 13 even redis group
        "db-9\t10.0.0.140\t\t\t",                              # 14 no role
        "db-10\t10.0.0.141\t\tdb,db\t",                        # 15 role twice
    ]
    _, errors = parse(HEADER + "\n" + "\n".join(rows) + "\n")
    for error in errors:
        assert LOCATED.match(str(error)), str(error)
    assert lines_of(errors, "3 columns where the header has 5") == [3]
    assert lines_of(errors, "unknown role 'webserver'") == [4]
    assert lines_of(errors, "duplicate hostname haproxy-01") == [5]
    assert "already on line 2" in next(e.hint for e in errors if "duplicate hostname" in e.message)
    assert lines_of(errors, "duplicate private_ip 10.0.0.120") == [6]
    assert lines_of(errors, "outside the private network 10.0.0.0/16") == [7]
    assert lines_of(errors, "private_ip '10.0.0.300' is not a valid IP") == [8]
    assert lines_of(errors, "not a valid RFC 1123 name") == [9]
    assert lines_of(errors, "public_ip 'not-an-ip' is not a valid IP") == [10]
    assert lines_of(errors, "not a valid domain name") == [10]
    assert lines_of(errors, "is IPv6") == [11]
    assert lines_of(errors, "2 servers with role redis") == [13]
    assert lines_of(errors, "no role") == [14]
    assert lines_of(errors, "listed 2 times") == [15]


@pytest.mark.parametrize("name", ["Db-1", "db_1", "-db1", "db1-", "d" * 64, "db.1", "dé-1"])
def test_hostnames_that_are_not_rfc_1123(name: str):
    _, errors = parse(f"{HEADER}\n{name}\t10.0.0.120\t\tapp\t\n")
    assert lines_of(errors, "RFC 1123") == [2]


@pytest.mark.parametrize("role", sorted({q.role for q in schema().quorums}))  # declared by the modules
def test_even_quorum_groups_are_refused(role: str):
    rows = [f"{role}-{i}\t10.0.0.{10 + i}\t\t{role}\t" for i in range(4)]
    _, errors = parse(HEADER + "\n" + "\n".join(rows) + "\n")
    assert lines_of(errors, f"4 servers with role {role}: a quorum needs an odd count") == [5]
    _, errors = parse(HEADER + "\n" + "\n".join(rows[:3]) + "\n")
    assert errors == []


@pytest.mark.parametrize("cell", ["password=hunter2hunter2", "token=abc", "db-1 pass: x", "api_key=zz",
                                  "aB3dE5fG7hI9jK1lM3nO5pQ7", "5f4dcc3b5aa765d61d8327deb882cf99"])
def test_values_that_look_like_secrets_are_refused_and_never_echoed(cell: str):
    for row in (f"{cell}\t10.0.0.120\t\tapp\t", f"app-01\t10.0.0.120\t\tapp\t{cell}",
                f"app-01\t10.0.0.120\t{cell}\tapp\t"):
        _, errors = parse(f"{HEADER}\n{row}\n")
        assert lines_of(errors, "looks like a secret") == [2], row
        assert all(cell not in str(e) for e in errors)


def test_a_generated_credential_in_a_cell_is_caught():
    value = generate_secret()
    _, errors = parse(f"{HEADER}\napp-01\t10.0.0.120\t\tapp\tapp-01.keybuzz.io\t\n".replace(
        "app-01.keybuzz.io\t", value))
    assert lines_of(errors, "column fqdn looks like a secret") == [2]
    assert value not in "".join(map(str, errors))


@pytest.mark.parametrize("name", ["application-server-frontend-01", "monitoring-prometheus-01",
                                  "kb-production-frankfurt-7", "k3s-worker-05.keybuzz.io"])
def test_long_real_names_are_not_secrets(name: str):
    hostname = name.split(".")[0]
    fqdn = name if "." in name else f"{name}.keybuzz.io"
    servers, errors = parse(f"{HEADER}\n{hostname}\t10.0.0.120\t\tapp\t{fqdn}\n")
    assert errors == [] and servers[0].hostname == hostname


def test_huge_values_are_cut_short_in_messages():
    _, errors = parse(f"{HEADER}\napp-01\t{'9' * 100_000}\t\tapp\t\n")
    assert len(errors) == 1 and len(str(errors[0])) < 300


def test_no_network_means_no_range_check():
    servers, errors = parse(f"{HEADER}\napp-01\t192.168.5.5\t\tapp\t\n", network=None)
    assert errors == [] and str(servers[0].private_ip) == "192.168.5.5"


def test_duplicate_public_ip_and_fqdn():
    rows = ["app-1\t10.0.0.201\t203.0.113.9\tapp\tapp.keybuzz.io",
            "app-2\t10.0.0.202\t203.0.113.9\tapp\tAPP.keybuzz.io.",
            "app-3\t10.0.0.203\t\tapp\t"]
    _, errors = parse(HEADER + "\n" + "\n".join(rows) + "\n")
    assert sorted(str(e) for e in errors) == [
        "servers.tsv:3: duplicate fqdn app.keybuzz.io (already on line 2)",
        "servers.tsv:3: duplicate public_ip 203.0.113.9 (already on line 2)",
    ]


@pytest.mark.parametrize("ip", ["10.0.0.0", "10.0.255.255"])
def test_network_and_broadcast_addresses_are_not_host_addresses(ip: str):
    _, errors = parse(f"{HEADER}\napp-01\t{ip}\t\tapp\t\n")
    assert lines_of(errors, "is the network or broadcast address of 10.0.0.0/16") == [2]
