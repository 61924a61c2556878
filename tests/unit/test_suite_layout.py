"""pytest imports test files by their basename (rootdir import mode): one name in two folders breaks
the whole run's collection, which a run of one folder does not show."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_no_test_file_name_is_used_in_two_folders() -> None:
    names = [path.name for path in TESTS.rglob("test_*.py")]
    assert len(names) > 20
    assert sorted({name for name in names if names.count(name) > 1}) == []
