"""Small builders shared by the fine-tuning tests: a JSONL data file and a recipe for a tiny model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from finetune.recipe import Recipe, parse_recipe

RECORDS: list[dict[str, Any]] = [
    {
        "need": "something to dig food",
        "products": ["garden trowel", "hand rake", "gloves"],
        "paraphrases": ["tools to dig in the garden", "dig up vegetables", "planting tools"],
        "area": "garden",
        "source": "test",
    },
    {
        "need": "my back hurts after sitting all day",
        "products": ["ergonomic chair", "lumbar pillow", "standing desk"],
        "paraphrases": ["back pain from the office chair"],
        "area": "office",
        "source": "test",
    },
    {
        "need": "gift for a dad who loves fishing",
        "products": ["tackle box", "fishing reel", "lure set", "cooler"],
        "paraphrases": [],
        "area": "gifts",
        "source": "test",
    },
    {
        "need": "baking bread at home",
        "products": ["bread machine", "proofing basket", "dough scraper"],
        "paraphrases": ["make my own bread", "start baking sourdough", "homemade loaves", "bake bread"],
        "area": "kitchen",
        "source": "test",
    },
]


def write_records(path: Path, records: list[dict[str, Any]] = RECORDS) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def tiny_recipe(base: Path, train_file: Path, output_dir: Path, **training: Any) -> Recipe:
    """A fast CPU recipe for a tiny model: a few steps at a high learning rate."""
    settings: dict[str, Any] = {
        "output_dir": str(output_dir),
        "learning_rate": 1e-2,
        "max_steps": 12,
        "per_device_train_batch_size": 4,
        "logging_steps": 1,
        "warmup_steps": 0,
        "lr_scheduler_type": "constant",
        "use_cpu": True,
        "bf16": False,
        "adapter_dtype": "float32",
    }
    settings.update(training)
    model = {"base": str(base)}
    if settings.pop("load_in_4bit", False):
        model.update(load_in_4bit=True, bnb_4bit_compute_dtype="float32")
    return parse_recipe(
        {
            "name": "tiny-test",
            "model": model,
            "data": {"train_file": str(train_file)},
            "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
            "training": settings,
        }
    )
