"""Batch-1 decode rate of the embedded model under each decode lever, against the bandwidth bound.

    whazzat bench-levers                      # every lever, a JSON line each
    whazzat bench-levers --lever int8 --lever int8-static-cache

``whazzat bench`` measures the default settings; this measures the levers the speed issue lists (static
KV cache, ``torch.compile``, quantised engines, bf16), one fresh model per lever, so each can be kept or
dropped on a figure. For int8 it also splits one decode step into its linear layers and the rest
(:func:`agent.bench.hardware.step_split_ms`), which says how much any lever outside the matrix products
could win. Run it on a quiet machine.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

#: name -> (quantize setting, what the lever is)
LEVERS: dict[str, tuple[str, str]] = {
    "int8": ("int8", "the default: int8 linear layers (weight-only in the MLP down projections), eager"),
    "int8-dynamic": ("int8-dynamic", "every linear layer dynamic int8 (inputs quantised on the fly)"),
    "int8-static-cache": ("int8", "a preallocated (static) KV cache instead of concatenating"),
    "int8-static-cache-compile": ("int8", "static KV cache and torch.compile of the forward pass"),
    "int8-onednn": ("int8", "the onednn quantised engine instead of x86/fbgemm"),
    "fp32": ("none", "no quantisation"),
    "bf16": ("bf16", "bf16 weights (AVX512-BF16 where the CPU has it)"),
}


def _prepare(lever: str, model: Any) -> Any:
    import torch

    if "static-cache" in lever:
        model.generation_config.cache_implementation = "static"
    if lever.endswith("compile"):
        model.forward = torch.compile(model.forward, dynamic=False)
    return model


def measure(lever: str, bandwidth_gb_s: float, new_tokens: int, **overrides: Any) -> dict[str, Any]:
    """One lever on a freshly loaded model: load, prepare, decode rate, and the step split for int8.

    ``overrides`` are settings (``model=``, ``adapter=``): the embedded default when there are none.
    """
    import torch

    from agent.bench.hardware import decode_figures
    from agent.core.config import get_settings
    from agent.models.llm import load_model_and_tokenizer

    quantize, what = LEVERS[lever]
    engine, threads = torch.backends.quantized.engine, torch.get_num_threads()
    if lever == "int8-onednn":
        torch.backends.quantized.engine = "onednn"
    try:
        settings = get_settings(**{**overrides, "quantize": quantize})
        torch.set_num_threads(settings.torch_threads or torch.get_num_threads())
        model, tokenizer = load_model_and_tokenizer(settings)
        started = time.perf_counter()
        model = _prepare(lever, model)
        # The bench's own measurement against the bound; its warm-up run triggers a compile.
        decode = decode_figures(model, tokenizer, bandwidth_gb_s, new_tokens, split_step=lever == "int8")
        prepare_and_measure_s = time.perf_counter() - started
        row: dict[str, Any] = {
            "lever": lever,
            "what": what,
            **decode.model_dump(),
            "prepare_and_measure_s": round(prepare_and_measure_s, 1),
            "torch_threads": torch.get_num_threads(),
        }
        return row
    finally:  # leave the process as it was (the bench and the tests measure more after this)
        torch.backends.quantized.engine = engine
        torch.set_num_threads(threads)


def run_levers(
    levers: list[str] | None = None,
    new_tokens: int = 64,
    bandwidth_mb: int = 512,
    write: Callable[[str], Any] = sys.stdout.write,
) -> None:
    """The bandwidth, then one lever after another (default: all), each as a JSON line through ``write``.

    The command line is ``whazzat bench-levers`` (agent/cli/bench.py): this layer sits below the CLI.
    """
    from agent.bench.hardware import measure_bandwidth

    bandwidth = measure_bandwidth(bandwidth_mb)
    write(json.dumps({"bandwidth_gb_s": round(bandwidth, 2)}) + "\n")
    for lever in levers or list(LEVERS):
        write(json.dumps(measure(lever, bandwidth, new_tokens)) + "\n")
