"""What the sample Claude Code logs say: prompts, tool calls and their outputs.

Every choice is drawn from the caller's `random.Random`, so a seed fixes every word.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from string import Template
from typing import Any

# The learnable task: a mistyped command in, the corrected command out.
COMMANDS: tuple[str, ...] = (
    *("git status", "git log --oneline -10", "git diff --staged", "git checkout main"),
    *("git pull --rebase", "git push origin main", "git stash pop", "git commit --amend"),
    *("docker ps -a", "docker compose up -d", "docker images", "docker logs -f web"),
    *("docker build -t app .", "python -m pytest", "python manage.py migrate"),
    *("python -m venv .venv", "pip install -r requirements.txt", "pip list --outdated"),
    *("make test", "make build", "npm install", "npm run build", "npm test", "ls -la"),
    *("grep -rn TODO src", "kubectl get pods", "kubectl describe pod web"),
    *("kubectl logs -f deploy/api", "cargo build --release", "cargo test", "go test ./..."),
    *("terraform plan", "ssh deploy@staging", "curl -I localhost:8080", "du -sh *"),
    *("tail -f /var/log/syslog", "chmod +x deploy.sh", "tar -xzf backup.tar.gz"),
    *("systemctl restart nginx", "head -n 20 README.md"),
)


def _slip(text: str, rng: random.Random) -> str:
    """One keyboard slip: swap a letter with its neighbour, drop it, or type it twice."""
    i = rng.choice([i for i, ch in enumerate(text) if ch.isalpha()] or range(len(text)))
    kind = rng.choice(("swap", "drop", "double"))
    if kind == "swap" and i + 1 < len(text) and text[i + 1].isalpha():
        return text[:i] + text[i + 1] + text[i] + text[i + 2 :]
    if kind == "drop":
        return text[:i] + text[i + 1 :]
    return text[:i] + text[i] + text[i:]


def make_typo(command: str, rng: random.Random) -> str:
    """`command` with one or two slips; never the command itself."""
    if not command:
        raise ValueError("cannot misspell an empty command")
    while True:
        typo = command
        for _ in range(rng.choice((1, 1, 2))):
            typo = _slip(typo, rng)
        if typo != command:
            return typo


@dataclass(frozen=True)
class ToolCall:
    name: str
    input: dict[str, Any]
    output: str
    is_error: bool = False
    result: Any = None  # the record's `toolUseResult`; None means the output text itself
    subagent: Exchange | None = None  # what the agent spawned by a Task call does


@dataclass(frozen=True)
class Reply:
    """One API response; the writer splits it into one record per content block."""

    text: str | None = None
    thinking: str | None = None
    calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True)
class Exchange:
    prompt: str
    replies: tuple[Reply, ...]
    title: str


def bash(command: str, output: str, description: str, code: int = 0) -> ToolCall:
    args = {"command": command, "description": description}
    if code:
        text = f"Exit code {code}\n{output}"
        return ToolCall("Bash", args, text, is_error=True, result=f"Error: {text}")
    shell = {"stdout": output, "stderr": "", "interrupted": False, "isImage": False}
    return ToolCall("Bash", args, output, result=shell)


def read(path: str, text: str) -> ToolCall:
    lines = text.splitlines()
    numbered = "\n".join(f"{n:>6}\u2192{line}" for n, line in enumerate(lines, 1))
    file = {"filePath": path, "content": text, "numLines": len(lines), "startLine": 1}
    return ToolCall("Read", {"file_path": path}, numbered, result={"type": "text", "file": file})


def tool_error(name: str, args: dict[str, Any], message: str) -> ToolCall:
    return ToolCall(name, args, f"<tool_use_error>{message}</tool_use_error>", True, message)


def write(path: str, text: str) -> ToolCall:
    result = {"type": "create", "filePath": path, "content": text, "structuredPatch": []}
    args = {"file_path": path, "content": text}
    return ToolCall("Write", args, f"File created successfully at: {path}", result=result)


def edit(path: str, old: str, new: str) -> ToolCall:
    args = {"file_path": path, "old_string": old, "new_string": new}
    result = {"filePath": path, "oldString": old, "newString": new, "structuredPatch": []}
    result |= {"userModified": False, "replaceAll": False}
    return ToolCall("Edit", args, f"The file {path} has been updated successfully.", result=result)


def grep(pattern: str, path: str, hits: list[str]) -> ToolCall:
    output = f"Found {len(hits)} files\n" + "\n".join(hits)
    result = {"mode": "files_with_matches", "filenames": hits, "numFiles": len(hits)}
    return ToolCall("Grep", {"pattern": pattern, "path": path}, output, result=result)


@dataclass(frozen=True)
class Lang:
    """Paths, commands and snippets (string.Template: TypeScript is full of braces)."""

    source: str
    tests: str  # the test file's path
    run: str  # runs one module's tests
    run_all: str  # runs every test, verbosely
    code: str  # the function under work, with an empty-input bug
    bad: str  # the buggy line in `code`
    good: str
    refactored: str
    test_code: str
    seq: str


PYTHON = Lang(
    source="$cwd/src/$pkg/$module.py",
    tests="$cwd/tests/test_$module.py",
    run="python -m pytest tests/test_$module.py -q",
    run_all="python -m pytest -v",
    code='def $func(items, limit=None):\n    """Return the items that are set, at most `limit`'
    ' of them."""\n    if not items:\n        return None\n    kept = [item for item in items'
    " if item is not None]\n    return kept[:limit] if limit else kept\n",
    bad="        return None",
    good="        return []",
    refactored="def _present(items):\n    return [item for item in items if item is not None]\n\n\n"
    "def $func(items, limit=None):\n    kept = _present(items or [])\n"
    "    return kept[:limit] if limit else kept\n",
    test_code="from $pkg.$module import $func\n\n\ndef test_${func}_empty():\n"
    "    assert $func([]) == []\n\n\ndef test_${func}_limit():\n"
    "    assert $func([1, 2, 3], limit=2) == [1, 2]\n",
    seq="list",
)
TYPESCRIPT = Lang(
    source="$cwd/src/$module.ts",
    tests="$cwd/src/$module.test.ts",
    run="npx vitest run src/$module.test.ts",
    run_all="npx vitest run --reporter verbose",
    code="export function $func<T>(items: T[], limit?: number): T[] | undefined {\n"
    "  if (items.length === 0) return undefined;\n"
    "  const kept = items.filter((item) => item != null);\n"
    "  return limit ? kept.slice(0, limit) : kept;\n}\n",
    bad="  if (items.length === 0) return undefined;",
    good="  if (items.length === 0) return [];",
    refactored="const present = <T>(items: T[]): T[] => items.filter((item) => item != null);\n\n"
    "export function $func<T>(items: T[], limit?: number): T[] {\n"
    "  const kept = present(items);\n  return limit ? kept.slice(0, limit) : kept;\n}\n",
    test_code='import { expect, it } from "vitest";\nimport { $func } from "./$module";\n\n'
    'it("returns an empty array for empty input", () => {\n  expect($func([])).toEqual([]);\n'
    "});\n",
    seq="array",
)


@dataclass(frozen=True)
class Project:
    cwd: str
    lang: Lang
    work: str  # "module:function ..." pairs the sessions work on

    @property
    def units(self) -> list[tuple[str, str]]:
        return [(unit.split(":")[0], unit.split(":")[1]) for unit in self.work.split()]

    @property
    def pkg(self) -> str:
        return self.cwd.rsplit("/", 1)[1].replace("-", "_").replace(".", "_")

    def fill(self, template: str, module: str = "", func: str = "") -> str:
        return Template(template).substitute(cwd=self.cwd, pkg=self.pkg, module=module, func=func)


PROJECTS: tuple[Project, ...] = (
    Project("/home/dev/src/webshop", PYTHON, "cart:add_items pricing:apply_discounts"),
    Project("/home/dev/src/infra-tools", PYTHON, "backup:stale_snapshots dns:render_records"),
    Project("/home/dev/src/dashboard.web", TYPESCRIPT, "charts:visibleSeries table:pageRows"),
    Project("/home/dev/work/api-gateway", TYPESCRIPT, "routes:matchRoutes proxy:liveUpstreams"),
    Project("/home/dev/src/ml.experiments", PYTHON, "loader:next_batch metrics:class_scores"),
)


def runner_output(p: Project, module: str, func: str, rng: random.Random, failing: bool) -> str:
    """pytest -q or vitest output; `failing` means the empty-input test fails."""
    n = rng.randint(6, 48)
    if p.lang is PYTHON:
        secs = f"{rng.uniform(0.2, 3.0):.2f}s"
        if not failing:
            return f"{'.' * n:<72}[100%]\n{n} passed in {secs}"
        test, dots = f"test_{func}_empty", "F" + "." * (n - 1)
        summary = " short test summary info ".center(80, "=")
        return (
            f"{dots:<72}[100%]\n{' FAILURES '.center(80, '=')}\n{f' {test} '.center(80, '_')}\n\n"
            f"    def {test}():\n>       assert {func}([]) == []\nE       assert None == []\n\n"
            f"tests/test_{module}.py:5: AssertionError\n{summary}\n"
            f"FAILED tests/test_{module}.py::{test} - assert None == []\n"
            f"1 failed, {n - 1} passed in {secs}"
        )
    head, took = f"\n RUN  v2.1.4 {p.cwd}\n\n", f"   Duration  {rng.randint(400, 1600)}ms"
    if not failing:
        return (
            f"{head} \u2713 src/{module}.test.ts ({n} tests) {rng.randint(8, 60)}ms\n\n"
            f" Test Files  1 passed (1)\n      Tests  {n} passed ({n})\n{took}"
        )
    return (
        f"{head} \u276f src/{module}.test.ts ({n} tests | 1 failed)\n   \u00d7 returns an empty"
        " array for empty input\n     \u2192 expected undefined to deeply equal []\n\n"
        f" Test Files  1 failed (1)\n      Tests  1 failed | {n - 1} passed ({n})\n{took}"
    )


FIX_PROMPTS = (
    "There's a bug in `{func}`: it {bug}. Can you fix it?",
    "{func} {bug} -- saw it in the logs this morning. Please fix it and run the tests.",
    "can you look at {rel}? `{func}` {bug}",
)
BUGS = (
    "returns nothing for an empty input instead of an empty {seq}",
    "breaks the callers when nothing matches because it gives back nothing",
)
TEST_PROMPTS = (
    "Add tests for `{func}`, including the empty input case.",
    "We have no test file for {func}, please add one that covers empty input",
)
REFACTOR_PROMPTS = (
    "Refactor `{func}` in {rel}: pull the filtering out into a helper so it's easier to test.",
    "{func} mixes filtering and limiting in one place, can you split that up?",
)


def coding_exchange(p: Project, rng: random.Random) -> Exchange:
    """A request about one function in `p`: fix a bug, add tests, or refactor."""
    module, func = rng.choice(p.units)
    lang = p.lang
    src, tests = p.fill(lang.source, module), p.fill(lang.tests, module)
    run = p.fill(lang.run, module)
    code, rel = p.fill(lang.code, func=func), src.removeprefix(p.cwd + "/")
    passing = Reply(calls=(bash(run, runner_output(p, module, func, rng, False), "Run the tests"),))
    fix = edit(src, lang.bad, lang.good)
    kind = rng.choice(("fix", "fix", "test", "refactor"))
    if kind == "fix":
        bug = rng.choice(BUGS).format(seq=lang.seq)
        reason = (
            f"The user reports that `{func}` {bug}. The early return for empty input hands back a"
            f" sentinel instead of an empty {lang.seq}, and the callers iterate over the result."
        )
        replies: tuple[Reply, ...] = (
            Reply("Let me look at the implementation.", reason, (read(src, code),)),
            Reply(f"The empty-input guard should return an empty {lang.seq}.", calls=(fix,)),
            passing,
            Reply(f"Fixed. `{func}` now returns an empty {lang.seq} for empty input. Tests pass."),
        )
        prompt = rng.choice(FIX_PROMPTS).format(func=func, bug=bug, rel=rel)
        return Exchange(prompt, replies, f"Fix {func} on empty input")
    if kind == "test":
        failing = bash(run, runner_output(p, module, func, rng, True), "Run the tests", code=1)
        test_code = p.fill(lang.test_code, module, func)
        replies = (
            Reply(
                "I'll read the function and look for existing tests.",
                f"I need {func}'s behaviour on empty input before writing assertions.",
                (read(src, code), tool_error("Read", {"file_path": tests}, "File does not exist.")),
            ),
            Reply("No test file yet; creating one.", calls=(write(tests, test_code),)),
            Reply(calls=(failing,)),
            Reply(f"The new test caught a bug: `{func}` gives no {lang.seq}.", calls=(fix,)),
            passing,
            Reply(f"Added tests for `{func}` and fixed the empty-input bug they exposed."),
        )
        return Exchange(rng.choice(TEST_PROMPTS).format(func=func), replies, f"Test {func}")
    replies = (
        Reply("First, where is it used?", calls=(grep(func, p.cwd, [src, tests]),)),
        Reply(calls=(read(src, code),)),
        Reply(
            thinking="One caller plus the tests: the signature can stay.",
            calls=(edit(src, code, p.fill(lang.refactored, module, func)),),
        ),
        passing,
        Reply(f"Done. The filtering has its own helper and `{func}` only applies the limit."),
    )
    prompt = rng.choice(REFACTOR_PROMPTS).format(func=func, rel=rel)
    return Exchange(prompt, replies, f"Refactor {func}")


def command_fix_exchange(rng: random.Random) -> Exchange:
    command = rng.choice(COMMANDS)
    prompt = f"Fix this command: {make_typo(command, rng)}"
    return Exchange(prompt, (Reply(command),), f"Fix mistyped {command.split()[0]} command")


def compact_summary(p: Project, titles: list[str]) -> str:
    """The machine-written summary Claude Code puts after a compact boundary."""
    done = "\n".join(f"   - {title}" for title in titles)
    return (
        "This session is being continued from a previous conversation that ran out of context."
        " The conversation is summarized below:\nAnalysis:\nThe user asked for a series of small"
        f" changes in {p.cwd}, and the tests were run after each one.\n\nSummary:\n"
        f"1. Primary Request and Intent:\n{done}\n2. Key Technical Concepts:\n"
        f"   - empty inputs return an empty {p.lang.seq}, never a sentinel\n"
        "3. Pending Tasks:\n   - None explicitly requested.\n"
        "Please continue the conversation from where we left it off without asking the user any"
        " further questions. Continue with the last task that you were asked to work on."
    )


COMPACT_PROMPT = (
    "Your task is to create a detailed summary of the conversation so far, paying close attention"
    " to the user's explicit requests and your previous actions. Wrap your analysis in"
    " <analysis> tags and the summary in <summary> tags."
)
CAVEAT = (
    "<local-command-caveat>Caveat: The messages below were generated by the user while running"
    " local commands. DO NOT respond to these messages or otherwise consider them in your"
    " response unless the user explicitly asks you to.</local-command-caveat>"
)
LOCAL_COMMANDS = {"clear": "", "model": "Set model to opus (claude-opus-4-5-20251101)"}


def command_wrapper(name: str) -> str:
    return (
        f"<command-name>/{name}</command-name>\n            <command-message>{name}"
        "</command-message>\n            <command-args></command-args>"
    )
