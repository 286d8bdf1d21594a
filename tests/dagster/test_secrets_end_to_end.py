"""Secrets planted in a real workspace, through the real data stages, to the blocking check.

The sample workspace gets a Stripe live key in a rated conversation, an npm token and a
GitLab token in session prompts and a `mysql -p` password in Bash calls. Scrubbed with every
rule, none of them reaches a split and the check passes; with the rules that catch the
Stripe key turned off, detect-secrets fails the blocking check, naming rule and example, and
the adapter is never trained.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from assets.data import curated_chatml, qualified_scores, raw_sessions, validated_splits
from assets.data_checks import (
    validated_splits_chatml_schema,
    validated_splits_no_leakage,
    validated_splits_no_secrets,
)
from assets.models import base_model
from assets.training import lora_adapter
from pipeline.ingest import session_days
from pipeline.sample import create_sample_workspace
from pipeline.scrub import find_secrets
from resources import ArtifactStoreResource, LlamaCppResource, MLXResource, WorkspaceResource

CHECKS = [validated_splits_chatml_schema, validated_splits_no_leakage, validated_splits_no_secrets]
STRIPE = "sk_live_" + "nhdR2gMDDo2MCD59HIPtXFD2"
NPM = "npm_" + "hFF1gnLIWHTVUKoMgYBYQQnp85X9FevIsC2R"
GITLAB = "glpat-" + "JbSwAyKEhFULE4qA5DGb"
MYSQL = "AsqcOLCGE5qE"
PLANTED = {"stripe": STRIPE, "npm": NPM, "gitlab": GITLAB, "mysql": MYSQL}


def _plant_rated(db: Path) -> int:
    """The Stripe key in the user turns before every unexported thumbs-up; how many."""
    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            "SELECT DISTINCT q.id FROM ratings r JOIN messages a ON a.id = r.message_id"
            " JOIN messages q ON q.conversation_id = a.conversation_id"
            " AND q.position < a.position AND q.role = 'user'"
            " WHERE r.rating = 1 AND r.exported = 0"
        ).fetchall()
        conn.executemany(
            "UPDATE messages SET content = content || ? WHERE id = ?",
            [(f"\nIt fails with our live key {STRIPE} set.", i) for (i,) in rows],
        )
        conn.commit()
    return len(rows)


def _plant_sessions(projects: Path) -> tuple[int, int]:
    """Tokens in typed prompts, a password in Bash calls; (prompts, calls) changed."""
    prompts = calls = 0
    for path in sorted(projects.rglob("*.jsonl")):
        out = []
        for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
            try:
                rec = json.loads(line)
            except ValueError:
                rec = None
            if not isinstance(rec, dict):
                out.append(line)  # the sample's damaged lines stay as they are
                continue
            msg = rec.get("message")
            content = msg.get("content") if isinstance(msg, dict) else None
            if rec.get("type") == "user" and isinstance(content, str) and content[:1] != "<":
                msg["content"] = f"{content}\nnpm token {NPM}, GitLab token {GITLAB}."
                prompts += 1
            for block in content if isinstance(content, list) else []:
                if (
                    isinstance(block, dict)
                    and block.get("type") == "tool_use"
                    and block.get("name") == "Bash"
                ):
                    command = block["input"].get("command", "")
                    block["input"]["command"] = f"{command} && mysql -u root -p{MYSQL} app"
                    calls += 1
            out.append(json.dumps(rec) + "\n" if line.endswith("\n") else json.dumps(rec))
        path.write_text("".join(out), encoding="utf-8")
    return prompts, calls


def _skip_for(text: str) -> tuple[str, ...]:
    """Every scrubber rule that catches something in `text`, until none does."""
    skip: set[str] = set()
    while found := find_secrets(text, skip=frozenset(skip)):
        skip |= {f.rule for f in found}
    return tuple(sorted(skip))


def _resources(root: Path, sample, skip: tuple[str, ...] = ()) -> dict:
    return {
        "artifacts": ArtifactStoreResource(root=str(root / "artifacts")),
        "llama_cpp": LlamaCppResource(),
        "mlx": MLXResource(),
        "workspace": WorkspaceResource(
            projects_dir=str(sample.projects_dir),
            skills_dir=str(sample.skills_dir),
            ratings_url=f"sqlite:///{sample.ratings_db}",
            scrub_skip_rules=list(skip),
        ),
    }


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """The planted workspace through the daily stages and the base model, once."""
    root = tmp_path_factory.mktemp("planted")
    sample = create_sample_workspace(root / "ws", seed=0)
    assert _plant_rated(sample.ratings_db) > 0
    prompts, calls = _plant_sessions(sample.projects_dir)
    assert prompts > 0 and calls > 0
    days = sorted(set(session_days(sample.projects_dir, ZoneInfo("UTC")).values()))
    instance = dg.DagsterInstance.ephemeral()
    resources = _resources(root, sample)
    tags = {
        "dagster/asset_partition_range_start": days[0],
        "dagster/asset_partition_range_end": days[-1],
    }
    stages = [raw_sessions, qualified_scores, curated_chatml]
    assert dg.materialize(stages, resources=resources, instance=instance, tags=tags).success
    assert dg.materialize([base_model], resources=resources, instance=instance).success
    return root, sample, instance


def _splits_text(root: Path) -> str:
    current = json.loads((root / "artifacts" / "validated_splits" / "current.json").read_text())
    folder = Path(current["path"])
    return "".join((folder / f"{s}.jsonl").read_text() for s in ("train", "valid", "test"))


def test_planted_secrets_never_reach_a_split_and_the_check_passes(planted):
    root, sample, instance = planted
    curated = "".join(
        p.read_text() for p in (root / "artifacts" / "curated_chatml").rglob("examples.jsonl")
    )
    # They did reach the examples: the rated key and the prompts' tokens as typed, the
    # password in Bash calls already scrubbed where the call was serialized.
    assert STRIPE in curated and NPM in curated and GITLAB in curated
    assert "mysql -u root -p" in curated and MYSQL not in curated
    result = dg.materialize(
        [validated_splits, *CHECKS],
        resources=_resources(root, sample),
        instance=instance,
        raise_on_error=False,
    )
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    found = {n: {k: v.value for k, v in e.metadata.items()} for n, e in checks.items()}
    assert {n: e.passed for n, e in checks.items()} == {c.check_key.name: True for c in CHECKS}, (
        found
    )
    assert result.success
    text = _splits_text(root)
    assert [name for name, value in PLANTED.items() if value in text] == []
    assert "<SECRET:" in text


def test_a_secret_the_scrubber_is_made_to_miss_fails_the_check_and_nothing_trains(planted):
    root, sample, instance = planted
    skip = _skip_for(f"It fails with our live key {STRIPE} set.")
    assert skip and not find_secrets(STRIPE, skip=frozenset(skip))
    result = dg.materialize(
        [validated_splits, *CHECKS, lora_adapter],
        resources=_resources(root, sample, skip),
        instance=instance,
        raise_on_error=False,
    )
    assert not result.success
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    verdict = checks["validated_splits_no_secrets"]
    assert not verdict.passed
    assert checks["validated_splits_chatml_schema"].passed
    findings = verdict.metadata["findings"].value
    assert findings.get("detect-secrets:StripeDetector", 0) > 0, findings
    assert not any(rule.startswith("scrubber:") for rule in findings)  # its rules were off
    where = [w for w in verdict.metadata["where"].value if "StripeDetector" in w]
    assert where and STRIPE not in json.dumps(verdict.metadata["where"].value)
    assert STRIPE not in (verdict.description or "")
    # The place named is the example that holds the key.
    split, line = where[0].split(" at ")[1].split(" ")[0].split(".jsonl:")
    current = json.loads((root / "artifacts" / "validated_splits" / "current.json").read_text())
    row = (Path(current["path"]) / f"{split}.jsonl").read_text().splitlines()[int(line) - 1]
    example = json.loads(row)
    assert STRIPE in row and f"(example {example['provenance']['conversation']}," in where[0]
    # Blocking: the adapter step never ran, so training never started.
    assert not result.asset_materializations_for_node("lora_adapter")
    started = {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}
    assert "lora_adapter" not in started
    assert not (root / "artifacts" / "lora_adapter").exists()
