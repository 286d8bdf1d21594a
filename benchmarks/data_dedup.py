"""Dedup against straightforward datasketch usage, side by side on the same synthetic texts.

The baseline lives here because it is the comparison, not product code: one `MinHash` per
text fed shingle by shingle, one `MinHashLSH` queried then inserted, the same normalization,
shingles, star clustering and exact-Jaccard verification as `pipeline.dedup`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence

from datasketch import MinHash, MinHashLSH

from pipeline.dedup import DedupConfig, dedup, normalize, shingles

_VOCABULARY = (
    "the a an this that it its we you they is are was be can should will would not and or "
    "but if then when so because with without for from into onto of on in at by to as than "
    "function class method module package file folder path config setting option value "
    "variable argument parameter return result error exception warning message log output "
    "input test fixture mock assertion case suite build compile deploy release version branch "
    "commit merge rebase push pull request review change diff patch line column row table "
    "query index cache buffer stream socket port server client request response header body "
    "json yaml toml string integer float list dict tuple set map key type hint annotation "
    "loop iterator generator async await thread process lock queue timeout retry fails works "
    "slow fast memory leak crash hang bug fix refactor rename move delete add update check "
    "parse format validate serialize load save read write open close start stop run call "
    "import export install upgrade pin dependency environment shell script command flag "
    "user session token account permission role database schema migration column postgres "
    "sqlite redis docker container image volume network kubernetes pod service endpoint"
)
_WORDS = _VOCABULARY.split()
_VERBS = ("fix", "refactor", "explain", "debug", "simplify", "review", "document", "test")
_TOOLS = ("git", "grep", "find", "ls", "sed", "curl", "docker", "kubectl", "pytest", "make")
_FLAGS = ("-r", "-n", "-v", "-l", "-a", "-x", "-f", "-q", "--all", "--force", "--dry-run")
_EXTS = ("py", "ts", "go", "rs", "sh", "yaml", "toml", "json", "md", "sql")
_APPENDS = (
    "thanks!",
    "please keep it short.",
    "also add a test for it.",
    "use type hints please.",
    "and explain why it works.",
    "no external dependencies.",
)


def _ident(rng: random.Random) -> str:
    return f"{rng.choice(_WORDS)}_{rng.choice(_WORDS)}{rng.randrange(100)}"


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(8, 18))]
    if rng.random() < 0.5:
        words.insert(rng.randrange(len(words)), f"`{_ident(rng)}`")
    return " ".join(words).capitalize() + "."


def _code(rng: random.Random) -> str:
    name, arg, other = _ident(rng), _ident(rng), _ident(rng)
    body = [
        f"def {name}({arg}: {rng.choice(['str', 'int', 'dict', 'list[str]'])}) -> bool:",
        f"    {other} = {rng.choice(_WORDS)}_{rng.choice(_WORDS)}({arg}, {rng.randrange(1000)})",
        f"    if not {other}:",
        f"        raise ValueError('{rng.choice(_WORDS)} {rng.choice(_WORDS)} {arg}')",
        f"    return {other}.{rng.choice(_WORDS)}({rng.choice(_WORDS)}={rng.randrange(64)})",
    ]
    return "```python\n" + "\n".join(body) + "\n```"


def _shell(rng: random.Random) -> str:
    tool, flags = rng.choice(_TOOLS), " ".join(rng.sample(_FLAGS, rng.randint(1, 3)))
    path = f"{_ident(rng)}/{_ident(rng)}.{rng.choice(_EXTS)}"
    return f"$ {tool} {flags} {path} | head -{rng.randrange(5, 200)}"


def _example(rng: random.Random) -> str:
    """One chat example of about 1 KB: a request, then an answer mixing prose, code, shell."""
    path = f"{_ident(rng)}.{rng.choice(_EXTS)}"
    parts = [f"User: Can you {rng.choice(_VERBS)} `{path}`? {_sentence(rng)}", "Assistant:"]
    while sum(map(len, parts)) < 950:
        kind = rng.random()
        parts.append(_code(rng) if kind < 0.2 else _shell(rng) if kind < 0.4 else _sentence(rng))
    return "\n".join(parts)


def _exact_variant(text: str, rng: random.Random) -> str:
    """Equal after normalization: case and whitespace changed."""
    words = text.split(" ")
    for i in rng.sample(range(len(words)), min(5, len(words))):
        words[i] = words[i].upper()
    return "  ".join(words) + "\n" if rng.random() < 0.5 else "\t".join(words)


def _near_variant(text: str, rng: random.Random) -> str:
    """A small edit: one or two words replaced, a word inserted, or a short phrase appended."""
    words = text.split(" ")
    kind = rng.random()
    if kind < 0.35:
        return text + " " + rng.choice(_APPENDS)
    if kind < 0.5:
        words.insert(rng.randrange(len(words)), rng.choice(_WORDS))
        return " ".join(words)
    for i in rng.sample(range(len(words)), 1 if kind < 0.9 else 2):
        words[i] = rng.choice(_WORDS)
    return " ".join(words)


def synthetic_texts(n: int, seed: int = 0) -> list[str]:
    """n chat examples: ~80% distinct, ~10% exact and ~10% near duplicates of earlier ones,
    shuffled (so a copy may come before its source, which then becomes the duplicate)."""
    rng = random.Random(seed)
    texts = [_example(rng) for _ in range(n - 2 * (n // 10))]
    sources = rng.choices(range(len(texts)), k=2 * (n // 10))
    texts += [_exact_variant(texts[i], rng) for i in sources[: n // 10]]
    texts += [_near_variant(texts[i], rng) for i in sources[n // 10 :]]
    rng.shuffle(texts)
    return texts


def datasketch_dedup(texts: Sequence[str], config: DedupConfig = DedupConfig()) -> list[bool]:
    """The same decisions as `pipeline.dedup.dedup`, written the plain datasketch way."""
    lsh = MinHashLSH(threshold=config.threshold, num_perm=config.num_perm)
    seen: set[str] = set()
    kept_sets: dict[int, set[str]] = {}
    keep = []
    for i, text in enumerate(texts):
        norm = normalize(text)
        if norm in seen:
            keep.append(False)
            continue
        seen.add(norm)
        mine = shingles(text, config.shingle)
        if len(mine) < config.min_shingles:
            keep.append(True)
            continue
        m = MinHash(num_perm=config.num_perm, seed=config.seed)
        for s in mine:
            m.update(s.encode())
        duplicate = any(
            len(mine & kept_sets[c]) / len(mine | kept_sets[c]) >= config.threshold
            for c in lsh.query(m)
        )
        if not duplicate:
            lsh.insert(i, m)
            kept_sets[i] = mine
        keep.append(not duplicate)
    return keep


def _jaccard(a: str, b: str) -> float:
    x, y = shingles(a), shingles(b)
    return len(x & y) / len(x | y)


def bench_dedup(n: int = 200_000, seed: int = 0) -> dict:
    texts = synthetic_texts(n, seed)
    started = time.perf_counter()
    result = dedup(texts)
    ours_s = time.perf_counter() - started
    ours = result.keep
    started = time.perf_counter()
    theirs = datasketch_dedup(texts)
    theirs_s = time.perf_counter() - started
    only_ours = [i for i, (o, t) in enumerate(zip(ours, theirs, strict=True)) if t and not o]
    return {
        "n": n,
        "ours_seconds": round(ours_s, 3),
        "datasketch_seconds": round(theirs_s, 3),
        "speedup": round(theirs_s / ours_s, 2),
        "agreement": sum(a == b for a, b in zip(ours, theirs, strict=True)) / n,
        "ours_examples_per_s": round(n / ours_s),
        "dropped_ours": ours.count(False),
        "dropped_datasketch": theirs.count(False),
        # Where they differ: a duplicate that one side's LSH never offered as a candidate.
        "dropped_only_by_ours": len(only_ours),
        "dropped_only_by_ours_jaccard_checked": sum(  # by the reference shingles, not ours
            _jaccard(texts[i], texts[result.cluster[i]]) >= DedupConfig().threshold
            for i in only_ours
        ),
        "dropped_only_by_datasketch": sum(o and not t for o, t in zip(ours, theirs, strict=True)),
    }
