from __future__ import annotations

import json

from typer.testing import CliRunner

from pipeline.cli import app

runner = CliRunner()


def test_sample_create_then_refuses_to_overwrite(tmp_path):
    out = tmp_path / "ws"
    first = runner.invoke(app, ["sample", "create", "--out", str(out), "--seed", "4"])
    assert first.exit_code == 0, first.output
    assert "sessions" in first.output and (out / "feedback.sqlite").is_file()
    again = runner.invoke(app, ["sample", "create", "--out", str(out), "--seed", "4"])
    assert again.exit_code == 1 and str(out) in again.output


def test_base_model_build_from_a_corpus_folder(tmp_path, sample):
    out = tmp_path / "model"
    result = runner.invoke(
        app, ["base-model", "build", "--out", str(out), "--corpus", str(sample.root)]
    )
    assert result.exit_code == 0, result.output
    assert "parameters" in result.output
    assert json.loads((out / "config.json").read_text())["model_type"] == "llama"


def test_base_model_build_names_a_missing_corpus(tmp_path):
    result = runner.invoke(
        app, ["base-model", "build", "--out", str(tmp_path / "m"), "--corpus", str(tmp_path / "x")]
    )
    assert result.exit_code == 1 and "does not exist" in result.output


def test_toolchain_where_lists_every_tool():
    result = runner.invoke(app, ["toolchain", "where"])
    assert result.exit_code == 0, result.output
    for tool in ("llama-quantize", "llama-imatrix", "llama-perplexity", "llama-server"):
        assert tool in result.output
