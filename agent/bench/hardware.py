"""What the hardware allows: memory bandwidth, weight bytes read per token, the decode bound and the rate.

Decoding one sequence (batch 1) of a small model on a CPU is bound by memory: each new token reads every
weight it uses once. So ``bandwidth / weight bytes per token`` bounds tokens/s, and the measured batch-1
rate as a fraction of that bound says how much is left to win. (The KV cache is also read per token, but
at these lengths it is well under 1% of the weights, so it is left out.)

    python -m agent.bench.hardware --megabytes 512      # the bandwidth alone, as one JSON line
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from typing import Annotated, Any

import typer

from agent.bench.figures import Decode, Machine

#: Prompt of the decode measurement: fixed, so runs compare.
DECODE_PROMPT = "List generic product types for a first camping trip, comma-separated:"
#: Copies timed per bandwidth measurement, best one kept: on this shared VM, best of 3 ranged from 27 to
#: 41 GB/s within an hour, best of 10 from 40.0 to 41.0, and the bound should be the attainable peak.
BANDWIDTH_REPEATS = 10
BANDWIDTH_METHOD = (
    "numpy copy of a {mb} MB array, best of {repeats}, read + written bytes / time (STREAM copy)"
)
_FLAGS_OF_INTEREST = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8", "amx_tile")


def measure_bandwidth(megabytes: int = 512, repeats: int = BANDWIDTH_REPEATS) -> float:
    """Memory bandwidth in GB/s: the best of ``repeats`` copies of a ``megabytes`` array.

    Counts bytes read plus bytes written, as STREAM's copy does. Both arrays are touched first so page
    faults are not timed. Run it in its own process (:func:`main`) to keep the array out of the bench's
    peak RSS.
    """
    import numpy as np

    size = megabytes * 1024 * 1024
    source = np.ones(size, dtype=np.uint8)
    target = np.zeros(size, dtype=np.uint8)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        np.copyto(target, source)
        best = min(best, time.perf_counter() - started)
    return 2 * size / best / 1e9


def _is_int8_linear(module: Any) -> bool:
    try:
        from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear
    except ImportError:  # pragma: no cover - a torch without eager quantisation
        return False
    return isinstance(module, DynamicInt8Linear)


def _is_weight_only_int8_linear(module: Any) -> bool:
    from agent.models.quantize import WeightOnlyInt8Linear

    return isinstance(module, WeightOnlyInt8Linear)


def weight_bytes_per_token(model: Any) -> int:
    """Bytes of weights one generated token reads: every parameter the forward pass uses, once.

    Embedding tables are left out (a token reads one row), except the output projection (``lm_head``),
    which reads all of it, also when tied to the input embedding. int8 linear layers hold packed weights
    or buffers rather than parameters: 1 byte per weight plus their scales and bias. A PeftModel's LoRA
    matrices count too: an unmerged adapter is read on every token.
    """
    import torch

    seen: set[int] = set()
    total = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Embedding):
            continue
        if _is_weight_only_int8_linear(module):  # buffers, not parameters: counted by the layer itself
            total += module.weight_bytes()
            continue
        if _is_int8_linear(module):
            weight, bias = module.weight(), module.bias()
            total += weight.numel()  # qint8: one byte per weight
            if bias is not None:
                total += bias.numel() * bias.element_size()
            continue
        for parameter in module.parameters(recurse=False):
            if parameter.data_ptr() in seen:  # a tied weight is read once
                continue
            seen.add(parameter.data_ptr())
            total += parameter.numel() * parameter.element_size()
    return total


def _generate_seconds(model: Any, inputs: dict[str, Any], new_tokens: int) -> float:
    import torch

    with torch.inference_mode():
        started = time.perf_counter()
        model.generate(
            **inputs,
            do_sample=False,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            pad_token_id=model.generation_config.pad_token_id or model.generation_config.eos_token_id,
        )
        return time.perf_counter() - started


def decode_tokens_per_s(model: Any, tokenizer: Any, new_tokens: int = 64, repeats: int = 2) -> float:
    """Batch-1 greedy decode rate with the prompt's prefill taken out: ``(N-1) / (t(N) - t(1))``.

    ``min_new_tokens`` keeps EOS from ending a run early; the best of ``repeats`` of each is used.
    """
    if new_tokens < 2:
        raise ValueError("new_tokens must be at least 2")
    inputs = dict(tokenizer(DECODE_PROMPT, return_tensors="pt", add_special_tokens=False))
    _generate_seconds(model, inputs, 4)  # warm-up: first-call allocations
    one = min(_generate_seconds(model, inputs, 1) for _ in range(repeats))
    many = min(_generate_seconds(model, inputs, new_tokens) for _ in range(repeats))
    return (new_tokens - 1) / max(many - one, 1e-9)


def decode_figures(
    model: Any, tokenizer: Any, bandwidth_gb_s: float, new_tokens: int = 64, *, split_step: bool = False
) -> Decode:
    """The measured decode rate of ``model`` against its bandwidth bound; with ``split_step``, also one
    step's time and its linear layers' share of it (:func:`step_split_ms`)."""
    rate = decode_tokens_per_s(model, tokenizer, new_tokens)
    per_token = weight_bytes_per_token(model)
    bound = bandwidth_gb_s * 1e9 / per_token
    return Decode(
        new_tokens=new_tokens,
        tokens_per_s=round(rate, 2),
        weight_bytes_per_token=per_token,
        bound_tokens_per_s=round(bound, 2),
        fraction_of_bound=round(rate / bound, 4),
        **(step_split_ms(model, tokenizer) if split_step else {}),
    )


def step_split_ms(model: Any, tokenizer: Any, steps: int = 32) -> dict[str, float]:
    """Milliseconds of one decode step (batch 1, cached), and of its linear layers called alone."""
    import torch
    from transformers import DynamicCache

    ids = tokenizer("a gift for a dad who loves fishing", return_tensors="pt").input_ids
    with torch.inference_mode():
        cache = DynamicCache(config=model.config)
        token = model(input_ids=ids, cache=cache).logits[:, -1:].argmax(-1)
        started = time.perf_counter()
        for _ in range(steps):
            token = model(input_ids=token, cache=cache).logits[:, -1:].argmax(-1)
        step = (time.perf_counter() - started) / steps
        linears = _innermost_linears(model)
        inputs = {m.in_features: torch.randn(1, 1, m.in_features) for m in linears}
        started = time.perf_counter()
        for _ in range(steps):
            for module in linears:
                module(inputs[module.in_features])
        linear = (time.perf_counter() - started) / steps
    return {"step_ms": round(step * 1e3, 2), "linear_layers_ms": round(linear * 1e3, 2),
            "linear_layers": len(linears)}


def _is_linear(module: Any) -> bool:
    return hasattr(module, "in_features") and hasattr(module, "out_features")


def _innermost_linears(model: Any) -> list[Any]:
    """The linear layers with no linear inside: an unmerged LoRA layer wraps its base layer and its A and
    B matrices, so its parts are counted (and called), once each, and the wrapper is not."""
    return [m for m in model.modules() if _is_linear(m) and not any(map(_is_linear, list(m.modules())[1:]))]


def _cpu_model_and_flags() -> tuple[str, list[str]]:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
    except OSError:  # not Linux: the platform's word is all we have
        pass
    return model, [flag for flag in _FLAGS_OF_INTEREST if flag in flags]


def machine_info() -> Machine:
    """The machine the figures were measured on."""
    import psutil
    import torch
    import transformers

    cpu_model, flags = _cpu_model_and_flags()
    return Machine(
        cpu_model=cpu_model,
        logical_cores=os.cpu_count() or 1,
        physical_cores=psutil.cpu_count(logical=False),
        torch_threads=torch.get_num_threads(),
        cpu_flags=flags,
        memory_gb=round(psutil.virtual_memory().total / 1e9, 1),
        python=platform.python_version(),
        torch=torch.__version__,
        transformers=transformers.__version__,
        platform=platform.platform(),
    )


#: The child's command line (this layer sits below ``agent.cli``, so it has its own one-command app).
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def bandwidth_command(
    megabytes: Annotated[int, typer.Option("--megabytes", min=1, help="Size of the copied array.")] = 512,
    repeats: Annotated[
        int, typer.Option("--repeats", min=1, help="Copies timed; the best one counts.")
    ] = BANDWIDTH_REPEATS,
) -> None:
    """Measure memory bandwidth; print one JSON line (``{"bandwidth_gb_s": ...}``)."""
    gb_s = measure_bandwidth(megabytes, repeats)
    sys.stdout.write(json.dumps({"bandwidth_gb_s": gb_s}) + "\n")


def main() -> None:
    """``python -m agent.bench.hardware``, as the bench runs it in a child process."""
    app()


if __name__ == "__main__":
    main()

