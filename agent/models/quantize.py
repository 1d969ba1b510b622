"""CPU weight formats behind the ``quantize`` setting.

Decoding a small model on the CPU is bound by reading every weight once per token, so int8 weights (a
quarter of fp32's bytes) decode fastest. Two int8 kernels that torch ships are used:

* ``quantized::linear_dynamic`` (``torch.ao`` dynamic quantisation): int8 weights, and each input
  quantised on the fly with one scale for the whole tensor. The fastest kernel here at every batch size.
  But one scale per tensor is lossy where a few input channels are far larger than the rest.
* ``aten::_weight_int8pack_mm``: int8 weights with one scale per output row, inputs kept in bf16
  (weight-only int8). About as fast as the dynamic kernel for one sequence, slower for a batch.

The MLP down projections of Llama models take ``silu(gate) * up`` as input, which has such outlier
channels: on the embedded model, dynamic int8 there changes the layer's output by 16% on average (weight-
only int8: under 1%) and cost 8 points of hit@5 on the project's test split, while every other layer
quantises dynamically at little cost (docs/bench.md, earlier runs). So ``int8`` mixes the two kernels.
"""

from __future__ import annotations

from typing import Any

import torch

from agent.core.config import Quantize

#: Linear layers (by name suffix) whose inputs have outlier channels: weight-only int8 under ``int8``.
OUTLIER_INPUT_LINEARS = ("mlp.down_proj",)
#: ``aten::_weight_int8pack_mm`` on the CPU needs an input width that is a multiple of this: with torch
#: 2.13, width 24 or 65 crashed the process and width 8 gave wrong results. Other layers stay dynamic.
WEIGHT_ONLY_WIDTH_MULTIPLE = 16


class WeightOnlyInt8Linear(torch.nn.Module):
    """A linear layer with int8 weights (one scale per output row), computing in bf16 and returning the
    input's dtype. The bf16 kernel is the fast one on the CPU (the fp32 one is not vectorised)."""

    def __init__(self, weight_int8: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.out_features, self.in_features = weight_int8.shape
        self.register_buffer("weight_int8", weight_int8.contiguous())
        self.register_buffer("scales", scales.to(torch.bfloat16))
        self.register_buffer("bias", bias)

    @staticmethod
    def accepts(linear: torch.nn.Linear) -> bool:
        """Whether the kernel takes ``linear``'s input width (see :data:`WEIGHT_ONLY_WIDTH_MULTIPLE`)."""
        return linear.in_features % WEIGHT_ONLY_WIDTH_MULTIPLE == 0

    @classmethod
    def from_linear(cls, linear: torch.nn.Linear) -> WeightOnlyInt8Linear:
        """Symmetric per-row quantisation of ``linear``'s weights: ``weight ~ weight_int8 * scale``."""
        if not cls.accepts(linear):
            raise ValueError(
                f"weight-only int8 needs in_features to be a multiple of {WEIGHT_ONLY_WIDTH_MULTIPLE}, "
                f"got {linear.in_features}"
            )
        weight = linear.weight.detach().float()
        scales = weight.abs().amax(dim=1).clamp(min=1e-12) / 127
        weight_int8 = (weight / scales[:, None]).round().clamp(-127, 127).to(torch.int8)
        bias = None if linear.bias is None else linear.bias.detach().clone()
        return cls(weight_int8, scales, bias)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        rows = inputs.reshape(-1, self.in_features).to(torch.bfloat16)
        outputs = torch.ops.aten._weight_int8pack_mm(rows, self.weight_int8, self.scales).to(inputs.dtype)
        outputs = outputs.reshape(*inputs.shape[:-1], self.out_features)
        return outputs if self.bias is None else outputs + self.bias

    def weight_bytes(self) -> int:
        """Bytes read per forward pass: int8 weights, bf16 scales, and the bias."""
        buffers = [self.weight_int8, self.scales] + ([self.bias] if self.bias is not None else [])
        return sum(buffer.numel() * buffer.element_size() for buffer in buffers)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, weight=int8 per row"


def quantize_int8_dynamic(model: Any) -> Any:
    """Dynamic int8 quantisation of every linear layer (weights int8, inputs quantised on the fly)."""
    # In place: a copy would keep the fp32 and the int8 model alive together at the peak.
    return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)


def _detach_from_checkpoint_file(model: Any, replaced: list[torch.nn.Linear]) -> Any:
    """Let go of the checkpoint's memory map once int8 has replaced the ``replaced`` fp32 linear layers.

    transformers maps the safetensors file into memory; while any tensor still points into it, the whole
    mapping stays resident: 513 MB of the embedded model's 538 MB fp32 file (one ``whazzat ask`` peaked
    at 1.5 GB, a third of it the mapping). Two kinds of tensor still point there: the weights left
    unquantised (the embedding, the norms: copied out, 108 MB), and the replaced layers' weights, which
    torch.ao's qconfig closures keep alive in reference cycles (dropped here; a full garbage collection
    would find them too, but takes 0.4 s with transformers' objects on the heap)."""
    kept = {id(module) for module in model.modules()}
    for linear in replaced:
        if id(linear) not in kept:
            # Drop the reference, never touch the tensor: lm_head's weight may be the embedding's.
            linear.weight, linear.bias = None, None
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.data = parameter.data.clone()
    return model


def quantize_int8(model: Any, weight_only: tuple[str, ...] = OUTLIER_INPUT_LINEARS) -> Any:
    """int8 weights everywhere: weight-only for the layers named in ``weight_only`` (where the kernel
    takes their width), dynamic elsewhere."""
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            full_name = f"{name}.{child_name}" if name else child_name
            if (
                isinstance(child, torch.nn.Linear)
                and full_name.endswith(weight_only)
                and WeightOnlyInt8Linear.accepts(child)
            ):
                setattr(module, child_name, WeightOnlyInt8Linear.from_linear(child))
    return quantize_int8_dynamic(model)  # only plain nn.Linear layers are left to quantise


def quantize_for_cpu(model: Any, quantize: Quantize) -> Any:
    """``model`` in the weight format ``quantize`` names (``none`` leaves it in fp32)."""
    if quantize in ("int8", "int8-dynamic"):
        linears = [module for module in model.modules() if isinstance(module, torch.nn.Linear)]
        model = quantize_int8(model) if quantize == "int8" else quantize_int8_dynamic(model)
        return _detach_from_checkpoint_file(model, linears)
    if quantize == "bf16":  # weights and activations in bf16: no per-tensor activation scale
        return model.to(torch.bfloat16)
    return model
