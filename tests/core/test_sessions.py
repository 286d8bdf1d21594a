"""The Claude Code log reader: every shape from the format notes, the fixtures and the sample."""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pipeline.sample import SampleSummary
from pipeline.sessions import ReaderConfig, ingest_copy, read_projects, summarize
from pipeline.types import Conversation

FIXTURES = Path("/work/shared/fixtures/claude-code")
SID, OTHER = "s-1", "s-2"


def stamp(second: int) -> str:
    return f"2026-01-01T10:{second // 60:02d}:{second % 60:02d}.000Z"


def rec(kind: str, uuid: str, parent: str | None, t: int, **extra: Any) -> dict[str, Any]:
    base = {"parentUuid": parent, "isSidechain": False, "sessionId": SID, "cwd": "/w"}
    return base | {"type": kind, "uuid": uuid, "timestamp": stamp(t)} | extra


def user(uuid: str, parent: str | None, t: int, content: Any, **extra: Any) -> dict[str, Any]:
    return rec("user", uuid, parent, t, message={"role": "user", "content": content}, **extra)


def assistant(
    uuid: str, parent: str | None, t: int, blocks: list[dict], mid: str, rid: str | None = "r"
) -> dict[str, Any]:
    message = {"id": mid, "role": "assistant", "type": "message", "content": blocks}
    extra = {"requestId": f"{rid}-{mid}"} if rid else {}
    return rec("assistant", uuid, parent, t, message=message, **extra)


def text(s: str) -> dict[str, str]:
    return {"type": "text", "text": s}


def use(call: str, name: str = "Bash", **args: Any) -> dict[str, Any]:
    return {"type": "tool_use", "id": call, "name": name, "input": args or {"command": "ls"}}


def result(call: str, out: Any = "ok", error: bool = False) -> list[dict[str, Any]]:
    return [{"type": "tool_result", "tool_use_id": call, "content": out, "is_error": error}]


def write(root: Path, rel: str, records: list[Any], raw: str = "") -> Path:
    path = root / "proj" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "".join(json.dumps(r) + "\n" for r in records)
    path.write_text(body + raw, encoding="utf-8")
    return path


def chat(n: int = 2, parent: str | None = None, t0: int = 0) -> list[dict[str, Any]]:
    """`n` prompt/answer pairs on one chain."""
    out = []
    for i in range(n):
        out.append(user(f"u{t0 + i}", parent, t0 + 2 * i, f"question {t0 + i}"))
        out.append(assistant(f"a{t0 + i}", f"u{t0 + i}", t0 + 2 * i + 1, [text("answer")], f"m{i}"))
        parent = f"a{t0 + i}"
    return out


def read(root: Path, **config: Any) -> tuple[list[Conversation], Any]:
    return read_projects(root, ReaderConfig(**config))


def main_of(convs: list[Conversation], sid: str = SID) -> Conversation:
    (conv,) = [c for c in convs if c.kind == "main" and c.session_id == sid]
    return conv


def split_response() -> list[dict[str, Any]]:
    thinking = {"type": "thinking", "thinking": "plan", "signature": "c2lnbmF0dXJl"}
    return [
        user("u1", None, 0, "fix it"),
        assistant("a1", "u1", 1, [thinking], "m1"),
        assistant("a2", "a1", 2, [text("Looking.")], "m1"),
        assistant("a3", "a2", 3, [use("t1")], "m1"),
        user("r1", "a3", 4, result("t1")),
    ]


def test_split_assistant_records_merge_into_one_turn(tmp_path: Path) -> None:
    write(tmp_path, f"{SID}.jsonl", split_response())
    convs, report = read(tmp_path)
    turns = main_of(convs).turns
    assert [t.kind for t in turns] == ["human", "assistant", "tool_result"]
    merged = turns[1]
    assert [b.kind for b in merged.blocks] == ["thinking", "text", "tool_use"]
    assert merged.blocks[0].text == "plan" and "c2lnbmF0dXJl" not in repr(merged)
    assert merged.uuid == "a1" and merged.message_id == "m1"
    assert turns[2].parent_uuid == "a1"  # re-pointed at the merged turn
    assert report.merged_turns == 2
    without = main_of(read(tmp_path, keep_thinking=False)[0]).turns
    assert [b.kind for b in without[1].blocks] == ["text", "tool_use"]


def test_without_request_id_the_timestamp_must_match(tmp_path: Path) -> None:
    records = [
        user("u1", None, 0, "hi"),
        assistant("a1", "u1", 1, [text("one")], "m1", rid=None),
        assistant("a2", "a1", 1, [text("two")], "m1", rid=None),  # same response
        assistant("a3", "a2", 5, [text("three")], "m1", rid=None),  # a reused id
    ]
    write(tmp_path, f"{SID}.jsonl", records)
    convs, report = read(tmp_path)
    assert [t.text for t in main_of(convs).turns[1:]] == ["one\ntwo", "three"]
    assert report.merged_turns == 1


def test_turn_kinds_and_compaction(tmp_path: Path) -> None:
    caveat = "<local-command-caveat>Caveat: ...</local-command-caveat>"
    records = [
        user("u0", None, 0, caveat, isMeta=True),
        user("u1", "u0", 1, "<command-name>/model</command-name>"),
        user("u2", "u1", 2, "<local-command-stdout>Set model</local-command-stdout>"),
        user("u3", "u2", 3, [text("please run ls")]),
        assistant("a1", "u3", 4, [use("t1")], "m1"),
        user("r1", "a1", 5, result("t1", [text("a.txt")], error=True)),
        rec("system", "s1", "r1", 6, subtype="informational", content="hook ran"),
        assistant("a2", "s1", 7, [text("done")], "m2"),
        rec("system", "b1", None, 8, subtype="compact_boundary", logicalParentUuid="a2"),
        user("c1", "b1", 9, "This session is being continued...", isCompactSummary=True),
        user("u4", "c1", 10, "[Request interrupted by user]"),
        user("u5", "u4", 11, "next question"),
    ]
    write(tmp_path, f"{SID}.jsonl", records)
    convs, report = read(tmp_path)
    conv = main_of(convs)
    assert " ".join(t.kind for t in conv.turns) == (
        "meta command command human assistant tool_result assistant compact_summary meta human"
    )
    assert conv.turns[5].blocks[0].is_error and conv.turns[5].blocks[0].text == "a.txt"
    assert conv.compactions == 1 and report.compactions == 1
    assert report.skipped["system"] == 1
    assert conv.started == stamp(0) and conv.project == "proj" and conv.source == "claude_code"


def test_parallel_calls_orphans_and_cycles_stay_on_one_path(tmp_path: Path) -> None:
    records = [
        user("u1", None, 0, "check both"),
        assistant("a1", "u1", 1, [use("t1")], "m1"),
        assistant("a2", "a1", 2, [use("t2")], "m1"),
        user("r1", "a1", 3, result("t1")),  # each result hangs off its own tool_use record
        user("r2", "a2", 4, result("t2")),
        assistant("a3", "r2", 5, [text("both fine")], "m2"),
        user("u5", "gone", 6, "orphan question"),  # its parent was never written
        user("c1", "c2", 7, "loop one"),  # c1 <-> c2
        user("c2", "c1", 8, "loop two"),
    ]
    write(tmp_path, f"{SID}.jsonl", records)
    convs, report = read(tmp_path)
    assert len(convs) == 1 and report.rewinds == 0
    turns = convs[0].turns
    assert [t.uuid for t in turns] == ["u1", "a1", "r1", "r2", "a3", "u5", "c1", "c2"]
    assert [b.tool_use_id for b in turns[1].blocks] == ["t1", "t2"]


def test_rewind_gives_a_rejected_branch(tmp_path: Path) -> None:
    records = [
        *chat(1),
        user("old", "a0", 10, "make it blue"),
        assistant("x1", "old", 11, [text("blue it is")], "mx"),
        user("new", "a0", 20, "make it red"),  # typed later under the same parent
        assistant("y1", "new", 21, [text("red it is")], "my"),
        user("p1", "y1", 22, [text("thanks")]),
    ]
    write(tmp_path, f"{SID}.jsonl", records)
    convs, report = read(tmp_path)
    main = main_of(convs)
    (rejected,) = [c for c in convs if c.kind == "rejected_branch"]
    assert [t.uuid for t in main.turns] == ["u0", "a0", "new", "y1", "p1"]
    assert [t.uuid for t in rejected.turns] == ["u0", "a0", "old", "x1"]
    assert rejected.component == main.component and rejected.id == f"{SID}/rejected-1"
    assert rejected.turns[0] is not main.turns[0]  # own copies
    assert report.rewinds == 1 and report.conversations == 2


def test_resumed_session_is_deduplicated_into_one_component(tmp_path: Path) -> None:
    origin = chat(2)
    write(tmp_path, f"{SID}.jsonl", origin)
    replay = [r | {"sessionId": OTHER} for r in origin]
    more = [r | {"sessionId": OTHER} for r in chat(1, parent="a1", t0=10)]
    write(tmp_path, f"{OTHER}.jsonl", replay + more)
    write(tmp_path, "zz.jsonl", [r | {"sessionId": "zz"} for r in chat(1, t0=40)])
    convs, report = read(tmp_path)
    first, resumed = main_of(convs, SID), main_of(convs, OTHER)
    assert [t.uuid for t in first.turns] == ["u0", "a0", "u1", "a1"]
    assert all(t.session_id == SID for t in first.turns)  # the earliest copy is kept
    assert [t.uuid for t in resumed.turns] == ["u10", "a10"]
    assert report.skipped["duplicate_uuid"] == 4
    assert first.component == resumed.component == SID
    assert main_of(convs, "zz").component == "zz"


def test_three_generations_of_subagents(tmp_path: Path) -> None:
    prompt1, prompt2, prompt3 = "inline task", "beside task", "nested task"
    main = [
        user("u1", None, 0, "use agents"),
        assistant("a1", "u1", 1, [use("t1", "Task", prompt=prompt1)], "m1"),
        assistant("a2", "a1", 2, [use("t2", "Task", prompt=prompt2)], "m1"),
        assistant("a3", "a2", 3, [use("t3", "Agent", prompt=prompt3)], "m1"),
        # First generation: the agent's records sit inline in the main log.
        user("i1", None, 4, prompt1, isSidechain=True),
        assistant("i2", "i1", 5, [text("inline done")], "mi", rid="ri") | {"isSidechain": True},
        user("r1", "a1", 6, result("t1")),
        user("r2", "a2", 7, result("t2"), toolUseResult={"agentId": "b2", "status": "done"}),
        user("r3", "a3", 8, result("t3")),
    ]
    write(tmp_path, f"{SID}.jsonl", main)
    side = {"isSidechain": True, "agentId": "b2"}
    beside = [user("b1", None, 4, prompt2, **side), assistant("b3", "b1", 5, [text("x")], "mb")]
    write(tmp_path, "agent-b2.jsonl", beside)
    nested = [user("n1", None, 4, prompt3, isSidechain=True, agentId="n9")]
    write(tmp_path, f"{SID}/subagents/agent-n9.jsonl", nested)
    meta = {"toolUseId": "t3", "agentType": "Explore"}
    (tmp_path / "proj" / SID / "subagents" / "agent-n9.meta.json").write_text(json.dumps(meta))
    helper = [user("h1", None, 4, "summarize", isSidechain=True, agentId="acompact-1")]
    write(tmp_path, f"{SID}/subagents/agent-acompact-1.jsonl", helper)
    write(tmp_path, "agent-aprompt_suggestion-2.jsonl", [user("h2", None, 4, "suggest")])
    convs, report = read(tmp_path)
    agents = {c.id: c for c in convs if c.kind == "subagent"}
    assert agents.keys() == {f"{SID}/sidechain-i1", f"{SID}/agent-b2", f"{SID}/agent-n9"}
    calls = {cid: c.parent_tool_use_id for cid, c in agents.items()}
    assert calls == {f"{SID}/sidechain-i1": "t1", f"{SID}/agent-b2": "t2", f"{SID}/agent-n9": "t3"}
    assert {c.component for c in convs} == {SID}
    assert [t.uuid for t in main_of(convs).turns] == ["u1", "a1", "r1", "r2", "r3"]
    assert report.skipped["internal_agent"] == 2 and report.subagent_conversations == 3
    assert "h1" not in {t.uuid for c in convs for t in c.turns}


def test_persisted_output_comes_from_its_file_then_is_truncated(tmp_path: Path) -> None:
    full = "".join(f"line {i}\n" for i in range(5000))
    preview = f"<persisted-output>\nOutput too large.\n{full[:200]}\n...\n</persisted-output>"
    records = [
        user("u1", None, 0, "run"),
        assistant("a1", "u1", 1, [use("t1"), use("t2")], "m1"),
        user("r1", "a1", 2, result("t1", preview)),
        user("r2", "a1", 3, result("t2", preview)),  # its file is missing: the preview stays
    ]
    write(tmp_path, f"{SID}.jsonl", records)
    (tmp_path / "proj" / SID / "tool-results").mkdir(parents=True)
    (tmp_path / "proj" / SID / "tool-results" / "t1.txt").write_text(full)
    turns = main_of(read(tmp_path, max_tool_output_chars=10**6)[0]).turns
    assert turns[2].blocks[0].text == full and turns[3].blocks[0].text == preview
    short = main_of(read(tmp_path, max_tool_output_chars=1000)[0]).turns[2].blocks[0].text
    cut = len(full) - 1000
    assert short.startswith(full[:500]) and short.endswith(full[-500:])
    assert f"\n[... truncated {cut} chars ...]\n" in short


def test_images_are_stripped_and_repeated_lines_dropped(tmp_path: Path) -> None:
    image = {"type": "image", "source": {"type": "base64", "data": "iVBORw0KGgo" * 50}}
    pasted = user("u1", None, 0, [image, text("what is this?")])
    records = [
        pasted,
        assistant("a1", "u1", 1, [use("t1", "Read", file_path="x.png")], "m1"),
        user("r1", "a1", 2, result("t1", [image, text("(image)")])),
    ]
    line = json.dumps(pasted) + "\n"
    write(tmp_path, f"{SID}.jsonl", records, raw=line * 3)
    convs, report = read(tmp_path)
    turns = main_of(convs).turns
    assert turns[0].text == "what is this?" and len(turns[0].blocks) == 1
    assert turns[2].blocks[0].text == "(image)"
    assert "iVBORw0KGgo" not in repr(convs)
    assert report.skipped["image_stripped"] == 2 and report.skipped["duplicate_line"] == 3


DAMAGE: dict[str, tuple[str, str]] = {
    # name: (what replaces the line of record 2, the reason or "recovered")
    "bare_string": ('"[Request interrupted by user]"\n{line}', "bare_string"),
    "number": ("42\n{line}", "not_an_object"),
    "array": ('[1, {{"a": 2}}]\n{line}', "not_an_object"),
    "nul": ("\x00\x00\x00\x00{line}", "recovered"),
    "fused": ("{line}{next}", "recovered"),
    "truncated_then_whole": ("{half}{line}", "recovered"),
    "only_truncated": ("{half}\n{line}", "unparseable_line"),
}


@pytest.mark.parametrize("name", sorted(DAMAGE))
def test_damaged_lines_lose_nothing_else(tmp_path: Path, name: str) -> None:
    records = chat(3)
    lines = [json.dumps(r) for r in records]
    shape, reason = DAMAGE[name]
    half = lines[1][: len(lines[1]) // 2]
    damaged = shape.format(line=lines[2], next=lines[3], half=half)
    lines[2 : 4 if name == "fused" else 3] = [damaged]
    write(tmp_path, f"{SID}.jsonl", [], raw="\n".join(lines) + "\n")
    convs, report = read(tmp_path)
    assert [t.uuid for t in main_of(convs).turns] == [r["uuid"] for r in records]
    if reason == "recovered":
        assert report.recovered == (2 if name == "fused" else 1) and not report.skipped
    else:
        assert report.skipped == Counter({reason: 1}) and report.recovered == 0


@pytest.mark.parametrize("key", ["mesage", "messsage", "Message", "mesasge"])
def test_misspelled_message_key_is_repaired(tmp_path: Path, key: str) -> None:
    records = chat(3)
    records[2] = {(key if k == "message" else k): v for k, v in records[2].items()}
    write(tmp_path, f"{SID}.jsonl", records)
    convs, report = read(tmp_path)
    assert [t.uuid for t in main_of(convs).turns] == [r["uuid"] for r in records]
    assert main_of(convs).turns[2].text == "question 1"
    assert report.repaired == Counter({"misspelled_key": 1}) and not report.skipped


def test_misspelled_content_and_type_keys_are_repaired(tmp_path: Path) -> None:
    records = chat(2)
    records[0]["message"] = {"role": "user", "contnet": "question 0"}
    records[2] = {("tpye" if k == "type" else k): v for k, v in records[2].items()}
    write(tmp_path, f"{SID}.jsonl", records)
    convs, report = read(tmp_path)
    turns = main_of(convs).turns
    assert [t.uuid for t in turns] == [r["uuid"] for r in records]
    assert turns[0].text == "question 0" and turns[2].text == "question 1"
    assert report.repaired == Counter({"misspelled_key": 2}) and not report.skipped


def test_a_key_too_far_from_message_skips_only_that_record(tmp_path: Path) -> None:
    records = chat(3)
    records[2] = {("msg" if k == "message" else k): v for k, v in records[2].items()}
    write(tmp_path, f"{SID}.jsonl", records)
    convs, report = read(tmp_path)
    uuids = [t.uuid for t in main_of(convs).turns]
    assert uuids == [r["uuid"] for r in records if r is not records[2]]
    assert main_of(convs).turns[2].parent_uuid == "u1"  # the chain still runs through it
    assert report.skipped == Counter({"missing_message": 1}) and not report.repaired


@pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"{FIXTURES} is not mounted")
def test_real_fixture_logs_parse(tmp_path: Path) -> None:
    (tmp_path / "fixtures").mkdir()
    for path in FIXTURES.glob("*.jsonl"):
        shutil.copy(path, tmp_path / "fixtures" / path.name)
    convs, report = read_projects(tmp_path)
    by_id = {c.id: c for c in convs}
    assert set(by_id) == {"representative_messages", "session_b", "todowrite_examples"}
    assert [len(by_id[k].turns) for k in sorted(by_id)] == [11, 3, 11]
    assert by_id["todowrite_examples"].turns[3].kind == "tool_result"
    assert by_id["session_b"].turns[0].text.startswith("This is from a different session")
    assert report.skipped["metadata"] == 2 and report.recovered == 0


@pytest.fixture(scope="module")
def sample_read(sample: SampleSummary) -> tuple[list[Conversation], Any]:
    return read_projects(sample.projects_dir)


def test_sample_conversations(sample: SampleSummary, sample_read: Any) -> None:
    convs, report = sample_read
    mains = [c for c in convs if c.kind == "main"]
    assert len(mains) == sample.sessions == 50 and report.sessions == 50
    assert report.subagent_conversations == sample.subagent_logs
    assert report.compactions == 1 and [c.compactions for c in mains].count(1) == 1
    assert len({c.id for c in convs}) == len(convs)
    assert report.merged_turns > 50
    for conv in convs:
        ids = [t.message_id for t in conv.turns if t.message_id]
        assert len(ids) == len(set(ids)), "a split response was left unmerged"
    assert any(len(t.blocks) >= 3 for c in mains for t in c.turns if t.kind == "assistant")
    assert report.skipped["internal_agent"] == 1
    assert not any("acompact" in c.id for c in convs)
    summary = summarize(sample.projects_dir)
    assert summary == report.to_json() == json.loads(json.dumps(summary))


def test_sample_subagents_link_to_their_task_call(sample: SampleSummary, sample_read: Any) -> None:
    convs, _ = sample_read
    metas = sorted(sample.projects_dir.glob("*/*/subagents/agent-*.meta.json"))
    assert len(metas) == sample.subagent_logs
    for meta in metas:
        session = meta.parent.parent.name
        agent = meta.name.removesuffix(".meta.json")
        (conv,) = [c for c in convs if c.id == f"{session}/{agent}"]
        assert conv.kind == "subagent"
        assert conv.parent_tool_use_id == json.loads(meta.read_text())["toolUseId"]
        parent = main_of(convs, session)
        calls = {b.tool_use_id: b.tool_name for t in parent.turns for b in t.blocks if b.tool_name}
        assert calls[conv.parent_tool_use_id] == "Task"
        assert conv.component == parent.component


def test_sample_resume_shares_a_component(sample: SampleSummary, sample_read: Any) -> None:
    convs, report = sample_read
    mains = [c for c in convs if c.kind == "main"]
    shared = [k for k, n in Counter(c.component for c in mains).items() if n > 1]
    assert len(shared) == 1 and report.skipped["duplicate_uuid"] > 0
    origin, resumed = sorted((c for c in mains if c.component in shared), key=lambda c: c.started)
    assert origin.component == min(origin.session_id, resumed.session_id)
    assert not {t.uuid for t in origin.turns} & {t.uuid for t in resumed.turns}
    # Reading only the resumed session still sees its origin: same component, same turns.
    some, report = read_projects(sample.projects_dir, only_sessions={resumed.session_id})
    assert [c.id for c in some] == [resumed.id] and report.sessions == 1
    assert some[0].component == origin.component and len(some[0].turns) == len(resumed.turns)


def test_sample_persisted_output_is_read_from_its_file(sample: SampleSummary) -> None:
    (path,) = sample.projects_dir.glob("*/*/tool-results/*.txt")
    full = path.read_text(encoding="utf-8")
    convs, _ = read_projects(sample.projects_dir, ReaderConfig(max_tool_output_chars=10**7))
    outputs = [b for c in convs for t in c.turns for b in t.blocks if b.tool_use_id == path.stem]
    assert [b.text for b in outputs if b.kind == "tool_result"] == [full]


def test_sample_damage_is_accounted_for(sample: SampleSummary, sample_read: Any) -> None:
    convs, report = sample_read
    assert sample.damaged_lines == 5
    # truncated and bare are skipped; fused (two records) and NUL are recovered; the
    # misspelled key is repaired.
    assert report.skipped["unparseable_line"] == 1 and report.skipped["bare_string"] == 1
    assert report.skipped["missing_message"] == 0 and report.recovered == 3
    assert report.repaired == Counter({"misspelled_key": 1})
    turns = {t.uuid for c in convs for t in c.turns}
    messages = {t.message_id for c in convs for t in c.turns}
    for path in sample.projects_dir.rglob("*.jsonl"):
        for line in path.read_text(encoding="utf-8").split("\n"):  # only "\n" ends a record
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if "acompact" in path.name or not isinstance(record, dict):
                continue
            record.setdefault("message", record.pop("mesage", None))
            if record["message"] is None:
                continue
            if record["type"] == "user":
                assert record["uuid"] in turns, f"lost {record['uuid']} from {path.name}"
            elif record["type"] == "assistant":
                assert record["message"]["id"] in messages


def test_ingest_copy_is_incremental_and_never_deletes(
    sample: SampleSummary, tmp_path: Path
) -> None:
    src, dest = tmp_path / "src", tmp_path / "store"
    shutil.copytree(sample.projects_dir, src)
    files = sorted(p for p in src.rglob("*") if p.is_file())
    first = ingest_copy(src, dest)
    assert first["copied"] == len(files) and first["unchanged"] == 0
    assert first["bytes"] == sum(p.stat().st_size for p in files)
    assert ingest_copy(src, dest) == {"copied": 0, "unchanged": len(files), "bytes": 0}
    grown, gone, touched = sorted(src.glob("*/*.jsonl"))[:3]
    with grown.open("a", encoding="utf-8") as fh:
        fh.write("{}\n")
    gone.unlink()
    os.utime(touched, (1, 1))  # new mtime, same bytes: compared by content
    third = ingest_copy(src, dest)
    assert third["copied"] == 1 and third["unchanged"] == len(files) - 2
    assert (dest / gone.relative_to(src)).is_file()
    assert (dest / grown.relative_to(src)).read_bytes() == grown.read_bytes()
    assert not [p for p in dest.rglob("*.tmp")]
    assert read_projects(dest)[1].sessions == 50
