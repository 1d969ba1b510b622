"""``whazzat finetune`` and ``whazzat merge``: plain typer-annotated functions, and :func:`register`, which
adds them and the other training commands to the ``whazzat`` app (the ``whazzat.commands`` entry point).

Importing this module loads no torch or transformers (they load inside the commands), so
``whazzat --help`` stays instant. Bad input (missing file, invalid YAML, unknown key, bad value) prints
one message on stderr and exits with code 2, without a traceback.
"""

from __future__ import annotations

import importlib.util
import logging
import shlex
from pathlib import Path
from typing import Annotated

import typer

from agent.cli.common import fail


def _size_mb(directory: Path) -> float:
    return sum(p.stat().st_size for p in directory.iterdir() if p.is_file()) / 1e6


def finetune(
    recipe: Annotated[
        Path,
        typer.Option(
            "--recipe",
            "-r",
            help="Recipe YAML, e.g. finetune/recipes/smollm2-135m-lora-cpu.yaml (CPU) or "
            "finetune/recipes/llama3-8b-instruct-qlora.yaml (CUDA GPU).",
        ),
    ],
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            "-s",
            metavar="KEY=VALUE",
            help="Override a recipe key (repeatable): --set learning_rate=5e-4 --set lora.r=8 "
            "--set data.train_file=my.jsonl. A bare key works when only one section has it; values are "
            r"YAML (true, 8, \[q_proj, v_proj]); --dry-run lists every key.",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate the recipe, print it with every key, and exit.")
    ] = False,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue an interrupted run from its newest checkpoint in training.output_dir "
            "(the recipe must save checkpoints: save_strategy: steps).",
        ),
    ] = False,
) -> None:
    """Fine-tune a LoRA/QLoRA adapter on the Whazzat data (suggest + rewrite tasks).

    Shows a progress bar and the loss while training; saves the adapter, a model card (README.md) and
    training_metadata.json in the recipe's training.output_dir.
    """
    from finetune.recipe import RecipeError, load_recipe, recipe_to_yaml

    overrides = overrides or []
    try:
        parsed = load_recipe(recipe, overrides)
    except RecipeError as error:
        fail(str(error))
    if dry_run:
        typer.echo(recipe_to_yaml(parsed), nl=False)
        return
    for label, path in (("train", parsed.data.train_file), ("eval", parsed.data.eval_file)):
        if path is not None and not Path(path).is_file():
            fail(f"{label} data file not found: {path} (set data.{label}_file)")

    missing = [name for name in ("trl", "datasets") if importlib.util.find_spec(name) is None]
    if missing:
        fail(f"training needs {', '.join(missing)}: pip install -e \".[finetune]\"")

    from finetune.dataset import DataError
    from finetune.train import last_checkpoint, train

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    command = " ".join(
        ["whazzat finetune --recipe", shlex.quote(str(recipe))]
        + [f"--set {shlex.quote(item)}" for item in overrides]
    )
    if resume and parsed.training.save_strategy == "no":
        fail("--resume needs a recipe that saves checkpoints: --set save_strategy=steps")
    if parsed.model.init_adapter is not None and not (Path(parsed.model.init_adapter) / "adapter_config.json").is_file():
        fail(f"model.init_adapter is not a LoRA adapter directory: {parsed.model.init_adapter}")
    if resume:
        checkpoint = last_checkpoint(parsed.training.output_dir)
        typer.echo(f"Resuming from {checkpoint}" if checkpoint else "No checkpoint yet: starting from step 0", err=True)
    typer.echo(f"Training {parsed.name!r} on {parsed.model.base} -> {parsed.training.output_dir}", err=True)
    try:
        output_dir = train(parsed, command=command, resume=resume)
    except DataError as error:
        fail(str(error))
    typer.echo(f"Saved the adapter and its model card in {output_dir} ({_size_mb(output_dir):.1f} MB)")


def merge(
    adapter: Annotated[
        Path, typer.Option("--adapter", "-a", help="LoRA adapter directory (with adapter_config.json).")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the merged model and tokenizer.")],
    base: Annotated[
        str | None,
        typer.Option(
            "--base",
            help="Base model (Hub id, directory or embedded:smollm2-135m-instruct); "
            "default: the one named in the adapter's config.",
        ),
    ] = None,
    dtype: Annotated[
        str, typer.Option("--dtype", help="Weights dtype of the merged model: float32, bfloat16 or float16.")
    ] = "float32",
) -> None:
    """Merge a LoRA adapter into its base model and save safetensors weights + tokenizer for serving.

    A merged model generates faster than base + adapter and loads in vLLM or TGI as a plain model.
    """
    if not (adapter / "adapter_config.json").is_file():
        fail(f"{adapter} is not a LoRA adapter directory (no adapter_config.json)")
    if dtype not in {"float32", "bfloat16", "float16"}:
        fail(f"--dtype must be float32, bfloat16 or float16, not {dtype!r}")

    from finetune.merge import merge as merge_adapter

    try:
        output = merge_adapter(base, adapter, out, dtype=dtype)
    except ValueError as error:
        fail(str(error))
    typer.echo(f"Merged model saved in {output} ({_size_mb(output):.0f} MB)")


def register(app: typer.Typer) -> None:
    """Add ``whazzat finetune``, ``merge``, ``eval``, ``tune-fusion``, ``card-eval`` and ``data build|seed``
    (the ``whazzat.commands`` entry point named in pyproject.toml). Each command lives in its own module."""
    from finetune.card_eval import card_eval
    from finetune.data.build import build_command
    from finetune.data.seed import seed
    from finetune.eval_cli import eval_command
    from finetune.tune_fusion import tune_fusion

    app.command("finetune")(finetune)
    app.command("merge")(merge)
    app.command("eval")(eval_command)
    app.command("tune-fusion")(tune_fusion)
    app.command("card-eval")(card_eval)
    data_app = typer.Typer(
        help="The fine-tuning dataset: import the original seed data, build the splits.", no_args_is_help=True
    )
    data_app.command("build")(build_command)
    data_app.command("seed")(seed)
    app.add_typer(data_app, name="data")
