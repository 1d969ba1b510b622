"""Run the QLoRA recipes' code path on a CUDA GPU with a tiny random Llama: no gated weights, ~1 minute.

    python -m tests.cuda_qlora_check [--out result.json]

For each Llama QLoRA recipe, everything is kept (4-bit nf4, double quantisation, bf16 compute, bf16
training, gradient checkpointing, paged AdamW) except the base model (a tiny Llama built here), the data
(four records), the steps and the learning rate (a random model needs a high one to show a falling loss).
Checks: every LoRA matrix learned (the silent no-gradient pitfall), the loss fell, the base was really 4-bit
on the GPU, and the adapter merges into a bf16 base that generates. Not part of CI (CI has no GPU).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import typer

RECIPES = ("llama2-7b-chat-qlora.yaml", "llama3-8b-instruct-qlora.yaml")
RECIPES_DIR = Path(__file__).resolve().parent.parent / "finetune" / "recipes"


def check_recipe(name: str, root: Path, device: str = "cuda", extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """Train, check and merge with recipe ``name``; ``device``/``extra`` allow a CPU dry run of this script."""
    import bitsandbytes as bnb
    import torch

    import finetune.train as train_module
    from finetune.merge import merge
    from finetune.recipe import load_recipe
    from tests.finetune_helpers import write_records
    from tests.tiny_models import make_tiny_llama

    base = make_tiny_llama(root, name=f"tiny-{name}")
    overrides = [
        f"model.base={base}",
        f"data.train_file={write_records(root / 'train.jsonl')}",
        "data.eval_file=",
        f"output_dir={root / ('adapter-' + name)}",
        "max_steps=30",
        "per_device_train_batch_size=4",
        "gradient_accumulation_steps=1",
        "learning_rate=1e-2",
        "lr_scheduler_type=constant",
        "warmup_steps=0",
        "logging_steps=1",
        "save_strategy=no",
        *extra,
    ]
    recipe = load_recipe(RECIPES_DIR / name, overrides)

    # Record where the base weights are and what type their layers have, as train() loads them.
    seen: dict[str, Any] = {}
    original_load = train_module.load_model

    def spy_load(*args: Any, **kwargs: Any) -> Any:
        model = original_load(*args, **kwargs)
        layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
        seen["linear4bit_layers"] = len(layers)
        seen["weight_device"] = str(layers[0].weight.device) if layers else None
        seen["quant_type"] = layers[0].weight.quant_type if layers else None
        return model

    train_module.load_model = spy_load
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    try:
        adapter = train_module.train(recipe)
    finally:
        train_module.load_model = original_load
    seconds = time.perf_counter() - started
    metadata = json.loads((adapter / "training_metadata.json").read_text())
    losses = [e["loss"] for e in metadata["log_history"] if "loss" in e]

    merged_dir = merge(None, adapter, root / f"merged-{name}", dtype="bfloat16")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from agent.pipeline.prompts import render_prompt

    tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    merged = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.bfloat16).to(device).eval()
    prompt = render_prompt(tokenizer, "suggest", need="something to dig food")
    inputs = tokenizer(prompt, return_tensors="pt").to(device)
    generated = merged.generate(
        **inputs, max_new_tokens=8, do_sample=False, pad_token_id=tokenizer.pad_token_id
    )

    result = {
        "recipe": name,
        "optim": recipe.training.optim,
        "device": metadata["device"],
        **seen,
        "steps": metadata["global_steps"],
        "first_losses": [round(x, 3) for x in losses[:3]],
        "last_losses": [round(x, 3) for x in losses[-3:]],
        "lora_not_moved": metadata["lora_not_moved"],
        "train_seconds": round(seconds, 1),
        "peak_gpu_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1) if device == "cuda" else None,
        "merged_generates_tokens": int(generated.shape[1] - inputs["input_ids"].shape[1]),
    }
    result["ok"] = bool(
        seen.get("linear4bit_layers")
        and str(seen.get("weight_device", "")).startswith(device)
        and seen.get("quant_type") == "nf4"
        and not metadata["lora_not_moved"]
        and sum(losses[-3:]) < 0.8 * sum(losses[:3])
        and result["merged_generates_tokens"] > 0
    )
    return result


def cuda_qlora_check(
    out: Annotated[Path | None, typer.Option("--out", help="Also write the results as JSON here.")] = None,
) -> None:
    """Run the QLoRA recipes' code path on a CUDA GPU with a tiny random Llama: no gated weights, ~1 minute.

    Checks per recipe: every LoRA matrix learned, the loss fell, the base was 4-bit nf4 on the GPU, and
    the merged adapter generates. Prints a JSON line per recipe, then ALL OK or FAILED.
    """
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU: this check is for a GPU machine")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in RECIPES:
            results.append(check_recipe(name, Path(tmp)))
            print(json.dumps(results[-1]), flush=True)
    if out:
        out.write_text(json.dumps(results, indent=2) + "\n")
    print("ALL OK" if all(r["ok"] for r in results) else "FAILED")


def main() -> None:
    """``python -m tests.cuda_qlora_check``."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(cuda_qlora_check)
    app()


if __name__ == "__main__":
    main()
