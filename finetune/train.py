"""Train a LoRA (or QLoRA) adapter from a recipe with trl's ``SFTTrainer`` and peft.

    whazzat finetune --recipe finetune/recipes/smollm2-135m-lora-cpu.yaml

Steps: resolve the base model, build the multi-task prompt/completion dataset with the base model's
chat template, load the model fresh (4-bit when the recipe says so, then
``prepare_model_for_kbit_training``), wrap it in a LoRA, train (the Trainer shows a progress bar and logs
the loss every ``logging_steps``), then save the adapter in ``adapter_dtype`` with a model card and
``training_metadata.json``.
"""

from __future__ import annotations

import logging
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from finetune.dataset import build_dataset, file_sha256, read_records
from finetune.model_card import write_card
from finetune.modeling import hub_id_for_card, load_model, load_tokenizer, resolve_base
from finetune.recipe import Recipe, recipe_to_yaml

logger = logging.getLogger(__name__)


def sft_config(recipe: Recipe, has_eval: bool) -> Any:
    """trl ``SFTConfig`` from the recipe's training section; every GPU-minded trl default is explicit."""
    from trl import SFTConfig

    t = recipe.training
    if not has_eval:
        eval_strategy = "no"
    else:
        eval_strategy = "steps" if t.eval_steps else "epoch"
    return SFTConfig(
        output_dir=str(t.output_dir),
        learning_rate=t.learning_rate,
        num_train_epochs=t.num_train_epochs,
        max_steps=t.max_steps,
        per_device_train_batch_size=t.per_device_train_batch_size,
        per_device_eval_batch_size=t.per_device_eval_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        lr_scheduler_type=t.lr_scheduler_type,
        warmup_steps=t.warmup_steps,
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        max_length=t.max_length,
        optim=t.optim,
        use_cpu=t.use_cpu,
        bf16=t.bf16,
        fp16=t.fp16,
        # transformers 5 renamed gradient_checkpointing; the new name also silences trl's default of True.
        activation_checkpointing=t.gradient_checkpointing,
        logging_steps=t.logging_steps,
        logging_first_step=True,
        eval_strategy=eval_strategy,
        eval_steps=t.eval_steps,
        save_strategy=t.save_strategy,
        save_steps=t.save_steps,
        save_total_limit=2,
        seed=t.seed,
        data_seed=t.seed,
        completion_only_loss=True,  # loss on the answer only, never on the instructions
        packing=False,
        report_to="none",
        disable_tqdm=False,
    )


def lora_snapshot(model: Any, part: str = "lora_B") -> dict[str, Any]:
    """Copies of the LoRA matrices whose names contain ``part``, to check later that each one learned."""
    return {name: p.detach().clone() for name, p in model.named_parameters() if part in name}


def lora_not_moved(before: dict[str, Any], model: Any) -> list[str]:
    """Names of the snapshotted LoRA matrices that are unchanged: they got no gradient.

    B starts at zero and moves on the first optimizer step whenever gradients flow, so an unchanged B
    means a broken backward pass, e.g. a 4-bit model that ran inference before training (bitsandbytes then
    repacks its weights and the LoRA gets no gradient, silently).
    """
    import torch

    current = dict(model.named_parameters())
    return [name for name, old in before.items() if torch.equal(current[name].detach().cpu(), old.cpu())]


def save_adapter(model: Any, output_dir: Path, base_name: str, dtype: str) -> Path:
    """Save the LoRA weights in ``dtype`` (half of fp32's size) with ``base_name`` in its config.

    The config names the recipe's base (e.g. ``embedded:smollm2-135m-instruct``) rather than this
    machine's cache path, so the adapter directory is portable.
    """
    import torch
    from safetensors.torch import load_file, save_file

    for config in model.peft_config.values():
        config.base_model_name_or_path = base_name
    model.save_pretrained(output_dir)
    weights_path = Path(output_dir) / "adapter_model.safetensors"
    target = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    tensors = {k: (v.to(target) if v.is_floating_point() else v) for k, v in load_file(weights_path).items()}
    save_file(tensors, weights_path, metadata={"format": "pt"})
    return weights_path


def _device_description(use_cpu: bool) -> str:
    import torch

    if not use_cpu and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    threads = torch.get_num_threads()
    return f"CPU ({platform.processor() or platform.machine()}, {threads} thread{'s' if threads > 1 else ''})"


def _versions() -> dict[str, str]:
    import peft
    import torch
    import transformers
    import trl

    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "trl": trl.__version__,
    }


def _task_counts(dataset: Any) -> dict[str, int]:
    """Examples per task, told apart by the prompt (a rewrite prompt asks for rewrites)."""
    from agent.pipeline.prompts import load_template

    marker = load_template("rewrite").user.split("{")[0]
    rewrite = sum(marker in p for p in dataset["prompt"])
    return {"suggest": len(dataset) - rewrite, "rewrite": rewrite}


def last_checkpoint(output_dir: Path) -> Path | None:
    """The newest ``checkpoint-N`` folder the Trainer saved in ``output_dir``, if any."""
    from transformers.trainer_utils import get_last_checkpoint

    if not Path(output_dir).is_dir():
        return None
    found = get_last_checkpoint(str(output_dir))
    return Path(found) if found else None


def train(recipe: Recipe, command: str | None = None, resume: bool = False) -> Path:
    """Train the adapter described by ``recipe``; return the directory it was saved in.

    With ``resume``, an interrupted run continues from its newest checkpoint in the output directory
    (weights, optimizer, scheduler and data order), instead of starting over.
    """
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import set_seed
    from trl import SFTTrainer

    t, d, m = recipe.training, recipe.data, recipe.model
    if t.torch_threads:
        torch.set_num_threads(t.torch_threads)
    set_seed(t.seed)

    # Data first: a bad file fails in a second, not after loading the model.
    train_records = read_records(d.train_file)
    eval_records = read_records(d.eval_file) if d.eval_file else []

    base_path = resolve_base(m.base)
    tokenizer = load_tokenizer(base_path, revision=m.revision)
    data_kwargs = {
        "tasks": d.tasks,
        "paraphrase_augmentation": d.paraphrase_augmentation,
        "min_rewrite_paraphrases": d.min_rewrite_paraphrases,
        "neighbours_k": d.neighbours_k,
        "neighbour_exclude_cosine": d.neighbour_exclude_cosine,
        "seed": t.seed,
    }
    train_ds = build_dataset(d.train_file, tokenizer, max_examples=d.max_train_examples, **data_kwargs)
    eval_ds = (
        build_dataset(d.eval_file, tokenizer, max_examples=d.max_eval_examples, **data_kwargs)
        if d.eval_file
        else None
    )
    logger.info("training examples: %s", _task_counts(train_ds))

    model = load_model(
        base_path,
        revision=m.revision,
        dtype=m.dtype,
        load_in_4bit=m.load_in_4bit,
        bnb_4bit_quant_type=m.bnb_4bit_quant_type,
        bnb_4bit_use_double_quant=m.bnb_4bit_use_double_quant,
        bnb_4bit_compute_dtype=m.bnb_4bit_compute_dtype,
        attn_implementation=m.attn_implementation,
        device="cpu" if t.use_cpu else None,
    )
    if m.load_in_4bit:
        # Casts norms to fp32 and makes the inputs require grad, so gradients reach the LoRA through the
        # frozen 4-bit layers.
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=t.gradient_checkpointing)
    elif t.gradient_checkpointing:
        model.enable_input_require_grads()
    lora = recipe.lora
    if m.init_adapter is not None:
        # Continue from an earlier adapter: it keeps what it learned (e.g. the rewrite task) while the
        # new data teaches it more.
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(m.init_adapter), is_trainable=True)
    else:
        model = get_peft_model(
            model,
            LoraConfig(
                r=lora.r,
                lora_alpha=lora.alpha,
                lora_dropout=lora.dropout,
                target_modules=lora.target_modules,
                bias=lora.bias,
                task_type="CAUSAL_LM",
            ),
        )
    trainable, _ = model.get_nb_trainable_parameters()
    before = lora_snapshot(model)

    trainer = SFTTrainer(
        model=model,
        args=sft_config(recipe, has_eval=eval_ds is not None),
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
    )
    checkpoint = last_checkpoint(t.output_dir) if resume else None
    if checkpoint is not None:
        logger.info("resuming from %s", checkpoint)
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    train_seconds = time.perf_counter() - started
    eval_loss = trainer.evaluate()["eval_loss"] if eval_ds is not None else None

    stuck = lora_not_moved(before, model)
    if stuck:
        logger.warning("%d LoRA matrices got no gradient and did not change, e.g. %s", len(stuck), stuck[:3])

    output_dir = Path(t.output_dir)
    save_adapter(model, output_dir, m.base, t.adapter_dtype)
    metadata = {
        "name": recipe.name,
        "description": recipe.description,
        "base_model": m.base,
        "base_model_hub_id": hub_id_for_card(m.base),
        "output_dir": str(output_dir),
        "command": command or "finetune.train.train(recipe)",
        "train_file": str(d.train_file),
        "train_sha256": file_sha256(d.train_file),
        "train_records": len(train_records),
        "eval_file": str(d.eval_file) if d.eval_file else None,
        "eval_sha256": file_sha256(d.eval_file) if d.eval_file else None,
        "eval_records": len(eval_records),
        "train_examples": len(train_ds),
        "examples": _task_counts(train_ds),
        "lora": recipe.lora.model_dump(mode="json"),
        "adapter_dtype": t.adapter_dtype,
        "trainable_parameters": trainable,
        "train_seconds": round(train_seconds, 1),
        "global_steps": result.global_step,
        "resumed_from": str(checkpoint) if checkpoint else None,
        "init_adapter": str(m.init_adapter) if m.init_adapter else None,
        "epochs": float(trainer.state.epoch or 0.0),
        "train_loss": float(result.training_loss),
        "eval_loss": float(eval_loss) if eval_loss is not None else None,
        "lora_not_moved": stuck,
        "device": _device_description(t.use_cpu),
        "cpu_count": os.cpu_count(),
        "versions": _versions(),
        "finished_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "log_history": trainer.state.log_history,
    }
    write_card(output_dir, metadata, recipe_to_yaml(recipe))
    return output_dir
