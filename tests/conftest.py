"""Shared fixtures: one sample workspace, one tiny model and its GGUFs per test session.

Imports no Dagster, so tests/core runs without it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.base_model import BaseModelInfo, build_base_model, workspace_corpus
from pipeline.gguf import convert_to_gguf, quantize
from pipeline.sample import SampleSummary, create_sample_workspace
from pipeline.toolchain import Toolchain, locate_toolchain

pytest_plugins = ["tests.postgres"]  # a real PostgreSQL server, started on first use


@pytest.fixture(scope="session", autouse=True)
def nightshift_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Nothing a test does touches the user's real ~/.nightshift."""
    home = tmp_path_factory.mktemp("nightshift-home")
    os.environ["NIGHTSHIFT_HOME"] = str(home)
    return home


@pytest.fixture(scope="session")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleSummary:
    return create_sample_workspace(tmp_path_factory.mktemp("ws") / "sample", seed=0)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, sample: SampleSummary) -> BaseModelInfo:
    return build_base_model(tmp_path_factory.mktemp("base") / "tiny", workspace_corpus(sample.root))


@pytest.fixture(scope="session")
def toolchain() -> Toolchain:
    """The real llama.cpp tools; `make test` builds them first."""
    return locate_toolchain()


@pytest.fixture(scope="session")
def tiny_f16(tiny_model: BaseModelInfo, toolchain: Toolchain, tmp_path_factory) -> Path:
    return convert_to_gguf(toolchain, tiny_model.path, tmp_path_factory.mktemp("gguf") / "f16.gguf")


@pytest.fixture(scope="session")
def tiny_q4(tiny_f16: Path, toolchain: Toolchain) -> Path:
    return quantize(toolchain, tiny_f16, tiny_f16.with_name("q4_k_m.gguf"), "Q4_K_M")
