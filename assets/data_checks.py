"""Blocking checks on the splits: a failure stops training on them."""

from collections import Counter

import dagster as dg

from assets.data import validated_splits
from pipeline.audit import leakage, schema_problems, secrets_left
from resources import ArtifactStoreResource, WorkspaceResource

MAX_LISTED = 50  # leaks listed by place in the metadata; all are counted


def _folder(artifacts: ArtifactStoreResource):
    folder = artifacts.store().current("validated_splits")
    if folder is None:
        raise dg.Failure("validated_splits has no current version")
    return folder


@dg.asset_check(asset=validated_splits, blocking=True)
def validated_splits_chatml_schema(artifacts: ArtifactStoreResource) -> dg.AssetCheckResult:
    """Every line parses as ChatML messages with known roles, no empty turn, an answer last."""
    problems = schema_problems(_folder(artifacts))
    return dg.AssetCheckResult(
        passed=not problems, metadata={"problems": dg.MetadataValue.json(dict(problems))}
    )


@dg.asset_check(asset=validated_splits, blocking=True)
def validated_splits_no_leakage(artifacts: ArtifactStoreResource) -> dg.AssetCheckResult:
    """No session component, identical text or near-duplicate cluster spans two splits."""
    found = leakage(_folder(artifacts))
    return dg.AssetCheckResult(passed=not any(found.values()), metadata=found)


@dg.asset_check(asset=validated_splits, blocking=True)
def validated_splits_no_secrets(
    artifacts: ArtifactStoreResource, workspace: WorkspaceResource
) -> dg.AssetCheckResult:
    """Neither the scrubber's rules nor detect-secrets, an independent scanner, finds anything
    in any split. Findings name the rule and the place, never the value."""
    leaks = secrets_left(_folder(artifacts), frozenset(workspace.scrub_skip_rules))
    by_rule = Counter(leak.rule for leak in leaks)
    listed = [f"{leak.rule} at {leak.where()}" for leak in leaks[:MAX_LISTED]]
    return dg.AssetCheckResult(
        passed=not leaks,
        description=(
            f"{len(leaks)} secret(s) left: " + "; ".join(listed[:5]) if leaks else "no secrets"
        ),
        metadata={
            "findings": dg.MetadataValue.json(dict(by_rule)),
            "where": dg.MetadataValue.json(listed),
        },
    )
