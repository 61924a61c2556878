"""Dry-run diffs parsed as unified diffs: real changes shown, secret values never; line edits."""

from __future__ import annotations

import re

from keybuzz.remote.actions import Action
from keybuzz.remote.diff import REDACTED_LINE, action_line, file_diff
from keybuzz.remote.edits import with_line
from keybuzz.render import FileSpec
from keybuzz.secrets import redact

SECRET_OLD = "OldS3cretValue0000aa"
SECRET_NEW = "NewS3cretValue1111bb"


def parse_unified(text: str) -> dict[str, object]:
    """Headers, hunk counts and the -/+ lines of a one-file unified diff (after our '#' summary line)."""
    lines = text.splitlines()
    assert lines[0].startswith("# ")
    assert lines[1].startswith("--- ") and lines[2].startswith("+++ ")
    hunks = [re.fullmatch(r"@@ -(\d+),?(\d*) \+(\d+),?(\d*) @@", line) for line in lines if line.startswith("@@")]
    assert hunks and all(hunks)
    body = [line for line in lines[3:] if not line.startswith("@@")]
    return {"from": lines[1][4:], "to": lines[2][4:], "hunks": hunks,
            "removed": [line[1:] for line in body if line.startswith("-")],
            "added": [line[1:] for line in body if line.startswith("+")]}


def action_for(spec: FileSpec, summary: str = "content") -> Action:
    return Action("file", spec.path, summary, "", stdin=spec.content, file=spec)


def test_plain_file_diff_shows_changed_lines_only() -> None:
    spec = FileSpec("/opt/keybuzz/demo/demo.conf", "a=1\nb=2\nc=3\n")
    parsed = parse_unified(file_diff("demo-1", action_for(spec), "a=1\nb=1\nc=3\n"))
    assert parsed["from"] == parsed["to"] == "demo-1:/opt/keybuzz/demo/demo.conf"
    assert parsed["removed"] == ["b=1"] and parsed["added"] == ["b=2"]


def test_new_file_diff_is_against_dev_null() -> None:
    spec = FileSpec("/etc/x.conf", "one\ntwo\n")
    parsed = parse_unified(file_diff("h", action_for(spec, "create"), None))
    assert parsed["from"] == "/dev/null" and parsed["added"] == ["one", "two"] and parsed["removed"] == []


def test_secret_file_diff_has_only_redacted_lines() -> None:
    spec = FileSpec("/opt/keybuzz/demo/demo.env", f"USER=demo\nDEMO_PASSWORD={SECRET_NEW}\n", secret=True)
    text = file_diff("demo-1", action_for(spec), "\n")
    parsed = parse_unified(text)
    assert SECRET_NEW not in text and SECRET_OLD not in text and "USER=demo" not in text
    assert parsed["added"] == [REDACTED_LINE, REDACTED_LINE] and parsed["removed"] == [REDACTED_LINE]
    hunk = parsed["hunks"][0]
    assert (int(hunk[2]), int(hunk[4])) == (1, 2)  # type: ignore[index]
    assert "secret" in text.splitlines()[0]


def test_registered_secret_in_a_plain_file_is_still_redacted() -> None:
    redact.add(SECRET_OLD)
    spec = FileSpec("/etc/leaky.conf", f"password={SECRET_OLD}\n")
    text = file_diff("h", action_for(spec, "create"), None)
    assert SECRET_OLD not in text
    assert SECRET_OLD not in action_line("h", Action("container", SECRET_OLD, "create", ""))


def test_metadata_change_is_a_summary_line() -> None:
    spec = FileSpec("/etc/x.conf", "x\n", mode=0o640)
    text = file_diff("h", Action("metadata", spec.path, "mode 0644 -> 0640", "", file=spec), "x\n")
    assert text.splitlines() == ["# h /etc/x.conf: mode 0644 -> 0640 (mode 0640, owner root)"]


def test_with_line_appends_replaces_and_dedupes() -> None:
    assert with_line("", "a = 1") == "a = 1\n"
    assert with_line("x\n", "a = 1") == "x\na = 1\n"
    assert with_line("x\na = 1\n", "a = 1") == "x\na = 1\n"
    text = "x\nvm.swappiness=60\ny\nvm.swappiness = 30\n"
    assert with_line(text, "vm.swappiness = 10", r"^\s*vm\.swappiness\s*=").splitlines() == [
        "x", "vm.swappiness = 10", "y"]
