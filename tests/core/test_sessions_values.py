"""The reader against hostile values: secrets in outputs cut to head and tail, integers past
Python's digit limit, lone surrogates and undecodable file names; each is a counted repair and
what is read can always be written."""

from __future__ import annotations

import json
import os
import random
import re
import string
from collections import Counter
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from pipeline.ingest import collect_days, read_jsonl, session_days, write_day
from pipeline.scrub_patterns import PLACEHOLDER_RE
from pipeline.sessions import ReaderConfig, read_projects
from pipeline.sessions_parse import truncate
from pipeline.types import Block, Conversation, Turn
from tests.core.test_sessions_hostile import SID, chat, jsonl, user

LIMIT = ReaderConfig().max_tool_output_chars


@pytest.fixture
def projects(tmp_path: Path) -> Path:
    root = tmp_path / "projects"
    (root / "proj").mkdir(parents=True)
    (root / "proj" / f"{SID}.jsonl").write_text(jsonl(chat()), encoding="utf-8")
    return root


def append(projects: Path, raw: bytes) -> None:
    with (projects / "proj" / f"{SID}.jsonl").open("ab") as fh:
        fh.write(raw + b"\n")


def writes(tmp_path: Path, convs: list[Conversation]) -> list[dict[str, Any]]:
    """What write_day stores of `convs`, read back: the night's step that used to fail."""
    folder = write_day(tmp_path / "day", convs, {})
    return read_jsonl(folder / "conversations.jsonl")


# --- secrets in long tool outputs --------------------------------------------------------


def pem_body(seed: int) -> list[str]:
    rng = random.Random(seed)
    alphabet = string.ascii_letters + string.digits + "+/"
    return ["".join(rng.choice(alphabet) for _ in range(64)) for _ in range(25)]


def tool_exchange(output: str) -> list[dict[str, Any]]:
    call = {
        "type": "assistant",
        "uuid": "call",
        "parentUuid": f"{SID}-a1",
        "sessionId": SID,
        "timestamp": "2026-01-01T10:00:10.000Z",
        "message": {
            "id": "m-call",
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "cat k"}}
            ],
        },
    }
    result = user("result", "call", 11, [{"type": "tool_result", "tool_use_id": "t1"}])
    result["message"]["content"][0]["content"] = output
    return [call, result]


def tool_text(convs: list[Conversation]) -> str:
    (text,) = [b.text for t in convs[0].turns for b in t.blocks if b.kind == "tool_result"]
    return text


@pytest.mark.parametrize("where", ["head_cut", "tail_cut", "middle", "both_ends", "both_cuts"])
@pytest.mark.parametrize("size", [30_000, 400_000])  # scrubbed whole; scrubbed beside the cuts
def test_a_key_straddling_the_cut_is_scrubbed_whole(projects: Path, where: str, size: int) -> None:
    """Cut first, the key lost its BEGIN line and the rest no longer looked like a key."""
    body = pem_body(1)
    pem = (
        "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(body) + "\n-----END RSA PRIVATE KEY-----\n"
    )
    filler = "log line ok\n" * (size // 12)
    head, tail = LIMIT // 2, LIMIT - LIMIT // 2
    other = pem_body_pem(2)
    output = {
        "head_cut": filler[: head - len(pem) // 2] + pem + filler,
        "tail_cut": filler + pem + "x" * (tail - len(pem) // 2),
        "middle": filler + pem + filler,
        "both_ends": pem + filler + other,
        "both_cuts": filler[: head - 100] + pem + filler + other + "x" * (tail - 100),
    }[where]
    assert len(output) > LIMIT
    (projects / "proj" / f"{SID}.jsonl").write_text(jsonl(chat() + tool_exchange(output)))
    convs, report = read_projects(projects)
    text = tool_text(convs)
    assert "truncated" in text and len(text) <= LIMIT + 100
    assert not any(line in text for line in body + pem_body(2))
    assert "PRIVATE KEY" not in text
    # Far from both cuts, a dropped key is never scanned: it is not kept either.
    far = where == "middle" and size > 2 * 65_536
    assert report.scrubbed["private_key"] == (2 if where.startswith("both") else 0 if far else 1)
    assert report.to_json()["scrubbed"] == dict(report.scrubbed)


def pem_body_pem(seed: int) -> str:
    body = "\n".join(pem_body(seed))
    return f"-----BEGIN OPENSSH PRIVATE KEY-----\n{body}\n-----END OPENSSH PRIVATE KEY-----\n"


def test_short_outputs_are_left_to_the_scrub_stage(projects: Path) -> None:
    """Only outputs that will be cut are scrubbed here: the cost stays on big outputs."""
    key = pem_body_pem(3)
    (projects / "proj" / f"{SID}.jsonl").write_text(jsonl(chat() + tool_exchange(key)))
    convs, report = read_projects(projects)
    assert tool_text(convs) == key and not report.scrubbed


@pytest.mark.parametrize("which", ["head", "tail"])
@pytest.mark.parametrize("lines", [3000, 30_000])  # scrubbed whole; beside the cuts
def test_the_cut_never_splits_a_placeholder(which: str, lines: int) -> None:
    placeholder = "<SECRET:private_key>"
    filler = "log line ok\n" * lines
    for shift in range(-len(placeholder) - 2, 3):
        if which == "head":
            text = filler[: LIMIT // 2 + shift] + placeholder + filler
        else:
            text = filler + placeholder + filler[: LIMIT - LIMIT // 2 + shift]
        found: Counter[str] = Counter()
        out = truncate(text, LIMIT, found)
        whole = len(PLACEHOLDER_RE.findall(out))
        assert out.count("SECRET") == out.count("key>") == out.count("<SEC") == whole, shift
        dropped = int(re.search(r"truncated (\d+) chars", out).group(1))  # type: ignore[union-attr]
        assert len(out) - len(f"\n[... truncated {dropped} chars ...]\n") + dropped == len(text)
        assert not found  # a placeholder is no finding


# --- integers past the digit limit ---------------------------------------------------------


def long_int_lines() -> dict[str, bytes]:
    digits = b"1" * 4400
    record = json.dumps(user("big", f"{SID}-a1", 10, "kept text")).encode()
    intact = json.dumps(user("intact", f"{SID}-a1", 12, "INTACT RECORD")).encode()
    result = json.dumps(user("res", f"{SID}-a1", 10, "in result")).encode()
    return {
        "in_tool_use_result": result[:-1] + b', "toolUseResult": {"n": ' + digits + b"}}",
        "in_message": record.replace(
            b'"content": "kept text"', b'"content": "kept text", "n": ' + digits
        ),
        "fused_with_a_cut_record": record[:-1]
        + b', "n": '
        + digits
        + b'}{"type":"user","uuid":"u8"',
        "prefix_before_an_intact_record": b'{"n":' + b"7" * 5000 + b"," + intact,
        "negative": record[:-1] + b', "n": -' + digits + b"}",
    }


@pytest.mark.parametrize("shape", list(long_int_lines()))
def test_a_long_integer_keeps_its_record(projects: Path, tmp_path: Path, shape: str) -> None:
    append(projects, long_int_lines()[shape])
    convs, report = read_projects(projects)
    texts = {t.uuid: t.text for t in convs[0].turns}
    assert [r["uuid"] for r in chat()] == list(texts)[:4]  # the rest of the file is read
    expected = {
        "in_tool_use_result": "res",
        "prefix_before_an_intact_record": "intact",
    }.get(shape, "big")
    assert expected in texts
    assert report.repaired == Counter({"long_integer": 1}), report.to_json()
    assert not report.skipped
    assert writes(tmp_path, convs)


def test_a_long_integer_in_the_first_record_still_dates_the_session(projects: Path) -> None:
    first = json.dumps(user("big", None, 0, "hi")).encode()
    path = projects / "proj" / f"{SID}.jsonl"
    path.write_bytes(first[:-1] + b', "n": ' + b"9" * 5000 + b"}\n" + path.read_bytes())
    assert session_days(projects, ZoneInfo("UTC")) == {SID: "2026-01-01"}


# --- lone surrogates and undecodable file names --------------------------------------------


@pytest.mark.parametrize(
    ("escape", "expected"),
    [
        ("\\ud83d", "emoji cut here: \ufffd"),  # a high surrogate cut from its pair
        ("\\uD83D", "emoji cut here: \ufffd"),  # upper-case hex
        ("\\ude00", "emoji cut here: \ufffd"),  # a low one alone
        ("\\ude00\\ud83d", "emoji cut here: \ufffd\ufffd"),  # a pair in the wrong order
        ("\\ud83d\\ude00", "emoji cut here: \U0001f600"),  # a whole pair: no repair
    ],
)
def test_lone_surrogates_become_replacement_characters(
    projects: Path, tmp_path: Path, escape: str, expected: str
) -> None:
    record = json.dumps(user("cut", f"{SID}-a1", 10, "emoji cut here: XX"))
    append(projects, record.replace("XX", escape).encode())
    convs, report = read_projects(projects)
    assert convs[0].turns[-1].text == expected
    repaired = 0 if expected.endswith("\U0001f600") else 1
    assert report.repaired == Counter({"lone_surrogate": repaired} if repaired else {})
    (written,) = writes(tmp_path, convs)
    assert written["turns"][-1]["blocks"][0]["text"] == expected


def test_lone_surrogates_in_keys_tool_results_and_ids(projects: Path, tmp_path: Path) -> None:
    records = chat() + tool_exchange("output \\ud800 end")
    records[1]["message"]["content"][0]["text"] = "answer \\udbff"
    records[0]["cwd\\udc00"] = "/home/\\ud83d"
    raw = jsonl(records).replace("\\\\u", "\\u")  # json.dumps escaped the backslashes
    (projects / "proj" / f"{SID}.jsonl").write_text(raw, encoding="utf-8")
    convs, report = read_projects(projects)
    assert "answer \ufffd" in [t.text for t in convs[0].turns]
    assert tool_text(convs) == "output \ufffd end"
    assert report.repaired["lone_surrogate"] == 3  # three records
    assert writes(tmp_path, convs)


def test_undecodable_file_names_give_writable_ids(projects: Path, tmp_path: Path) -> None:
    folder = os.fsencode(projects / "proj")
    os.rename(
        os.path.join(folder, f"{SID}.jsonl".encode()), os.path.join(folder, b"\xff\xfe.jsonl")
    )
    records = [{k: v for k, v in r.items() if k != "sessionId"} for r in chat("s-2")]
    (projects / "proj" / "second.jsonl").write_text(jsonl(records), encoding="utf-8")
    odd = os.path.join(os.fsencode(projects), b"pr\xe9oj")
    os.rename(folder, odd)
    convs, report = read_projects(projects)
    assert not report.skipped
    assert sorted(c.id for c in convs) == ["\\xff\\xfe", "second"]
    assert {c.project for c in convs} == {"pr\\xe9oj"}
    written = writes(tmp_path, convs)
    assert sorted(c["project"] for c in written) == ["pr\\xe9oj"] * 2


def test_undecodable_session_file_without_session_ids(projects: Path, tmp_path: Path) -> None:
    records = [{k: v for k, v in r.items() if k != "sessionId"} for r in chat()]
    folder = os.fsencode(projects / "proj")
    os.remove(os.path.join(folder, f"{SID}.jsonl".encode()))
    with open(os.path.join(folder, b"\xff\xfe.jsonl"), "w", encoding="utf-8") as fh:
        fh.write(jsonl(records))
    convs, _ = read_projects(projects)
    assert [c.id for c in convs] == ["\\xff\\xfe"]
    assert [c["session_id"] for c in writes(tmp_path, convs)] == ["\\xff\\xfe"]


def test_write_day_replaces_what_the_reader_missed(tmp_path: Path) -> None:
    """The last guard: a lone surrogate from elsewhere never fails the night."""
    turn = Turn(
        uuid="u",
        parent_uuid=None,
        role="user",
        kind="human",
        blocks=[Block("text", text="half \ud83d")],
        timestamp="2026-01-01T10:00:00Z",
        session_id="s",
    )
    conv = Conversation("c", "claude_code", "main", "s", "p", [turn], "2026-01-01T10:00:00Z")
    report: dict[str, Any] = {}
    folder = write_day(tmp_path / "day", [conv], report)
    (written,) = read_jsonl(folder / "conversations.jsonl")
    assert written["turns"][0]["blocks"][0]["text"] == "half \ufffd"
    assert report["unencodable_replaced"] == 1


def test_a_night_reads_and_writes_an_undecodable_session_file(
    projects: Path, tmp_path: Path
) -> None:
    """The listing (session_days) and the reader name the session alike, so it is chosen."""
    folder = os.fsencode(projects / "proj")
    os.rename(
        os.path.join(folder, f"{SID}.jsonl".encode()), os.path.join(folder, b"\xff\xfe.jsonl")
    )
    batch = collect_days(projects, ["2026-01-01"], ZoneInfo("UTC"))
    (conv,) = batch.days["2026-01-01"]
    assert conv.id == "\\xff\\xfe" and batch.report["sessions_read"] == 1
    assert writes(tmp_path, [conv])


def test_a_skipped_file_with_an_undecodable_name_is_reported_writably(projects: Path) -> None:
    folder = os.fsencode(projects / "proj")
    os.mkfifo(os.path.join(folder, b"\xff.jsonl"))
    _, report = read_projects(projects)
    assert report.skipped == Counter({"not_a_regular_file": 1})
    (problem,) = report.problems
    assert problem["path"].endswith("/proj/\\xff.jsonl")
    json.dumps(report.to_json(), ensure_ascii=False).encode()
