"""Pure logic of the Redis module: directive parser, Sentinel majority, stats CSV, cluster health."""

from __future__ import annotations

import redis

from keybuzz.haproxy import parse_stats_csv
from keybuzz.modules.redis import client, state
from keybuzz.modules.redis.conf import directive, parse_directives
from keybuzz.modules.redis.probe import RedisWriterProbe

STATS_CSV = """# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status
redis,FRONTEND,,,0,1,4096,3,0,0,0,0,0,,,,,OPEN
redis,redis-01,0,0,0,1,,3,0,0,,0,,0,0,0,0,DOWN
redis,redis-02,0,0,0,1,,3,0,0,,0,,0,0,0,0,UP
redis,redis-03,0,0,0,1,,3,0,0,,0,,0,0,0,0,DOWN 1/2
redis,BACKEND,0,0,0,1,410,3,0,0,0,0,,0,0,0,0,UP
redis_votes_redis-02,redis-01,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP
"""


def test_directive_parser_handles_quotes_and_comments() -> None:
    text = '# comment\n\nlogfile ""\ndir "/data/a b"\nsentinel monitor m 10.0.0.1 6379 2\n'
    assert parse_directives(text) == [["logfile", ""], ["dir", "/data/a b"],
                                      ["sentinel", "monitor", "m", "10.0.0.1", "6379", "2"]]
    assert directive(text, "SENTINEL", "monitor") == [["m", "10.0.0.1", "6379", "2"]]


def test_majority_counts_silent_sentinels() -> None:
    assert client.majority({"a": "10.0.0.1", "b": "10.0.0.1", "c": None}) == "10.0.0.1"
    assert client.majority({"a": "10.0.0.1", "b": None, "c": None}) is None  # 1 of 3 is no majority
    assert client.majority({"a": "10.0.0.1", "b": "10.0.0.2", "c": "10.0.0.2"}) == "10.0.0.2"


def test_stats_csv_servers_of_the_redis_backend() -> None:
    servers = [s for s in parse_stats_csv(STATS_CSV) if s.backend == "redis"]
    assert [(s.name, s.up) for s in servers] == [("redis-01", False), ("redis-02", True), ("redis-03", False)]


def node(name: str, role: str, master: str = "", link: bool = False, reachable: bool = True) -> state.NodeState:
    return state.NodeState(name, f"ip-{name}", reachable, role=role, master_ip=master, link_up=link)


def test_replication_needs_one_master_and_linked_replicas() -> None:
    healthy = [node("a", "master"), node("b", "slave", "ip-a", True), node("c", "slave", "ip-a", True)]
    assert state.replication_problems(healthy) == []
    two_masters = [node("a", "master"), node("b", "master"), node("c", "slave", "ip-a", True)]
    assert "2 masters (a, b)" in state.replication_problems(two_masters)
    unlinked = [node("a", "master"), node("b", "slave", "ip-a", False), node("c", "slave", "ip-a", True)]
    assert "b is not a connected replica" in state.replication_problems(unlinked)[0]


def test_probe_classifies_what_the_drill_counts() -> None:
    probe = RedisWriterProbe("127.0.0.1", 1, "x", "k")
    try:
        assert probe.classify(redis.exceptions.ReadOnlyError("You can't write against a read only replica.")) \
            == "READONLY"
        assert probe.classify(redis.exceptions.ResponseError("NOREPLICAS Not enough good replicas to write.")) \
            == "NOREPLICAS"
        assert probe.classify(redis.exceptions.ConnectionError("Connection closed by server.")) \
            == "ConnectionError: Connection closed by server."
    finally:
        probe.close()


def test_probe_client_never_retries() -> None:
    conn = client.sync_client("127.0.0.1", 1, "x", timeout=0.5)
    try:
        pool_kwargs = conn.connection_pool.connection_kwargs
        assert pool_kwargs["socket_timeout"] == 0.5 and pool_kwargs["socket_connect_timeout"] == 0.5
        assert conn.get_retry().get_retries() == 0
    finally:
        conn.close()
