"""The reader against hostile projects folders: each bad file or line is a counted skip with a
reason, and everything else in the folder is still read."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from pipeline.ingest import collect_days, session_days
from pipeline.sessions import ReaderConfig, ingest_copy, read_projects, summarize
from pipeline.types import Conversation

SID = "s-1"
REPO = Path(__file__).resolve().parents[2]


def stamp(second: int) -> str:
    return f"2026-01-01T10:{second // 60:02d}:{second % 60:02d}.000Z"


def user(uuid: str, parent: str | None, t: int, content: Any, sid: str = SID) -> dict[str, Any]:
    return {
        "type": "user",
        "uuid": uuid,
        "parentUuid": parent,
        "sessionId": sid,
        "timestamp": stamp(t),
        "message": {"role": "user", "content": content},
    }


def chat(sid: str = SID, n: int = 2) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    parent = None
    for i in range(n):
        out.append(user(f"{sid}-u{i}", parent, 2 * i, f"question {i}", sid))
        answer = {
            "id": f"{sid}-m{i}",
            "role": "assistant",
            "content": [{"type": "text", "text": "ok"}],
        }
        out.append(
            {
                "type": "assistant",
                "uuid": f"{sid}-a{i}",
                "parentUuid": f"{sid}-u{i}",
                "sessionId": sid,
                "timestamp": stamp(2 * i + 1),
                "requestId": f"r{i}",
                "message": answer,
            }
        )
        parent = f"{sid}-a{i}"
    return out


def jsonl(records: list[Any]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


@pytest.fixture
def projects(tmp_path: Path) -> Path:
    """A projects folder with one intact session, `proj/s-1.jsonl`."""
    root = tmp_path / "projects"
    (root / "proj").mkdir(parents=True)
    (root / "proj" / f"{SID}.jsonl").write_text(jsonl(chat()), encoding="utf-8")
    return root


def intact_read(convs: list[Conversation]) -> None:
    (main,) = [c for c in convs if c.session_id == SID and c.kind == "main"]
    assert [t.uuid for t in main.turns] == [r["uuid"] for r in chat()]


def finishes(work: Callable[[], Any], fifos: list[Path] = (), seconds: float = 60) -> Any:  # type: ignore[assignment]
    """Run `work` in a thread; fail (and unblock it) if it is still running after `seconds`."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = work()
        except BaseException as exc:  # reported below, in the test's thread
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    hung = thread.is_alive()
    if hung:  # a writer appearing lets a reader blocked in open() go on and see EOF
        for fifo in fifos:
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(5)
    assert not hung, f"still running after {seconds} s"
    if "error" in box:
        raise box["error"]
    return box["value"]


# --- files that are not regular files -----------------------------------------------------


def test_a_fifo_is_skipped_not_opened(projects: Path, tmp_path: Path) -> None:
    fifos = [projects / "proj" / "x.jsonl", projects / "proj" / SID / "subagents" / "agent-f.jsonl"]
    fifos[1].parent.mkdir(parents=True)
    for fifo in fifos:
        os.mkfifo(fifo)
    convs, report = finishes(lambda: read_projects(projects), fifos)
    intact_read(convs)
    assert report.skipped["not_a_regular_file"] == 2
    assert {p["detail"] for p in report.problems} == {"a FIFO"}
    days = finishes(lambda: session_days(projects, ZoneInfo("UTC")), fifos)
    assert days == {SID: "2026-01-01"}
    batch = finishes(lambda: collect_days(projects, ["2026-01-01"], ZoneInfo("UTC")), fifos)
    assert batch.report["claude_code"]["skipped"]["not_a_regular_file"] == 2
    copied = finishes(lambda: ingest_copy(projects, tmp_path / "store"), fifos)
    assert copied["copied"] == 1 and copied["skipped"] == {"not_a_regular_file": 2}


def test_a_folder_named_jsonl_is_skipped(projects: Path) -> None:
    (projects / "proj" / "x.jsonl").mkdir()
    (projects / "proj" / SID / "subagents" / "agent-d.jsonl").mkdir(parents=True)
    convs, report = read_projects(projects)
    intact_read(convs)
    assert report.skipped == Counter({"not_a_regular_file": 2})
    assert {p["detail"] for p in report.problems} == {"a folder"}


def test_dangling_self_and_looping_file_links_are_skipped(projects: Path, tmp_path: Path) -> None:
    proj = projects / "proj"
    (proj / "dangling.jsonl").symlink_to(proj / "missing.jsonl")
    (proj / "self.jsonl").symlink_to("self.jsonl")
    (proj / "a.jsonl").symlink_to("b.jsonl")
    (proj / "b.jsonl").symlink_to("a.jsonl")
    convs, report = finishes(lambda: read_projects(projects))
    intact_read(convs)
    assert report.skipped == Counter({"symlink_dangling": 1, "symlink_loop": 3})
    assert {Path(p["path"]).name for p in report.problems} == {
        *("dangling.jsonl", "self.jsonl", "a.jsonl", "b.jsonl")
    }
    copied = ingest_copy(projects, tmp_path / "store")
    assert copied["copied"] == 1
    assert copied["skipped"] == {"symlink_dangling": 1, "symlink_loop": 3}


def test_a_link_to_a_regular_file_is_followed(projects: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.jsonl"
    elsewhere.write_text(jsonl(chat("s-2")), encoding="utf-8")
    (projects / "proj" / "s-2.jsonl").symlink_to(elsewhere)
    convs, report = read_projects(projects)
    assert sorted(c.session_id for c in convs) == [SID, "s-2"] and not report.skipped
    ingest_copy(projects, tmp_path / "store")
    copy = tmp_path / "store" / "proj" / "s-2.jsonl"
    assert not copy.is_symlink() and copy.read_bytes() == elsewhere.read_bytes()


def test_folder_links_and_loops_are_reported_not_followed(projects: Path, tmp_path: Path) -> None:
    other = projects / "other"
    other.mkdir()
    (other / "s-2.jsonl").write_text(jsonl(chat("s-2")), encoding="utf-8")
    (projects / "proj" / "to-other").symlink_to(other)  # a loop between two folders
    (other / "to-proj").symlink_to(projects / "proj")
    (projects / "itself").symlink_to(projects)  # a link to the projects folder itself
    (projects / "proj" / SID).mkdir()
    (projects / "proj" / SID / "subagents").symlink_to(projects / "proj" / SID)
    convs, report = finishes(lambda: read_projects(projects))
    intact_read(convs)
    assert sorted(c.session_id for c in convs) == [SID, "s-2"]
    assert report.skipped == Counter({"symlink_to_folder": 4})
    copied = finishes(lambda: ingest_copy(projects, tmp_path / "store"))
    assert copied["copied"] == 2 and copied["skipped"] == {"symlink_to_folder": 4}
    assert read_projects(tmp_path / "store")[1].sessions == 2
    (tmp_path / "linked-root").symlink_to(projects)  # the projects folder itself may be a link
    assert read_projects(tmp_path / "linked-root")[1].sessions == 2


# --- lines -----------------------------------------------------------------------------


def test_nesting_past_the_limit_is_skipped(projects: Path) -> None:
    deep = '{"a":' * 1500 + '"bottom"' + "}" * 1500  # json.dumps itself cannot go this deep
    shallow: Any = "bottom"
    for _ in range(150):  # parses, but past max_depth: kept objects are re-serialized later
        shallow = [shallow]
    tool = {"type": "tool_use", "id": "t1", "name": "X", "input": {"q": shallow}}
    lines = [
        json.dumps(user("deep", None, 50, "x"))[:-1] + f', "extra": {deep}}}',
        "[" * 1500 + "]" * 1500,
        json.dumps(
            chat("s-2")[1] | {"message": {"id": "m", "role": "assistant", "content": [tool]}}
        ),
    ]
    with (projects / "proj" / f"{SID}.jsonl").open("a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    convs, report = read_projects(projects)
    intact_read(convs)
    assert report.skipped == Counter({"too_deep": 3})


def test_invalid_utf8_is_replaced_and_counted(projects: Path) -> None:
    line = json.dumps(user("bad", f"{SID}-a1", 10, "caf\u00e9 ok"), ensure_ascii=False).encode()
    line = line.replace("\u00e9".encode(), b"\xc3\x28")  # a broken two-byte sequence
    with (projects / "proj" / f"{SID}.jsonl").open("ab") as fh:
        fh.write(line + b"\n")
    convs, report = read_projects(projects)
    (main,) = convs
    assert [t.uuid for t in main.turns][:4] == [r["uuid"] for r in chat()]
    assert main.turns[-1].text == "caf\ufffd( ok"
    assert report.repaired == Counter({"invalid_utf8": 1}) and not report.skipped


def test_a_line_over_the_size_limit_is_skipped(projects: Path) -> None:
    big = json.dumps(user("big", f"{SID}-a1", 10, "x" * 5000))
    with (projects / "proj" / f"{SID}.jsonl").open("a", encoding="utf-8") as fh:
        fh.write(big + "\n")
    limit = max(len(json.dumps(r)) for r in chat())  # the longest intact line fits exactly
    convs, report = read_projects(projects, ReaderConfig(max_line_bytes=limit))
    intact_read(convs)
    assert report.skipped == Counter({"line_too_long": 1})
    assert read_projects(projects)[1].skipped == Counter()  # the default keeps it


@pytest.mark.parametrize("unit", ['{"', '{"a":1,', '{"a":"x', "\x00{"])
def test_a_pathological_line_reads_in_linear_time(projects: Path, unit: str) -> None:
    """Pathology guard: an 800 KB line of `{"` took 67-141 s (quadratic); now ~0.05 s."""
    with (projects / "proj" / f"{SID}.jsonl").open("a", encoding="utf-8") as fh:
        fh.write(unit * (800_000 // len(unit)) + "\n")
    start = time.perf_counter()
    convs, report = finishes(lambda: read_projects(projects), seconds=120)
    elapsed = time.perf_counter() - start
    intact_read(convs)
    assert report.skipped == Counter({"unparseable_line": 1})
    assert elapsed < 5.0, f"{elapsed:.1f} s for one 800 KB line"  # 10x+ over the linear time


# --- duplicate uuids ------------------------------------------------------------------------


def damaged_copies() -> dict[str, dict[str, Any]]:
    """Copies of record s-1-u1 as hand edits or damage leave them."""
    intact = chat()[2]
    no_message = {k: v for k, v in intact.items() if k != "message"}
    return {
        "misspelled_message": no_message | {"mesage": intact["message"]},
        "misspelled_content": intact | {"message": {"role": "user", "contnet": "question 1"}},
        "no_message": no_message,
        "empty_content": intact | {"message": {"role": "user", "content": []}},
        "nul_damaged_line": intact,
    }


@pytest.mark.parametrize("damaged_first", [True, False], ids=["damaged_first", "intact_first"])
@pytest.mark.parametrize("damage", sorted(damaged_copies()))
def test_the_intact_copy_of_a_uuid_wins(projects: Path, damage: str, damaged_first: bool) -> None:
    records = chat()
    bad = json.dumps(damaged_copies()[damage])
    if damage == "nul_damaged_line":
        bad = "\x00" * 8 + bad
    good = json.dumps(records[2])
    pair = [bad, good] if damaged_first else [good, bad]
    lines = [json.dumps(r) for r in records[:2]] + pair + [json.dumps(r) for r in records[3:]]
    (projects / "proj" / f"{SID}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    convs, report = read_projects(projects)
    intact_read(convs)
    assert convs[0].turns[2].text == "question 1"
    assert report.skipped["duplicate_uuid_less_complete"] == 1
    assert report.skipped["duplicate_uuid"] == 0


def test_the_intact_copy_wins_across_files(projects: Path) -> None:
    """A resume replays a record the origin had damaged: the text comes back."""
    origin = chat()
    origin[2] = damaged_copies()["no_message"]
    (projects / "proj" / f"{SID}.jsonl").write_text(jsonl(origin), encoding="utf-8")
    resumed = [r | {"sessionId": "s-2"} for r in chat()]
    resumed += [user("s-2-new", f"{SID}-a1", 100, "more", "s-2")]
    (projects / "proj" / "s-2.jsonl").write_text(jsonl(resumed), encoding="utf-8")
    convs, report = read_projects(projects)
    texts = {t.uuid: t.text for c in convs for t in c.turns}
    assert texts[f"{SID}-u1"] == "question 1"
    assert report.skipped["duplicate_uuid_less_complete"] == 1
    assert report.skipped["duplicate_uuid"] == 3


# --- side files ---------------------------------------------------------------------------


def test_bad_side_files_keep_the_conversation(projects: Path) -> None:
    """A FIFO or deep JSON as an agent's meta.json, a FIFO as a persisted tool output."""
    subagents = projects / "proj" / SID / "subagents"
    subagents.mkdir(parents=True)
    (subagents / "agent-x.jsonl").write_text(jsonl(chat("x")[:1]), encoding="utf-8")
    os.mkfifo(subagents / "agent-x.meta.json")
    (subagents / "agent-y.jsonl").write_text(jsonl(chat("y")[:1]), encoding="utf-8")
    (subagents / "agent-y.meta.json").write_text("[" * 100_000, encoding="utf-8")
    (projects / "proj" / SID / "tool-results").mkdir()
    fifos = [subagents / "agent-x.meta.json", projects / "proj" / SID / "tool-results" / "t1.txt"]
    os.mkfifo(fifos[1])
    call = {"type": "tool_result", "tool_use_id": "t1", "content": "<persisted-output>preview"}
    with (projects / "proj" / f"{SID}.jsonl").open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(user("r", f"{SID}-a1", 20, [call])) + "\n")
    convs, report = finishes(lambda: read_projects(projects), fifos)
    assert {c.id for c in convs} >= {SID, f"{SID}/agent-x", f"{SID}/agent-y"}
    main = next(c for c in convs if c.id == SID)
    assert main.turns[-1].blocks[0].text == "<persisted-output>preview"
    assert report.skipped == Counter({"not_a_regular_file": 2, "unparseable_file": 1})


# --- permissions ----------------------------------------------------------------------------

_UNPRIVILEGED = """
import json, sys
from pathlib import Path
from zoneinfo import ZoneInfo
from pipeline.ingest import collect_days
from pipeline.sessions import ingest_copy, read_projects
root = Path(sys.argv[1])
convs, report = read_projects(root / "projects")
batch = collect_days(root / "projects", ["2026-01-01"], ZoneInfo("UTC"))
copied = ingest_copy(root / "projects", root / "store")
print(json.dumps({"sessions": sorted(c.session_id for c in convs), "report": report.to_json(),
                  "days": batch.report, "copied": copied}))
"""


def _without_dac_override() -> None:
    """In the child, before exec: drop the capabilities that let root read through chmod 000
    (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH) from the bounding set, so the program it runs
    meets permissions as their owner would."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # 24: PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_unreadable_files_and_folders_are_reported(tmp_path: Path) -> None:
    projects = tmp_path / "projects"
    for name, sid in (("proj", SID), ("proj", "s-2"), ("locked", "s-3")):
        (projects / name).mkdir(parents=True, exist_ok=True)
        (projects / name / f"{sid}.jsonl").write_text(jsonl(chat(sid)), encoding="utf-8")
    (projects / "proj" / "s-2.jsonl").chmod(0)
    (projects / "locked").chmod(0)
    command = [sys.executable, "-c", _UNPRIVILEGED, str(tmp_path)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    root = os.geteuid() == 0
    try:
        run = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=300,
            preexec_fn=_without_dac_override if root else None,
        )  # fmt: skip
    except subprocess.SubprocessError as exc:
        pytest.skip(f"cannot drop root's file capabilities to test unreadable files: {exc}")
    finally:
        (projects / "locked").chmod(0o755)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["sessions"] == [SID]
    skipped = out["report"]["skipped"]
    assert skipped == {"permission_denied": 1, "unreadable_folder": 1}
    reasons = {Path(p["path"]).name: p["reason"] for p in out["report"]["problems"]}
    assert reasons == {"s-2.jsonl": "permission_denied", "locked": "unreadable_folder"}
    assert out["days"]["claude_code"]["skipped"] == skipped
    assert out["copied"]["copied"] == 1 and out["copied"]["skipped"] == skipped


def test_an_unreadable_projects_folder_is_reported(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "projects"
    not_a_folder.write_text("", encoding="utf-8")
    assert summarize(not_a_folder)["skipped"] == {"unreadable_folder": 1}
    assert summarize(tmp_path / "absent")["skipped"] == {}  # no history yet is no problem


# --- recovery keeps what it always found --------------------------------------------------


@pytest.mark.parametrize("shape", ["fused", "truncated_then_whole", "nul_then_fused"])
def test_big_records_on_damaged_lines_are_recovered(projects: Path, shape: str) -> None:
    """Records far longer than the first decoding window, cut inside a long string."""
    big = user("big", f"{SID}-a1", 10, "y" * 200_000)
    after = user("after", "big", 11, [{"type": "text", "text": "z" * 50_000}])
    a, b = json.dumps(big), json.dumps(after)
    line = {
        "fused": a + b,
        "truncated_then_whole": a[:150_000] + b,
        "nul_then_fused": "\x00" * 64 + a + b,
    }[shape]
    with (projects / "proj" / f"{SID}.jsonl").open("a", encoding="utf-8") as fh:
        fh.write(line + "\n")
    convs, report = read_projects(projects, ReaderConfig(max_tool_output_chars=10**6))
    texts = {t.uuid: t.text for t in convs[0].turns}
    assert texts.get("after") == "z" * 50_000
    assert ("big" in texts) == (shape != "truncated_then_whole")
    assert report.recovered == (1 if shape == "truncated_then_whole" else 2)
    assert not report.skipped


def test_an_ambiguous_misspelling_is_not_guessed(projects: Path) -> None:
    records = chat()
    message = records[2].pop("message")
    records[2] |= {"mesage": message, "messag": message}
    (projects / "proj" / f"{SID}.jsonl").write_text(jsonl(records), encoding="utf-8")
    _, report = read_projects(projects)
    assert report.skipped == Counter({"missing_message": 1}) and not report.repaired
