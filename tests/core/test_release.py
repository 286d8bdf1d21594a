"""Releases through the real huggingface_hub client to a loopback Hub; ratings marked after."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import huggingface_hub.constants
import pytest
import yaml

from pipeline.model_card import model_card
from pipeline.ratings import read_rated_conversations
from pipeline.registry import IntegrityError, Registry
from pipeline.release import (
    ReleaseConfig,
    ReleaseError,
    release,
    release_and_mark_exported,
)
from pipeline.sample import SampleSummary
from tests.core.test_ratings import pg_copy
from tests.hub_server import Hub, serve_hub

# huggingface_hub's own LFS PUT passes `data=` to httpx2; not ours to change.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")
TOKEN = "hf_loopbackTokenThatMustNeverShow0123"
BASE = "Qwen/Qwen2.5-0.5B-Instruct"


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[Hub]:
    # The documented switch to plain LFS: the loopback Hub does not speak Xet's CAS protocol.
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)
    with serve_hub(TOKEN) as running:
        yield running


@pytest.fixture
def ratings_db(sample: SampleSummary, tmp_path: Path) -> str:
    return f"sqlite:///{shutil.copy(sample.ratings_db, tmp_path / 'feedback.sqlite')}"


def unexported(url: str) -> list[int]:
    return read_rated_conversations(url)[1].rating_ids


@pytest.fixture
def version_dir(tmp_path: Path, ratings_db: str) -> Path:
    """A registered version: three GGUF-named files, an adapter, the sample's rating ids."""
    src = tmp_path / "src"
    src.mkdir()
    names = [
        "model-Q4_K_M.gguf",
        "model-Q8_0.gguf",
        "model-F16.gguf",
        "adapters.safetensors",
        "adapter_config.json",
    ]
    for i, name in enumerate(names):
        (src / name).write_bytes(b"GGUF" + bytes(range(256)) * (i + 1) if "gguf" in name else b"{}")
    registry = Registry(tmp_path / "registry")
    version = registry.register(
        {("adapter/" if "adapter" in n else "") + n: src / n for n in names},
        base_model=BASE,
        data_version="splits-abc",
        code_version="1",
        metrics={"test_loss": 1.234, "win_rate": 0.62, "judge": "claude"},
        gates={"beats_champion": True, "quants_valid": True},
        rating_ids=unexported(ratings_db),
    )
    return registry.version_dir(version)


def front_matter(readme: bytes) -> dict:
    match = re.match(r"^---\n(.*?)\n---\n", readme.decode(), re.S)
    assert match, readme[:200]
    return yaml.safe_load(match.group(1))


def test_one_commit_with_quants_adapter_card_and_modelfile(hub: Hub, version_dir: Path) -> None:
    result = release(version_dir, "me/nightshift-test", TOKEN, endpoint=hub.url, private=True)
    repo = hub.repos["me/nightshift-test"]
    assert repo.private and len(repo.commits) == 1 and not hub.bad_auth
    assert result.released and result.commit_oid == repo.commits[0]["oid"]
    assert result.commit_url == f"{hub.url}/me/nightshift-test/commit/{result.commit_oid}"
    expected = [
        "Modelfile",
        "README.md",
        "adapter/adapter_config.json",
        "adapter/adapters.safetensors",
        "model-Q4_K_M.gguf",
    ]
    assert sorted(repo.files) == expected == repo.commits[0]["files"]
    for name in expected[2:]:
        assert repo.files[name] == (version_dir / name).read_bytes()
    # GGUF and safetensors went through LFS (batch, presigned PUT, verify), as on the Hub.
    assert ("PUT", "/lfs-upload/" + _sha(version_dir / "model-Q4_K_M.gguf")) in hub.requests
    assert len(hub.lfs) == 2

    meta = front_matter(repo.files["README.md"])
    assert meta["base_model"] == BASE and meta["license"] == "apache-2.0"
    assert {"gguf", "lora", "nightshift"} <= set(meta["tags"])
    figures = meta["model-index"][0]["results"][0]["metrics"]
    assert {m["type"]: m["value"] for m in figures} == {"test_loss": 1.234, "win_rate": 0.62}
    card = repo.files["README.md"].decode()
    assert "| beats_champion | pass |" in card and "splits-abc" in card
    modelfile = repo.files["Modelfile"].decode()
    assert modelfile.startswith("FROM ./model-Q4_K_M.gguf\n")
    assert 'PARAMETER stop "<|im_end|>"' in modelfile and "<|im_start|>assistant" in modelfile

    # Releasing again reuses the repo (create answers 409) and adds a commit.
    again = release(version_dir, "me/nightshift-test", TOKEN, endpoint=hub.url)
    assert again.commit_oid != result.commit_oid and len(repo.commits) == 2


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_tiers_test_repo_private_then_public(hub: Hub, version_dir: Path) -> None:
    cfg = ReleaseConfig(
        repo_id="me/nightshift",
        test_repo_id="me/nightshift-test",
        endpoint=hub.url,
        quants=("Q8_0", "Q4_K_M"),
    )
    first = release_and_mark_exported(version_dir, cfg, TOKEN, None, tier="test")
    promoted = release_and_mark_exported(version_dir, cfg, TOKEN, None, tier="public")
    assert first.private and not promoted.private
    assert hub.repos["me/nightshift-test"].private and not hub.repos["me/nightshift"].private
    files = hub.repos["me/nightshift"].files
    assert "model-Q8_0.gguf" in files and "model-F16.gguf" not in files
    assert files["Modelfile"].startswith(b"FROM ./model-Q8_0.gguf\n")
    with pytest.raises(ReleaseError, match="no \\['model-Q2_K.gguf'\\]"):
        release(version_dir, "me/x", TOKEN, endpoint=hub.url, quants=("Q2_K",))


def test_success_marks_the_ratings_exported(hub: Hub, version_dir: Path, ratings_db: str) -> None:
    used = json.loads((version_dir / "manifest.json").read_text())["rating_ids"]
    assert used and unexported(ratings_db) == used
    cfg = ReleaseConfig(test_repo_id="me/nightshift-test", endpoint=hub.url)
    result = release_and_mark_exported(version_dir, cfg, TOKEN, ratings_db)
    assert result.released and result.ratings_marked == len(used)
    assert unexported(ratings_db) == []


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_failed_release_marks_nothing(
    hub: Hub, version_dir: Path, ratings_db: str, database: str, request: pytest.FixtureRequest
) -> None:
    url = ratings_db
    if database == "postgresql":  # the server starts only when this case runs
        sqlite_path = Path(ratings_db.removeprefix("sqlite:///"))
        url = pg_copy(sqlite_path, request.getfixturevalue("postgres_url"), f"r{uuid4().hex}")
    before = unexported(url)
    hub.fail_commit = True
    cfg = ReleaseConfig(test_repo_id="me/nightshift-test", endpoint=hub.url)
    with pytest.raises(ReleaseError, match="500") as failed:
        release_and_mark_exported(version_dir, cfg, TOKEN, url)
    assert TOKEN not in str(failed.value) and failed.value.__cause__ is None
    assert failed.value.__context__ is None
    assert unexported(url) == before and before
    assert hub.repos["me/nightshift-test"].commits == []
    hub.fail_commit = False  # the same release, retried, goes out and marks them
    assert release_and_mark_exported(version_dir, cfg, TOKEN, url).ratings_marked == len(before)
    assert unexported(url) == []


def _flip_quant(version_dir: Path) -> str:
    path = version_dir / "model-Q4_K_M.gguf"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte changed
    path.write_bytes(bytes(data))
    return "v1/model-Q4_K_M.gguf: sha256 differs from its manifest"


def _truncate_unreleased_quant(version_dir: Path) -> str:
    (version_dir / "model-F16.gguf").write_bytes(b"GGUF")  # not uploaded, still refused
    return "v1/model-F16.gguf: size differs from its manifest (4 bytes"


def _delete_adapter(version_dir: Path) -> str:
    (version_dir / "adapter/adapters.safetensors").unlink()
    return "v1/adapter/adapters.safetensors: missing"


def _drop_manifest_field(version_dir: Path) -> str:
    manifest = json.loads((version_dir / "manifest.json").read_text())
    del manifest["rating_ids"]
    (version_dir / "manifest.json").write_text(json.dumps(manifest))
    return "v1/manifest.json: missing field 'rating_ids'"


@pytest.mark.parametrize(
    "damage", [_flip_quant, _truncate_unreleased_quant, _delete_adapter, _drop_manifest_field]
)
@pytest.mark.parametrize("token", [TOKEN, None])
def test_a_damaged_version_is_refused_before_any_upload(
    hub: Hub, version_dir: Path, ratings_db: str, damage, token: str | None
) -> None:
    before = unexported(ratings_db)
    expected = damage(version_dir)
    cfg = ReleaseConfig(test_repo_id="me/nightshift-test", endpoint=hub.url)
    with pytest.raises(ReleaseError) as refused:
        release_and_mark_exported(version_dir, cfg, token, ratings_db)
    assert isinstance(refused.value, IntegrityError)
    assert str(refused.value).startswith(f"v1 is not released: {expected}"), str(refused.value)
    assert hub.requests == [] and hub.repos == {} and unexported(ratings_db) == before


def test_no_token_stays_local(hub: Hub, version_dir: Path, ratings_db: str) -> None:
    before = unexported(ratings_db)
    said: list[str] = []
    cfg = ReleaseConfig(test_repo_id="me/nightshift-test", endpoint=hub.url)
    result = release_and_mark_exported(version_dir, cfg, None, ratings_db, log=said.append)
    assert not result.released and result.ratings_marked == 0
    assert "HF_TOKEN is not set" in result.local_only and str(version_dir) in result.local_only
    assert said == [result.local_only]
    assert hub.requests == [] and unexported(ratings_db) == before


def test_token_never_in_logs_metadata_or_errors(
    hub: Hub, version_dir: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # the client's and httpx's own loggers included
    said: list[str] = []
    cfg = ReleaseConfig(test_repo_id="me/nightshift-test", endpoint=hub.url)
    result = release_and_mark_exported(version_dir, cfg, TOKEN, None, log=said.append)
    with pytest.raises(ReleaseError) as wrong:  # the Hub refuses a bad token with 401
        release(version_dir, "me/other", TOKEN + "x", endpoint=hub.url, log=said.append)
    hub.fail_commit = True
    with pytest.raises(ReleaseError) as failed:
        release(version_dir, "me/nightshift-test", TOKEN, endpoint=hub.url, log=said.append)
    out = capsys.readouterr()
    texts = [
        caplog.text,
        out.out,
        out.err,
        *said,
        json.dumps(result.to_json()),
        str(wrong.value),
        repr(wrong.value),
        str(failed.value),
        *(f.read_text() for f in version_dir.rglob("*.json")),
        *(data.decode(errors="replace") for data in hub.repos["me/nightshift-test"].files.values()),
    ]
    assert "401" in str(wrong.value) and said and caplog.records
    for text in texts:
        assert TOKEN not in text


@pytest.mark.parametrize("base", ["tiny", "/home/me/models/local-llama"])
def test_local_base_model_stays_out_of_the_metadata(base: str) -> None:
    """The Hub rejects a base_model that is not a Hub id; the card body still names it."""
    manifest = {
        "version": "v1",
        "base_model": base,
        "data_version": "d",
        "code_version": "c",
        "created": "2026-12-01T00:00:00+00:00",
        "metrics": {},
        "gates": {},
        "files": {"model-Q4_K_M.gguf": {"bytes": 1, "sha256": "00"}},
    }
    card = model_card(manifest, "me/nightshift", "mit", ["model-Q4_K_M.gguf"])
    meta = front_matter(card.encode())
    assert "base_model" not in meta and "model-index" not in meta and meta["license"] == "mit"
    assert f"`{base}`" in card and "No metrics recorded." in card
