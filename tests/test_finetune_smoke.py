"""Fine-tuning smoke test on a tiny random Llama (CPU, seconds): the loss falls, the adapter saves and
reloads, merged and unmerged logits agree, and the model card and metadata are written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finetune.model_card import EVAL_END, EVAL_START, write_eval_section
from tests.finetune_helpers import tiny_recipe, write_records
from tests.tiny_models import make_tiny_llama

pytest.importorskip("trl")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(base model dir, adapter dir) after 12 LoRA steps on four records."""
    from finetune.train import train

    root = tmp_path_factory.mktemp("smoke")
    base = make_tiny_llama(root)
    data = write_records(root / "train.jsonl")
    adapter = train(tiny_recipe(base, data, root / "adapter", adapter_dtype="float16"))
    return base, adapter


def _losses(adapter: Path) -> list[float]:
    metadata = json.loads((adapter / "training_metadata.json").read_text())
    return [entry["loss"] for entry in metadata["log_history"] if "loss" in entry]


def test_loss_falls(trained: tuple[Path, Path]) -> None:
    losses = _losses(trained[1])
    assert len(losses) >= 10
    assert sum(losses[-3:]) / 3 < 0.8 * sum(losses[:3]) / 3, losses


def test_adapter_files_card_and_metadata(trained: tuple[Path, Path]) -> None:
    from safetensors.torch import load_file

    base, adapter = trained
    assert {"adapter_model.safetensors", "adapter_config.json", "README.md", "training_metadata.json"} <= {
        p.name for p in adapter.iterdir()
    }
    weights = load_file(adapter / "adapter_model.safetensors")
    assert weights and all(str(t.dtype) == "torch.float16" for t in weights.values())
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(base)  # the recipe's base, not a resolved cache path
    metadata = json.loads((adapter / "training_metadata.json").read_text())
    assert metadata["lora_not_moved"] == []
    assert metadata["examples"] == {"suggest": 12, "rewrite": 2}  # 4 needs + 8 paraphrases; 2 with >= 3
    assert len(metadata["train_sha256"]) == 64
    card = (adapter / "README.md").read_text()
    assert metadata["train_sha256"] in card and "Wall time" in card and EVAL_START in card


def test_eval_section_is_replaced(trained: tuple[Path, Path], tmp_path: Path) -> None:
    import shutil

    copy = Path(shutil.copytree(trained[1], tmp_path / "copy"))
    write_eval_section(copy, "| hit@5 | 0.9 |")
    write_eval_section(copy, "| hit@5 | 0.95 |")  # idempotent: the section is replaced, not appended
    card = (copy / "README.md").read_text()
    section = card[card.index(EVAL_START) : card.index(EVAL_END)]
    assert "0.95" in section and "0.9 |" not in section and "Not evaluated" not in section


def test_adapter_reloads_and_merged_logits_match(trained: tuple[Path, Path], tmp_path: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from agent.pipeline.prompts import render_prompt
    from finetune.merge import merge

    base, adapter = trained
    tokenizer = AutoTokenizer.from_pretrained(base)
    prompt = render_prompt(tokenizer, "suggest", need="something to dig food")
    inputs = tokenizer(prompt, return_tensors="pt")

    base_model = AutoModelForCausalLM.from_pretrained(base).eval()
    with torch.no_grad():
        base_logits = base_model(**inputs).logits
    unmerged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter).eval()
    with torch.no_grad():
        unmerged_logits = unmerged(**inputs).logits
    assert not torch.allclose(base_logits, unmerged_logits, atol=1e-3)  # the adapter does something

    merged_dir = merge(None, adapter, tmp_path / "merged")  # base read from adapter_config.json
    assert (merged_dir / "model.safetensors").is_file()
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    with torch.no_grad():
        merged_logits = merged(**inputs).logits
    torch.testing.assert_close(merged_logits, unmerged_logits, atol=1e-4, rtol=1e-4)
    assert AutoTokenizer.from_pretrained(merged_dir).chat_template == tokenizer.chat_template
