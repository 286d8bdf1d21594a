"""One-off exchanges, each carrying a quirk: fake secrets, contact details, a subagent, and
output big enough to be persisted. The log writer gives each to a single session.
"""

from __future__ import annotations

import random
import string

from pipeline.sample_content import (
    PYTHON,
    Exchange,
    Project,
    Reply,
    ToolCall,
    bash,
    edit,
    grep,
    read,
    tool_error,
)


def fake_person(rng: random.Random) -> tuple[str, str, str]:
    """Name, email and phone number; example.com and 555 numbers are reserved for fiction."""
    first = rng.choice(("Dana", "Ravi", "Mireille", "Tomasz", "Aiko", "Jonas"))
    last = rng.choice(("Kowalski", "Iyer", "Laurent", "Nowak", "Tanaka", "Berg"))
    phone = f"+1 415 555 {rng.randint(100, 199):04d}"
    return f"{first} {last}", f"{first}.{last}@example.com".lower(), phone


def env_exchange(p: Project, rng: random.Random) -> Exchange:
    """A `.env` dump with generated (fake) keys: what a scrubber has to catch."""

    def token(alphabet: str, n: int) -> str:
        return "".join(rng.choices(alphabet, k=n))

    alnum, upper = string.ascii_letters + string.digits, string.ascii_uppercase + string.digits
    _, email, phone = fake_person(rng)
    env = (
        f"DATABASE_URL=postgres://app:{token(alnum, 16)}@localhost:5432/app_dev\n"
        f"AWS_ACCESS_KEY_ID=AKIA{token(upper, 16)}\nAWS_SECRET_ACCESS_KEY={token(alnum + '/+', 40)}"
        f"\nAWS_REGION=us-east-1\nS3_BUCKET={p.pkg.replace('_', '-')}-uploads-dev\n"
        f"OPENAI_API_KEY=sk-proj-{token(alnum, 48)}\nALERT_EMAIL={email}\nONCALL_PHONE={phone}\n"
    )
    look = "SignatureDoesNotMatch means a wrong secret or a region mismatch."
    cat = bash("cat .env", env, "Show the local environment file")
    answer = (
        "The keys look well formed, but `AWS_REGION` is `us-east-1` while the bucket lives in"
        " `eu-central-1`, and signatures are region-specific. Set `AWS_REGION=eu-central-1`."
    )
    replies = (Reply("Let me check the environment file.", look, (cat,)), Reply(answer))
    prompt = "Uploads to S3 fail locally with SignatureDoesNotMatch. Can you check my env setup?"
    return Exchange(prompt, replies, "Debug S3 SignatureDoesNotMatch")


def contact_exchange(p: Project, rng: random.Random) -> Exchange:
    """Personal contact details typed by the user and echoed into a file edit."""
    name, email, phone = fake_person(rng)
    page = f"{p.cwd}/templates/footer.html"
    old, new = "<p>Contact: support@example.org</p>", f"<p>Contact: {name}, {email}, {phone}</p>"
    args = {"file_path": page, "old_string": old, "new_string": new}
    unread = "File has not been read yet. Read it first before writing to it."
    replies = (
        Reply("Updating the footer.", calls=(tool_error("Edit", args, unread),)),
        Reply(calls=(read(page, f"<footer>\n  {old}\n</footer>\n"),)),
        Reply(calls=(edit(page, old, new),)),
        Reply(f"The footer now lists {name} with the new email and phone number."),
    )
    prompt = f"Put my details in the footer contact line: {name}, {email}, {phone}"
    return Exchange(prompt, replies, "Update footer contact details")


def subagent_exchange(p: Project, rng: random.Random) -> Exchange:
    """A Task call; its `subagent` is the script the spawned agent follows."""
    _, func = rng.choice(p.units)
    callers = [p.fill(p.lang.source, module) for module, _ in p.units]
    task = (
        f"Search {p.cwd} for every call to `{func}` that indexes the result without checking"
        " that it is non-empty. Give file paths with line numbers. Do not modify any files."
    )
    report = f"Found {len(callers)} call sites of `{func}` that assume a non-empty result:\n"
    report += "\n".join(f"- `{path}:{rng.randint(10, 120)}`: indexes `[0]`" for path in callers)
    search = Reply(f"Searching for calls to `{func}`.", calls=(grep(func, p.cwd, callers),))
    agent = Exchange(task, (search, Reply(report)), "")
    kind = rng.choice(("general-purpose", "Explore"))
    args = {"description": f"Find unchecked {func} callers", "prompt": task, "subagent_type": kind}
    replies = (
        Reply(
            "I'll have a subagent search the codebase for this.",
            "A repo-wide search suits a subagent; it keeps my own context small.",
            (ToolCall("Task", args, report, subagent=agent),),
        ),
        Reply(f"{report}\n\nWant me to add length checks at these call sites?"),
    )
    prompt = f"Find every place we call `{func}` without handling an empty result. Use an agent."
    return Exchange(prompt, replies, f"Audit {func} callers")


def full_suite_exchange(p: Project, rng: random.Random) -> Exchange:
    """A verbose run of the whole suite: output big enough to be persisted to a file."""
    cases = ("keeps_order", "limit", "empty", "none_items", "large_input", "unicode", "reversed")
    names = [
        f"tests/test_{module}.py::test_{func}_{case}[{i}]"
        if p.lang is PYTHON
        else f"src/{module}.test.ts > {func} > {case.replace('_', ' ')} #{i}"
        for module, func in p.units
        for case in cases
        for i in range(40)
    ]
    worst = rng.uniform(0.5, 2.5)
    output = "\n".join(f"{name} PASSED" for name in names) + f"\n\n{len(names)} passed"
    answer = (
        f"All {len(names)} tests pass. The `large_input` cases dominate the run time (up to"
        f" {worst:.2f}s each); everything else takes milliseconds. Marking them slow and"
        " skipping them by default would speed up the inner loop."
    )
    run = bash(p.lang.run_all, output, "Run all tests")
    replies = (Reply("Running the full suite in verbose mode.", calls=(run,)), Reply(answer))
    prompt = "Run the whole test suite verbosely and tell me which tests are slowest."
    return Exchange(prompt, replies, "Find slow tests")
