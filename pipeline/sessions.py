"""The Claude Code log reader: `~/.claude/projects` to one Conversation per linear path.

What is listed and opened (regular files only) lives in sessions_files; parsing in
sessions_parse and sessions_recover; the graph work (duplicates, split responses, rewinds,
components) in sessions_graph.
"""

from __future__ import annotations

import gc
import json
import os
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

from pipeline.sessions_files import (
    Entry,
    ingest_copy,
    list_folder,
    read_text,
    real_folder,
    regular_file,
)
from pipeline.sessions_graph import Components, Tree, dedupe, merge_split
from pipeline.sessions_model import LogFile, Node, ReaderConfig, ReadReport
from pipeline.sessions_parse import Parser
from pipeline.sessions_recover import LONE_SURROGATE, encodable, fix_surrogates
from pipeline.types import Conversation, ConversationKind

__all__ = [
    "ReadReport",
    "ReaderConfig",
    "ingest_copy",
    "project_folders",
    "read_projects",
    "session_logs",
    "summarize",
]
META_BYTES = 1 << 20  # an agent's meta.json holds a few ids


def read_projects(
    projects_dir: Path,
    config: ReaderConfig = ReaderConfig(),
    only_sessions: set[str] | None = None,
    known: dict[str, tuple[str, str]] | None = None,
    report: ReadReport | None = None,
) -> tuple[list[Conversation], ReadReport]:
    """Every conversation under `projects_dir` (one folder per project), or only those of
    `only_sessions`. With `known` (uuid -> (session, component) of records already ingested),
    only the chosen sessions' own files are parsed: a replayed record is dropped as a
    duplicate and links its session to the origin's component, so nothing is read twice.
    Without it, the chosen sessions' project folders are read whole. Files and folders that
    cannot be read are counted in the report (pass one to share it with a listing pass).
    """
    report = report if report is not None else ReadReport()
    out: list[Conversation] = []
    # Millions of long-lived objects and no cycles: the cyclic GC would only rescan them.
    collecting = gc.isenabled()
    gc.disable()
    try:
        projects = project_folders(Path(projects_dir), report)
        for project_dir, entries in _chosen(projects, only_sessions):
            out.extend(_read_project(project_dir, entries, config, report, only_sessions, known))
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


def project_folders(
    projects_dir: Path, report: ReadReport
) -> list[tuple[Path, list[os.DirEntry[str]]]]:
    """Each project folder with its entries; unreadable ones are reported. Only real folders:
    a linked one is reported, never followed (see sessions_files)."""
    if not os.path.lexists(projects_dir):
        return []  # no Claude Code history yet
    out = []
    for entry in list_folder(projects_dir, report.skip_path) or ():
        if real_folder(Path(entry.path), report.skip_path):
            entries = list_folder(Path(entry.path), report.skip_path)
            if entries is not None:
                out.append((Path(entry.path), entries))
    return out


def session_logs(projects_dir: Path, report: ReadReport) -> list[Entry]:
    """The top-level `<project>/<session>.jsonl` files that are regular files, in name order."""
    out = []
    for project_dir, entries in project_folders(projects_dir, report):
        for entry in entries:
            if _is_log(entry.name):
                found = regular_file(project_dir / entry.name, report.skip_path)
                if found is not None:
                    out.append(found)
    return sorted(out, key=lambda e: e.path)


def _is_log(name: str) -> bool:
    return name.endswith(".jsonl") and not name.startswith(".")  # as glob("*.jsonl") had it


def _chosen(
    projects: list[tuple[Path, list[os.DirEntry[str]]]], only: set[str] | None
) -> list[tuple[Path, list[os.DirEntry[str]]]]:
    if only is None:
        return projects
    # A session, its resumes and its agents share one project folder; ids found nowhere by
    # name (records whose sessionId differs from the file name) need every folder read.
    names = [{encodable(e.name) for e in entries} for _, entries in projects]
    hits = {
        sid: {i for i, n in enumerate(names) if f"{sid}.jsonl" in n or sid in n} for sid in only
    }
    if any(not found for found in hits.values()):
        return projects
    keep = set().union(*hits.values())
    return [p for i, p in enumerate(projects) if i in keep]


def _log_files(
    project_dir: Path, entries: list[os.DirEntry[str]], config: ReaderConfig, report: ReadReport
) -> list[LogFile]:
    files, folders = [], []
    for entry in entries:
        path = project_dir / entry.name
        if not _is_log(entry.name):
            if real_folder(path, report.skip_path):
                folders.append(path)
        elif config.internal(entry.name):
            report.skipped["internal_agent"] += 1
        elif regular_file(path, report.skip_path) is None:
            continue
        elif entry.name.startswith("agent-"):  # second generation: its records name the session
            agent = encodable(path.stem.removeprefix("agent-"))
            files.append(LogFile(path, project_dir, None, agent=agent))
        else:  # ids from file names must encode: undecodable bytes become `\xff` escapes
            files.append(LogFile(path, project_dir, encodable(path.stem)))
    for folder in folders:
        files.extend(_subagent_logs(folder, project_dir, config, report))
    return files


def _subagent_logs(
    folder: Path, project_dir: Path, config: ReaderConfig, report: ReadReport
) -> list[LogFile]:
    """Third generation: `<session>/subagents/agent-<id>.jsonl`, beside its meta.json."""
    inside = list_folder(folder, report.skip_path)  # an unreadable session folder is reported
    subagents = folder / "subagents"
    if not any(e.name == "subagents" for e in inside or ()):
        return []
    if not real_folder(subagents, report.skip_path):
        return []
    files = []
    for entry in list_folder(subagents, report.skip_path) or ():
        path = subagents / entry.name
        if not _is_log(entry.name):
            continue
        if config.internal(entry.name):
            report.skipped["internal_agent"] += 1
            continue
        if regular_file(path, report.skip_path) is None:
            continue
        call = _json_file(path.with_suffix(".meta.json"), report).get("toolUseId")
        agent = encodable(path.stem.removeprefix("agent-"))
        call = call if isinstance(call, str) else None
        files.append(LogFile(path, project_dir, encodable(folder.name), agent, call))
    return files


def _json_file(path: Path, report: ReadReport) -> dict[str, Any]:
    if not os.path.lexists(path):
        return {}
    text = read_text(path, report.skip_path, META_BYTES)
    try:
        value = json.loads(text) if text is not None else None
    except (ValueError, RecursionError):
        report.skip_path("unparseable_file", path, "not JSON")
        return {}
    if not isinstance(value, dict):
        return {}
    if fix_surrogates(value):
        report.repaired[LONE_SURROGATE] += 1
    return value


def _read_project(
    project_dir: Path,
    entries: list[os.DirEntry[str]],
    config: ReaderConfig,
    report: ReadReport,
    only: set[str] | None,
    known: dict[str, tuple[str, str]] | None = None,
) -> list[Conversation]:
    parser = Parser(config, report)
    links = Components()
    logs = _log_files(project_dir, entries, config, report)
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
        base = dict(session=session, project=encodable(project_dir.name), component=component)
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
