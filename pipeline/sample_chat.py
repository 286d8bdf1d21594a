"""What the ratings DB and the skills say: rated chats in the chat UI, and SKILL.md files.

Every choice is drawn from the caller's `random.Random`, so a seed fixes every word.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from pipeline.sample_content import COMMANDS, make_typo


@dataclass(frozen=True)
class ChatMessage:
    role: str
    content: str
    bad: bool = False  # a wrong or unhelpful answer; the sample always rates these -1


# Blocks of a title, a question, then the answer over one or more lines.
_QA_TEXT = """\
Undo last commit
How do I undo the last git commit but keep the changes?
Use `git reset --soft HEAD~1`: the branch moves back one commit and the changes stay staged.
If the commit is already pushed, prefer `git revert HEAD`.

Run one pytest test
How can I run a single pytest test?
Pass its node id: `python -m pytest tests/test_cart.py::test_add_item`. `-k` selects tests by
substring and `-x` stops at the first failure.

ModuleNotFoundError after pip install
Why do I get ModuleNotFoundError even though pip installed the package?
Usually pip and python belong to different interpreters. Run `python -m pip install <pkg>` so
the package lands where your script runs, and check `which python`.

Who listens on a port
How do I see which process is listening on port 8080?
`ss -ltnp 'sport = :8080'` or `lsof -i :8080` prints the PID; `ps -p <pid> -o cmd` then shows
the full command line.

Bash strict mode
What does `set -euo pipefail` do in a bash script?
`-e` exits on the first failing command, `-u` makes unset variables an error and `-o pipefail`
fails a pipeline if any stage fails, not just the last one.

Rebase onto main
How do I rebase my feature branch onto the latest main?
`git fetch origin`, then `git rebase origin/main` on your branch. Resolve conflicts, `git add`
them, run `git rebase --continue`, and push with `--force-with-lease`."""
QA = [
    (title, question, " ".join(answer))
    for title, question, *answer in (block.splitlines() for block in _QA_TEXT.split("\n\n"))
]
UNHELPFUL = ("I'm not sure. Try searching the documentation.", "That isn't possible.")


def _answer(text: str, rng: random.Random) -> ChatMessage:
    if rng.random() < 0.15:
        return ChatMessage("assistant", rng.choice(UNHELPFUL), bad=True)
    return ChatMessage("assistant", text)


def _chat(kind: str, rng: random.Random) -> tuple[str, list[ChatMessage]]:
    if kind == "commands":
        system = "You are a terminal assistant. Reply with the corrected command only."
        messages = [ChatMessage("system", system)] * rng.randint(0, 1)
        for _ in range(rng.randint(2, 4)):
            command = rng.choice(COMMANDS)
            typo = make_typo(command, rng)
            messages.append(ChatMessage("user", f"Fix this command: {typo}"))
            if rng.random() < 0.2:  # left the typo in, or buried the command in chatter
                wrong = rng.choice((typo, f"Looks like a typo! Did you mean `{command}`?"))
                messages.append(ChatMessage("assistant", wrong, bad=True))
            else:
                messages.append(ChatMessage("assistant", command))
        return "Shell command fixes", messages
    if kind == "short":  # too short to train on; readers must skip it
        title, question, answer = rng.choice(QA)
        system = [ChatMessage("system", "You are a helpful assistant.")] * rng.randint(0, 1)
        return title, [*system, ChatMessage("user", question), _answer(answer, rng)]
    (title, q1, a1), (_, q2, a2) = rng.sample(QA, 2)
    follow = rng.choice(("Thanks. One more: ", "Related: ", ""))
    return title, [
        *(ChatMessage("user", q1), _answer(a1, rng)),
        *(ChatMessage("user", follow + q2), _answer(a2, rng)),
    ]


def terminal_conversations(rng: random.Random, n: int) -> list[tuple[str, list[ChatMessage]]]:
    """A terminal assistant's fixes, two per conversation: the demo's learnable task, with
    every command misspelled many ways."""
    out = []
    for i in range(n):
        messages = []
        for j in range(2):
            command = COMMANDS[(2 * i + j) % len(COMMANDS)]
            messages.append(ChatMessage("user", f"Fix this command: {make_typo(command, rng)}"))
            messages.append(ChatMessage("assistant", command))
        out.append(("Terminal command fixes", messages))
    return out


def chat_conversations(rng: random.Random) -> list[tuple[str, list[ChatMessage]]]:
    """About 30 rated-chat conversations: command fixes, Q&A and a few too short to use."""
    kinds = ["commands"] * 9 + ["qa"] * 16 + ["short"] * 5
    rng.shuffle(kinds)
    return [_chat(kind, rng) for kind in kinds]


# Per skill: "name|command the examples start with|description", then one rule per line.
_SKILLS_TEXT = """\
git-workflow|git|Everyday git work, from branches to undoing mistakes. Use for git tasks.
Work on a short-lived branch and rebase it onto `origin/main` before a pull request.
Commit small, focused changes; the message says why, the diff says what.
Never force-push `main`; on your own branch use `--force-with-lease`.

python-testing|python|Writing and running pytest suites. Use when adding or fixing tests.
Run the narrowest test first (`pytest path::test_name`), then the whole suite.
One behaviour per test, named after it: `test_total_is_zero_for_empty_cart`.
Reproduce a bug with a failing test before fixing it.

docker-basics|docker|Building, running and debugging containers. Use for Docker and Compose.
Pin base images to a tag, never `latest`, so builds are repeatable.
Copy dependency manifests before the source so the install layer stays cached.
Read `docker logs` of the failing container before changing anything.

kubernetes-debugging|kubectl|Finding out why a workload is unhealthy. Use for failing pods.
Start from `kubectl get pods` and look at STATUS and RESTARTS.
`kubectl describe pod` shows scheduling and image-pull events.
After a crash, read the previous container's logs with `--previous`."""


def skill_documents() -> list[tuple[str, str]]:
    """(name, SKILL.md text) pairs: YAML front matter, instructions and examples."""
    documents = []
    for block in _SKILLS_TEXT.split("\n\n"):
        head, *rules = block.splitlines()
        name, tool, description = head.split("|")
        steps = "\n".join(f"{n}. {rule}" for n, rule in enumerate(rules, 1))
        examples = "\n".join(f"- `{c}`" for c in COMMANDS if c.split()[0] == tool)
        text = (
            f"---\nname: {name}\ndescription: {description}\n---\n\n"
            f"# {name.replace('-', ' ').capitalize()}\n\n## Instructions\n\n{steps}\n\n"
            f"## Examples\n\n{examples}\n\n## Mistyped commands\n\nWhen asked to fix a mistyped"
            " command, reply with the corrected command only, without explanation.\n"
        )
        documents.append((name, text))
    return documents
