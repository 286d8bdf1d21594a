"""The Claude Code log reader: `~/.claude/projects` to one Conversation per linear path.

Parsing lives in sessions_parse; the graph work (duplicates, split responses, rewinds,
components) in sessions_graph.
"""

from __future__ import annotations

import filecmp
import gc
import json
import os
import shutil
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

from pipeline.sessions_graph import Components, Tree, dedupe, merge_split
from pipeline.sessions_model import LogFile, Node, ReaderConfig, ReadReport
from pipeline.sessions_parse import Parser
from pipeline.types import Conversation, ConversationKind

__all__ = ["ReadReport", "ReaderConfig", "ingest_copy", "read_projects", "summarize"]


def read_projects(
    projects_dir: Path,
    config: ReaderConfig = ReaderConfig(),
    only_sessions: set[str] | None = None,
    known: dict[str, tuple[str, str]] | None = None,
) -> tuple[list[Conversation], ReadReport]:
    """Every conversation under `projects_dir` (one folder per project), or only those of
    `only_sessions`. With `known` (uuid -> (session, component) of records already ingested),
    only the chosen sessions' own files are parsed: a replayed record is dropped as a
    duplicate and links its session to the origin's component, so nothing is read twice.
    Without it, the chosen sessions' project folders are read whole.
    """
    report = ReadReport()
    out: list[Conversation] = []
    # Millions of long-lived objects and no cycles: the cyclic GC would only rescan them.
    collecting = gc.isenabled()
    gc.disable()
    try:
        for project_dir in _project_dirs(Path(projects_dir), only_sessions):
            out.extend(_read_project(project_dir, config, report, only_sessions, known))
    finally:
        if collecting:
            gc.enable()
    out.sort(key=lambda c: (c.started, c.id))
    report.conversations = len(out)
    report.sessions = sum(c.kind == "main" for c in out)
    report.subagent_conversations = sum(c.kind == "subagent" for c in out)
    report.rewinds = sum(c.kind == "rejected_branch" for c in out)
    return out, report


def summarize(projects_dir: Path) -> dict[str, Any]:
    """The read report, for `nightshift sessions summarize DIR --json`."""
    return read_projects(Path(projects_dir))[1].to_json()


def ingest_copy(projects_dir: Path, dest: Path) -> dict[str, int]:
    """Copy new or changed files into `dest` so history outlives Claude Code's cleanup.

    Unchanged means same size and mtime, or else same bytes; nothing in `dest` is deleted, and
    each file lands under a temporary name first so readers never see half of it.
    """
    projects_dir, dest = Path(projects_dir), Path(dest)
    copied = unchanged = nbytes = 0
    for src in sorted(p for p in projects_dir.rglob("*") if p.is_file()):
        target = dest / src.relative_to(projects_dir)
        stat = src.stat()
        if target.is_file():
            old = target.stat()
            if old.st_size == stat.st_size and (
                old.st_mtime_ns == stat.st_mtime_ns or filecmp.cmp(src, target, shallow=False)
            ):
                os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # next time: no read
                unchanged += 1
                continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            shutil.copy2(src, tmp)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        copied += 1
        nbytes += stat.st_size
    return {"copied": copied, "unchanged": unchanged, "bytes": nbytes}


def _project_dirs(projects_dir: Path, only: set[str] | None) -> list[Path]:
    dirs = sorted(p for p in projects_dir.iterdir() if p.is_dir()) if projects_dir.is_dir() else []
    if only is None:
        return dirs
    # A session, its resumes and its agents share one project folder; ids found nowhere by
    # name (records whose sessionId differs from the file name) need every folder read.
    hits = {
        sid: [d for d in dirs if (d / f"{sid}.jsonl").exists() or (d / sid).is_dir()]
        for sid in only
    }
    if any(not found for found in hits.values()):
        return dirs
    return sorted({d for found in hits.values() for d in found})


def _log_files(project_dir: Path, config: ReaderConfig, report: ReadReport) -> list[LogFile]:
    files = []
    for path in sorted(project_dir.glob("*.jsonl")):
        if config.internal(path.name):
            report.skipped["internal_agent"] += 1
        elif path.name.startswith("agent-"):  # second generation: its records name the session
            files.append(LogFile(path, project_dir, None, agent=path.stem.removeprefix("agent-")))
        else:
            files.append(LogFile(path, project_dir, path.stem))
    for path in sorted(project_dir.glob("*/subagents/*.jsonl")):
        if config.internal(path.name):
            report.skipped["internal_agent"] += 1
            continue
        meta = _json_file(path.with_suffix(".meta.json"))
        call = meta.get("toolUseId")
        agent = path.stem.removeprefix("agent-")
        session = path.parent.parent.name
        files.append(
            LogFile(path, project_dir, session, agent, call if isinstance(call, str) else None)
        )
    return files


def _json_file(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _read_project(
    project_dir: Path,
    config: ReaderConfig,
    report: ReadReport,
    only: set[str] | None,
    known: dict[str, tuple[str, str]] | None = None,
) -> list[Conversation]:
    parser = Parser(config, report)
    links = Components()
    logs = _log_files(project_dir, config, report)
    inherited: dict[str, str] = {}  # session -> component of the history it resumes
    if only is not None and known is not None:
        logs = [log for log in logs if log.session is None or log.session in only]
    per_file = [parser.read(log) for log in logs]
    if known:
        per_file = [_drop_known(nodes, known, report, inherited) for nodes in per_file]
    nodes = merge_split(dedupe(per_file, report, links), report, links)
    groups: dict[tuple[str, str | None], list[Node]] = defaultdict(list)
    for node in nodes:
        groups[(node.session, node.agent)].append(node)
    out: list[Conversation] = []
    for (session, agent), members in sorted(groups.items(), key=lambda kv: _group_order(*kv[0])):
        if only is not None and session not in only:
            continue
        report.compactions += sum(n.compaction for n in members)
        component = inherited.get(session) or links.find(session)
        base = dict(session=session, project=project_dir.name, component=component)
        if agent is None:
            out.extend(_emit(Tree(members), session, "main", base, None))
            continue
        if agent:
            trees = [(f"{session}/agent-{agent}", Tree(members))]
        else:  # inline sidechains without an agentId: one per tree
            forest = Tree(members)
            trees = [
                (f"{session}/sidechain-{r.uuid}", Tree(forest.preorder([r]))) for r in forest.roots
            ]
        for cid, tree in trees:
            call = parser.agent_calls.get((session, agent)) if agent else None
            out.extend(
                _emit(tree, cid, "subagent", base, call or _prompt_call(parser, tree, session))
            )
    return out


def _drop_known(
    nodes: list[Node],
    known: dict[str, tuple[str, str]],
    report: ReadReport,
    inherited: dict[str, str],
) -> list[Node]:
    """Records ingested before under another session are replays: drop them, keep the link."""
    out = []
    for node in nodes:
        owner = known.get(node.uuid)
        if owner is None or owner[0] == node.session:
            out.append(node)
        else:
            report.skipped["duplicate_uuid"] += 1
            inherited.setdefault(node.session, owner[1])
    return out


def _group_order(session: str, agent: str | None) -> tuple[str, bool, str]:
    return (session, agent is not None, agent or "")


def _prompt_call(parser: Parser, tree: Tree, session: str) -> str | None:
    """Older logs lack the agent id: match the agent's first prompt to a Task call's prompt."""
    for node in tree.ordered:
        if node.human and node.turn is not None:
            return parser.prompt_calls.get((session, node.turn.text.strip()))
    return None


def _emit(
    tree: Tree, cid: str, kind: ConversationKind, base: dict[str, str], call: str | None
) -> list[Conversation]:
    out = []
    rejected = 0
    for path_kind, path in tree.paths():
        turns = [n.turn for n in path if n.turn is not None]
        if not turns:
            continue
        if path_kind == "rejected_branch":
            rejected += 1
            # Own copies: later stages may edit turns in place, and the prefix is shared.
            turns = [replace(t, blocks=[replace(b) for b in t.blocks]) for t in turns]
        out.append(
            Conversation(
                id=cid if path_kind == "main" else f"{cid}/rejected-{rejected}",
                source="claude_code",
                kind=kind if path_kind == "main" else "rejected_branch",
                session_id=base["session"],
                project=base["project"],
                turns=turns,
                started=turns[0].timestamp,
                component=base["component"],
                parent_tool_use_id=call,
                compactions=sum(n.compaction for n in path),
            )
        )
    return out
