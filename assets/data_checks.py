"""Blocking checks on the splits: a failure stops training on them."""

import dagster as dg

from assets.data import validated_splits
from pipeline.audit import leakage, schema_problems, secrets_left
from resources import ArtifactStoreResource


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
def validated_splits_no_secrets(artifacts: ArtifactStoreResource) -> dg.AssetCheckResult:
    """The scrubber's detectors find nothing left in any split."""
    found = secrets_left(_folder(artifacts))
    return dg.AssetCheckResult(
        passed=not found, metadata={"findings": dg.MetadataValue.json(dict(found))}
    )
