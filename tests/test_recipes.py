"""Recipes validate, overrides apply, and bad input gives one clear message (exit code 2, no traceback)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from finetune.cli import finetune, merge
from finetune.recipe import RecipeError, apply_overrides, load_recipe

RECIPES_DIR = Path(__file__).resolve().parent.parent / "finetune" / "recipes"
RECIPES = sorted(RECIPES_DIR.glob("*.yaml"))
CPU_RECIPE = RECIPES_DIR / "smollm2-135m-lora-cpu.yaml"


def _app(command) -> typer.Typer:
    app = typer.Typer()
    app.command()(command)
    return app


def test_the_three_recipes_exist() -> None:
    assert {p.name for p in RECIPES} >= {
        "smollm2-135m-lora-cpu.yaml",
        "llama2-7b-chat-qlora.yaml",
        "llama3-8b-instruct-qlora.yaml",
    }


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_every_recipe_validates(path: Path) -> None:
    recipe = load_recipe(path)
    assert str(recipe.training.output_dir) == f"finetune/adapters/{recipe.name}"  # the adapter's own folder
    assert {"suggest", "rewrite"} <= set(recipe.data.tasks)  # both tasks, whatever the model
    assert recipe.training.learning_rate > 2e-5  # never trl's GPU default by accident
    assert str(recipe.data.train_file) == "finetune/data/train.jsonl"


def test_cpu_recipe_is_explicit_about_cpu_training() -> None:
    recipe = load_recipe(CPU_RECIPE)
    t = recipe.training
    assert (t.use_cpu, t.bf16, t.fp16, t.gradient_checkpointing) == (True, False, False, False)
    assert recipe.model.base == "embedded:smollm2-135m-instruct" and not recipe.model.load_in_4bit
    assert str(t.output_dir) == "finetune/adapters/smollm2-135m-whazzat"


@pytest.mark.parametrize("name", ["llama2-7b-chat-qlora.yaml", "llama3-8b-instruct-qlora.yaml"])
def test_qlora_recipes_are_4bit_nf4(name: str) -> None:
    recipe = load_recipe(RECIPES_DIR / name)
    m, t = recipe.model, recipe.training
    assert m.load_in_4bit and m.bnb_4bit_quant_type == "nf4" and m.bnb_4bit_use_double_quant
    assert m.bnb_4bit_compute_dtype == "bfloat16" and t.bf16 and not t.use_cpu
    assert t.optim.startswith("paged_adamw_")
    assert m.base.startswith("meta-llama/")


def test_overrides_apply_bare_and_dotted_keys() -> None:
    recipe = load_recipe(
        CPU_RECIPE,
        [
            "learning_rate=5e-4",
            "num_train_epochs=1",
            "lora.r=4",
            "target_modules=[q_proj, v_proj]",
            "data.eval_file=",
            "name=quick",
        ],
    )
    assert recipe.training.learning_rate == 5e-4
    assert recipe.training.num_train_epochs == 1
    assert recipe.lora.r == 4 and recipe.lora.target_modules == ["q_proj", "v_proj"]
    assert recipe.data.eval_file is None
    assert recipe.name == "quick"
    assert recipe.training.save_strategy == "no"  # a word, not YAML 1.1's boolean


def test_overrides_do_not_change_the_input() -> None:
    raw = {"training": {"learning_rate": 1.0}}
    apply_overrides(raw, ["learning_rate=2"])
    assert raw == {"training": {"learning_rate": 1.0}}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("learning_rat=5e-4", "unknown key 'learning_rat'; did you mean training.learning_rate?"),
        ("lora.rank=4", "section 'lora' has no field 'rank'"),
        ("learning_rate", "write KEY=VALUE"),
        ("learning_rate=fast", "training.learning_rate"),
        ("lora.r=0", "lora.r"),
        ("tasks=[suggest, translate]", "data.tasks"),
        ("max_length=[1", "not valid YAML"),
    ],
)
def test_bad_overrides_give_a_clear_error(override: str, message: str) -> None:
    with pytest.raises(RecipeError, match=re.escape(message)):
        load_recipe(CPU_RECIPE, [override])


def test_unknown_key_in_a_recipe_file_is_rejected(tmp_path: Path) -> None:
    text = CPU_RECIPE.read_text().replace("  max_length: 128", "  max_lenght: 128")
    (tmp_path / "typo.yaml").write_text(text)
    with pytest.raises(RecipeError, match=r"training\.max_lenght: unknown key"):
        load_recipe(tmp_path / "typo.yaml")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--recipe", "no/such/recipe.yaml"], "recipe file not found"),
        (["--recipe", "{bad}"], "not valid YAML"),
        (["--recipe", str(CPU_RECIPE), "--set", "nope=1"], "unknown key 'nope'"),
        (
            ["--recipe", str(CPU_RECIPE), "--set", "data.train_file=missing.jsonl"],
            "train data file not found",
        ),
    ],
)
def test_cli_bad_input_exits_2_with_one_message(args: list[str], message: str, tmp_path: Path) -> None:
    if args[1] == "{bad}":
        bad = tmp_path / "bad.yaml"
        bad.write_text("name: [unclosed\n")
        args = ["--recipe", str(bad)]
    result = CliRunner().invoke(_app(finetune), args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output
    assert result.stderr.startswith("Error: ")


def test_cli_dry_run_prints_the_effective_recipe() -> None:
    result = CliRunner().invoke(
        _app(finetune), ["--recipe", str(CPU_RECIPE), "--set", "lora.r=4", "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    assert "  r: 4\n" in result.stdout and "use_cpu: true" in result.stdout


def test_merge_cli_rejects_a_non_adapter_directory(tmp_path: Path) -> None:
    result = CliRunner().invoke(_app(merge), ["--adapter", str(tmp_path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "not a LoRA adapter directory" in result.stderr


def test_help_texts_are_helpful() -> None:
    result = CliRunner().invoke(_app(finetune), ["--help"])
    assert result.exit_code == 0 and "--set" in result.stdout and "learning_rate=5e-4" in result.stdout
    assert "[q_proj, v_proj]" in result.stdout  # not swallowed as rich markup


def test_importing_the_cli_loads_no_torch() -> None:
    code = "import sys, finetune.cli; print({'torch', 'transformers', 'trl', 'peft'} & set(sys.modules))"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "set()"
