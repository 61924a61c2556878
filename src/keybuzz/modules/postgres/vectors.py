"""The pgvector check: what a team storing embeddings does, as the application role through the VIP.

Vectors go into the check's own table (`keybuzz_check_vector`, created when missing, its rows deleted
afterwards: validate touches no application data), the HNSW index is rebuilt over them, and a
nearest-neighbour query must be answered by that index, first on the primary (VIP 5432), then on
every replica once replication brought the rows and the index there.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg

from keybuzz.contract import CheckResult
from keybuzz.contract.checks import seen_detail, seen_within
from keybuzz.modules.postgres import api, layout
from keybuzz.modules.postgres.client import lb_vip, query
from keybuzz.poll import describe
from keybuzz.site import Site

TABLE = "keybuzz_check_vector"
INDEX = f"{TABLE}_hnsw"
DIMENSIONS = 8
ROWS = 64
NEAREST_SQL = f"SELECT token, id FROM {TABLE} ORDER BY embedding <-> %s::vector LIMIT 3"
# enable_seqscan off: on a table this small the planner would rather sort; the check is about the index.
INDEX_ONLY = "-c enable_seqscan=off"
PRIMARY_NAME = "pgvector: vectors inserted, HNSW index built, nearest neighbour by the index through the VIP (5432)"


def vector_literal(values: list[float]) -> str:
    """pgvector's text form, `[1.5,2,3]`: psycopg sends it as text and the query casts it."""
    return "[" + ",".join(repr(float(v)) for v in values) + "]"


def sample(token: str) -> tuple[list[list[float]], int, list[float]]:
    """ROWS random vectors (seeded by the token), the id aimed at, and a query a hair's breadth from it:
    its nearest neighbour is that id by a margin no approximate index misses."""
    rng = random.Random(token)
    vectors = [[rng.random() for _ in range(DIMENSIONS)] for _ in range(ROWS)]
    target = rng.randrange(ROWS)
    return vectors, target, [v + 1e-4 for v in vectors[target]]


def index_used(plan: Any, index: str) -> bool:
    """True when EXPLAIN (FORMAT JSON) shows an index scan on `index` anywhere in the plan."""
    if isinstance(plan, list):
        return any(index_used(node, index) for node in plan)
    if not isinstance(plan, dict):
        return False
    node = plan.get("Plan", plan)
    if node.get("Node Type") in ("Index Scan", "Index Only Scan") and node.get("Index Name") == index:
        return True
    return any(index_used(child, index) for child in node.get("Plans", []))


def nearest(site: Site, host: str, port: int, query_vector: list[float]) -> tuple[list[tuple[str, int]], bool]:
    """The 3 nearest rows to `query_vector` on host:port, and whether the HNSW index answered."""
    params = (vector_literal(query_vector),)
    plan = query(site, host, port, "EXPLAIN (FORMAT JSON) " + NEAREST_SQL, params, options=INDEX_ONLY)
    rows = query(site, host, port, NEAREST_SQL, params, options=INDEX_ONLY)
    return [(str(token), int(row_id)) for token, row_id in rows], bool(plan) and index_used(plan[0][0], INDEX)


def answer_problem(rows: list[tuple[str, int]], by_index: bool, token: str, target: int) -> str | None:
    """Why a nearest-neighbour answer is wrong, or None."""
    if not by_index:
        return f"the query was not answered by the HNSW index {INDEX} (EXPLAIN shows another plan)"
    if not rows or rows[0] != (token, target):
        return f"nearest neighbour {rows[0] if rows else 'none'}, expected ({token}, {target})"
    return None


def write(site: Site, vip: str, token: str, vectors: list[list[float]]) -> str:
    """Table and index when missing, this run's rows, then the HNSW build over them; pgvector's version."""
    port = layout.WRITE_PORT
    # The check's own table is made again when its embedding column is not the one written here
    # (a DROP EXTENSION vector CASCADE drops that column and leaves the table).
    shape = query(site, vip, port, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
                  "to_regclass(%s) AND attname = 'embedding' AND NOT attisdropped", (TABLE,))
    if shape != [(f"vector({DIMENSIONS})",)]:
        query(site, vip, port, f"DROP TABLE IF EXISTS {TABLE}")
    query(site, vip, port, f"CREATE TABLE IF NOT EXISTS {TABLE} (token text NOT NULL, id int NOT NULL, "
          f"embedding vector({DIMENSIONS}) NOT NULL, at timestamptz NOT NULL DEFAULT now()); "
          f"CREATE INDEX IF NOT EXISTS {INDEX} ON {TABLE} USING hnsw (embedding vector_l2_ops)")
    query(site, vip, port, f"INSERT INTO {TABLE} (token, id, embedding) SELECT %s, n - 1, v::vector "
          "FROM unnest(%s::text[]) WITH ORDINALITY AS u(v, n)", (token, [vector_literal(v) for v in vectors]))
    query(site, vip, port, f"REINDEX INDEX {INDEX}")
    return str(query(site, vip, port, "SELECT extversion FROM pg_extension WHERE extname = 'vector'")[0][0])


async def check_vectors(site: Site, states: list[api.NodeState], bound_s: float) -> list[CheckResult]:
    vip = lb_vip(site)
    try:
        ((available, created),) = await asyncio.to_thread(
            query, site, vip, layout.WRITE_PORT,
            "SELECT (SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'), "
            "(SELECT count(*) FROM pg_extension WHERE extname = 'vector')")
    except psycopg.Error as exc:
        return [CheckResult(PRIMARY_NAME, False, describe(exc))]
    if not available:
        return [CheckResult(PRIMARY_NAME, False, "not available in this image: pgvector is not in its PostgreSQL "
                            "build (the production image from images/patroni has it)", available=False)]
    if not created:
        database = site.credentials[layout.MODULE]["POSTGRES_APP_DATABASE"]
        return [CheckResult(PRIMARY_NAME, False, f"available but not created in {database}: run `keybuzz install` "
                            "(it runs CREATE EXTENSION vector)")]
    token = str(uuid.uuid4())
    vectors, target, near = sample(token)
    try:
        version = await asyncio.to_thread(write, site, vip, token, vectors)
        rows, by_index = await asyncio.to_thread(nearest, site, vip, layout.WRITE_PORT, near)
        problem = answer_problem(rows, by_index, token, target)
        primary = CheckResult(PRIMARY_NAME, problem is None, problem or (
            f"pgvector {version}: {ROWS} vectors of {DIMENSIONS} dimensions, HNSW index {INDEX} rebuilt, nearest "
            f"neighbour id {target} found by the index on {vip}:{layout.WRITE_PORT}"))
        replicas = await on_replicas(site, states, bound_s, token, target, near)
    except psycopg.Error as exc:
        return [CheckResult(PRIMARY_NAME, False, describe(exc))]
    finally:
        await asyncio.to_thread(query, site, vip, layout.WRITE_PORT, f"DELETE FROM {TABLE} WHERE token = %s",
                                (token,))
    return [primary, replicas]


async def on_replicas(site: Site, states: list[api.NodeState], bound_s: float, token: str, target: int,
                      near: list[float]) -> CheckResult:
    """The same nearest-neighbour question on every replica directly, until each answers it right."""
    name = f"pgvector: the vectors and the HNSW index on every replica within {bound_s:g} s"
    replicas = [s for s in states if s.role == "replica" and s.reachable]
    if not replicas:
        return CheckResult(name, False, "no reachable replica")
    last: dict[str, str] = {}

    def reader(state: api.NodeState) -> Callable[[], Awaitable[bool]]:
        async def read() -> bool:
            try:
                rows, by_index = await asyncio.to_thread(nearest, site, state.ip, layout.PG_PORT, near)
            except psycopg.Error as exc:
                last[state.hostname] = describe(exc)
                raise
            problem = answer_problem(rows, by_index, token, target)
            if problem:
                last[state.hostname] = problem
            return problem is None
        return read

    seen, missing = await seen_within(bound_s, {r.hostname: reader(r) for r in replicas})
    reasons = "; ".join(f"{host}: {last[host]}" for host in missing if host in last)
    return CheckResult(name, not missing, seen_detail(seen, missing, bound_s) + (f" ({reasons})" if reasons else ""))
