"""eval_report and its gates: the shipped GGUF measured against the champion (or, before the
first release, the base model). Each gate is a blocking check, so a failed one stops release
and deployment in the same run, and the UI names the gate and the margin."""

import json
import time

import dagster as dg

from pipeline.eval_report import build_report, write_report
from pipeline.evaluate import GoldenFileError, load_canary, load_cases, split_cases
from pipeline.gates import GATES
from pipeline.gguf import chat_facts
from pipeline.ingest import read_jsonl
from pipeline.registry import Registry, RegistryError
from resources import ArtifactStoreResource
from resources.evaluation import EvaluationResource

POOL = "nightshift_model"  # measuring loads models: never beside training or a swap
HISTORY = 12  # earlier reports plotted beside this one


def registry_of(artifacts: ArtifactStoreResource) -> Registry:
    return Registry(artifacts.store().root / "registry")


def champion_gguf(registry: Registry, quant: str):
    """(version, path of its shipped quant), or None before the first champion.

    The quant must be listed in the champion's verified manifest: a file merely lying in its
    folder was never registered and its bytes are unchecked.
    """
    try:
        version = registry.champion()
        if version is None:
            return None
        manifest = registry.verify(version)  # a damaged champion must not become the bar to beat
    except RegistryError as exc:
        raise dg.Failure(f"the champion cannot be measured: {exc}") from None
    name = f"model-{quant}.gguf"
    if name not in manifest["files"]:
        raise dg.Failure(
            f"the champion {version} has no {name} in its manifest; its files: "
            f"{sorted(manifest['files'])}. Roll back to a version that has it "
            "(`nightshift rollback --to VERSION`) or ship the quant it has (ship_quant)."
        )
    return version, registry.version_dir(version) / name


def _current(artifacts: ArtifactStoreResource, asset: str):
    path = artifacts.store().current(asset)
    if path is None:
        raise dg.Failure(f"{asset} has no current version; materialize it first")
    return path


def _history(artifacts: ArtifactStoreResource) -> list[dict]:
    reports = artifacts.store().asset_dir("eval_report").glob("*/report.json")
    done = [p for p in reports if not p.parent.name.startswith(".")]  # not half-written ones
    loaded = sorted((json.loads(p.read_text()) for p in done), key=lambda r: r["created"])
    return loaded[-HISTORY:]


@dg.asset(
    group_name="evaluation",
    deps=["gguf_quants", "base_model_gguf", "validated_splits", "fused_model"],
    pool=POOL,
    code_version="1",
    kinds={"llama_cpp"},
)
def eval_report(
    context: dg.AssetExecutionContext,
    evaluation: EvaluationResource,
    artifacts: ArtifactStoreResource,
) -> dg.MaterializeResult:
    """Perplexity, task scores by category, quant loss, latency, behaviour and the forgetting
    canary of the shipped quant, beside the champion's and the base model's."""
    store = artifacts.store()
    quants, splits = _current(artifacts, "gguf_quants"), _current(artifacts, "validated_splits")
    base_gguf = _current(artifacts, "base_model_gguf") / "base-f16.gguf"
    template = chat_facts(_current(artifacts, "fused_model")).template
    cfg = evaluation.eval_config()
    cases = split_cases(read_jsonl(splits / "test.jsonl"), cfg.test_cases)
    golden = evaluation.golden_path()
    if golden and golden.is_file():
        try:
            cases += load_cases(golden)
        except GoldenFileError as exc:
            raise dg.Failure(f"golden file: {exc}") from exc
    else:
        context.log.warning(f"no golden file ({golden}): cases come from the test split only")
    champion = champion_gguf(registry_of(artifacts), cfg.ship_quant)
    context.log.info(
        f"evaluating {quants.name} on {len(cases)} cases against "
        + (f"the champion {champion[0]}" if champion else "the base model (no champion yet)")
    )
    version = f"{quants.name}-{time.strftime('%Y%m%dT%H%M%S')}"
    report = build_report(
        version,
        quants.name,
        quants,
        base_gguf,
        champion,
        read_jsonl(splits / "test.jsonl"),
        cases,
        load_canary(),
        template,
        store.root / "eval_measurements",  # outside eval_report: retention sweeps its versions
        cfg,
        evaluation.gate_config(),
        log=context.log.info,
    )
    history = _history(artifacts)
    with store.write_version("eval_report", version) as tmp:
        write_report(report, tmp, history)
    store.set_current("eval_report", version, passed=report["passed"], quants=quants.name)
    folder = store.version_dir("eval_report", version)
    cand = report["models"]["candidate"]
    failed = [g["name"] for g in report["gates"] if not g["passed"]]
    context.log.info(f"gates: {'all passed' if not failed else 'FAILED ' + ', '.join(failed)}")
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(folder)),
            "passed": report["passed"],
            "failed_gates": failed,
            "reference": report["reference"],
            "answer_perplexity": cand["answer_perplexity"]["ppl"],
            "text_perplexity": cand["perplexity"]["ppl"],
            "exact_match": cand["tasks"]["overall"]["exact_match"],
            "ttft_ms_p95": cand["latency"]["ttft_ms_p95"],
            "canary": cand["canary"]["score"],
            "report": dg.MetadataValue.md((folder / "report.md").read_text()),
        },
        data_version=dg.DataVersion(version),
    )


def _gate_check(gate: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=eval_report,
        name=f"eval_report_{gate}",
        blocking=True,
        description=f"The {gate} gate (thresholds: EvaluationResource).",
    )
    def check(artifacts: ArtifactStoreResource) -> dg.AssetCheckResult:
        report = json.loads((_current(artifacts, "eval_report") / "report.json").read_text())
        result = next(g for g in report["gates"] if g["name"] == gate)
        return dg.AssetCheckResult(
            passed=result["passed"],
            description=result["message"],
            metadata={
                "value": result["value"],
                "threshold": result["threshold"],
                "reference": report["reference"],
                "message": result["message"],
            },
        )

    return check


GATE_CHECKS = [_gate_check(gate) for gate in GATES]
