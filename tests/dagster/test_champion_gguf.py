"""The champion eval_report measures against: only a quant its verified manifest lists."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pytest

from assets.evaluation import champion_gguf
from pipeline.registry import Registry
from tests.core.test_registry_integrity import SHIP, add


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    registry = Registry(tmp_path / "registry")
    for tag in "ab":
        registry.set_champion(add(registry, tmp_path, tag))
    return registry


def test_the_listed_quant_is_measured(reg: Registry) -> None:
    assert champion_gguf(reg, "Q4_K_M") == ("v2", reg.root / "v2" / SHIP)


def test_a_quant_in_the_folder_but_not_in_the_manifest_is_refused(reg: Registry) -> None:
    (reg.root / "v2" / "model-F16.gguf").write_bytes(b"never registered")
    with pytest.raises(dg.Failure, match="the champion v2 has no model-F16.gguf in its manifest"):
        champion_gguf(reg, "F16")


def test_a_linked_champion_quant_is_refused(reg: Registry, tmp_path: Path) -> None:
    (tmp_path / "other.gguf").write_bytes((reg.root / "v2" / SHIP).read_bytes())
    (reg.root / "v2" / SHIP).unlink()
    os.symlink(tmp_path / "other.gguf", reg.root / "v2" / SHIP)
    with pytest.raises(dg.Failure, match=f"cannot be measured: v2/{SHIP}: a symbolic link"):
        champion_gguf(reg, "Q4_K_M")
