"""Train/valid/test split with no leakage, stratified by tier and strategy.

Examples are grouped first: one group per connected component of the session graph
(resumes, subagents, compaction chains), merged with every group a near-duplicate cluster
touches. A group goes to one split whole. Groups are then dealt out, in a seeded order, to
whichever split is furthest below its share of each stratum the group carries.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class SplitConfig:
    fractions: tuple[float, float, float] = (0.9, 0.05, 0.05)
    seed: int = 0
    min_holdout_groups: int = 1  # valid and test each get at least this many groups if possible


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def leakage_groups(components: Sequence[str], clusters: Sequence[int]) -> list[int]:
    """A group id per example: same component or same near-duplicate cluster, same group."""
    uf = _UnionFind(len(components))
    first_of: dict[object, int] = {}
    for i, key in enumerate(components):
        uf.union(i, first_of.setdefault(("c", key), i))
    for i, cluster in enumerate(clusters):
        uf.union(i, first_of.setdefault(("d", cluster), i))
    return [uf.find(i) for i in range(len(components))]


def _order_key(seed: int, group: int, label: str) -> tuple[bytes, int]:
    return hashlib.blake2b(f"{seed}:{label}".encode(), digest_size=8).digest(), group


def assign_splits(
    groups: Sequence[int],
    strata: Sequence[str],
    labels: Sequence[str],
    cfg: SplitConfig = SplitConfig(),
) -> list[str]:
    """A split name per example. `labels` name each group stably (for a seeded order)."""
    members: dict[int, list[int]] = defaultdict(list)
    for i, g in enumerate(groups):
        members[g].append(i)
    label_of = {g: labels[idx[0]] for g, idx in members.items()}
    order = sorted(members, key=lambda g: _order_key(cfg.seed, g, label_of[g]))
    totals = Counter(strata)
    have: dict[str, Counter[str]] = {s: Counter() for s in SPLITS}
    result = [""] * len(groups)
    holdouts = SPLITS[1:]
    for n, g in enumerate(order):
        carried = Counter(strata[i] for i in members[g])
        remaining = len(order) - n
        # Guarantee each holdout split a group while enough groups remain to give one away.
        empty = [s for s in holdouts if not sum(have[s].values())]
        if empty and remaining <= len(empty) * cfg.min_holdout_groups and len(order) >= 3:
            choice = empty[0]
        else:
            deficit = {
                s: sum(c * (frac * totals[st] - have[s][st]) for st, c in carried.items())
                for s, frac in zip(SPLITS, cfg.fractions, strict=True)
            }
            choice = max(SPLITS, key=lambda s: (deficit[s], -SPLITS.index(s)))
        for i in members[g]:
            result[i] = choice
            have[choice][strata[i]] += 1
    return result


def leaks(splits: Sequence[str], keys: Sequence[str]) -> dict[str, list[str]]:
    """Keys (components, clusters or texts) found in more than one split."""
    seen: dict[str, set[str]] = defaultdict(set)
    for split, key in zip(splits, keys, strict=True):
        seen[key].add(split)
    return {k: sorted(v) for k, v in seen.items() if len(v) > 1}
