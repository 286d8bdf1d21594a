"""Exact and near-duplicate removal for chat examples: normalized-text hashing, MinHash LSH.

Normalization is `" ".join(text.casefold().split())`; a shingle is five consecutive words of
it. Word shingles, not character n-grams, because the texts mix prose, code and shell: a
word 5-gram still pins down a code line or a command, one changed word changes five shingles
instead of a dozen or more char n-grams, and a 1 KB example has ~150 of them rather than
~1,000, which is most of the cost.

The work is vectorized over many texts at once with numpy:
- every byte of a chunk of texts feeds a polynomial prefix hash, so a word's hash is a
  difference of two prefix sums; words combine into 64-bit shingle hashes and into a 128-bit
  key of the whole normalized text (the exact-duplicate key);
- the MinHash is one-permutation hashing with optimal densification (Shrivastava, ICML 2017):
  one hash per shingle instead of `num_perm`, same collision probability (the Jaccard);
- LSH bands are sorted, not put in dicts; every candidate is checked by the exact Jaccard of
  the two shingle sets (32-bit shingle fingerprints: a collision inside one pair is ~1e-5).
Everything is seeded from `DedupConfig.seed` through numpy's PCG64, never Python's salted
`hash()`, so results are the same in every process.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

_U64 = np.uint64
_BYTE_BASE = 0x9E3779B97F4A7C15  # odd, so it is invertible mod 2**64
# Characters hashed per numpy pass: amortizes call overhead, bounds the temporaries (~40x).
_CHUNK_BYTES = 1 << 20
_DENSIFY_ROUNDS = 256  # a text with >= 8 shingles has every bin filled long before
# A false positive costs one exact-Jaccard check, a false negative lets a duplicate through,
# so the banding is tuned mostly against false negatives.
_FP_WEIGHT, _FN_WEIGHT = 0.1, 0.9
# bytes.translate tables (C speed): ASCII case folding, and 1 for bytes inside a word, i.e.
# all but those str.split() splits on (\t \n \v \f \r, \x1c-\x1f and space).
_FOLD = bytes.maketrans(bytes(range(65, 91)), bytes(range(97, 123)))
_IN_WORD = bytes(0 if b in b"\t\n\v\f\r\x1c\x1d\x1e\x1f " else 1 for b in range(256))


@dataclass(frozen=True)
class DedupConfig:
    threshold: float = 0.85  # Jaccard similarity at or above which two texts are near-duplicates
    num_perm: int = 128  # MinHash hash values per text
    shingle: int = 5  # words per shingle (see the module docstring for why words)
    min_shingles: int = 8  # texts with fewer distinct shingles are only exact-deduplicated
    max_cluster: int = 1000  # representatives an LSH bucket holds: bounds the work per text
    seed: int = 1


@dataclass
class DedupResult:
    keep: list[bool]  # per input text
    cluster: list[int]  # index of the text's representative; a kept text is its own
    reason: list[str | None]  # None if kept, else "exact_duplicate" or "near_duplicate"
    counts: dict[str, int]


def normalize(text: str) -> str:
    """Whitespace collapsed, case-folded: texts equal after this are exact duplicates."""
    return " ".join(text.casefold().split())


def shingles(text: str, size: int = 5) -> set[str]:
    """The reference shingle set (consecutive `size`-word windows of the normalized text)."""
    words = normalize(text).split(" ")
    return {" ".join(words[i : i + size]) for i in range(len(words) - size + 1)}


def optimal_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) minimizing weighted false-positive and false-negative areas of the
    LSH S-curve, as datasketch's `_optimal_param` does (trapezoid rule instead of scipy)."""
    return _optimal_bands(threshold, num_perm, _FP_WEIGHT, _FN_WEIGHT)


@lru_cache(maxsize=16)
def _optimal_bands(threshold: float, num_perm: int, fp_w: float, fn_w: float) -> tuple[int, int]:
    pairs = np.array([(b, r) for b in range(1, num_perm + 1) for r in range(1, num_perm // b + 1)])
    b, r = pairs[:, :1].astype(float), pairs[:, 1:].astype(float)
    below, above = np.linspace(0.0, threshold, 201), np.linspace(threshold, 1.0, 201)
    fp = np.trapezoid(1 - (1 - below**r) ** b, below, axis=1)
    fn = np.trapezoid((1 - above**r) ** b, above, axis=1)
    bands, rows = pairs[np.argmin(fp * fp_w + fn * fn_w)]
    return int(bands), int(rows)


def _fmix(x: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finalizer, in place: full avalanche for sums and products."""
    x ^= x >> _U64(33)
    x *= _U64(0xFF51AFD7ED558CCD)
    x ^= x >> _U64(33)
    x *= _U64(0xC4CEB9FE1A85EC53)
    x ^= x >> _U64(33)
    return x


@dataclass(frozen=True)
class _Tables:
    """Random odd multipliers and probe sequences, all drawn from DedupConfig.seed."""

    position: np.uint64  # a word's position in its text (exact key)
    window: np.uint64  # a word's place in its shingle
    finish: np.uint64  # xor-ed in before the shingle hash's final mix
    rows: np.ndarray  # each row of an LSH band
    probes: np.ndarray  # (_DENSIFY_ROUNDS, num_perm): where an empty MinHash bin borrows from


@lru_cache(maxsize=8)
def _tables(seed: int, num_perm: int) -> _Tables:
    rng = np.random.default_rng(seed)
    odd = rng.integers(0, 2**64, 3 + num_perm, dtype=_U64, endpoint=False) | _U64(1)
    probes = rng.integers(0, num_perm, (_DENSIFY_ROUNDS, num_perm))
    return _Tables(odd[0], odd[1], odd[2], odd[3:], probes)


@lru_cache(maxsize=2)
def _power_tables(bits: int) -> tuple[np.ndarray, np.ndarray]:
    """BASE**i and BASE**-i mod 2**64 for i < 2**bits (numpy integer products wrap)."""
    inverse = pow(_BYTE_BASE, -1, 1 << 64)
    ones = np.ones(1, dtype=_U64)
    powers = np.cumprod(np.full((1 << bits) - 1, _BYTE_BASE, dtype=_U64))
    inverse_powers = np.cumprod(np.full((1 << bits) - 1, inverse, dtype=_U64))
    return np.concatenate([ones, powers]), np.concatenate([ones, inverse_powers])


def _run_starts(a: np.ndarray) -> np.ndarray:
    """True where a sorted array holds a value for the first time."""
    starts = np.ones(len(a), dtype=bool)
    starts[1:] = a[1:] != a[:-1]
    return starts


@dataclass
class _Sketch:
    exact_keys: np.ndarray  # (n, 2) uint64: hash of the normalized text
    n_shingles: np.ndarray  # (n,) distinct shingles
    lsh: np.ndarray  # (n,) bool: enough shingles for MinHash LSH
    fingerprints: np.ndarray  # sorted distinct 32-bit shingle hashes, text after text
    band_keys: np.ndarray  # (n, bands) uint64 hash of each LSH band; garbage where not lsh


def _sketch(texts: Sequence[str], cfg: DedupConfig) -> _Sketch:
    """Hash a chunk of texts in one numpy pass over their concatenated bytes."""
    t = _tables(cfg.seed, cfg.num_perm)
    # ASCII texts go in raw (folding and splitting happen on bytes); others are normalized in
    # Python first, as Unicode case folding and whitespace do not fit a byte table.
    parts = [s if s.isascii() else normalize(s) for s in texts]
    lengths = np.array(
        [len(p) if p.isascii() else len(p.encode("utf-8", "surrogatepass")) for p in parts],
        dtype=np.int64,
    )
    data = (" " + "\n".join(parts) + "\n").encode("utf-8", "surrogatepass")
    ends = np.cumsum(lengths + 1)  # the separator after text i sits at ends[i]

    # One table size serves every ~1 MiB chunk; only a longer single text needs a larger one.
    powers, inverse_powers = _power_tables(max(21, len(data).bit_length()))
    prefix = np.zeros(len(data) + 1, dtype=_U64)
    values = np.multiply(np.frombuffer(data.translate(_FOLD), np.uint8), powers[: len(data)])
    np.cumsum(values, out=prefix[1:])
    is_word = np.frombuffer(data.translate(_IN_WORD), np.bool_)
    edges = np.flatnonzero(is_word[1:] != is_word[:-1]) + 1
    starts, stops = edges[0::2], edges[1::2]
    words = (prefix[stops] - prefix[starts]) * inverse_powers[starts]  # sum c_j * BASE**j
    first_word = np.concatenate([[0], np.searchsorted(starts, ends)])
    doc = np.repeat(np.arange(len(texts)), np.diff(first_word))

    # Exact key: two sums over the text's (position, word) pairs mixed into random values,
    # the second weighted by position, so that both agree only for the same word sequence.
    position = (np.arange(len(words)) - first_word[doc]).astype(_U64)
    mixed = _fmix(words + position * t.position)
    exact = np.empty((len(texts), 2), dtype=_U64)
    for k, column in enumerate((mixed, mixed * (position + _U64(1)))):
        cum = np.concatenate([[_U64(0)], np.cumsum(column)])
        exact[:, k] = cum[first_word[1:]] - cum[first_word[:-1]]

    # Shingle hashes over windows of `size` words that stay inside one text.
    size = cfg.shingle
    n_win = max(len(words) - size + 1, 0)
    inside = doc[:n_win] == doc[size - 1 : size - 1 + n_win]
    rolled = words[:n_win] * t.window
    for k in range(1, size):
        rolled = (rolled + words[k : k + n_win]) * t.window
    fps = _fmix(rolled[inside] ^ t.finish) >> _U64(32)
    keys = np.sort((doc[:n_win][inside].astype(_U64) << _U64(32)) | fps)
    keys = keys[_run_starts(keys)]  # distinct per text
    key_doc = (keys >> _U64(32)).astype(np.int64)
    fps = (keys & _U64(0xFFFFFFFF)).astype(np.int64)
    counts = np.bincount(key_doc, minlength=len(texts))
    lsh = counts >= max(cfg.min_shingles, 1)

    # One-permutation MinHash: bin by the top of the 32-bit range; keys are sorted, so the
    # first key of each (text, bin) run is that bin's minimum.
    cell = key_doc * cfg.num_perm + ((fps * cfg.num_perm) >> 32)
    minima = np.flatnonzero(_run_starts(cell))
    raw = np.full(len(texts) * cfg.num_perm, -1, dtype=np.int64)
    raw[cell[minima]] = fps[minima]
    sig = raw.copy()
    # Optimal densification: an empty bin borrows from bins on a seeded probe sequence. Texts
    # too short for LSH are skipped; they would take the most rounds.
    empty = np.flatnonzero((raw < 0) & np.repeat(lsh, cfg.num_perm))
    col = empty % cfg.num_perm
    row_start = empty - col
    for probe in t.probes:
        if not len(empty):
            break
        src = row_start + probe[col]
        got = raw[src] >= 0
        sig[empty[got]] = raw[src[got]]
        empty, row_start, col = empty[~got], row_start[~got], col[~got]
    # Band keys: a multilinear hash of the band's rows (a collision only adds a candidate).
    bands, rows = optimal_bands(cfg.threshold, cfg.num_perm)
    banded = sig.view(_U64).reshape(len(texts), -1)[:, : bands * rows]
    band_keys = np.einsum("tbr,r->tb", banded.reshape(len(texts), bands, rows), t.rows[:rows])
    return _Sketch(exact, counts, lsh, fps.astype(np.uint32), band_keys)


def _chunks(texts: Sequence[str]) -> list[tuple[int, int]]:
    """Consecutive [lo, hi) ranges of about _CHUNK_BYTES characters, at least one text each."""
    if not texts:
        return []
    ends = np.cumsum(np.fromiter(map(len, texts), dtype=np.int64, count=len(texts)))
    cuts = np.searchsorted(ends, np.arange(_CHUNK_BYTES, int(ends[-1]), _CHUNK_BYTES), "right")
    bounds = np.unique(np.concatenate([[0], cuts, [len(texts)]])).tolist()
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def _buckets(band_keys: np.ndarray) -> np.ndarray:
    """(texts, bands) bucket ids, unique across bands; -1 where a text is alone in its bucket."""
    out = np.full(band_keys.shape, -1, dtype=np.int64)
    next_id = 0
    for band in range(band_keys.shape[1]):
        order = np.argsort(band_keys[:, band])
        keys = band_keys[order, band]
        group = np.cumsum(_run_starts(keys)) - 1
        shared = np.bincount(group)[group] > 1
        out[order[shared], band] = group[shared] + next_id
        next_id += int(group[-1]) + 1 if len(group) else 0
    return out


def _jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard of two sorted arrays of distinct values."""
    pos = np.searchsorted(a, b)
    pos[pos == len(a)] = 0
    common = int(np.count_nonzero(a[pos] == b))
    return common / (len(a) + len(b) - common)


def _star(
    buckets: np.ndarray,
    fingerprints: np.ndarray,
    offsets: np.ndarray,
    threshold: float,
    max_cluster: int,
) -> tuple[np.ndarray, int, int]:
    """Representatives in input order: row i joins the most similar earlier *kept* row in its
    buckets whose exact Jaccard is >= threshold, else is kept and becomes one. Joining only
    kept rows means no chains (A~B, B~C does not pull C into A). A bucket lists at most
    `max_cluster` representatives, so a bucket shared by many distinct texts costs each text
    at most bands * max_cluster checks instead of growing quadratically.
    Returns (row of each row's representative, candidate pairs, verified pairs)."""
    rep = np.arange(len(buckets))
    reps: dict[int, list[int]] = {}
    pairs = verified = 0
    bounds = offsets.tolist()
    active = np.flatnonzero((buckets >= 0).any(axis=1))
    for i, row in zip(active.tolist(), buckets[active].tolist(), strict=True):
        ids = [b for b in row if b >= 0]
        candidates = sorted({c for b in ids for c in reps.get(b, ())})
        mine = fingerprints[bounds[i] : bounds[i + 1]]
        best = -1.0
        for c in candidates:
            pairs += 1
            theirs = fingerprints[bounds[c] : bounds[c + 1]]
            if min(len(mine), len(theirs)) < threshold * max(len(mine), len(theirs)):
                continue  # the size ratio already bounds the Jaccard below the threshold
            similarity = _jaccard(theirs, mine)
            if similarity >= threshold:
                verified += 1
                if similarity > best:  # ties go to the earliest representative
                    best, rep[i] = similarity, c
        if rep[i] == i:
            for b in ids:
                members = reps.setdefault(b, [])
                if len(members) < max_cluster:
                    members.append(i)
    return rep, pairs, verified


def _first_occurrences(keys: np.ndarray) -> np.ndarray:
    """Index of the first row equal to each row of an (n, 2) key array."""
    order = np.lexsort((keys[:, 1], keys[:, 0]))  # stable: each group starts at its first
    ordered = keys[order]
    starts = np.ones(len(keys), dtype=bool)
    starts[1:] = (ordered[1:] != ordered[:-1]).any(axis=1)
    first = np.empty(len(keys), dtype=np.int64)
    first[order] = order[starts][np.cumsum(starts) - 1]
    return first


def dedup(texts: Sequence[str], config: DedupConfig = DedupConfig()) -> DedupResult:
    """Keep the first of each exact duplicate group, then drop texts whose shingle Jaccard
    with an earlier kept text is >= config.threshold (MinHash LSH candidates, verified)."""
    n = len(texts)
    sketches = [_sketch(texts[lo:hi], config) for lo, hi in _chunks(texts)]
    rep = np.arange(n)
    first, pairs, verified = rep.copy(), 0, 0
    if sketches:
        first = _first_occurrences(np.concatenate([s.exact_keys for s in sketches]))
        n_shingles = np.concatenate([s.n_shingles for s in sketches])
        lsh = np.concatenate([s.lsh for s in sketches]) & (first == rep)
        ids = np.flatnonzero(lsh)
        fingerprints = np.concatenate([s.fingerprints for s in sketches])
        fingerprints = fingerprints[np.repeat(lsh, n_shingles)]
        offsets = np.concatenate([[0], np.cumsum(n_shingles[ids])])
        buckets = _buckets(np.concatenate([s.band_keys for s in sketches])[ids])
        del sketches  # the per-chunk copies: only the LSH texts' part goes on
        rows_rep, pairs, verified = _star(
            buckets, fingerprints, offsets, config.threshold, config.max_cluster
        )
        rep[ids] = ids[rows_rep]
    cluster = rep[first]  # an exact duplicate follows its first occurrence into its cluster
    reason: list[str | None] = [None] * n
    for i in np.flatnonzero(first != np.arange(n)).tolist():
        reason[i] = "exact_duplicate"
    for i in np.flatnonzero(rep != np.arange(n)).tolist():
        reason[i] = "near_duplicate"
    keep = [r is None for r in reason]
    counts = {
        "input": n,
        "exact_duplicate": reason.count("exact_duplicate"),
        "near_duplicate": reason.count("near_duplicate"),
        "kept": sum(keep),
        "candidate_pairs": pairs,
        "verified_pairs": verified,
    }
    return DedupResult(keep, cluster.tolist(), reason, counts)
