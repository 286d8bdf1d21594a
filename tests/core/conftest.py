"""Fixtures of the serving control plane's tests (test_serve_control, test_serve_requests)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pipeline.registry import Registry
from tests.serving import fake_registry, serving


@pytest.fixture(scope="module")
def control_registry(tmp_path_factory) -> Registry:
    """v1 and v2 of small GGUF-shaped files (v2 is the one tests damage); no model needed."""
    return fake_registry(tmp_path_factory.mktemp("control"))


@pytest.fixture(scope="module")
def control_endpoint(control_registry) -> Iterator[str]:
    """A serving process with the default settings: no CORS allowlist, nothing deployed."""
    with serving(control_registry) as endpoint:
        yield endpoint
