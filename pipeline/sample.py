"""A deterministic sample workspace: Claude Code logs, a ratings DB and skills.

It gives the pipeline realistic input with the quirks its readers must survive (split turns,
subagents, compaction, resumes, persisted outputs, damaged lines, fake secrets) without a real
~/.claude. Plain stdlib, no dagster: the CLI and the tests call it directly.
"""

from __future__ import annotations

import json
import random
import re
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from pipeline.paths import atomic_dir
from pipeline.sample_chat import chat_conversations, skill_documents, terminal_conversations
from pipeline.sample_content import COMMANDS, make_typo
from pipeline.sample_logs import BASE_DATE, SPAN_DAYS, Ids, claude_logs, stamp

TERMINAL_CONVERSATIONS = 300  # x2 command fixes: enough for the tiny model to learn the task

SCHEMA = """
CREATE TABLE conversations(id TEXT PRIMARY KEY, title TEXT NOT NULL, created_at TEXT NOT NULL,
    source TEXT NOT NULL);
CREATE TABLE messages(id TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations(id), position INTEGER NOT NULL,
    role TEXT NOT NULL CHECK(role IN ('system','user','assistant')), content TEXT NOT NULL,
    created_at TEXT NOT NULL);
CREATE TABLE ratings(id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL REFERENCES messages(id), rating INTEGER NOT NULL
    CHECK(rating IN (-1, 1)), rated_at TEXT NOT NULL, exported INTEGER NOT NULL DEFAULT 0);
"""


@dataclass(frozen=True)
class SampleSummary:
    root: Path
    projects_dir: Path  # root / "claude" / "projects"
    ratings_db: Path  # root / "feedback.sqlite"
    skills_dir: Path  # root / "skills"
    golden: Path  # root / "golden.json": held-out cases eval_report scores per category
    sessions: int  # main session logs
    projects: int
    subagent_logs: int  # helper agents (agent-acompact-*) not counted
    damaged_lines: int
    conversations: int  # in the ratings DB
    ratings: int


def create_sample_workspace(out: Path, seed: int = 0) -> SampleSummary:
    """Write the sample workspace to `out` (absent or empty); the same seed gives the same bytes."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(
            f"{out} already exists and is not empty; remove it or choose another --out"
        )
    rng = random.Random(seed)
    ids = Ids(rng)
    logs, damaged = claude_logs(rng, ids)
    with atomic_dir(out) as tmp:
        for rel, text in sorted(logs.items()):
            path = tmp / "claude" / "projects" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(text.encode("utf-8"))
        # The terminal batch draws from its own generator: the rest stays byte for byte the same.
        terminal = terminal_conversations(random.Random(seed + 2), TERMINAL_CONVERSATIONS)
        conversations, ratings = _write_ratings(tmp / "feedback.sqlite", rng, ids, terminal)
        for name, text in skill_documents():
            (tmp / "skills" / name).mkdir(parents=True)
            (tmp / "skills" / name / "SKILL.md").write_text(text, encoding="utf-8")
        seen = "\n".join(logs.values()) + (tmp / "feedback.sqlite").read_bytes().decode("latin-1")
        cases = golden_cases(random.Random(seed + 1), seen)
        (tmp / "golden.json").write_text(json.dumps(cases, indent=1) + "\n", encoding="utf-8")
    main = [rel for rel in logs if rel.count("/") == 1]
    agents = [rel for rel in logs if "/subagents/agent-" in rel and rel.endswith(".jsonl")]
    return SampleSummary(
        root=out,
        projects_dir=out / "claude" / "projects",
        ratings_db=out / "feedback.sqlite",
        skills_dir=out / "skills",
        golden=out / "golden.json",
        sessions=len(main),
        projects=len({rel.split("/")[0] for rel in main}),
        subagent_logs=sum("agent-acompact-" not in rel for rel in agents),
        damaged_lines=damaged,
        conversations=conversations,
        ratings=ratings,
    )


def _write_ratings(
    path: Path, rng: random.Random, ids: Ids, extra: list[tuple[str, list]]
) -> tuple[int, int]:
    """The chat UI's thumbs-up/down store; returns (conversations, ratings)."""
    conversations, messages, ratings = [], [], []
    chats = chat_conversations(rng)
    for n, (title, chat) in enumerate(chats):
        # the oldest third went out in an earlier export
        exported = n < len(chats) // 3
        _add_chat(n, len(chats), exported, title, chat, rng, ids, conversations, messages, ratings)
    for n, (title, chat) in enumerate(extra):  # all new since the last export
        _add_chat(n, len(extra), False, title, chat, rng, ids, conversations, messages, ratings)
    with closing(sqlite3.connect(path)) as db:
        db.executescript(SCHEMA)
        db.executemany("INSERT INTO conversations VALUES (?, ?, ?, ?)", conversations)
        db.executemany("INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?)", messages)
        insert = "INSERT INTO ratings(message_id, rating, rated_at, exported) VALUES (?, ?, ?, ?)"
        db.executemany(insert, ratings)
        db.commit()
    return len(conversations), len(ratings)


def _add_chat(n, total, exported, title, chat, rng, ids, conversations, messages, ratings) -> None:
    """One conversation's rows; the n-th of `total` is dated n/total of the way through."""
    conversation, source = ids.uuid(), rng.choice(("webui", "webui", "ide"))
    clock = BASE_DATE + timedelta(days=n * SPAN_DAYS / total, hours=rng.randint(8, 18))
    conversations.append((conversation, title, stamp(clock), source))
    for position, message in enumerate(chat):
        clock += timedelta(milliseconds=rng.randint(4_000, 120_000))
        message_id, created = ids.uuid(), stamp(clock)
        messages.append(
            (message_id, conversation, position, message.role, message.content, created)
        )
        if message.role == "assistant" and (message.bad or rng.random() < 0.7):
            rating = -1 if message.bad or rng.random() < 0.05 else 1
            rated = stamp(clock + timedelta(seconds=rng.randint(3, 900)))
            ratings.append((message_id, rating, rated, int(exported)))


# Keyword questions about the sample's skills: recall of the rule's key words.
SKILL_QUESTIONS = (
    ("Should a Docker base image use the latest tag?", ["tag", "latest"]),
    ("How do I start debugging an unhealthy Kubernetes pod?", ["kubectl get pods"]),
    ("How should I force-push my own git branch?", ["--force-with-lease"]),
    ("What should I do before fixing a bug in Python?", ["failing test"]),
)


def golden_cases(rng: random.Random, seen: str) -> list[dict]:
    """The user-maintained golden file, as a user would write it: one fresh misspelling of
    every known command (never one that appears in the workspace) and a few skill questions."""
    used = set(re.findall(r"Fix this command: ([^\n\\\"]+)", seen))
    cases = []
    for command in COMMANDS:
        typo = make_typo(command, rng)
        while typo in used:
            typo = make_typo(command, rng)
        prompt = f"Fix this command: {typo}"
        cases.append({"prompt": prompt, "expected": command, "category": "command-fix"})
    for question, keywords in SKILL_QUESTIONS:
        cases.append({"prompt": question, "keywords": keywords, "category": "skills"})
    return cases
