"""The weight-only int8 layer's two kernels side by side, at each row count.

    python -m agent.bench.kernels                 # the embedded model's MLP down projection (1536 -> 576)
    python -m agent.bench.kernels --rows 1 16 595

:class:`agent.models.quantize.WeightOnlyInt8Linear` multiplies a decode step's few rows with
``aten::_weight_int8pack_mm`` and a prefill's many rows with the int8 weights widened to bf16 (the bf16
matrix product, widening included): this prints both times per row count, one JSON line each, so the
switch-over (:data:`agent.models.quantize.WIDEN_FROM_ROWS`) rests on a figure. One torch thread, as the
chain runs; run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

#: The embedded model's MLP down projection: 1536 inputs, 576 outputs (SmolLM2-135M).
DOWN_PROJECTION = (1536, 576)
#: Decode steps (1-8 rows), short and long prompts' prefill (a 5-prompt batch padded to 119 tokens: 595).
DEFAULT_ROWS = (1, 4, 8, 16, 32, 64, 128, 238, 595)


def _best_ms(run: Callable[[], Any], repeats: int) -> float:
    run()  # warm-up: first-call allocations
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return round(best * 1000, 4)


def _widened_product(inputs: Any, weight: Any, scales: Any) -> Any:
    """What the layer computes for a prefill (:meth:`~agent.models.quantize.WeightOnlyInt8Linear.forward`)."""
    import torch

    return torch.mm(inputs, weight.to(torch.bfloat16).t()) * scales


def time_kernels(
    in_features: int = DOWN_PROJECTION[0],
    out_features: int = DOWN_PROJECTION[1],
    rows: Sequence[int] = DEFAULT_ROWS,
    repeats: int = 20,
) -> list[dict[str, Any]]:
    """Best-of-``repeats`` ms of each kernel per row count, and which one the layer picks there."""
    import torch

    from agent.models.quantize import WIDEN_FROM_ROWS, WeightOnlyInt8Linear

    torch.set_num_threads(1)
    layer = WeightOnlyInt8Linear.from_linear(torch.nn.Linear(in_features, out_features, bias=False))
    weight, scales = layer.weight_int8, layer.scales
    figures = []
    with torch.inference_mode():
        for count in rows:
            inputs = torch.randn(count, in_features).to(torch.bfloat16)
            packed = _best_ms(partial(torch.ops.aten._weight_int8pack_mm, inputs, weight, scales), repeats)
            widened = _best_ms(partial(_widened_product, inputs, weight, scales), repeats)
            figures.append({
                "rows": count,
                "int8pack_ms": packed,
                "widened_bf16_ms": widened,
                "widened_speedup": round(packed / widened, 2),
                "layer_uses": "widened_bf16" if count >= WIDEN_FROM_ROWS else "int8pack",
            })
    return figures


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m agent.bench.kernels", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=list(DEFAULT_ROWS), help="row counts to time")
    parser.add_argument("--in-features", type=int, default=DOWN_PROJECTION[0])
    parser.add_argument("--out-features", type=int, default=DOWN_PROJECTION[1])
    parser.add_argument("--repeats", type=int, default=20)
    options = parser.parse_args(argv)
    for figure in time_kernels(options.in_features, options.out_features, options.rows, options.repeats):
        print(json.dumps(figure), flush=True)


if __name__ == "__main__":
    main()
