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


def test_sessions_summarize_json_counts_what_the_reader_found(sample):
    result = runner.invoke(app, ["sessions", "summarize", str(sample.projects_dir), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["sessions"] == sample.sessions
    assert summary["compactions"] == 1 and summary["subagent_conversations"] >= 1
    assert summary["merged_turns"] > 0 and summary["skipped"]["internal_agent"] >= 1
    missing = runner.invoke(app, ["sessions", "summarize", "/no/such/dir"])
    assert missing.exit_code == 1 and "~/.claude/projects" in missing.output


def test_scrub_prints_clean_text_or_findings_without_secrets(tmp_path):
    secret = "AKIA" + "IOSFODNN7ABCDEFG"
    text = f"aws_access_key_id = {secret}\nmail bob@example.org\n"
    (tmp_path / "in.txt").write_text(text)
    plain = runner.invoke(app, ["scrub", str(tmp_path / "in.txt")])
    assert plain.exit_code == 0 and secret not in plain.output and "<EMAIL>" in plain.output
    report = runner.invoke(app, ["scrub", "-", "--json"], input=text)
    assert report.exit_code == 0 and secret not in report.output
    assert json.loads(report.output)["counts"] == {"aws_access_key_id": 1, "email": 1}
    assert runner.invoke(app, ["scrub", str(tmp_path / "nope")]).exit_code == 1
