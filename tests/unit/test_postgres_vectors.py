"""The pgvector check's pure parts: EXPLAIN plans captured from PostgreSQL 16.14 + pgvector 0.8.5,
pgvector's text form, and the sample whose nearest neighbour is known."""

from __future__ import annotations

import json
import math

from keybuzz.modules.postgres import vectors

# EXPLAIN (FORMAT JSON) of vectors.NEAREST_SQL with enable_seqscan off, then on (trimmed of costs).
HNSW_PLAN = json.loads("""[{"Plan": {"Node Type": "Limit", "Parallel Aware": false, "Plan Rows": 3,
  "Plans": [{"Node Type": "Index Scan", "Parent Relationship": "Outer", "Scan Direction": "Forward",
             "Index Name": "keybuzz_check_vector_hnsw", "Relation Name": "keybuzz_check_vector",
             "Alias": "keybuzz_check_vector", "Plan Rows": 64,
             "Order By": "(embedding <-> '[0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5]'::vector)"}]}}]""")
SORT_PLAN = json.loads("""[{"Plan": {"Node Type": "Limit", "Plan Rows": 3,
  "Plans": [{"Node Type": "Sort", "Parent Relationship": "Outer",
             "Sort Key": ["((embedding <-> '[0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5]'::vector))"],
             "Plans": [{"Node Type": "Seq Scan", "Parent Relationship": "Outer",
                        "Relation Name": "keybuzz_check_vector", "Alias": "keybuzz_check_vector"}]}]}}]""")


def test_the_hnsw_index_is_seen_in_the_plan_and_a_sort_is_not() -> None:
    assert vectors.index_used(HNSW_PLAN, vectors.INDEX)
    assert not vectors.index_used(SORT_PLAN, vectors.INDEX)
    assert not vectors.index_used(HNSW_PLAN, "another_index")
    assert not vectors.index_used([], vectors.INDEX)


def test_vector_literal_is_pgvector_text_form() -> None:
    literal = vectors.vector_literal([1, 0.25, -3.5])
    assert literal == "[1.0,0.25,-3.5]"
    assert json.loads(literal) == [1.0, 0.25, -3.5]  # pgvector's text form is a JSON array of numbers


def test_sample_aims_at_a_nearest_neighbour_far_ahead_of_the_next() -> None:
    vectors_, target, near = vectors.sample("token-a")
    assert len(vectors_) == vectors.ROWS and all(len(v) == vectors.DIMENSIONS for v in vectors_)
    distances = sorted((math.dist(v, near), i) for i, v in enumerate(vectors_))
    assert distances[0][1] == target
    assert distances[1][0] > 100 * distances[0][0]  # no approximate index mistakes the runner-up for it
    assert vectors.sample("token-a") == (vectors_, target, near)  # the token seeds it: replicas ask the same
    assert vectors.sample("token-b")[0] != vectors_


def test_answer_problems_name_what_is_wrong() -> None:
    assert vectors.answer_problem([("t", 7), ("t", 3)], True, "t", 7) is None
    assert "not answered by the HNSW index" in str(vectors.answer_problem([("t", 7)], False, "t", 7))
    assert vectors.answer_problem([("t", 3)], True, "t", 7) == "nearest neighbour ('t', 3), expected (t, 7)"
    assert "nearest neighbour ('other', 7)" in str(vectors.answer_problem([("other", 7)], True, "t", 7))
    assert "nearest neighbour none" in str(vectors.answer_problem([], True, "t", 7))
