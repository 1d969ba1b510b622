"""Training recipes: a YAML file, validated by :class:`Recipe`, with ``key=value`` overrides on top.

A recipe has four sections (``model``, ``data``, ``lora``, ``training``) and a ``name``. Every section
forbids unknown keys, so a typo fails loudly instead of being silently ignored. Overrides name a field
either fully (``training.learning_rate=5e-4``) or by its bare name when that is unambiguous
(``learning_rate=5e-4``); the value is parsed as YAML (``true``, ``8``, ``[q_proj, v_proj]``).

Relative paths in a recipe (data files, output directory) are relative to the current directory, which
is the repository root when run as documented.
"""

from __future__ import annotations

from difflib import get_close_matches
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agent.core.errors import WhazzatError

#: The base-model name that resolves to the embedded SmolLM2 (see :func:`finetune.modeling.resolve_base`).
EMBEDDED_BASE = "embedded:smollm2-135m-instruct"

Dtype = Literal["float32", "bfloat16", "float16"]


class RecipeError(WhazzatError, ValueError):
    """A recipe file or override is missing, malformed or invalid; the message says how to fix it."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelSection(_Section):
    """The base model and how to load it."""

    base: str = Field(description=f"Hugging Face id, local directory, or {EMBEDDED_BASE!r}.")
    revision: str | None = Field(default=None, description="Hub revision (commit, tag or branch).")
    dtype: Dtype = Field(default="float32", description="Weights dtype when not loaded in 4 bits.")
    attn_implementation: str | None = Field(default=None, description="e.g. 'sdpa'; None: the default.")
    load_in_4bit: bool = Field(default=False, description="QLoRA: bitsandbytes 4-bit base weights.")
    bnb_4bit_quant_type: Literal["nf4", "fp4"] = "nf4"
    bnb_4bit_use_double_quant: bool = True
    bnb_4bit_compute_dtype: Dtype = "bfloat16"
    init_adapter: Path | None = Field(
        default=None,
        description="A LoRA adapter to continue training from (its rank and targets win over the lora "
        "section); None starts a fresh LoRA.",
    )


class DataSection(_Section):
    """Where the JSONL records are and which training examples to make of them."""

    train_file: Path = Field(description="JSONL records: need, products, paraphrases, area, source.")
    eval_file: Path | None = Field(default=None, description="Validation records; None: no eval loss.")
    tasks: list[Literal["suggest", "suggest_grounded", "rewrite"]] = Field(
        default=["suggest", "rewrite"],
        min_length=1,
        description="suggest: need -> types; suggest_grounded: the same with the nearest other training "
        "needs in the prompt; rewrite: need -> paraphrases.",
    )
    neighbours_k: int = Field(default=3, ge=1, le=8, description="Neighbours per suggest_grounded prompt.")
    neighbour_exclude_cosine: float = Field(
        default=0.9,
        gt=0,
        le=1,
        description="A training need this close (MiniLM cosine) to the asked one is never its neighbour.",
    )
    paraphrase_augmentation: bool = Field(
        default=True, description="Also train suggest on each paraphrase -> the need's products."
    )
    min_rewrite_paraphrases: int = Field(
        default=3, ge=1, description="A record trains the rewrite task only with at least this many."
    )
    max_train_examples: int | None = Field(default=None, ge=1, description="Cap, for quick runs.")
    max_eval_examples: int | None = Field(default=256, ge=1, description="Cap on eval examples.")


class LoraSection(_Section):
    """peft ``LoraConfig`` settings."""

    r: int = Field(default=16, ge=1)
    alpha: int = Field(default=32, ge=1)
    dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: str | list[str] = Field(
        default="all-linear", description="'all-linear' or module names like [q_proj, v_proj]."
    )
    bias: Literal["none", "all", "lora_only"] = "none"


class TrainingSection(_Section):
    """trl ``SFTConfig`` settings, all explicit: trl's defaults (bf16, checkpointing, lr 2e-5) suit GPUs."""

    output_dir: Path = Field(description="Where the adapter, model card and metadata are saved.")
    learning_rate: float = Field(gt=0)
    num_train_epochs: float = Field(default=1.0, gt=0)
    max_steps: int = Field(default=-1, description="> 0 overrides num_train_epochs.")
    per_device_train_batch_size: int = Field(default=8, ge=1)
    per_device_eval_batch_size: int = Field(default=16, ge=1)
    gradient_accumulation_steps: int = Field(default=1, ge=1)
    lr_scheduler_type: str = "cosine"
    warmup_steps: float = Field(default=0.03, ge=0, description="< 1: a fraction of the steps.")
    weight_decay: float = Field(default=0.0, ge=0)
    max_grad_norm: float = Field(default=1.0, gt=0)
    max_length: int = Field(default=128, ge=8, description="Tokens per example, prompt included.")
    optim: str = Field(default="adamw_torch", description="e.g. adamw_torch, paged_adamw_8bit.")
    use_cpu: bool = False
    bf16: bool = False
    fp16: bool = False
    gradient_checkpointing: bool = False
    logging_steps: int = Field(default=10, ge=1)
    eval_steps: int | None = Field(
        default=None, ge=1, description="Eval loss every N steps; None: per epoch."
    )
    save_strategy: Literal["no", "steps", "epoch"] = Field(
        default="no", description="Intermediate checkpoints; the final adapter is always saved."
    )
    save_steps: int = Field(default=500, ge=1)
    seed: int = 42
    torch_threads: int | None = Field(default=None, ge=1, description="torch.set_num_threads on the CPU.")
    adapter_dtype: Dtype = Field(default="float16", description="dtype of the saved LoRA weights.")

    @model_validator(mode="after")
    def _one_mixed_precision(self) -> TrainingSection:
        if self.bf16 and self.fp16:
            raise ValueError("set at most one of bf16 and fp16")
        if self.use_cpu and self.fp16:
            raise ValueError("fp16 needs a GPU; on the CPU use bf16: false (or true on recent CPUs)")
        return self


class Recipe(_Section):
    """A complete, validated training recipe."""

    name: str = Field(description="Short name of the adapter, used in the model card.")
    description: str = ""
    model: ModelSection
    data: DataSection
    lora: LoraSection = Field(default_factory=LoraSection)
    training: TrainingSection

    @model_validator(mode="after")
    def _qlora_needs_kbit_settings(self) -> Recipe:
        if self.model.load_in_4bit and self.training.use_cpu and self.training.bf16:
            raise ValueError("4-bit on the CPU trains in float32: set training.bf16: false")
        return self


SECTIONS: tuple[str, ...] = ("model", "data", "lora", "training")


def _section_fields(section: str) -> dict[str, Any]:
    model: type[BaseModel] = Recipe.model_fields[section].annotation  # type: ignore[assignment]
    return model.model_fields


def known_keys() -> list[str]:
    """Every overridable key, fully qualified (``training.learning_rate``)."""
    keys = [name for name in Recipe.model_fields if name not in SECTIONS]
    for section in SECTIONS:
        keys += [f"{section}.{field}" for field in _section_fields(section)]
    return keys


def _unknown_key(key: str) -> RecipeError:
    bare = {k.rpartition(".")[2]: k for k in known_keys()}
    close = get_close_matches(key, list(bare) + known_keys(), n=1)
    hint = f"did you mean {bare.get(close[0], close[0])}? " if close else ""
    return RecipeError(f"unknown key {key!r}; {hint}(--dry-run prints every key)")


def _qualify(key: str) -> tuple[str, ...]:
    """``learning_rate`` -> ``("training", "learning_rate")``; dotted keys are checked and split."""
    parts = tuple(key.split("."))
    if len(parts) == 1 and parts[0] in Recipe.model_fields and parts[0] not in SECTIONS:
        return parts
    if len(parts) == 2 and parts[0] in SECTIONS:
        if parts[1] in _section_fields(parts[0]):
            return parts
        raise RecipeError(f"unknown key {key!r}: section {parts[0]!r} has no field {parts[1]!r}")
    if len(parts) == 1:
        owners = [section for section in SECTIONS if key in _section_fields(section)]
        if len(owners) == 1:
            return (owners[0], key)
        if owners:
            raise RecipeError(
                f"ambiguous key {key!r}: write one of {', '.join(f'{o}.{key}' for o in owners)}"
            )
    raise _unknown_key(key)


#: YAML 1.1 reads these as booleans; in an override they are meant as words (save_strategy=no).
_YAML_BOOLEAN_WORDS = {"yes", "no", "on", "off", "y", "n"}


def _parse_value(item: str, raw: str) -> Any:
    """An override's value as YAML (``8``, ``true``, ``[a, b]``); empty means null."""
    if not raw.strip():
        return None
    if raw.strip().lower() in _YAML_BOOLEAN_WORDS:
        return raw.strip()
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as error:
        raise RecipeError(f"bad override {item!r}: the value is not valid YAML ({error})") from error


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of the raw recipe ``data`` with ``key=value`` overrides applied."""
    result = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise RecipeError(f"bad override {item!r}: write KEY=VALUE, e.g. learning_rate=5e-4")
        value = _parse_value(item, raw)
        path = _qualify(key.strip())
        if len(path) == 1:
            result[path[0]] = value
        else:
            section = result.setdefault(path[0], {})
            if not isinstance(section, dict):
                raise RecipeError(f"cannot override {key!r}: {path[0]!r} in the recipe is not a mapping")
            section[path[1]] = value
    return result


def _format_validation_error(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "recipe"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = (
                "unknown key (check the spelling; `whazzat finetune --recipe FILE --dry-run` shows every key)"
            )
        lines.append(f"  {where}: {message}")
    return "\n".join(lines)


def parse_recipe(data: Any, overrides: list[str] | None = None, source: str = "recipe") -> Recipe:
    """Validate raw recipe data (a mapping, e.g. from YAML) with overrides applied."""
    if not isinstance(data, dict):
        raise RecipeError(f"{source}: expected a mapping of sections, got {type(data).__name__}")
    data = apply_overrides(data, overrides or [])
    try:
        return Recipe.model_validate(data)
    except ValidationError as error:
        raise RecipeError(f"{source} is invalid:\n{_format_validation_error(error)}") from None


def load_recipe(path: Path | str, overrides: list[str] | None = None) -> Recipe:
    """Read, override and validate the recipe at ``path``; :class:`RecipeError` on any problem."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe file not found: {path} (recipes live in finetune/recipes/)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise RecipeError(f"{path} is not valid YAML: {error}") from None
    return parse_recipe(data, overrides, source=str(path))


def recipe_to_yaml(recipe: Recipe) -> str:
    """The effective recipe (after overrides) as YAML, for the model card and reproducibility."""
    return yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False)
