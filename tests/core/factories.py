"""Small hand-built conversations for the data-stage tests."""

from __future__ import annotations

from itertools import count

from pipeline.types import Block, Conversation, Turn

_ids = count()


def turn(kind: str, *blocks: Block, rating: int | None = None) -> Turn:
    role = {"human": "user", "tool_result": "user", "meta": "user", "assistant": "assistant"}[kind]
    n = next(_ids)
    return Turn(
        f"u{n}",
        None,
        role,
        kind,
        list(blocks),
        f"2026-11-02T10:{n % 60:02d}:00Z",
        "s1",
        rating=rating,
    )


def text(s: str) -> Block:
    return Block("text", s)


def tool(name: str, **inputs: object) -> Block:
    return Block("tool_use", tool_name=name, tool_input=dict(inputs), tool_use_id=f"t{next(_ids)}")


def result(s: str, error: bool = False) -> Block:
    return Block("tool_result", s, is_error=error)


def conv(
    turns: list[Turn], kind: str = "main", cid: str = "s1", component: str = "c1"
) -> Conversation:
    source = "ratings_db" if kind == "rated" else "claude_code"
    return Conversation(cid, source, kind, cid, "proj", turns, turns[0].timestamp, component)


def rich_session(cid: str = "s1", component: str = "c1") -> Conversation:
    """A tool-using, explained, completed coding session: tier A material."""
    turns = []
    for i in range(4):
        turns += [
            turn("human", text(f"The test in tests/test_api.py fails with a KeyError, step {i}")),
            turn(
                "assistant",
                Block("thinking", "look at the traceback first"),
                text("Let me run pytest first because the traceback shows where it fails."),
                tool("Bash", command="pytest tests/test_api.py -x"),
            ),
            turn("tool_result", result("1 failed: KeyError 'user' in api.py line 12")),
            turn("assistant", tool("Edit", file_path="api.py"), tool("Read", file_path="api.py")),
            turn("tool_result", result("ok")),
            turn("assistant", text("Fixed: the handler now returns 404, so the test passes.")),
        ]
    return conv(turns, cid=cid, component=component)
