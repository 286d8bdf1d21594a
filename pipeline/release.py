"""Publish a registry version to the Hugging Face Hub, then mark the ratings it used exported.

One commit holds the chosen GGUF quants, every other registered file (the adapter), a model
card and an Ollama Modelfile, so a repo never shows half a release. Tiers: every release goes
to a private test repo first; promotion releases the same version to the public repo.

The token is only handed to the client: it is never logged, and errors are rebuilt from the
client's message with the token blanked and without the chained exception (whose request
object carries the Authorization header).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from huggingface_hub import CommitOperationAdd, HfApi

from pipeline.model_card import model_card, modelfile
from pipeline.ratings import RatingsDatabaseError, RatingsMapping, mark_exported
from pipeline.registry import IntegrityError, Registry, RegistryError

DEFAULT_ENDPOINT = "https://huggingface.co"
TIERS = ("test", "public")


class ReleaseError(RuntimeError):
    """A release failed or cannot start; the message never contains the token."""


class ReleaseRefused(ReleaseError, IntegrityError):
    """The version failed verification (a file missing or changed): nothing was uploaded."""


@dataclass(frozen=True)
class ReleaseConfig:
    repo_id: str = ""  # the public repo: a version goes here on promotion
    test_repo_id: str = ""  # every version is released here first
    test_private: bool = True  # keep the test repo private: it holds unpromoted versions
    endpoint: str = DEFAULT_ENDPOINT
    license: str = "apache-2.0"  # must be the base model's licence, or one it allows
    quants: tuple[str, ...] = ("Q4_K_M",)  # the first is the Modelfile's

    def target(self, tier: str) -> tuple[str, bool]:
        """The repo and its privacy for a tier."""
        if tier not in TIERS:
            raise ReleaseError(f"unknown release tier {tier!r}; use one of {TIERS}")
        if tier == "test":
            return self.test_repo_id, self.test_private
        return self.repo_id, False


@dataclass
class ReleaseResult:
    version: str
    repo_id: str
    private: bool
    files: list[str] = field(default_factory=list)
    commit_url: str | None = None
    commit_oid: str | None = None
    local_only: str | None = None  # why nothing left the machine
    ratings_marked: int = 0

    @property
    def released(self) -> bool:
        return self.commit_oid is not None

    def to_json(self) -> dict:
        return asdict(self)


def release_files(manifest: dict, quants: Sequence[str]) -> list[str]:
    """Registered files to upload: the chosen quants and everything that is not a GGUF."""
    wanted = [f"model-{q}.gguf" for q in quants]
    missing = [w for w in wanted if w not in manifest["files"]]
    if missing or not wanted:
        have = sorted(f for f in manifest["files"] if f.endswith(".gguf"))
        raise ReleaseError(
            f"{manifest['version']} has no {missing or 'quant chosen'}; it has {have}"
        )
    others = [f for f in manifest["files"] if not f.endswith(".gguf")]
    return wanted + sorted(others)


def verified_manifest(version_dir: Path) -> dict:
    """The version's manifest once every file matches its size and sha256, else ReleaseRefused.

    A version folder, or a folder or file in it, that is a symlink is refused: following one
    could upload anything the user can read (a private key) to the Hub.
    """
    try:
        return Registry(version_dir.parent).verify(version_dir.name)
    except RegistryError as exc:
        raise ReleaseRefused(f"{version_dir.name} is not released: {exc}") from None


def release(
    version_dir: Path,
    repo_id: str,
    token: str | None,
    *,
    endpoint: str = DEFAULT_ENDPOINT,
    private: bool = True,
    quants: Sequence[str] = ("Q4_K_M",),
    license: str = "apache-2.0",
    log: Callable[[str], None] = print,
) -> ReleaseResult:
    """Create or reuse `repo_id` and commit the version's release files to it in one commit."""
    manifest = verified_manifest(version_dir)  # a damaged version never leaves the machine
    files = release_files(manifest, quants)
    result = ReleaseResult(manifest["version"], repo_id, private, files)
    if not token:
        result.local_only = (
            f"HF_TOKEN is not set: {result.version} stays in the local registry at {version_dir}"
        )
        log(result.local_only)
        return result
    if not repo_id:
        raise ReleaseError("no Hub repo configured for this release tier (repo_id/test_repo_id)")
    card = model_card(manifest, repo_id, license, files)
    operations = [CommitOperationAdd(name, str(version_dir / name)) for name in files]
    operations += [
        CommitOperationAdd("README.md", card.encode()),
        CommitOperationAdd("Modelfile", modelfile(files[0]).encode()),
    ]
    failure = None
    try:
        api = HfApi(endpoint=endpoint, token=token, library_name="nightshift")
        api.create_repo(repo_id, private=private, exist_ok=True)
        commit = api.create_commit(
            repo_id,
            operations,
            commit_message=f"nightshift {result.version}",
            commit_description=f"base {manifest['base_model']}, data {manifest['data_version']}",
        )
    except Exception as exc:  # every client failure (HTTP, network, validation) ends the same
        failure = f"{type(exc).__name__}: {exc}".replace(token, "[HF_TOKEN]")
    if failure is not None:  # raised outside `except`, so the exception chain stays behind
        raise ReleaseError(f"release of {result.version} to {repo_id} failed: {failure}")
    result.commit_url, result.commit_oid = commit.commit_url, commit.oid
    log(f"released {result.version} to {repo_id} ({len(operations)} files): {commit.commit_url}")
    return result


def release_and_mark_exported(
    version_dir: Path,
    cfg: ReleaseConfig,
    token: str | None,
    ratings_url: str | None,
    *,
    tier: str = "test",
    mapping: RatingsMapping = RatingsMapping(),
    log: Callable[[str], None] = print,
) -> ReleaseResult:
    """Release to the tier's repo; only if that succeeded, mark the version's ratings exported.

    A failed release raises before the ratings database is touched; a local-only one marks
    nothing, since nothing left the machine.
    """
    repo_id, private = cfg.target(tier)
    result = release(
        version_dir,
        repo_id,
        token,
        endpoint=cfg.endpoint,
        private=private,
        quants=cfg.quants,
        license=cfg.license,
        log=log,
    )
    if not result.released or ratings_url is None:
        return result
    try:  # read as every registry file is: no link followed, damage named
        rating_ids = Registry(version_dir.parent).manifest(version_dir.name)["rating_ids"]
    except RegistryError as exc:
        raise ReleaseError(
            f"released {result.commit_url}, but its ratings stay unexported: {exc}"
        ) from None
    try:
        result.ratings_marked = mark_exported(ratings_url, rating_ids, mapping)
    except RatingsDatabaseError as exc:
        raise RatingsDatabaseError(
            f"released {result.commit_url}, but its {len(rating_ids)} ratings stay unexported "
            f"(a later release will include them again): {exc}"
        ) from exc
    log(f"marked {result.ratings_marked} ratings exported")
    return result
