"""The scrubber: recall on the betterleaks positive cases, benign lines left alone, and speed,
today's scrubber (this tree) against the one at git HEAD, side by side in one run.

Speed is measured on clean session-like text: code, prose, logs, JSON and shell output with no
secrets but plenty of near misses (`api_key=api_key`, `max_tokens`, versions, dates, IPs,
`@decorators`, URLs), so every detector's gate opens and its regex runs. Recall and benign
share use the committed fixtures in tests/fixtures/secrets (see its README).
"""

from __future__ import annotations

import importlib
import json
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pipeline.scrub import PLACEHOLDER_RE, scrub_text

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "secrets"
Scrub = Callable[[str], tuple[str, object]]

TARGET_BYTES = 4_000_000

_CODE = '''def {fn}(client, api_key: str | None = None, max_tokens: int = {n}) -> dict:
    """Send the {word} request and return the parsed {word2} payload."""
    token = api_key or os.environ["ANTHROPIC_API_KEY"]
    headers = {{"x-api-key": token, "anthropic-version": "2023-06-01"}}
    for i in range({n}):
        key = f"{word}:{{i}}"
        cache[key] = client.get(url=f"https://api.example.com/v1/{word}/{{i}}", headers=headers)
    return {{"{word}": cache, "count": len(cache), "auth": auth_header(token)}}


@pytest.mark.parametrize("value", [{n}, {m}, 0x{hexid}])
def test_{fn}(value):
    assert {fn}(None, max_tokens=value)["count"] == value
'''
_CODE_PLAIN = '''class {Word}Index:
    """In-memory index of {word} records, rebuilt from the {word2} log on start."""

    def __init__(self, root: Path, limit: int = {n}) -> None:
        self.root, self.limit = root, limit
        self.rows: dict[str, list[int]] = defaultdict(list)

    def add(self, name: str, offset: int) -> None:
        if len(self.rows[name]) >= self.limit:
            raise ValueError(f"{{name}}: more than {{self.limit}} {word} rows")
        self.rows[name].append(offset)

    def load(self) -> int:
        for i, line in enumerate((self.root / "{word2}.log").read_text().splitlines()):
            self.add(line.split("\\t", 1)[0], i)
        return sum(map(len, self.rows.values()))
'''
_PROSE = (
    "The {word} step failed because the {word2} cache was stale; rerunning with a fresh token"
    " fixed it. Set the password policy in the admin panel, then check the API key rotation"
    " schedule. Version {v} shipped on {date}; see commit {sha} and issue #{n}.\n"
)
_LOG = (
    "{date}T10:{mm}:{ss}.{ms}Z INFO  {word}.worker[{pid}]: GET /api/{word2}/{n} 200 {ms}ms"
    " from 10.0.{a}.{b}:{port} user_agent=curl/8.{a}.0 trace={hexid}-{uuid}\n"
)
_JSON = (
    '{{"type": "assistant", "uuid": "{uuid}", "message": {{"usage": {{"input_tokens": {n},'
    ' "cache_read_input_tokens": {m}, "output_tokens": {a}}}, "model": "claude-sonnet-4-5"}},'
    ' "cwd": "/home/dev/projects/{word}", "version": "{v}", "timestamp": "{date}T09:{mm}:{ss}Z"}}\n'
)
_SHELL = (
    "$ git log --oneline -3\n{sha} Fix {word} token refresh\n{sha2} Bump {word2} to {v}\n"
    "$ ls -la src/{word}\n-rw-r--r--  1 dev staff  {n} {date} 10:{mm} {word2}.py\n"
    '  File "src/{word}/{word2}.py", line {a}, in {fn}\n    raise KeyError(key)\n'
)
_WORDS = [
    "session",
    "model",
    "adapter",
    "upload",
    "billing",
    "search",
    "export",
    "render",
    "parser",
    "config",
]


def synthesize(target_bytes: int = TARGET_BYTES, seed: int = 0) -> str:
    rng = random.Random(seed)
    chunks, size = [], 0
    while size < target_bytes:
        hexid = "".join(rng.choices("0123456789abcdef", k=12))
        fields = {
            "word": (word := rng.choice(_WORDS)),
            "Word": word.capitalize(),
            "word2": rng.choice(_WORDS),
            "fn": f"{rng.choice(_WORDS)}_{rng.choice(_WORDS)}",
            "n": rng.randint(1, 99999),
            "m": rng.randint(1, 9999),
            "a": rng.randint(0, 255),
            "b": rng.randint(0, 255),
            "pid": rng.randint(100, 65000),
            "port": rng.randint(1024, 65535),
            "mm": f"{rng.randint(0, 59):02d}",
            "ss": f"{rng.randint(0, 59):02d}",
            "ms": rng.randint(1, 999),
            "v": f"{rng.randint(0, 3)}.{rng.randint(0, 40)}.{rng.randint(0, 9)}",
            "date": f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            "sha": hexid[:7],
            "sha2": hexid[5:],
            "hexid": hexid,
            "uuid": f"{hexid[:8]}-{hexid[8:12]}-4{hexid[1:4]}-a{hexid[4:7]}-{hexid}",
        }
        chunk = rng.choice((_CODE, _CODE_PLAIN, _PROSE, _LOG, _JSON, _SHELL)).format(**fields)
        chunks.append(chunk)
        size += len(chunk)
    return "".join(chunks)


def load_fixtures() -> tuple[list[dict], list[dict]]:
    def read(name: str) -> list[dict]:
        with (FIXTURES / name).open() as f:
            return [json.loads(line) for line in f]

    return read("positives.jsonl"), read("benign.jsonl")


def _leaks(scrubbed: str, secrets: list[str]) -> bool:
    # Placeholders out first: `<SECRET:url_password>` spells a secret that is the word password.
    rest = PLACEHOLDER_RE.sub("\0", scrubbed)
    return any(s in rest for s in secrets)


def recall(scrub: Scrub, positives: list[dict]) -> tuple[float, list[str]]:
    """Share of positive cases none of whose secrets survive scrubbing, and the missed rules."""
    missed = [p["rule"] for p in positives if _leaks(scrub(p["text"])[0], p["secrets"])]
    return 1 - len(missed) / len(positives), missed


def benign_share(scrub: Scrub, benign: list[dict]) -> tuple[float, list[str]]:
    """Share of benign lines the scrubber leaves exactly as they were, and the changed kinds."""
    changed = [b["kind"] for b in benign if scrub(b["text"])[0] != b["text"]]
    return 1 - len(changed) / len(benign), changed


def head_scrubber() -> Scrub:
    """`scrub_text` as committed at git HEAD, loaded from `git show` into a throwaway package."""
    names = subprocess.run(
        ["git", "ls-tree", "--name-only", "HEAD", "pipeline/"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    tmp = Path(tempfile.mkdtemp(prefix="scrub-head-"))
    package = tmp / "scrub_at_head"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for path in names:
        name = Path(path).name
        if name.startswith("scrub") and name.endswith(".py"):
            source = subprocess.run(
                ["git", "show", f"HEAD:{path}"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            (package / name).write_text(source.replace("pipeline.scrub", "scrub_at_head.scrub"))
    # The rule set the scrubber loads from beside it (`data/betterleaks.toml`).
    (package / "data").mkdir()
    rules = subprocess.run(
        ["git", "show", "HEAD:pipeline/data/betterleaks.toml"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout  # fmt: skip
    (package / "data" / "betterleaks.toml").write_bytes(rules)
    sys.path.insert(0, str(tmp))
    try:
        return importlib.import_module("scrub_at_head.scrub").scrub_text
    finally:
        sys.path.remove(str(tmp))


def throughput(scrub: Scrub, messages: list[str], rounds: int) -> tuple[float, int]:
    """Best CPU seconds of `rounds` passes over `messages`, and how many were changed.

    CPU seconds of this process, best of `rounds`: other work on a shared machine does not
    count against the scrubber.
    """
    best, changed = float("inf"), 0
    for _ in range(rounds):
        start = time.process_time()
        changed = sum(scrub(m)[0] != m for m in messages)
        best = min(best, time.process_time() - start)
    return best, changed


def bench_scrub(rounds: int = 3) -> dict:
    """Recall, benign share and speed of this tree's scrubber and of HEAD's, on one core.

    Speed is over ~2 KB messages of clean synthetic text (the new scrubber must leave them all
    unchanged), and in lines/s over the benign fixture's short session lines.
    """
    text = synthesize()
    messages = [text[i : i + 2000] for i in range(0, len(text), 2000)]
    mb = len(text.encode()) / 1e6
    positives, benign = load_fixtures()
    issue = [p for p in positives if p["source"] == "issue"]
    lines = [b["text"] for b in benign]
    lines_mb = sum(len(line.encode()) for line in lines) / 1e6
    out: dict = {"mb": round(mb, 1), "positives": len(positives), "benign_lines": len(benign)}
    for label, scrub in (("new", scrub_text), ("head", head_scrubber())):
        seconds, changed = throughput(scrub, messages, rounds)
        if label == "new" and changed:
            raise AssertionError(f"clean benchmark text was changed in {changed} messages")
        line_seconds, _ = throughput(scrub, lines, rounds)
        r, missed = recall(scrub, positives)
        b, flagged = benign_share(scrub, benign)
        out[label] = {
            "recall": round(r, 4),
            "issue_recall": round(recall(scrub, issue)[0], 4),
            "benign_unchanged": round(b, 4),
            "mb_per_s": round(mb / seconds, 2),
            "benign_lines_per_s": round(len(lines) / line_seconds),
            "benign_mb_per_s": round(lines_mb / line_seconds, 2),
            "missed_rules": sorted(set(missed))[:20],
            "benign_changed_kinds": sorted(set(flagged)),
        }
    out["recall"] = out["new"]["recall"]
    out["benign_unchanged"] = out["new"]["benign_unchanged"]
    out["mb_per_s"] = out["new"]["mb_per_s"]
    out["speed_vs_head"] = round(out["new"]["mb_per_s"] / out["head"]["mb_per_s"], 3)
    return out
