from __future__ import annotations

from collections import Counter

from pipeline.split import SplitConfig, assign_splits, leakage_groups, leaks


def test_components_and_clusters_join_groups():
    comps = ["a", "a", "b", "c", "d"]
    clusters = [0, 1, 2, 2, 4]  # b and c share a near-duplicate cluster
    g = leakage_groups(comps, clusters)
    assert g[0] == g[1] and g[2] == g[3] and len({g[0], g[2], g[4]}) == 3


def test_split_is_90_5_5_stratified_grouped_and_seeded():
    n = 2000
    comps = [f"c{i // 4}" for i in range(n)]  # 500 groups of 4
    strata = [("A/A" if i % 3 else "B/B") for i in range(n)]
    groups = leakage_groups(comps, list(range(n)))
    splits = assign_splits(groups, strata, comps)
    counts = Counter(splits)
    assert abs(counts["train"] / n - 0.9) < 0.02
    assert abs(counts["valid"] / n - 0.05) < 0.01 and abs(counts["test"] / n - 0.05) < 0.01
    assert leaks(splits, comps) == {}
    for stratum in ("A/A", "B/B"):
        share = Counter(s for s, st in zip(splits, strata, strict=True) if st == stratum)
        assert abs(share["test"] / sum(share.values()) - 0.05) < 0.02
    assert assign_splits(groups, strata, comps) == splits
    assert assign_splits(groups, strata, comps, SplitConfig(seed=1)) != splits


def test_tiny_data_still_gets_valid_and_test():
    comps = ["a", "b", "c", "d"]
    splits = assign_splits(leakage_groups(comps, [0, 1, 2, 3]), ["A/A"] * 4, comps)
    assert set(splits) == {"train", "valid", "test"}
