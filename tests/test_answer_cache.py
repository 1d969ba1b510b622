"""The answer cache: a need asked again is answered without the model, and a changed adapter misses."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from agent.core.config import get_settings
from agent.models.fingerprint import model_fingerprint
from agent.pipeline.answer_cache import AnswerCache
from agent.pipeline.chain import build_chain
from tests.fakes import FakeWhazzatLLM
from tests.tiny_models import make_random_lora, make_tiny_llama

NEED = "something to dig food"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(tiny model dir, one random LoRA adapter, another one)."""
    root = tmp_path_factory.mktemp("answer-cache-tiny")
    base = make_tiny_llama(root)
    return base, make_random_lora(base, root / "lora-a", seed=1), make_random_lora(base, root / "lora-b", seed=2)


@pytest.fixture
def model_calls(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Every batch of prompts the local transformers model is asked, as it is asked."""
    from langchain_huggingface import HuggingFacePipeline

    calls: list[list[str]] = []
    generate = HuggingFacePipeline._generate

    def counting(self, prompts, *args, **kwargs):  # noqa: ANN001, ANN202
        calls.append(list(prompts))
        return generate(self, prompts, *args, **kwargs)

    monkeypatch.setattr(HuggingFacePipeline, "_generate", counting)
    return calls


def tiny_chain(tiny: tuple[Path, Path, Path], adapter: Path, **overrides: object):
    settings = get_settings(model=str(tiny[0]), adapter=str(adapter), quantize="none", memory_mode="model",
                            backend="links", paraphrases=2, semantic_dedup=False,
                            max_new_tokens_suggest=8, max_new_tokens_paraphrase=8)
    return build_chain(settings, **overrides)


def test_a_need_asked_again_is_answered_without_the_model(tiny, model_calls) -> None:
    first = tiny_chain(tiny, tiny[1]).invoke(NEED)
    asked = len(model_calls)
    assert asked >= 2  # the rewrite, then the suggest prompts

    again = tiny_chain(tiny, tiny[1]).invoke(NEED)  # a new chain: the answers come from disk

    assert len(model_calls) == asked
    assert again.paraphrases == first.paraphrases
    assert again.products == first.products


def test_another_adapter_misses_and_asks_the_model(tiny, model_calls) -> None:
    tiny_chain(tiny, tiny[1]).invoke(NEED)
    asked = len(model_calls)

    tiny_chain(tiny, tiny[2]).invoke(NEED)

    assert len(model_calls) > asked


def test_no_cache_asks_the_model_and_refreshes_the_cache(tiny, model_calls) -> None:
    tiny_chain(tiny, tiny[1]).invoke(NEED)
    asked = len(model_calls)

    tiny_chain(tiny, tiny[1], no_cache=True).invoke(NEED)
    assert len(model_calls) > asked
    refreshed = len(model_calls)

    tiny_chain(tiny, tiny[1]).invoke(NEED)
    assert len(model_calls) == refreshed


def test_zero_days_turns_the_cache_off(tiny, model_calls) -> None:
    tiny_chain(tiny, tiny[1], answer_cache_days=0).invoke(NEED)
    asked = len(model_calls)
    tiny_chain(tiny, tiny[1], answer_cache_days=0).invoke(NEED)
    assert len(model_calls) == 2 * asked


def test_the_fingerprint_follows_the_adapter_content_not_its_path(tiny, tmp_path: Path) -> None:
    def fingerprint(adapter: Path) -> str:
        return model_fingerprint(get_settings(model=str(tiny[0]), adapter=str(adapter), quantize="none"))

    copy = Path(shutil.copytree(tiny[1], tmp_path / "copy"))
    assert fingerprint(copy) == fingerprint(tiny[1])
    assert fingerprint(tiny[2]) != fingerprint(tiny[1])
    weights = copy / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")  # retrained in place
    assert fingerprint(copy) != fingerprint(tiny[1])
    no_adapter = model_fingerprint(get_settings(model=str(tiny[0]), no_adapter=True, quantize="none"))
    quantized = model_fingerprint(get_settings(model=str(tiny[0]), no_adapter=True, quantize="int8"))
    assert len({no_adapter, quantized, fingerprint(tiny[1])}) == 3


def test_sampled_paraphrases_come_back_distinct(tmp_path: Path) -> None:
    """The parallel rewrite asks one prompt N times: a hit must give back N samples, not one N times."""
    cache = AnswerCache(tmp_path / "answers.sqlite3", "fake")
    first = build_chain(llm=FakeWhazzatLLM(), backend="links", answer_cache=cache, paraphrases=3,
                        rewrite_strategy="parallel").invoke(NEED)
    assert len(set(first.paraphrases)) == 3

    fresh = FakeWhazzatLLM(generate_calls=0, prompts=[])
    again = build_chain(llm=fresh, backend="links", answer_cache=cache, paraphrases=3,
                        rewrite_strategy="parallel").invoke(NEED)

    assert fresh.generate_calls == 0
    assert again.paraphrases == first.paraphrases


def test_an_injected_model_is_not_cached_unless_asked(tmp_path: Path) -> None:
    llm = FakeWhazzatLLM(generate_calls=0, prompts=[])
    build_chain(llm=llm, backend="links").invoke(NEED)
    calls = llm.generate_calls
    build_chain(llm=llm, backend="links").invoke(NEED)
    assert llm.generate_calls == 2 * calls
