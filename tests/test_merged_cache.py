"""The embedded model's merged-adapter cache: the second load skips the merge and answers the same, a new
adapter gets its own folder, a damaged folder is rebuilt, an unwritable one only costs the speed-up."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

import agent.models.llm
import agent.models.merged_cache
from agent.core.config import get_settings
from tests.tiny_models import make_random_lora, make_tiny_llama


@pytest.fixture
def embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A tiny Llama standing in for the converted embedded model (under a home's ``models/``) and a
    random LoRA standing in for the shipped adapter."""
    base = make_tiny_llama(tmp_path / "home" / "models", name="embedded")
    adapter = make_random_lora(base, tmp_path / "adapter")
    monkeypatch.setattr(agent.models.llm, "embedded_model_dir", lambda home: base)
    monkeypatch.setattr(agent.models.llm, "shipped_adapter", lambda: adapter)
    return {"base": base, "adapter": adapter}


def _load() -> tuple[torch.nn.Module, object]:
    return agent.models.llm.load_model_and_tokenizer(get_settings(quantize="none"))


def _logits(model: torch.nn.Module, tokenizer) -> torch.Tensor:
    inputs = tokenizer(["garden trowel, shovel, spade"], return_tensors="pt")
    with torch.no_grad():
        return model(**inputs).logits


def _merged_folders(base: Path) -> list[Path]:
    return sorted(base.parent.glob(f"{base.name}-merged-*"))


def _forbid_peft(monkeypatch: pytest.MonkeyPatch) -> None:
    import peft

    def refuse(*args, **kwargs):
        raise AssertionError("the adapter was loaded and merged again")

    monkeypatch.setattr(peft.PeftModel, "from_pretrained", refuse)


def test_the_second_load_reads_the_merged_weights_and_answers_the_same(
    embedded: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    first_model, tokenizer = _load()
    [folder] = _merged_folders(embedded["base"])
    assert agent.models.folders.model_dir_is_usable(folder)

    _forbid_peft(monkeypatch)
    second_model, _ = _load()

    assert torch.equal(_logits(first_model, tokenizer), _logits(second_model, tokenizer))
    base_only, _ = agent.models.llm.load_model_and_tokenizer(get_settings(quantize="none", no_adapter=True))
    assert not torch.allclose(_logits(base_only, tokenizer), _logits(second_model, tokenizer))


def test_a_retrained_adapter_gets_its_own_merged_folder(
    embedded: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    old_model, tokenizer = _load()
    make_random_lora(embedded["base"], embedded["adapter"], seed=2)  # retrained in place, same path

    new_model, _ = _load()

    assert len(_merged_folders(embedded["base"])) == 2
    assert not torch.allclose(_logits(old_model, tokenizer), _logits(new_model, tokenizer))
    _forbid_peft(monkeypatch)
    cached_model, _ = _load()
    assert torch.equal(_logits(new_model, tokenizer), _logits(cached_model, tokenizer))


def test_only_the_most_recently_used_merged_folders_are_kept(embedded: dict[str, Path]) -> None:
    for seed in range(2, 2 + agent.models.merged_cache.MERGED_FOLDERS_KEPT + 1):
        make_random_lora(embedded["base"], embedded["adapter"], seed=seed)
        _load()

    folders = _merged_folders(embedded["base"])
    assert len(folders) == agent.models.merged_cache.MERGED_FOLDERS_KEPT
    assert agent.models.merged_cache.merged_dir(embedded["base"], embedded["adapter"]) in folders


@pytest.mark.parametrize("damage", ["truncated-weights", "cut-off-config"])
def test_a_damaged_merged_folder_is_merged_again(embedded: dict[str, Path], damage: str) -> None:
    expected, tokenizer = _load()
    [folder] = _merged_folders(embedded["base"])
    damaged = folder / ("model.safetensors" if damage == "truncated-weights" else "config.json")
    damaged.write_bytes(damaged.read_bytes()[:-20])  # killed while writing, disk full...

    model, _ = _load()

    assert torch.equal(_logits(expected, tokenizer), _logits(model, tokenizer))
    assert agent.models.folders.model_dir_is_usable(folder)


@pytest.mark.parametrize("error", ["os", "safetensors"])
def test_a_merged_folder_that_cannot_be_written_still_loads_the_merged_model(
    embedded: dict[str, Path], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, error: str
) -> None:
    from safetensors import SafetensorError

    real_save = agent.models.merged_cache.save_model_dir
    disk = {"full": True}

    def save_model_dir(*args, **kwargs):
        if not disk["full"]:
            return real_save(*args, **kwargs)
        if error == "os":
            raise OSError(28, "No space left on device")
        raise SafetensorError("Error while serializing: IoError(No space left on device)")

    monkeypatch.setattr(agent.models.merged_cache, "save_model_dir", save_model_dir)
    with caplog.at_level(logging.WARNING, logger="agent.models.merged_cache"):
        model, tokenizer = _load()

    assert _merged_folders(embedded["base"]) == []
    assert "merges it again" in caplog.text
    disk["full"] = False  # space again: the next load merges and caches
    _load()
    _forbid_peft(monkeypatch)
    cached, _ = _load()
    assert torch.equal(_logits(model, tokenizer), _logits(cached, tokenizer))
