"""Cases, scoring and gates, on hand-made inputs (no model needed)."""

from __future__ import annotations

import json
import random

import pytest

from pipeline.config import GateConfig
from pipeline.evaluate import (
    CaseResult,
    GoldenFileError,
    load_canary,
    load_cases,
    normalize,
    split_cases,
    summarize_behaviour,
    summarize_latency,
    summarize_tasks,
)
from pipeline.gates import evaluate_gates
from pipeline.sample import golden_cases


def test_golden_file_reads_text_and_messages_prompts(tmp_path):
    path = tmp_path / "golden.json"
    path.write_text(
        json.dumps(
            [
                {"prompt": "Fix this command: gti status", "expected": "git status"},
                {
                    "prompt": [
                        {"role": "system", "content": "s"},
                        {"role": "user", "content": "q"},
                    ],
                    "keywords": ["tag"],
                    "category": "docker",
                },
            ]
        )
    )
    a, b = load_cases(path)
    assert a.messages == ({"role": "user", "content": "Fix this command: gti status"},)
    assert a.category == "general" and a.expected == "git status"
    assert b.category == "docker" and b.keywords == ("tag",) and len(b.messages) == 2


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ("{not json", "is not JSON"),
        ('{"cases": 3}', "expected a list"),
        ('[{"expected": "x"}]', "case 0: needs a 'prompt'"),
        ('[{"prompt": "q"}]', "case 0: give 'expected'"),
        ('[{"prompt": [{"role": "user"}], "expected": "x"}]', "case 0: 'prompt' messages"),
        ('[{"prompt": "q", "keywords": [""]}]', "case 0: 'keywords' must be"),
        ('[{"prompt": "q", "expected": "a", "category": "overall"}]', "the report's total"),
    ],
)
def test_a_bad_golden_file_names_the_case_and_the_fix(tmp_path, content, error):
    path = tmp_path / "golden.json"
    path.write_text(content)
    with pytest.raises(GoldenFileError, match=error):
        load_cases(path)


def test_the_shipped_canary_and_the_sample_golden_cases_load(tmp_path):
    assert len(load_canary()) >= 10
    cases = golden_cases(random.Random(1), seen="Fix this command: gt status\n")
    path = tmp_path / "g.json"
    path.write_text(json.dumps(cases))
    loaded = load_cases(path)
    assert {c.category for c in loaded} == {"command-fix", "skills"}
    assert all(c.messages[0]["content"] != "Fix this command: gt status" for c in loaded)


def test_split_cases_take_the_last_answer_as_expected():
    rows = [
        {
            "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
            "provenance": {"strategy": "A"},
        },
        {"messages": [{"role": "user", "content": "only a question"}]},
    ]
    [case] = split_cases(rows, limit=10)
    assert case.expected == "a" and case.category == "test:A" and case.source == "test"


def test_normalize_ignores_fences_backticks_and_spacing():
    assert normalize("```bash\ngit  status\n```") == "git status"
    assert normalize(" `ls -la` ") == "ls -la"
    assert normalize("git status --all") != normalize("git status")


def result(category, em=None, recall=None, finish="stop", ttft=0.01, tps=100.0, leaked=()):
    return CaseResult(category, "golden", em, recall, "x", finish, ttft, 5, tps, list(leaked))


def test_scores_per_category_and_overall():
    rs = [result("fix", em=1.0), result("fix", em=0.0), result("skills", recall=0.5)]
    tasks = summarize_tasks(rs)
    assert tasks["fix"] == {"cases": 2, "exact_match": 0.5, "keyword_recall": None}
    assert tasks["skills"]["keyword_recall"] == 0.5
    assert tasks["overall"]["cases"] == 3 and tasks["overall"]["exact_match"] == 0.5
    lat = summarize_latency([result("a", ttft=t / 1000) for t in range(1, 101)])
    assert lat["ttft_ms_p50"] == pytest.approx(50.5) and lat["ttft_ms_p95"] == pytest.approx(95.05)
    beh = summarize_behaviour(
        [result("a"), result("a", finish="length", leaked=["<|im_end|>"])], True
    )
    assert beh == {
        "eos_rate": 0.5,
        "leaked_role_markers": 1,
        "chat_template_identical": True,
        "answers": 2,
    }


def model(ppl=10.0, em=0.5, canary=0.1, ttft=100.0, eos=1.0, leaked=0, template=True):
    return {
        "perplexity": {"ppl": 50.0},
        "answer_perplexity": {"ppl": ppl},
        "tasks": {"overall": {"exact_match": em, "keyword_recall": None, "cases": 10}},
        "latency": {"ttft_ms_p95": ttft},
        "canary": {"score": canary, "chance": 0.001},
        "behaviour": {
            "eos_rate": eos,
            "leaked_role_markers": leaked,
            "chat_template_identical": template,
        },
    }


def gates(cand, ref, quants=None, reference="champion"):
    report = {
        "models": {"candidate": cand, reference: ref},
        "reference": reference,
        "quants": quants or {},
    }
    return {g.name: g for g in evaluate_gates(report, GateConfig())}


def test_a_model_as_good_as_the_champion_passes_every_gate():
    quants = {"Q8_0": {"kl": {"kl_mean": 0.002}}, "Q4_K_M": {"kl": {"kl_mean": 0.05}}}
    assert all(g.passed for g in gates(model(), model(), quants).values())


def test_each_gate_says_which_way_and_by_how_much_it_failed():
    g = gates(
        model(ppl=11.0, em=0.4, canary=0.05, ttft=5000, eos=0.5, leaked=2),
        model(),
        {"Q8_0": {"kl": {"kl_mean": 0.05}}},
    )
    assert not any(x.passed for x in g.values())
    assert "+10.0%" in g["perplexity"].message and "0.500 over" in g["perplexity"].message
    assert "10.0% short" in g["exact_match"].message
    assert "Q8_0 is 0.04000 nats over 0.01" in g["quant_kl"].message
    assert "Q4_K_M" not in g["quant_kl"].message  # not built here: only what exists is judged
    assert "3000 ms over" in g["latency"].message
    assert "-50.0%" in g["canary"].message
    assert "2 answers leak role markers" in g["behaviour"].message


def test_the_floor_holds_even_when_the_reference_scored_nothing():
    g = gates(model(em=0.05), model(em=0.0), reference="base")
    assert not g["exact_match"].passed and g["exact_match"].threshold == 0.10
    assert "against the base's 0.0%" in g["exact_match"].message
    assert gates(model(em=0.3), model(em=0.0), reference="base")["exact_match"].passed


def test_gates_without_evidence_say_so_instead_of_guessing():
    g = gates(model(em=None, ttft=None, canary=0.003), model(canary=0.003))
    assert g["exact_match"].passed and "golden file" in g["exact_match"].message
    assert not g["latency"].passed and g["latency"].message == "no answer was timed"
    assert g["canary"].passed and "not judged" in g["canary"].message  # 3x chance: no knowledge
    none = model()
    none["answer_perplexity"]["ppl"] = None
    assert "not judged" in gates(none, model())["perplexity"].message
