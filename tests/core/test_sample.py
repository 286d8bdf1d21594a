"""The sample workspace: deterministic, and carrying every quirk the readers must handle."""

from __future__ import annotations

import hashlib
import json
import random
import re
import sqlite3
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.sample import TERMINAL_CONVERSATIONS, SampleSummary, create_sample_workspace
from pipeline.sample_content import COMMANDS, make_typo

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> SampleSummary:
    return create_sample_workspace(tmp_path_factory.mktemp("sample") / "ws", seed=0)


def fingerprint(root: Path) -> dict[str, str]:
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def main_logs(ws: SampleSummary) -> list[Path]:
    return sorted(ws.projects_dir.glob("*/*.jsonl"))


def is_damaged(line: str) -> bool:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return True
    return not isinstance(record, dict) or (
        record.get("type") in ("user", "assistant") and "message" not in record
    )


def lines(path: Path) -> list[str]:
    # JSONL splits on "\n" only; splitlines() would also split inside JSON strings.
    return [line for line in path.read_text(encoding="utf-8").split("\n") if line]


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines(path) if not is_damaged(line)]


def conversation(path: Path) -> list[dict[str, Any]]:
    return [r for r in records(path) if r["type"] in ("user", "assistant", "system")]


def blocks(record: dict[str, Any]) -> list[dict[str, Any]]:
    content = record.get("message", {}).get("content")
    return content if isinstance(content, list) else []


def test_same_seed_gives_identical_bytes(ws: SampleSummary, tmp_path: Path) -> None:
    again = create_sample_workspace(tmp_path / "again", seed=0)
    assert fingerprint(again.root) == fingerprint(ws.root)
    assert again.sessions == ws.sessions and again.ratings == ws.ratings


def test_other_seed_gives_other_content(ws: SampleSummary, tmp_path: Path) -> None:
    other = create_sample_workspace(tmp_path / "other", seed=1)
    ours, theirs = fingerprint(ws.root), fingerprint(other.root)
    assert ours != theirs
    db = "feedback.sqlite"
    assert ours[db] != theirs[db]


def test_refuses_a_non_empty_out(tmp_path: Path) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="choose another --out") as error:
        create_sample_workspace(out)
    assert str(out) in str(error.value)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]  # no temp dir left behind


def test_accepts_an_existing_empty_dir(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    summary = create_sample_workspace(tmp_path / "empty", seed=3)
    assert summary.ratings_db.is_file() and summary.sessions > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


def test_layout_and_counts(ws: SampleSummary) -> None:
    assert ws.projects_dir == ws.root / "claude" / "projects"
    projects = sorted(p for p in ws.projects_dir.iterdir() if p.is_dir())
    assert 4 <= ws.projects == len(projects) <= 5
    assert 45 <= ws.sessions == len(main_logs(ws)) <= 55
    for log in main_logs(ws):
        rows = conversation(log)
        cwd = rows[0]["cwd"]
        assert log.parent.name == cwd.replace("/", "-").replace(".", "-")
        assert log.stem == rows[-1]["sessionId"]
        assert all(r["userType"] == "external" and r["isSidechain"] is False for r in rows)
    assert any("." in conversation(log)[0]["cwd"] for log in main_logs(ws))


def test_timestamps_span_about_ten_days(ws: SampleSummary) -> None:
    stamps = [r["timestamp"] for log in main_logs(ws) for r in conversation(log)]
    assert all(STAMP.match(stamp) for stamp in stamps)
    times = [datetime.fromisoformat(stamp.replace("Z", "+00:00")) for stamp in stamps]
    assert min(times).date().isoformat() == "2026-11-01"
    assert 8 <= (max(times) - min(times)).total_seconds() / 86400 <= 11


def test_damaged_lines_are_counted_and_everything_else_parses(ws: SampleSummary) -> None:
    every = [line for path in ws.projects_dir.rglob("*.jsonl") for line in lines(path)]
    damaged = [line for line in every if is_damaged(line)]
    assert len(damaged) == ws.damaged_lines == 5
    assert all("type" in json.loads(line) for line in every if line not in damaged)
    assert any("\x00" in line for line in damaged)
    assert any("}{" in line and "\x00" not in line for line in damaged)
    assert any(isinstance(json.loads(line), str) for line in damaged if line.startswith('"'))
    assert any('"mesage":' in line for line in damaged)
    assert sum(not path.read_bytes().endswith(b"\n") for path in main_logs(ws)) == 1  # truncated


def test_split_assistant_turns_share_message_id_and_chain(ws: SampleSummary) -> None:
    split = 0
    for log in main_logs(ws):
        rows = conversation(log)
        uuids = {r["uuid"] for r in rows}
        by_id: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for record in rows:
            if record["type"] == "assistant":
                by_id[record["message"]["id"]].append(record)
        for parts in by_id.values():
            assert len({p["requestId"] for p in parts}) == 1
            assert all(len(p["message"]["content"]) == 1 for p in parts)
            split += len(parts) > 1
            for earlier, later in zip(parts, parts[1:], strict=False):
                # a damaged line may have taken the record in between
                assert later["parentUuid"] == earlier["uuid"] or later["parentUuid"] not in uuids
    assert split >= 20
    thinking = [b for log in main_logs(ws) for r in conversation(log) for b in blocks(r)]
    assert any(b["type"] == "thinking" and len(b["signature"]) > 100 for b in thinking)


def test_tool_results_answer_tool_uses(ws: SampleSummary) -> None:
    names: Counter[str] = Counter()
    errors = 0
    for log in main_logs(ws):
        rows = conversation(log)
        intact = not any(map(is_damaged, lines(log)))
        uses = {b["id"]: b["name"] for r in rows for b in blocks(r) if b["type"] == "tool_use"}
        names.update(uses.values())
        for row in rows:
            for block in blocks(row):
                if block["type"] == "tool_result":
                    assert block["tool_use_id"] in uses or not intact
                    assert "toolUseResult" in row
                    errors += block["is_error"]
    assert {"Bash", "Read", "Edit", "Grep", "Task"} <= set(names)
    assert errors >= 3


def test_subagent_logs_link_to_their_task_call(ws: SampleSummary) -> None:
    metas = sorted(ws.projects_dir.glob("*/*/subagents/agent-*.meta.json"))
    agents = [p for p in ws.projects_dir.glob("*/*/subagents/agent-*.jsonl")]
    helpers = [p for p in agents if p.name.startswith("agent-acompact-")]
    assert len(helpers) == 1 and not helpers[0].with_suffix(".meta.json").exists()
    assert len(metas) == ws.subagent_logs == len(agents) - 1 >= 1
    for meta in metas:
        tool_use_id = json.loads(meta.read_text(encoding="utf-8"))["toolUseId"]
        session_dir = meta.parent.parent
        parent = conversation(session_dir.with_suffix(".jsonl"))
        tasks = {b["id"] for r in parent for b in blocks(r) if b.get("name") == "Task"}
        assert tool_use_id in tasks
        agent_id = meta.name.removeprefix("agent-").removesuffix(".meta.json")
        rows = records(meta.with_name(f"agent-{agent_id}.jsonl"))
        assert rows[0]["parentUuid"] is None
        assert all(r["isSidechain"] and r["agentId"] == agent_id for r in rows)
        assert all(r["sessionId"] == session_dir.name for r in rows)


def test_exactly_one_compaction(ws: SampleSummary) -> None:
    found = []
    for log in main_logs(ws):
        rows = conversation(log)
        for i, row in enumerate(rows):
            if row.get("subtype") == "compact_boundary":
                found.append((rows, i))
    assert len(found) == 1
    rows, i = found[0]
    boundary, summary = rows[i], rows[i + 1]
    assert boundary["type"] == "system" and boundary["parentUuid"] is None
    assert boundary["logicalParentUuid"] == rows[i - 1]["uuid"]
    assert set(boundary["compactMetadata"]) == {"trigger", "preTokens"}
    assert summary["isCompactSummary"] is True and summary["parentUuid"] == boundary["uuid"]
    assert "continued from a previous conversation" in summary["message"]["content"]


def test_one_resumed_session_replays_its_origin(ws: SampleSummary) -> None:
    owners: dict[str, list[Path]] = defaultdict(list)
    for log in main_logs(ws):
        for row in conversation(log):
            owners[row["uuid"]].append(log)
    shared = {tuple(logs) for logs in owners.values() if len(logs) > 1}
    assert len(shared) == 1
    first, second = (conversation(log) for log in next(iter(shared)))
    origin, resumed = (first, second) if len(first) < len(second) else (second, first)
    assert [r["uuid"] for r in resumed[: len(origin)]] == [r["uuid"] for r in origin]
    assert {r["sessionId"] for r in resumed} == {resumed[-1]["sessionId"]}
    assert resumed[-1]["sessionId"] != origin[0]["sessionId"]
    assert resumed[len(origin)]["parentUuid"] == origin[-1]["uuid"]


def test_persisted_tool_result_is_referenced(ws: SampleSummary) -> None:
    (saved,) = ws.projects_dir.glob("*/*/tool-results/*.txt")
    log = saved.parent.parent.with_suffix(".jsonl")
    results = [b for r in conversation(log) for b in blocks(r) if b["type"] == "tool_result"]
    (inline,) = [b["content"] for b in results if b["tool_use_id"] == saved.stem]
    assert inline.startswith("<persisted-output>") and inline.endswith("</persisted-output>")
    assert f"{log.stem}/tool-results/{saved.name}" in inline
    full = saved.read_text(encoding="utf-8")
    assert len(full) > 20_000 > len(inline) and full[:500] in inline


def test_non_conversation_and_meta_records(ws: SampleSummary) -> None:
    all_rows = [r for log in main_logs(ws) for r in records(log)]
    types = Counter(r["type"] for r in all_rows)
    assert types["summary"] and types["file-history-snapshot"] and types["ai-title"]
    uuids = {r["uuid"] for r in all_rows if "uuid" in r}
    assert all(r["leafUuid"] in uuids for r in all_rows if r["type"] == "summary")
    texts = [r["message"]["content"] for r in all_rows if r["type"] == "user"]
    texts = [t for t in texts if isinstance(t, str)]
    meta = [r for r in all_rows if r.get("isMeta") is True]
    assert meta and all("<local-command-caveat>" in r["message"]["content"] for r in meta)
    assert any(t.startswith("<command-name>/clear</command-name>") for t in texts)
    assert any(t.startswith("<local-command-stdout>") for t in texts)


def test_command_fix_task_is_everywhere(ws: SampleSummary) -> None:
    sessions, pairs = 0, []
    for log in main_logs(ws):
        rows = conversation(log)
        found = False
        for prompt, answer in zip(rows, rows[1:], strict=False):
            text = prompt["message"]["content"] if prompt["type"] == "user" else None
            if isinstance(text, str) and text.startswith("Fix this command: "):
                found = True
                if answer["parentUuid"] == prompt["uuid"]:  # not lost to a damaged line
                    pairs.append((text.removeprefix("Fix this command: "), blocks(answer)))
        sessions += found
    assert 20 <= sessions <= 30
    assert len(pairs) >= 30
    for typo, answer in pairs:
        (block,) = answer
        assert block["type"] == "text" and block["text"] in COMMANDS and block["text"] != typo


def test_fake_secrets_and_personal_data_are_present(ws: SampleSummary) -> None:
    text = "".join(p.read_text(encoding="utf-8") for p in main_logs(ws))
    assert re.search(r"AWS_SECRET_ACCESS_KEY=[A-Za-z0-9/+]{40}", text)
    assert re.search(r"AKIA[A-Z0-9]{16}", text)
    assert re.search(r"OPENAI_API_KEY=sk-proj-[A-Za-z0-9]{48}", text)
    assert re.search(r"[a-z]+\.[a-z]+@example\.com", text)
    assert re.search(r"\+1 415 555 \d{4}", text)


def test_ratings_db(ws: SampleSummary) -> None:
    db = sqlite3.connect(ws.ratings_db)
    try:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"conversations", "messages", "ratings"} <= tables
        columns = [row[1] for row in db.execute("PRAGMA table_info(ratings)")]
        assert columns == ["id", "message_id", "rating", "rated_at", "exported"]
        assert db.execute("SELECT count(*) FROM conversations").fetchone()[0] == ws.conversations
        assert 25 <= ws.conversations - TERMINAL_CONVERSATIONS <= 35  # + the terminal batch
        assert db.execute("SELECT count(*) FROM ratings").fetchone()[0] == ws.ratings
        sizes = [n for (n,) in db.execute("SELECT count(*) FROM messages GROUP BY conversation_id")]
        assert len(sizes) == ws.conversations and 1 <= sum(n < 4 for n in sizes) < 10
        positions = db.execute(
            "SELECT conversation_id, group_concat(position) FROM"
            " (SELECT * FROM messages ORDER BY position) GROUP BY conversation_id"
        ).fetchall()
        for _, joined in positions:
            assert [int(p) for p in joined.split(",")] == list(range(len(joined.split(","))))
        rated = db.execute(
            "SELECT m.role, r.rating, r.exported, r.rated_at, m.created_at"
            " FROM ratings r JOIN messages m ON m.id = r.message_id"
        ).fetchall()
        assert {row[0] for row in rated} == {"assistant"}
        votes = Counter(row[1] for row in rated)
        assert votes[1] > votes[-1] > 0
        assert {row[2] for row in rated} == {0, 1}
        assert all(row[3] > row[4] and STAMP.match(row[3]) for row in rated)
        fixes = db.execute("SELECT count(*) FROM messages WHERE content LIKE 'Fix this command: %'")
        assert fixes.fetchone()[0] >= 10
    finally:
        db.close()


def test_skills_have_front_matter(ws: SampleSummary) -> None:
    docs = sorted(ws.skills_dir.glob("*/SKILL.md"))
    assert 3 <= len(docs) <= 4
    for doc in docs:
        _, front, body = doc.read_text(encoding="utf-8").split("---\n", 2)
        meta = yaml.safe_load(front)
        assert meta["name"] == doc.parent.name and len(meta["description"]) > 20
        assert body.count("\n## ") >= 2


@pytest.mark.parametrize("command", COMMANDS)
def test_make_typo_always_differs(command: str) -> None:
    typos = {make_typo(command, random.Random(seed)) for seed in range(200)}
    assert command not in typos and len(typos) > 5
    assert make_typo(command, random.Random(7)) == make_typo(command, random.Random(7))


def test_commands_table() -> None:
    assert 35 <= len(COMMANDS) == len(set(COMMANDS)) <= 45
    with pytest.raises(ValueError):
        make_typo("", random.Random(0))
