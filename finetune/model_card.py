"""The adapter's model card (``README.md``) and training metadata (``training_metadata.json``).

The card has an evaluation section between two markers; the evaluation fills it later with
:func:`write_eval_section`, so training and evaluation each own their part of one file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EVAL_START = "<!-- eval:start -->"
EVAL_END = "<!-- eval:end -->"
METADATA_FILE = "training_metadata.json"

_NO_EVAL_YET = "Not evaluated yet. Run `whazzat eval` and record its figures here."


def loss_summary(log_history: list[dict[str, Any]], points: int = 8) -> list[tuple[int, float]]:
    """About ``points`` evenly spaced (step, training loss) pairs, first and last included."""
    losses = [(int(e["step"]), float(e["loss"])) for e in log_history if "loss" in e and "step" in e]
    if len(losses) <= points:
        return losses
    stride = (len(losses) - 1) / (points - 1)
    return [losses[round(i * stride)] for i in range(points)]


def render_card(metadata: dict[str, Any], recipe_yaml: str) -> str:
    """The model card text for the metadata written by :func:`finetune.train.train`."""
    curve = loss_summary(metadata.get("log_history", []))
    curve_rows = "\n".join(f"| {step} | {loss:.3f} |" for step, loss in curve) or "| - | - |"
    counts = metadata.get("examples", {})
    count_text = ", ".join(f"{task}: {n}" for task, n in counts.items())
    eval_loss = metadata.get("eval_loss")
    eval_text = f"{eval_loss:.4f}" if isinstance(eval_loss, float) else "n/a"
    return f"""---
base_model: {metadata["base_model_hub_id"]}
library_name: peft
pipeline_tag: text-generation
tags: [lora, whazzat, shopping, trl, sft]
---

# {metadata["name"]}

LoRA adapter that turns a vague shopping need into generic product types (task `suggest`) and
rephrases a need (task `rewrite`), for [Whazzat](../../../README.md). {metadata.get("description", "")}

- **Base model**: `{metadata["base_model"]}` (`{metadata["base_model_hub_id"]}`)
- **Prompt format**: the templates in `prompts/*.yaml`, rendered through the base model's chat template
  (`agent.pipeline.prompts.render_prompt`); the loss is on the answer only.
- **Adapter**: LoRA r={metadata["lora"]["r"]}, alpha={metadata["lora"]["alpha"]} on
  `{metadata["lora"]["target_modules"]}`, saved in {metadata["adapter_dtype"]}
  ({metadata["trainable_parameters"]:,} parameters).

## Data

| file | sha256 | records |
|---|---|---|
| `{metadata["train_file"]}` | `{metadata["train_sha256"]}` | {metadata["train_records"]} |
| `{metadata.get("eval_file") or "-"}` | `{metadata.get("eval_sha256") or "-"}` | {metadata["eval_records"]} |

Training examples: {metadata["train_examples"]} ({count_text}).

## Training

- **Command**: `{metadata["command"]}`
- **Wall time**: {metadata["train_seconds"] / 60:.1f} min on {metadata["device"]}
  ({metadata["global_steps"]} steps, {metadata["epochs"]:.2f} epochs)
- **Final training loss** (mean over the run): {metadata["train_loss"]:.4f}; **eval loss**: {eval_text}
- **Versions**: {", ".join(f"{k} {v}" for k, v in metadata["versions"].items())}
- **Finished**: {metadata["finished_at"]}

| step | training loss |
|---|---|
{curve_rows}

### Recipe (after overrides)

```yaml
{recipe_yaml.rstrip()}
```

## Evaluation

{EVAL_START}
{_NO_EVAL_YET}
{EVAL_END}

## Use

```python
from peft import PeftModel
model = PeftModel.from_pretrained(base_model, "{metadata["output_dir"]}")
```

or `whazzat merge --adapter {metadata["output_dir"]} --out merged/` for serving.
"""


def write_card(output_dir: Path, metadata: dict[str, Any], recipe_yaml: str) -> Path:
    """Write ``README.md`` and the metadata JSON into ``output_dir``; return the card's path."""
    output_dir = Path(output_dir)
    (output_dir / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    card = output_dir / "README.md"
    card.write_text(render_card(metadata, recipe_yaml), encoding="utf-8")
    return card


def write_eval_section(adapter_dir: Path, markdown: str) -> None:
    """Replace the evaluation section of ``adapter_dir/README.md`` with ``markdown`` (e.g. a table)."""
    card = Path(adapter_dir) / "README.md"
    text = card.read_text(encoding="utf-8")
    start, end = text.find(EVAL_START), text.find(EVAL_END)
    if start < 0 or end < start:
        raise ValueError(f"{card} has no evaluation markers ({EVAL_START} ... {EVAL_END})")
    new = text[: start + len(EVAL_START)] + "\n" + markdown.strip() + "\n" + text[end:]
    card.write_text(new, encoding="utf-8")
