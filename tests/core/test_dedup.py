from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from datasketch.lsh import _optimal_param

from benchmarks.data_dedup import datasketch_dedup, synthetic_texts
from pipeline.dedup import (
    DedupConfig,
    _jaccard,
    _optimal_bands,
    _sketch,
    _star,
    dedup,
    normalize,
    shingles,
)

ROOT = Path(__file__).resolve().parents[2]


def _words(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.choice(['fix', 'run', 'test', 'add'])}_{rng.randrange(10**9)}" for _ in range(n)]


def _edit(words: list[str], positions: range | list[int], tag: str) -> list[str]:
    """Replace words far enough apart (>= 5) that each removes exactly five shingles."""
    out = list(words)
    for p in positions:
        out[p] = f"{tag}{p}"
    return out


def _jac(a: str, b: str) -> float:
    x, y = shingles(a), shingles(b)
    return len(x & y) / len(x | y)


def test_exact_duplicates_after_case_and_whitespace_are_dropped():
    base = "Run `pytest -x tests/` and\nfix the FIRST failure before the others, then commit it."
    texts = [base, base.upper(), "  " + base.replace(" ", "\t  ") + "\n", "something else entirely"]
    result = dedup(texts)
    assert result.keep == [True, False, False, True]
    assert result.reason == [None, "exact_duplicate", "exact_duplicate", None]
    assert result.cluster == [0, 0, 0, 3]
    assert result.counts["exact_duplicate"] == 2 and result.counts["kept"] == 2


def test_unicode_is_case_folded_and_whitespace_collapsed():
    texts = ["Straße\u00a0Ünïcode  Ελληνικά", "STRASSE ünïcode\u2003ελληνικά", "Strasse Unicode"]
    assert normalize(texts[0]) == normalize(texts[1])
    assert dedup(texts).reason == [None, "exact_duplicate", None]
    lone_surrogate = "broken \ud800 escape from a log line " * 3  # must not raise
    assert dedup([lone_surrogate, lone_surrogate.upper()]).keep == [True, False]


def test_fingerprint_jaccard_equals_the_reference_shingle_jaccard():
    texts = synthetic_texts(200, seed=3) + ["a b c d e f g h i j k l", "Ünïcode ß " * 20]
    sk = _sketch(texts, DedupConfig())
    assert sk.n_shingles.tolist() == [len(shingles(t)) for t in texts]
    offsets = np.concatenate([[0], np.cumsum(sk.n_shingles)])
    fp = [sk.fingerprints[offsets[i] : offsets[i + 1]] for i in range(len(texts))]
    rng = random.Random(0)
    for i, j in [(rng.randrange(len(texts)), rng.randrange(len(texts))) for _ in range(200)]:
        if sk.n_shingles[i] and sk.n_shingles[j]:
            assert abs(_jaccard(fp[i], fp[j]) - _jac(texts[i], texts[j])) < 1e-12


def test_near_duplicate_at_0_9_dropped_and_pair_at_0_6_kept():
    base = _words(200, seed=1)
    near = _edit(base, [40, 120], "x")  # 10 of ~196 shingles change
    far = _edit(base, range(5, 200, 20), "y")  # 50 change
    a, b, c = " ".join(base), " ".join(near), " ".join(far)
    assert 0.89 < _jac(a, b) < 0.91 and 0.58 < _jac(a, c) < 0.62
    result = dedup([a, b, c])
    assert result.keep == [True, False, True]
    assert result.reason[1] == "near_duplicate" and result.cluster == [0, 0, 2]
    assert result.counts["near_duplicate"] == 1 and result.counts["verified_pairs"] == 1


def test_candidates_are_verified_by_exact_jaccard():
    # Two rows forced into one bucket, as an LSH collision would put them.
    buckets = np.array([[7, -1], [7, -1]])
    offsets = np.array([0, 100, 200])
    a = np.arange(100, dtype=np.uint32)
    low = np.concatenate([a, a + 50])  # Jaccard 50/150
    rep, pairs, verified = _star(buckets, low, offsets, 0.85, 1000)
    assert rep.tolist() == [0, 1] and (pairs, verified) == (1, 0)
    high = np.concatenate([a, a + 2])  # Jaccard 98/102
    rep, pairs, verified = _star(buckets, high, offsets, 0.85, 1000)
    assert rep.tolist() == [0, 0] and (pairs, verified) == (1, 1)


def test_no_chaining_through_a_dropped_text():
    a = _words(300, seed=2)
    b = _edit(a, range(10, 130, 40), "b")  # 3 edits
    c = _edit(b, range(160, 280, 40), "c")  # 3 more
    texts = [" ".join(w) for w in (a, b, c)]
    assert 0.89 < _jac(texts[0], texts[1]) < 0.92
    assert 0.89 < _jac(texts[1], texts[2]) < 0.92
    assert 0.78 < _jac(texts[0], texts[2]) < 0.83
    result = dedup(texts)
    assert result.keep == [True, False, True]
    assert result.cluster == [0, 0, 2]


def test_short_texts_are_only_exact_deduplicated():
    texts = [
        "please fix the flaky login test now",
        "please fix the flaky login test now thanks",  # Jaccard 3/4, but 3 and 4 shingles
        "Please fix the flaky login test now",
    ]
    assert _jac(texts[0], texts[1]) == 0.75
    result = dedup(texts, DedupConfig(threshold=0.7))
    assert result.keep == [True, True, False]
    assert result.reason == [None, None, "exact_duplicate"]
    assert dedup(texts, DedupConfig(threshold=0.7, min_shingles=1)).keep == [True, False, False]


def test_the_first_occurrence_is_kept():
    base = _words(120, seed=4)
    a, b = " ".join(base), " ".join(base + ["thanks"])
    assert dedup([a, b]).keep == [True, False]
    assert dedup([b, a]).keep == [True, False]
    assert dedup(["x", a, b, a]).cluster == [0, 1, 1, 1]


def _run_elsewhere(hash_seed: str) -> dict:
    code = (
        "import json; from benchmarks.data_dedup import synthetic_texts; "
        "from pipeline.dedup import dedup; r = dedup(synthetic_texts(600, seed=5)); "
        "print(json.dumps({'keep': r.keep, 'cluster': r.cluster, 'counts': r.counts}))"
    )
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def test_deterministic_across_calls_and_processes():
    texts = synthetic_texts(600, seed=5)
    first, second = dedup(texts), dedup(list(texts))
    assert first == second
    assert first.counts["near_duplicate"] > 0 and first.counts["exact_duplicate"] > 0
    mine = {"keep": first.keep, "cluster": first.cluster, "counts": first.counts}
    assert _run_elsewhere("1") == mine
    assert _run_elsewhere("987654") == mine


def test_a_runaway_bucket_stays_linear_and_clusters_on_the_first_text():
    base = " ".join(_words(60, seed=6))
    texts = [f"{base} variant_{i}" for i in range(1500)]
    started = time.perf_counter()
    result = dedup(texts)
    assert time.perf_counter() - started < 5
    assert result.keep == [True] + [False] * 1499
    assert set(result.cluster) == {0}
    assert result.counts["candidate_pairs"] <= 2 * len(texts)  # not ~1500**2 / 2


def test_max_cluster_caps_the_representatives_a_bucket_compares_against():
    n = 300  # distinct texts that all share one bucket
    buckets = np.zeros((n, 1), dtype=np.int64)
    fingerprints = np.arange(n * 20, dtype=np.uint32)  # disjoint sets of 20
    offsets = np.arange(0, n * 20 + 1, 20)
    rep, pairs, verified = _star(buckets, fingerprints, offsets, 0.85, 10)
    assert rep.tolist() == list(range(n)) and verified == 0
    assert pairs == 10 * (n - 10) + 45  # at most 10 each, not n * (n - 1) / 2


def test_banding_matches_datasketch_optimisation():
    for threshold, num_perm in [(0.85, 128), (0.5, 64), (0.9, 256)]:
        ours = _optimal_bands(threshold, num_perm, 0.5, 0.5)
        assert ours == _optimal_param(threshold, num_perm, 0.5, 0.5)


def test_agrees_with_the_datasketch_baseline():
    texts = synthetic_texts(2000, seed=0)
    ours, theirs = dedup(texts), datasketch_dedup(texts)
    assert ours.counts["exact_duplicate"] >= 200 and ours.counts["near_duplicate"] >= 150
    agreement = np.mean(np.array(ours.keep) == np.array(theirs))
    assert agreement >= 0.99
    assert ours.keep.count(False) >= theirs.count(False)  # verified: extra drops are LSH recall
