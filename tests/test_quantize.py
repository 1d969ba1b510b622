"""The ``quantize`` setting on the CPU: what each value does to the loaded model, and that it still answers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.tiny_models import make_tiny_llama


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_llama(tmp_path_factory.mktemp("quantize"))


@pytest.mark.parametrize("quantize", ["none", "int8", "int8-dynamic", "bf16"])
def test_each_quantize_setting_loads_a_model_that_generates(tiny_model: Path, quantize: str) -> None:
    from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

    from agent.core.config import get_settings
    from agent.models.llm import load_model_and_tokenizer
    from agent.models.quantize import WeightOnlyInt8Linear

    model, tokenizer = load_model_and_tokenizer(get_settings(model=str(tiny_model), quantize=quantize))
    layer = model.model.layers[0].mlp.down_proj
    if quantize == "int8":  # weight-only where inputs have outlier channels, dynamic everywhere else
        assert isinstance(layer, WeightOnlyInt8Linear)
        assert isinstance(model.model.layers[0].mlp.up_proj, DynamicInt8Linear)
        assert isinstance(model.lm_head, DynamicInt8Linear)
    elif quantize == "int8-dynamic":
        assert isinstance(layer, DynamicInt8Linear)
    else:
        assert isinstance(layer, torch.nn.Linear) and not isinstance(layer, DynamicInt8Linear)
        assert layer.weight.dtype == (torch.bfloat16 if quantize == "bf16" else torch.float32)
    inputs = tokenizer(["a tent for two", "a gift for a dad"], return_tensors="pt", padding=True)
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=3, min_new_tokens=3, do_sample=False)
    assert out.shape == (2, inputs["input_ids"].shape[1] + 3)


def _mapped(path: Path) -> bool:
    """Whether this process maps ``path`` into memory (Linux: /proc/self/maps)."""
    return any(line.rstrip().endswith(str(path.resolve())) for line in Path("/proc/self/maps").open())


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads Linux's /proc/self/maps")
def test_an_int8_model_lets_go_of_its_checkpoint_file(tmp_path: Path) -> None:
    """The fp32 checkpoint stays mapped (and resident) while any tensor points into it: after int8, the
    embedding and norms are copied out so the mapping goes (a third of one `ask`'s peak memory)."""
    from agent.core.config import get_settings
    from agent.models.llm import load_model_and_tokenizer

    checkpoint = make_tiny_llama(tmp_path) / "model.safetensors"
    assert checkpoint.exists()
    int8, _ = load_model_and_tokenizer(get_settings(model=str(checkpoint.parent), quantize="int8"))
    assert not _mapped(checkpoint)
    assert int8.model.embed_tokens.weight.dtype == torch.float32  # copied, not converted
    _fp32, _ = load_model_and_tokenizer(get_settings(model=str(checkpoint.parent), quantize="none"))
    assert _mapped(checkpoint)  # the check can see a mapping: fp32 weights live in it


def test_an_unknown_quantize_value_is_refused() -> None:
    from agent.core.config import get_settings
    from agent.core.errors import WhazzatError

    with pytest.raises((WhazzatError, ValueError), match="quantize"):
        get_settings(quantize="int4")


def _linear_and_outlier_inputs(bias: bool) -> tuple[torch.nn.Linear, torch.Tensor]:
    """A random linear layer, and inputs where two channels are 100x the rest (as in down_proj's)."""
    torch.manual_seed(0)
    linear = torch.nn.Linear(256, 96, bias=bias)
    inputs = torch.randn(2, 5, 256)
    inputs[..., 3] *= 100
    inputs[..., 77] *= 100
    return linear, inputs


def _relative_error(outputs: torch.Tensor, reference: torch.Tensor) -> float:
    return float((outputs - reference).norm() / reference.norm())


@pytest.mark.parametrize("bias", [False, True])
def test_weight_only_int8_stays_close_to_fp32_where_dynamic_int8_does_not(bias: bool) -> None:
    from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

    from agent.models.quantize import WeightOnlyInt8Linear

    linear, inputs = _linear_and_outlier_inputs(bias)
    with torch.inference_mode():
        reference = linear(inputs)
        weight_only = WeightOnlyInt8Linear.from_linear(linear)(inputs)
        linear.qconfig = torch.ao.quantization.default_dynamic_qconfig
        dynamic = DynamicInt8Linear.from_float(linear)(inputs)
    assert weight_only.shape == reference.shape and weight_only.dtype == torch.float32
    assert _relative_error(weight_only, reference) < 0.02
    # The reason the int8 setting mixes kernels: one input scale per tensor loses the small channels.
    assert _relative_error(dynamic, reference) > 5 * _relative_error(weight_only, reference)


def test_weight_only_int8_counts_one_byte_per_weight_plus_scales_and_bias() -> None:
    from agent.bench.hardware import weight_bytes_per_token
    from agent.models.quantize import WeightOnlyInt8Linear

    linear, _ = _linear_and_outlier_inputs(bias=True)
    layer = WeightOnlyInt8Linear.from_linear(linear)
    assert layer.weight_int8.dtype == torch.int8
    assert layer.weight_bytes() == 96 * 256 + 96 * 2 + 96 * 4  # int8 weights, bf16 scales, fp32 bias
    assert weight_bytes_per_token(torch.nn.Sequential(layer)) == layer.weight_bytes()


def test_int8_quantizes_only_the_named_layers_weight_only(tiny_model: Path) -> None:
    from transformers import AutoModelForCausalLM

    from agent.models.quantize import WeightOnlyInt8Linear, quantize_int8

    model = quantize_int8(AutoModelForCausalLM.from_pretrained(tiny_model), weight_only=("self_attn.o_proj",))
    weight_only = {name for name, module in model.named_modules() if isinstance(module, WeightOnlyInt8Linear)}
    assert weight_only == {f"model.layers.{i}.self_attn.o_proj" for i in range(len(model.model.layers))}
    assert not any(isinstance(module, torch.nn.Linear) for module in model.modules())  # the rest: dynamic


def test_a_width_the_int8_kernel_cannot_take_stays_dynamic_instead_of_crashing() -> None:
    from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

    from agent.models.quantize import WeightOnlyInt8Linear, quantize_int8

    # Width 24 crashed the whole process inside aten::_weight_int8pack_mm (torch 2.13).
    with pytest.raises(ValueError, match="multiple of 16"):
        WeightOnlyInt8Linear.from_linear(torch.nn.Linear(24, 8))
    model = torch.nn.ModuleDict({"mlp": torch.nn.ModuleDict({"down_proj": torch.nn.Linear(24, 8)})})
    model = quantize_int8(model)
    assert isinstance(model["mlp"]["down_proj"], DynamicInt8Linear)
    assert model["mlp"]["down_proj"](torch.randn(3, 24)).shape == (3, 8)


@pytest.mark.integration
def test_on_the_embedded_model_int8_stays_closer_to_fp32_than_int8_dynamic(embedded_home: Path) -> None:
    """The reason int8 is the default: next-token distributions drift less from fp32's than under
    int8-dynamic, on the suggest prompts the chain sends."""
    from agent.core.config import get_settings
    from agent.models.llm import load_model_and_tokenizer
    from agent.pipeline.prompts import render_prompt

    needs = ["something to dig food", "my back hurts after sitting all day", "gift for a dad who loves fishing",
             "something for a first camping trip", "a way to keep my coffee hot at my desk"]

    def log_probs(quantize: str) -> torch.Tensor:
        model, tokenizer = load_model_and_tokenizer(get_settings(home=embedded_home, quantize=quantize))
        prompts = [render_prompt(tokenizer, "suggest", need=need) for need in needs]
        batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            logits = model(**batch).logits
        return logits[batch["attention_mask"].bool()].log_softmax(-1)  # every real (unpadded) position

    reference = log_probs("none")

    def drift_from_fp32(quantize: str) -> float:  # mean KL(fp32 || quantized) per position
        return float((reference.exp() * (reference - log_probs(quantize))).sum(-1).mean())

    int8, int8_dynamic = drift_from_fp32("int8"), drift_from_fp32("int8-dynamic")
    assert int8 < 0.5 * int8_dynamic, (int8, int8_dynamic)
