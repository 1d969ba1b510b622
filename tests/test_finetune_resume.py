"""``whazzat finetune --resume`` continues an interrupted run from its last checkpoint, and a run can start
from an earlier adapter (the grounded recipe continues the first shipped adapter). Tiny random Llama, CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.finetune_helpers import tiny_recipe, write_records
from tests.tiny_models import make_tiny_llama

pytest.importorskip("trl")


@pytest.fixture(scope="module")
def base_and_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("resume")
    return make_tiny_llama(root), write_records(root / "train.jsonl")


def _metadata(adapter: Path) -> dict:
    return json.loads((adapter / "training_metadata.json").read_text())


def test_resume_continues_from_the_last_checkpoint(base_and_data, tmp_path: Path) -> None:  # noqa: ANN001
    from finetune.train import last_checkpoint, train

    base, data = base_and_data
    out = tmp_path / "adapter"
    # The "interrupted" run: it stopped after step 2, leaving its checkpoints behind.
    train(tiny_recipe(base, data, out, max_steps=2, save_strategy="steps", save_steps=1))
    assert last_checkpoint(out) == out / "checkpoint-2"

    train(tiny_recipe(base, data, out, max_steps=4, save_strategy="steps", save_steps=1), resume=True)
    metadata = _metadata(out)
    assert metadata["resumed_from"] == str(out / "checkpoint-2")
    assert metadata["global_steps"] == 4
    logged_steps = [entry["step"] for entry in metadata["log_history"] if "loss" in entry]
    assert logged_steps == [1, 2, 3, 4]  # the checkpoint's history, then steps 3-4: none trained twice


def test_without_checkpoints_resume_starts_at_step_zero(base_and_data, tmp_path: Path) -> None:  # noqa: ANN001
    from finetune.train import train

    base, data = base_and_data
    out = train(tiny_recipe(base, data, tmp_path / "adapter", max_steps=2, save_strategy="steps", save_steps=1), resume=True)
    assert _metadata(out)["resumed_from"] is None and _metadata(out)["global_steps"] == 2


def test_a_run_can_continue_an_earlier_adapter(base_and_data, tmp_path: Path) -> None:  # noqa: ANN001
    from safetensors.torch import load_file

    from finetune.train import train

    base, data = base_and_data
    first = train(tiny_recipe(base, data, tmp_path / "first", max_steps=3))
    recipe = tiny_recipe(base, data, tmp_path / "second", max_steps=2, learning_rate=1e-12)
    recipe.model.init_adapter = first
    second = train(recipe)
    assert _metadata(second)["init_adapter"] == str(first)
    before, after = load_file(first / "adapter_model.safetensors"), load_file(second / "adapter_model.safetensors")
    assert before.keys() == after.keys()
    assert all((before[k] - after[k]).abs().max() < 1e-6 for k in before)  # lr ~0: the earlier adapter, unchanged


def test_the_cli_refuses_resume_without_checkpoints_in_the_recipe(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from agent.cli.main import app

    data = write_records(tmp_path / "train.jsonl")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "name: t\nmodel: {base: x}\ndata: {train_file: " + str(data) + "}\n"
        "training: {output_dir: " + str(tmp_path / "o") + ", learning_rate: 0.001, use_cpu: true}\n"
    )
    result = CliRunner().invoke(app, ["finetune", "--recipe", str(recipe), "--resume"])
    assert result.exit_code == 2 and "save_strategy=steps" in result.output
