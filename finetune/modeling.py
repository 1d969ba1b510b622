"""Resolve and load a base model for training or merging, in full precision or 4-bit (QLoRA).

The special base name ``embedded:smollm2-135m-instruct`` resolves to the local safetensors conversion of
the embedded SmolLM2 (made once by :func:`agent.models.llm.embedded_model_dir`); anything else is a Hugging Face
id or a local directory.
"""

from __future__ import annotations

from typing import Any

from agent.core.config import EMBEDDED_MODEL

#: Hub id of the model the embedded GGUF was quantised from (for model cards' ``base_model`` field).
EMBEDDED_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


def resolve_base(name: str) -> str:
    """A path or Hub id that ``from_pretrained`` accepts for the recipe's ``model.base``."""
    if name == EMBEDDED_MODEL:
        from agent.core.config import get_settings
        from agent.models.llm import embedded_model_dir

        return str(embedded_model_dir(get_settings().home_dir))
    if name.startswith("embedded:"):
        raise ValueError(f"unknown embedded model {name!r}; the only one is {EMBEDDED_MODEL!r}")
    return name


def hub_id_for_card(name: str) -> str:
    """The ``base_model`` to name in a model card (local paths and the embedded name mapped to Hub ids)."""
    return EMBEDDED_HUB_ID if name == EMBEDDED_MODEL else name


def load_tokenizer(path: str, revision: str | None = None) -> Any:
    """The base model's tokenizer, with a pad token (Llama tokenizers have none: reuse EOS)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, revision=revision)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _torch_dtype(name: str) -> Any:
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def load_model(
    path: str,
    *,
    revision: str | None = None,
    dtype: str = "float32",
    load_in_4bit: bool = False,
    bnb_4bit_quant_type: str = "nf4",
    bnb_4bit_use_double_quant: bool = True,
    bnb_4bit_compute_dtype: str = "bfloat16",
    attn_implementation: str | None = None,
    device: str | None = None,
) -> Any:
    """Load a causal LM, fresh. In 4-bit it is ready for :func:`peft.prepare_model_for_kbit_training`.

    ``device`` places a 4-bit model ("cpu", "cuda"); None means the GPU when there is one.

    Never run inference on a 4-bit model before training it: bitsandbytes repacks the weights in eval
    mode and the LoRA then silently gets no gradient (bitsandbytes 0.50; its only sign is a ``gemv_4bit ...
    autograd kernel was not registered`` warning).
    """
    import torch
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"revision": revision, "dtype": _torch_dtype(dtype)}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    if load_in_4bit:
        from transformers import BitsAndBytesConfig

        compute_dtype = _torch_dtype(bnb_4bit_compute_dtype)
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=bnb_4bit_quant_type,
            bnb_4bit_use_double_quant=bnb_4bit_use_double_quant,
            bnb_4bit_compute_dtype=compute_dtype,
            bnb_4bit_quant_storage=compute_dtype,
        )
        kwargs["dtype"] = compute_dtype
        # A quantised model must sit on its device from the start: one GPU, or the CPU.
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        kwargs["device_map"] = {"": torch.cuda.current_device() if device == "cuda" else device}
    return AutoModelForCausalLM.from_pretrained(path, **kwargs)
