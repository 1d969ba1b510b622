"""The typer entry points that replaced the argparse scripts: each answers ``--help``, and bad input is
one ``Error: ...`` line on stderr with exit code 2, before any model loads or any file is written."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from agent.bench import hardware, probes
from agent.cli.main import app

runner = CliRunner()


def one_line_error(result: Result, *expected: str) -> None:
    """Exit code 2, one line on stderr naming the problem, nothing on stdout, no traceback."""
    assert result.exit_code == 2, (result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert all(text in lines[0] for text in expected), lines[0]
    assert result.stdout == "" and "Traceback" not in result.output


# --- whazzat commands (finetune's come through the whazzat.commands entry point) ------------------------
@pytest.mark.parametrize(
    ("command", "shows"),
    [
        (["tune-fusion"], "--sample"),
        (["card-eval"], "--note"),
        (["data", "build"], "--fresh"),
        (["data", "seed"], "--seed-dir"),
        (["bench-levers"], "--lever"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else None,
)
def test_each_command_answers_help(command: list[str], shows: str) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert shows in result.stdout and f"whazzat {' '.join(command)}" in result.stdout  # the runnable example


def test_data_groups_build_and_seed() -> None:
    result = runner.invoke(app, ["data", "--help"])
    assert result.exit_code == 0 and "build" in result.stdout and "seed" in result.stdout


def test_tune_fusion_names_a_missing_file() -> None:
    one_line_error(runner.invoke(app, ["tune-fusion", "no/such/val.jsonl"]), "no/such/val.jsonl")


def test_tune_fusion_refuses_the_test_split() -> None:
    test_split = Path(__file__).resolve().parent.parent / "finetune" / "data" / "test.jsonl"
    one_line_error(runner.invoke(app, ["tune-fusion", str(test_split), "--sample", "2"]), "never on test")


def test_card_eval_rejects_a_file_that_is_no_eval_result(tmp_path: Path) -> None:
    bad = tmp_path / "bench.json"
    bad.write_text('{"schema_version": 2}', encoding="utf-8")
    (tmp_path / "README.md").write_text("# card\n", encoding="utf-8")
    result = runner.invoke(app, ["card-eval", str(tmp_path), str(bad)])
    one_line_error(result, str(bad), "not a saved `whazzat eval --json` result")
    assert (tmp_path / "README.md").read_text(encoding="utf-8") == "# card\n"  # the card is untouched


def test_data_seed_says_which_raw_files_are_missing(tmp_path: Path) -> None:
    out = tmp_path / "seed.jsonl"
    result = runner.invoke(app, ["data", "seed", "--seed-dir", str(tmp_path), "--out", str(out)])
    one_line_error(result, "dataset.txt", "--seed-dir")
    assert not out.exists()


def test_data_build_rejects_a_missing_sources_dir(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["data", "build", "--sources-dir", str(tmp_path / "nope"), "--out-dir", str(tmp_path / "out")]
    )
    one_line_error(result, "--sources-dir", "nope")
    assert not (tmp_path / "out").exists()


def test_bench_levers_rejects_an_unknown_lever() -> None:
    one_line_error(runner.invoke(app, ["bench-levers", "--lever", "int4"]), "--lever", "int4", "int8-dynamic")


# --- the bench's child processes: their own apps (agent.bench sits below agent.cli) --------------------
def test_probes_answer_help_with_both_probes() -> None:
    result = runner.invoke(probes.app, ["--help"])
    assert result.exit_code == 0 and "load" in result.stdout and "ask" in result.stdout
    load_help = runner.invoke(probes.app, ["load", "--help"])
    assert load_help.exit_code == 0 and "--pipeline" in load_help.stdout and "--settings" in load_help.stdout


def test_probe_ask_runs_the_baseline_only() -> None:
    result = runner.invoke(probes.app, ["ask", "--pipeline", "whazzat"])
    one_line_error(result, "--pipeline baseline", "whazzat ask")


def test_probe_settings_must_be_a_json_object() -> None:
    one_line_error(runner.invoke(probes.app, ["load", "--pipeline", "whazzat", "--settings", "[1]"]), "--settings")


def test_hardware_answers_help_and_prints_one_json_line() -> None:
    result = runner.invoke(hardware.app, ["--help"])
    assert result.exit_code == 0 and "--megabytes" in result.stdout and "--repeats" in result.stdout
    result = runner.invoke(hardware.app, ["--megabytes", "1", "--repeats", "1"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith('{"bandwidth_gb_s": ') and result.stdout.count("\n") == 1


def test_hardware_rejects_an_empty_array() -> None:
    result = runner.invoke(hardware.app, ["--megabytes", "0"])  # click's own range check
    assert result.exit_code == 2 and "--megabytes" in result.stderr and "Traceback" not in result.output


def test_the_gpu_check_answers_help_without_a_gpu() -> None:
    from tests.cuda_qlora_check import cuda_qlora_check

    check = typer.Typer()
    check.command()(cuda_qlora_check)
    result = runner.invoke(check, ["--help"])
    assert result.exit_code == 0 and "--out" in result.stdout
