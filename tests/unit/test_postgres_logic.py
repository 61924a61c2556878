"""Pure decisions of the PostgreSQL module: cluster health from node views, DCS diffs, HAProxy CSV."""

from __future__ import annotations

import base64

from keybuzz.haproxy import parse_stats_csv, up_servers
from keybuzz.modules.postgres import api
from keybuzz.modules.postgres.cleanup import prefix_range
from keybuzz.modules.postgres.deploy import dcs_differences
from keybuzz.modules.postgres.lb import WRITE_BACKEND, userlist
from keybuzz.render import DirSpec, HostPlan, ImageUser, with_owners


def node(name: str, role: str, state: str = "running", repl: str = "", position: int = 100) -> api.NodeState:
    return api.NodeState(name, "10.0.0.1", True, role=role, state=state, replication_state=repl,
                         wal_position=position)


def test_healthy_needs_one_leader_and_streaming_replicas_within_lag() -> None:
    leader = node("a", "primary", position=1000)
    good = [leader, node("b", "replica", "streaming", "streaming", 990), node("c", "replica", "streaming",
                                                                             "streaming", 1000)]
    assert api.healthy(good, max_lag=100)
    assert not api.healthy(good, max_lag=5)  # b lags 10 bytes
    assert not api.healthy([*good[:2], node("c", "replica", "running", "in archive recovery", 1000)], 100)
    two_leaders = [leader, node("b", "primary", position=1000), good[2]]
    assert api.leader_of(two_leaders) is None and not api.healthy(two_leaders, 100)
    down = [leader, good[1], api.NodeState("c", "10.0.0.3", reachable=False)]
    assert not api.healthy(down, 100)


def test_parse_node_state_of_patroni_4() -> None:
    primary = api._parse_state("a", "ip", {"state": "running", "role": "primary", "timeline": 3,
                                           "xlog": {"location": 5000}})
    replica = api._parse_state("b", "ip", {"state": "streaming", "role": "replica", "replication_state": "streaming",
                                           "xlog": {"received_location": 5000, "replayed_location": 4900}})
    assert primary.is_leader and not primary.is_streaming
    assert replica.is_streaming and api.replica_lag(primary, replica) == 100


def test_dcs_differences_only_what_changed() -> None:
    current = {"ttl": 20, "loop_wait": 2, "postgresql": {"use_slots": True, "parameters": {"wal_log_hints": "on",
                                                                                           "max_connections": 200}}}
    wanted = {"ttl": 20, "loop_wait": 2, "postgresql": {"use_slots": True, "parameters": {"wal_log_hints": "on",
                                                                                          "max_connections": 300}}}
    assert dcs_differences(current, current) == {}
    assert dcs_differences(current, wanted) == {"postgresql": {"parameters": {"max_connections": 300}}}
    assert dcs_differences({"synchronous_mode": True}, {"synchronous_mode": False}) == {"synchronous_mode": False}
    assert dcs_differences({"checkpoint_completion_target": "0.9"}, {"checkpoint_completion_target": 0.9}) == {}


def test_image_user_owners_are_replaced_by_the_uid_read_at_deploy() -> None:
    user = ImageUser("keybuzz/patroni:1", "postgres")
    plan = HostPlan("db", directories=[DirSpec("/d", owner=user), DirSpec("/c", owner="root")])
    fixed = with_owners(plan, {user: "999:999"})
    assert [d.owner for d in fixed.directories] == ["999:999", "root"]
    assert plan.directories[0].owner == user  # the rendered plan is not mutated
    assert with_owners(plan, {}).directories[0].owner == "postgres of image keybuzz/patroni:1"  # dry-run display


def test_without_containers() -> None:
    from keybuzz.containers import ContainerSpec

    plan = HostPlan("db", containers=[ContainerSpec("patroni", "i:1", "postgres"),
                                      ContainerSpec("etcd-postgres", "i:1", "postgres")])
    assert [c.name for c in plan.without_containers("patroni").containers] == ["etcd-postgres"]
    assert [c.name for c in plan.with_containers("patroni").containers] == ["patroni"]


def test_write_backend_up_from_stats_csv() -> None:
    csv_text = ("# pxname,svname,qcur,status,\n"
                "postgres_write,FRONTEND,,OPEN,\n"
                "postgres_write,db-master-01,0,DOWN,\n"
                "postgres_write,db-slave-01,0,UP,\n"
                "postgres_write,db-slave-02,0,DOWN,\n"
                "postgres_write,BACKEND,0,UP,\n"
                "postgres_read,db-master-01,0,UP,\n")
    assert up_servers(parse_stats_csv(csv_text), WRITE_BACKEND) == ["db-slave-01"]


def test_etcd_prefix_range_covers_the_scope() -> None:
    key, end = prefix_range("/keybuzz/keybuzz-postgres/")
    assert key == b"/keybuzz/keybuzz-postgres/" and end == b"/keybuzz/keybuzz-postgres0"
    assert key < b"/keybuzz/keybuzz-postgres/leader" < end and not (key <= b"/keybuzz/other" < end)
    assert base64.b64decode(base64.b64encode(end)) == end


def test_userlist_line() -> None:
    assert userlist("keybuzz", "SCRAM-SHA-256$4096:abc$def:ghi") == '"keybuzz" "SCRAM-SHA-256$4096:abc$def:ghi"\n'


def test_scram_verifier_matches_rfc_7677_and_postgres_format() -> None:
    import hashlib
    import hmac

    from keybuzz.modules.postgres.scram import verifier

    # RFC 7677 section 3 example: password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==, 4096 iterations.
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    text = verifier("pencil", salt=salt)
    method, rest = text.split("$", 1)
    params, keys = rest.split("$")
    stored, server = keys.split(":")
    assert method == "SCRAM-SHA-256" and params == "4096:W22ZaJ0SNY7soEsUEjb6gQ=="
    salted = hashlib.pbkdf2_hmac("sha256", b"pencil", salt, 4096)
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    assert base64.b64decode(server) == server_key
    # The RFC's server signature for its exchange, computed from our ServerKey:
    auth_message = (b"n=user,r=rOprNGfwEbeRWgbNEkqO,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                    b"s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
    signature = hmac.new(server_key, auth_message, hashlib.sha256).digest()
    assert base64.b64encode(signature).decode() == "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    assert len(base64.b64decode(stored)) == 32
    assert verifier("pencil") != verifier("pencil")  # a fresh salt each time


def test_drill_scenarios_map_to_faults_the_lab_offers() -> None:
    from keybuzz.engine.faults import ContainerFaults
    from keybuzz.lab.faults import LabFaults
    from keybuzz.modules.postgres import MODULE
    from keybuzz.modules.postgres.drill import FAULT_KIND

    scenarios = MODULE.scenarios
    assert set(scenarios) == {"poweroff-leader", "crash-leader", "partition-leader", "isolate-leader", "switchover"}
    assert set(FAULT_KIND) == set(scenarios) - {"switchover"}  # switchover is Patroni's own API
    assert set(FAULT_KIND.values()) <= set(LabFaults.kinds)
    assert FAULT_KIND["crash-leader"] in ContainerFaults.kinds  # the one fault real servers offer
