"""The ``quantize`` setting on the CPU: what each value does to the loaded model, and that it still answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tiny_models import make_tiny_llama


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_llama(tmp_path_factory.mktemp("quantize"))


@pytest.mark.parametrize("quantize", ["none", "int8", "bf16"])
def test_each_quantize_setting_loads_a_model_that_generates(tiny_model: Path, quantize: str) -> None:
    import torch
    from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

    from agent.config import get_settings
    from agent.llm import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(get_settings(model=str(tiny_model), quantize=quantize))
    layer = model.model.layers[0].mlp.down_proj
    if quantize == "int8":
        assert isinstance(layer, DynamicInt8Linear)
    else:
        assert isinstance(layer, torch.nn.Linear) and not isinstance(layer, DynamicInt8Linear)
        assert layer.weight.dtype == (torch.bfloat16 if quantize == "bf16" else torch.float32)
    inputs = tokenizer(["a tent for two", "a gift for a dad"], return_tensors="pt", padding=True)
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=3, min_new_tokens=3, do_sample=False)
    assert out.shape == (2, inputs["input_ids"].shape[1] + 3)


def test_an_unknown_quantize_value_is_refused() -> None:
    from agent.config import get_settings
    from agent.errors import WhazzatError

    with pytest.raises((WhazzatError, ValueError), match="quantize"):
        get_settings(quantize="int4")
