"""The base model the pipeline fine-tunes, and its GGUF (the baseline every gate compares to)."""

import hashlib

import dagster as dg

from pipeline.artifacts import file_manifest
from pipeline.base_model import (
    base_model_version,
    build_base_model,
    model_dir_of,
    read_base_model_info,
    resolve_model,
    workspace_corpus,
    write_external_pointer,
)
from pipeline.gguf import convert_to_gguf, tokenizer_parity
from resources import ArtifactStoreResource, LlamaCppResource, MLXResource, WorkspaceResource

MODELS = "models"


@dg.asset(group_name=MODELS, code_version="1", kinds={"python", "mlx"})
def base_model(
    context: dg.AssetExecutionContext,
    mlx: MLXResource,
    workspace: WorkspaceResource,
    artifacts: ArtifactStoreResource,
) -> dg.MaterializeResult:
    """The model to fine-tune: the embedded tiny llama (built here) or a user's HF model."""
    store = artifacts.store()
    if mlx.base_model != "tiny":
        resolved = resolve_model(mlx.base_model)
        version = "ext-" + hashlib.sha256(str(resolved).encode()).hexdigest()[:12]
        with store.write_version("base_model", version) as tmp:
            write_external_pointer(tmp, mlx.base_model, resolved)
        store.set_current("base_model", version, model=mlx.base_model)
        context.log.info(f"using the configured base model {mlx.base_model} at {resolved}")
        return dg.MaterializeResult(
            metadata={"model": mlx.base_model, "path": str(resolved), "embedded": False},
            data_version=dg.DataVersion(version),
        )
    roots = workspace.corpus_roots()
    if not roots:
        raise dg.Failure(
            f"no text to train the tiny model's tokenizer: {workspace.projects_dir} and "
            f"{workspace.skills_dir} do not exist; point NIGHTSHIFT_WORKSPACE at a workspace "
            "or run `nightshift sample create --out DIR`"
        )
    cfg = mlx.tiny_config()
    lines = list(workspace_corpus(*roots))
    version = base_model_version(lines, cfg)
    target = store.version_dir("base_model", version)
    if target.is_dir():
        context.log.info(f"tiny base model {version} already built: {target}")
        info = read_base_model_info(target)
    else:
        context.log.info(f"building tiny base model {version} from {len(lines):,} lines")
        info = build_base_model(target, lines, cfg)
    store.set_current("base_model", version, parameters=info.parameters)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(info.path)),
            "parameters": info.parameters,
            "vocab_size": info.vocab_size,
            "tokenizer_corpus_lines": info.corpus_lines,
            "weights_sha256": info.weights_sha256,
            "corpus_roots": [str(r) for r in roots],
            "embedded": True,
        },
        data_version=dg.DataVersion(version),
    )


@dg.asset(
    group_name=MODELS,
    code_version="1",
    deps=[base_model],
    kinds={"llama_cpp"},
    pool="nightshift_model",  # conversion loads the whole model: one at a time
)
def base_model_gguf(
    context: dg.AssetExecutionContext,
    llama_cpp: LlamaCppResource,
    artifacts: ArtifactStoreResource,
) -> dg.MaterializeResult:
    """The base model as an F16 GGUF through llama.cpp's converter: the gates' first baseline."""
    store = artifacts.store()
    version_dir = store.current("base_model")
    if version_dir is None:
        raise dg.Failure("base_model has no current version; materialize base_model first")
    model_dir, version = model_dir_of(version_dir), version_dir.name
    target = store.version_dir("base_model_gguf", version)
    gguf = target / "base-f16.gguf"
    if not gguf.is_file():
        toolchain = llama_cpp.toolchain()
        context.log.info(f"converting {model_dir} with {toolchain.convert()}")
        with store.write_version("base_model_gguf", version) as tmp:
            convert_to_gguf(toolchain, model_dir, tmp / gguf.name)
    store.set_current("base_model_gguf", version, source=str(model_dir))
    files = file_manifest(target)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(gguf)),
            "bytes": files[gguf.name]["bytes"],
            "sha256": files[gguf.name]["sha256"],
            "source": str(model_dir),
        },
        data_version=dg.DataVersion(version),
    )


@dg.asset_check(asset=base_model_gguf, blocking=True)
def base_model_gguf_tokenizer_parity(
    context: dg.AssetCheckExecutionContext, artifacts: ArtifactStoreResource
) -> dg.AssetCheckResult:
    """Training (transformers) and serving (llama.cpp) must see the same token ids."""
    store = artifacts.store()
    version_dir, gguf_dir = store.current("base_model"), store.current("base_model_gguf")
    if version_dir is None or gguf_dir is None:
        return dg.AssetCheckResult(passed=False, description="nothing materialized yet")
    results = tokenizer_parity(model_dir_of(version_dir), gguf_dir / "base-f16.gguf")
    bad = [r for r in results if not r.equal]
    context.log.info(
        f"tokenizer parity: {len(results) - len(bad)} of {len(results)} strings tokenize "
        "identically in transformers and llama.cpp"
    )
    return dg.AssetCheckResult(
        passed=not bad,
        metadata={
            "strings": len(results),
            "mismatched": len(bad),
            "first_mismatch": repr(bad[0]) if bad else "",
        },
    )
