"""The model stages: LoRA adapter, fused model and GGUF quants, one at a time on the machine."""

import hashlib
import json
import shutil

import dagster as dg

from pipeline.base_model import model_dir_of
from pipeline.fuse import fuse_adapter, fuse_parity
from pipeline.gguf import chat_facts
from pipeline.plots import loss_curve, markdown_image
from pipeline.preflight import PreflightError, preflight
from pipeline.quants import QuantConfig, build_quants
from pipeline.train import TrainingError, train_lora
from resources import ArtifactStoreResource, LlamaCppResource, MLXResource

MODELS = "models"
POOL = "nightshift_model"  # dagster.yaml gives every pool a limit of 1
KEEP = ("adapters.safetensors", "adapter_config.json", "metrics.json", "train.log")


def _current(artifacts: ArtifactStoreResource, asset: str):
    path = artifacts.store().current(asset)
    if path is None:
        raise dg.Failure(f"{asset} has no current version; materialize it first")
    return path


@dg.asset(group_name=MODELS, deps=["validated_splits", "base_model"], pool=POOL, code_version="1")
def lora_adapter(
    context: dg.AssetExecutionContext,
    mlx: MLXResource,
    llama_cpp: LlamaCppResource,
    artifacts: ArtifactStoreResource,
) -> dg.MaterializeResult:
    """mlx-lm LoRA on the train split; resumable from checkpoints; same inputs, no retraining."""
    store = artifacts.store()
    base_version, splits = (
        _current(artifacts, "base_model"),
        _current(artifacts, "validated_splits"),
    )
    base = model_dir_of(base_version)
    try:
        checked = preflight(base, llama_cpp.toolchain())
    except PreflightError as exc:
        raise dg.Failure(f"preflight: {exc}") from exc
    context.log.info(f"preflight passed: {checked.architecture}, tokenizer converts")
    cfg = mlx.lora_config()
    key = json.dumps([base_version.name, splits.name, repr(cfg)])
    version = "lora-" + hashlib.sha256(key.encode()).hexdigest()[:12]
    final = store.version_dir("lora_adapter", version)
    reused = final.is_dir()
    if not reused:
        work = store.asset_dir("lora_adapter") / f"{version}.work"  # checkpoints survive a crash

        def report(event: dict) -> None:
            fields = {k: v for k, v in event.items() if k != "event"}
            context.log.info(f"{event['event']}: {json.dumps(fields)}")

        try:
            result = train_lora(base, splits, work, cfg, on_event=report)
        except TrainingError as exc:
            raise dg.Failure(f"training failed (checkpoints kept in {work}): {exc}") from exc
        with store.write_version("lora_adapter", version) as tmp:
            for name in KEEP:
                if (work / name).is_file():
                    shutil.copy2(work / name, tmp / name)
            loss_curve(result.events, tmp / "loss.png")
        shutil.rmtree(work, ignore_errors=True)
        context.log.info(f"adapter {version} trained in {result.seconds:.0f}s")
    store.set_current("lora_adapter", version, base=base_version.name, splits=splits.name)
    events = (
        json.loads((final / "metrics.json").read_text())
        if (final / "metrics.json").is_file()
        else []
    )
    train = [e for e in events if e.get("event") == "train"]
    val = [e for e in events if e.get("event") == "val"]
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(final)),
            "reused": reused,
            "steps": train[-1]["iteration"] if train else 0,
            "final_train_loss": train[-1]["train_loss"] if train else None,
            "final_val_loss": val[-1]["val_loss"] if val else None,
            "tokens_per_second": train[-1]["tokens_per_second"] if train else None,
            "peak_memory_gb": max((e["peak_memory"] for e in train), default=None),
            "config": dg.MetadataValue.json(json.loads(json.dumps(cfg.__dict__))),
            "loss_curve": dg.MetadataValue.md(markdown_image(final / "loss.png", "loss")),
        },
        data_version=dg.DataVersion(version),
    )


@dg.asset(group_name=MODELS, deps=[lora_adapter], pool=POOL, code_version="1")
def fused_model(
    context: dg.AssetExecutionContext, artifacts: ArtifactStoreResource
) -> dg.MaterializeResult:
    """Base + adapter as one HF model (mlx-lm fuse), proven equal to base+adapter by logits."""
    store = artifacts.store()
    adapter = _current(artifacts, "lora_adapter")
    base = model_dir_of(_current(artifacts, "base_model"))
    version = adapter.name
    target = store.version_dir("fused_model", version)
    if not target.is_dir():
        fuse_adapter(base, adapter, target)
    splits = _current(artifacts, "validated_splits")
    rows = [json.loads(x) for x in (splits / "train.jsonl").read_text().splitlines()[:3]]
    prompts = [chat_facts(base).render(r["messages"]) for r in rows]
    parity = fuse_parity(base, adapter, target, prompts)
    context.log.info(f"fuse parity: {parity}")
    if not parity.ok:
        raise dg.Failure(
            f"the fused model does not reproduce base+adapter: max logit difference "
            f"{parity.fused_vs_adapted:.4g} (tolerance {parity.tolerance:.4g}; the adapter itself "
            f"moves logits by {parity.adapted_vs_base:.4g}): the fuse lost the adapter"
        )
    store.set_current("fused_model", version)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(target)),
            "parity_max_logit_diff": parity.fused_vs_adapted,
            "adapter_effect_max_logit_diff": parity.adapted_vs_base,
            "bytes": sum(p.stat().st_size for p in target.rglob("*") if p.is_file()),
        },
        data_version=dg.DataVersion(version),
    )


@dg.asset(group_name=MODELS, deps=[fused_model], pool=POOL, code_version="1")
def gguf_quants(
    context: dg.AssetExecutionContext,
    llama_cpp: LlamaCppResource,
    artifacts: ArtifactStoreResource,
) -> dg.MaterializeResult:
    """F16 via llama.cpp's converter, an imatrix from the train split, Q4_K_M/Q5_K_M/Q8_0."""
    store = artifacts.store()
    fused = _current(artifacts, "fused_model")
    splits = _current(artifacts, "validated_splits")
    facts = chat_facts(fused)
    with store.write_version("gguf_quants", fused.name) as tmp:
        manifest = build_quants(
            llama_cpp.toolchain(),
            fused,
            splits / "train.jsonl",
            tmp,
            facts.template,
            facts.eos_token_id,
            facts.render,
            QuantConfig(),
            log=context.log.info,
        )
    store.set_current("gguf_quants", fused.name)
    table = ["| quant | MB | seconds | problems |", "| --- | ---: | ---: | --- |"]
    for q in manifest["quants"]:
        table.append(
            f"| {q['qtype']} | {q['bytes'] / 1e6:.2f} | {q['seconds']} | "
            f"{'; '.join(q['problems']) or 'none'} |"
        )
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(store.version_dir("gguf_quants", fused.name))),
            "quants": dg.MetadataValue.md("\n".join(table)),
            "f16_bytes": manifest["f16"]["bytes"],
            "seconds": manifest["seconds"],
        },
        data_version=dg.DataVersion(fused.name),
    )


@dg.asset_check(asset=gguf_quants, blocking=True)
def gguf_quants_validated(artifacts: ArtifactStoreResource) -> dg.AssetCheckResult:
    """Every quant: right type, chat template and EOS, loads, answers and stops on EOS."""
    folder = _current(artifacts, "gguf_quants")
    manifest = json.loads((folder / "quants.json").read_text())
    problems = {q["qtype"]: q["problems"] for q in manifest["quants"] if q["problems"]}
    return dg.AssetCheckResult(
        passed=not problems and bool(manifest["quants"]),
        metadata={"problems": dg.MetadataValue.json(problems), "quants": len(manifest["quants"])},
    )
