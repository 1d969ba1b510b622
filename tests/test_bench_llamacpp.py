"""The bench's llama.cpp peer: skipped with its reason when it cannot run, the chain's own prompts and limits
handed to llama.cpp as token ids, its figures, and the adapter's GGUF conversion and cache.

Everything but the last two tests runs without llama.cpp (a fake ``Llama`` stands in). Those two need
``llama-cpp-python`` and the shipped GGUF and skip, saying so, without them; the adapter one also needs a
llama.cpp source for the converter (``WHAZZAT_TEST_LLAMACPP_SOURCE``: a checkout or a llama-cpp-python sdist).
"""

from __future__ import annotations

import builtins
import io
import os
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from agent.bench.figures import Decode, Latency, LlamaCppPeer, PipelineFigures, peer_speedups
from agent.bench.llamacpp import INSTALL_HINT, LlamaCppLLM, peer_settings, skip_reason, unavailable_reason
from tests.fakes import FakeWhazzatLLM
from tests.tiny_models import make_tiny_tokenizer

NEEDS = ["something to dig food", "gift for a dad who loves fishing"]


def _settings(**overrides: Any):
    from agent.core.config import get_settings

    return get_settings(**overrides)


# --- skipped, saying why ------------------------------------------------------------------------------------
def test_without_llama_cpp_the_row_is_skipped_with_the_install_hint(monkeypatch, capsys) -> None:
    from rich.console import Console

    from agent.bench.figures import _print_peer
    from agent.bench.runner import BenchOptions, _llamacpp_phase

    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # `import llama_cpp` now fails as if not installed
    assert unavailable_reason() == INSTALL_HINT
    said: list[str] = []
    whazzat = PipelineFigures(
        latency_links=Latency.of([1.0]), needs_per_s_links=1.0, products_per_need=1.0, products={}
    )
    peer = _llamacpp_phase(BenchOptions(), NEEDS, _settings(), None, whazzat, None, said.append)
    assert peer.skipped == INSTALL_HINT and "pip install 'whazzat[llamacpp]'" in peer.skipped
    dumped = peer.model_dump(mode="json")
    assert dumped["skipped"] == INSTALL_HINT
    assert all(value in (None, {}) for key, value in dumped.items() if key != "skipped")  # no figure
    assert said == [f"llama.cpp peer skipped: {INSTALL_HINT}"]  # and the progress says so
    console = Console(record=True, width=200)
    _print_peer(console, peer, whazzat)  # the table's line
    assert f"llama.cpp peer skipped: {INSTALL_HINT}" in console.export_text()


def test_a_llama_cpp_that_does_not_import_is_told_apart_from_a_missing_one(monkeypatch) -> None:
    real_import = builtins.__import__

    def failing(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "llama_cpp":
            raise ModuleNotFoundError("No module named 'diskcache'", name="diskcache")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "llama_cpp", raising=False)
    monkeypatch.setattr(builtins, "__import__", failing)
    reason = unavailable_reason()
    assert reason is not None and "installed but does not import" in reason and "diskcache" in reason


def test_the_cli_names_a_missing_llamacpp_source(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from agent.cli.main import app

    missing = tmp_path / "no-such.tar.gz"
    result = CliRunner().invoke(app, ["bench", "--llamacpp-source", str(missing), "--skip", "llamacpp"])
    assert result.exit_code == 2 and result.stdout == ""  # refused before any model loads
    assert result.stderr.strip() == f"Error: --llamacpp-source: no such file or folder {missing}"


def test_other_skip_reasons(monkeypatch, tmp_path: Path) -> None:
    from agent.bench.runner import BenchOptions, _llamacpp_phase

    assert "has none" in skip_reason(_settings(model=str(tmp_path)))  # not the shipped GGUF
    assert "remote endpoint" in skip_reason(_settings(llm_endpoint="http://127.0.0.1:9/v1"))
    skipped = _llamacpp_phase(BenchOptions(skip=["llamacpp"]), NEEDS, _settings(), None, None, None, print)
    assert skipped.skipped == "--skip llamacpp"


# --- the chain's prompts, as token ids, with its limits -----------------------------------------------------
class TokenizedFake(FakeWhazzatLLM):
    """The fake model with a tokenizer, so the chain renders its chat template as for the real pipeline
    (``prompts`` holds them as the chain sent them)."""

    tokenizer: Any = None


class FakeLlama:
    """Stands in for ``llama_cpp.Llama``: records what it is asked, answers as :class:`FakeWhazzatLLM`."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.calls: list[tuple[list[int], dict[str, Any]]] = []
        self.answers = TokenizedFake()
        self.completion_tokens = 0

    def create_completion(self, prompt: list[int], **options: Any) -> dict[str, Any]:
        self.calls.append((prompt, options))
        text = self.answers.invoke(self.tokenizer.decode(prompt))
        self.completion_tokens += len(text.split())
        return {"choices": [{"text": text}], "usage": {"completion_tokens": len(text.split())}}


def test_the_peer_gets_the_chains_prompts_as_token_ids_with_its_limits() -> None:
    from agent.pipeline.chain import build_chain
    from tools.links import LinksBackend

    tokenizer = make_tiny_tokenizer()
    settings = peer_settings(_settings(
        paraphrases=3, semantic_dedup=False, max_new_tokens_rewrite=40, max_new_tokens_suggest=20
    ))
    assert not settings.need_prompt_with_rewrite  # one prompt at a time: each keeps its own token limit
    reference = TokenizedFake(tokenizer=tokenizer)
    expected = [build_chain(settings, llm=reference, backend=LinksBackend()).invoke(need) for need in NEEDS]
    llama = FakeLlama(tokenizer)
    peer = LlamaCppLLM(llama=llama, tokenizer=tokenizer, seed=settings.seed)
    assert peer.tokenizer is tokenizer  # what the chain reads to render its prompts
    found = [build_chain(settings, llm=peer, backend=LinksBackend()).invoke(need) for need in NEEDS]

    assert [r.products for r in found] == [r.products for r in expected]
    # The rewrite, then the need and its 3 paraphrases; the fake has no rewrites for the second need.
    assert len(reference.prompts) == (1 + 1 + 3) + (1 + 1) and len(found[0].paraphrases) == 3
    assert [ids for ids, _ in llama.calls] == [tokenizer(p)["input_ids"] for p in reference.prompts]
    assert "<|im_start|>" in tokenizer.decode(llama.calls[0][0])  # the chat template, not a plain layout
    for prompt, (_, options) in zip(reference.prompts, llama.calls, strict=True):
        rewrite = "rewrites of this need" in prompt
        assert options["max_tokens"] == (40 if rewrite else 20)  # the chain's own max_new_tokens
        assert options["temperature"] == 0.0 and options["repeat_penalty"] == 1.0  # greedy, no penalty
    assert peer.generated_tokens == llama.completion_tokens > 0


def test_sampling_options_map_and_unknown_ones_are_refused() -> None:
    peer = LlamaCppLLM(llama=None, seed=7)
    sampled = peer.completion_options(
        {"max_new_tokens": 8, "do_sample": True, "temperature": 0.7, "top_p": 0.95, "stop_sequence": "\n"},
        None,
    )
    assert sampled["temperature"] == 0.7 and sampled["top_p"] == 0.95 and sampled["seed"] == 7
    assert sampled["stop"] == ["\n"] and sampled["max_tokens"] == 8 and sampled["top_k"] == 0
    with pytest.raises(ValueError, match="num_beams"):
        peer.completion_options({"max_new_tokens": 8, "num_beams": 2}, None)


# --- figures ------------------------------------------------------------------------------------------------
def _decode(rate: float) -> Decode:
    return Decode(
        new_tokens=8,
        tokens_per_s=rate,
        weight_bytes_per_token=100,
        bound_tokens_per_s=4 * rate,
        fraction_of_bound=0.25,
    )


def test_peer_ratios_read_as_times_better_for_whazzat() -> None:
    whazzat = PipelineFigures(
        latency_links=Latency.of([2.0, 4.0]),
        needs_per_s_links=1.0,
        products_per_need=1.0,
        products={},
        decode=_decode(60.0),
    )
    peer = LlamaCppPeer(latency_links=Latency.of([3.0, 9.0]), decode=_decode(120.0))
    ratios = peer_speedups(whazzat, peer)
    assert ratios["decode_tokens_per_s"] == 0.5  # whazzat tok/s / llama.cpp tok/s
    assert ratios["latency_p50_links"] == 2.0  # llama.cpp s/need / whazzat s/need (6 / 3)
    assert ratios["latency_mean_links"] == 2.0
    assert (
        peer_speedups(whazzat, LlamaCppPeer(latency_links=Latency.of([3.0])))["decode_tokens_per_s"] is None
    )


def test_mean_jaccard_compares_product_type_sets() -> None:
    from agent.bench.figures import mean_jaccard

    ours = {"a": ["spade", "trowel"], "b": ["fan"], "c": []}
    theirs = {"a": ["trowel", "spade"], "b": ["heater"], "c": []}
    assert mean_jaccard(ours, theirs) == pytest.approx((1.0 + 0.0 + 1.0) / 3)  # order does not matter
    assert mean_jaccard({"a": ["spade", "rake"]}, {"a": ["spade", "hoe"]}) == pytest.approx(1 / 3)


def _write_gguf(path: Path, tensors: dict[str, tuple[int, int]]) -> Path:
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(path, "llama")
    for name, shape in tensors.items():
        writer.add_tensor(name, np.zeros(shape, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_gguf_weight_bytes_count_what_a_token_reads(tmp_path: Path) -> None:
    from agent.bench.llamacpp import gguf_weight_bytes_per_token

    layer = {"blk.0.attn_q.weight": (4, 4), "output_norm.weight": (4,)}
    tied = _write_gguf(tmp_path / "tied.gguf", {"token_embd.weight": (20, 4), **layer})
    untied = _write_gguf(
        tmp_path / "untied.gguf", {"token_embd.weight": (20, 4), "output.weight": (10, 4), **layer}
    )
    lora = _write_gguf(tmp_path / "lora.gguf", {"blk.0.attn_q.weight.lora_a": (2, 4)})
    assert gguf_weight_bytes_per_token(tied) == 4 * (80 + 16 + 4)  # the tied embedding is the output matrix
    assert gguf_weight_bytes_per_token(untied) == 4 * (40 + 16 + 4)  # embedding rows out, output in
    assert gguf_weight_bytes_per_token(untied, lora) == 4 * (40 + 16 + 4 + 8)  # an unmerged LoRA is read too


# --- the adapter as a GGUF LoRA -----------------------------------------------------------------------------
FAKE_CONVERTER = """
import argparse, pathlib, sys
parser = argparse.ArgumentParser()
parser.add_argument("--base"); parser.add_argument("--outtype"); parser.add_argument("--outfile")
parser.add_argument("lora_path")
args = parser.parse_args()
here = pathlib.Path(__file__).parent
assert (here / "conversion" / "__init__.py").is_file()
assert (here / "gguf-py" / "gguf" / "__init__.py").is_file()
if "fail" in args.lora_path:
    sys.exit("cannot convert this adapter")
pathlib.Path(args.outfile).write_text(f"{args.outtype} {args.base} {args.lora_path}")
"""


def _adapter(root: Path, name: str = "adapter", weights: bytes = b"weights") -> Path:
    adapter = root / name
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "adapter_model.safetensors").write_bytes(weights)
    return adapter


def _sdist(path: Path, converter: str = FAKE_CONVERTER) -> Path:
    files = {
        "vendor/llama.cpp/convert_lora_to_gguf.py": converter,
        "vendor/llama.cpp/conversion/__init__.py": "",
        "vendor/llama.cpp/gguf-py/gguf/__init__.py": "",
        "vendor/llama.cpp/src/llama.cpp": "int main() {}",  # sources the converter does not need
        "vendor/llama.cpp/examples/other.py": "",
    }
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"llama_cpp_python-0.3.36/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_the_adapter_converts_once_from_an_sdist_and_is_cached(tmp_path: Path) -> None:
    from agent.bench.gguf_lora import cache_path, gguf_lora

    adapter, home = _adapter(tmp_path), tmp_path / "home"
    missing = gguf_lora(adapter, tmp_path / "base", home, None)
    assert missing.path is None and "base weights" in missing.note and "--llamacpp-source" in missing.note

    converted = gguf_lora(adapter, tmp_path / "base", home, _sdist(tmp_path / "sdist.tar.gz"))
    assert (
        converted.path == cache_path(adapter, home) and converted.path.parent == home / "models" / "llamacpp"
    )
    assert converted.path.read_text() == f"f32 {tmp_path / 'base'} {adapter}"  # the script's own arguments
    assert [p.name for p in converted.path.parent.iterdir()] == [converted.path.name]  # no staging left
    cached = gguf_lora(adapter, tmp_path / "base", home, None)  # no source needed any more
    assert cached.path == converted.path and "cached" in cached.note
    changed = _adapter(tmp_path / "v2", weights=b"retrained")  # other bytes, other cache file
    assert cache_path(changed, home) != converted.path


def test_a_checkout_works_and_a_failed_conversion_says_why(tmp_path: Path) -> None:
    from agent.bench.gguf_lora import gguf_lora

    checkout = tmp_path / "llama.cpp"
    with tarfile.open(_sdist(tmp_path / "sdist.tar.gz")) as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    (tmp_path / "unpacked" / "llama_cpp_python-0.3.36" / "vendor" / "llama.cpp").rename(checkout)
    home = tmp_path / "home"
    assert gguf_lora(_adapter(tmp_path), tmp_path, home, checkout).path is not None
    failed = gguf_lora(_adapter(tmp_path, "fail-adapter"), tmp_path, home, checkout)
    assert failed.path is None and "cannot convert this adapter" in failed.note
    left = [path.name for path in (home / "models" / "llamacpp").iterdir()]
    assert len(left) == 1 and not any(name.startswith(".") for name in left)  # no staging file left
    nothing = gguf_lora(_adapter(tmp_path, "other"), tmp_path, home, tmp_path / "home")
    assert nothing.path is None and "no convert_lora_to_gguf.py" in nothing.note


# --- with llama.cpp -----------------------------------------------------------------------------------------
def _gguf_or_skip() -> Path:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    from agent.core.errors import ModelLoadError
    from agent.models.paths import embedded_gguf_path

    try:
        return embedded_gguf_path()
    except ModelLoadError as error:
        pytest.skip(str(error))


@pytest.mark.integration
def test_a_small_run_through_llama_cpp() -> None:
    from agent.bench.llamacpp import decode_figures, load_llama
    from agent.pipeline.chain import build_chain
    from tools.links import LinksBackend

    llama = load_llama(_gguf_or_skip(), threads=1)
    peer = LlamaCppLLM(llama=llama)  # no tokenizer: llama.cpp tokenises the chain's plain prompt layout
    chain = build_chain(_settings(paraphrases=0, max_new_tokens_suggest=16), llm=peer, backend=LinksBackend())
    first = chain.invoke(NEEDS[0])
    assert 0 < peer.generated_tokens <= 16 and peer.generate_s > 0
    assert chain.invoke(NEEDS[0]).products == first.products  # greedy: the same answer again
    tokens = llama.tokenize(b"List product types for camping:", add_bos=False)
    decode = decode_figures(llama, tokens, bandwidth_gb_s=10.0, weight_bytes=10**8, new_tokens=4)
    assert decode.tokens_per_s > 0 and decode.bound_tokens_per_s == 100.0


@pytest.mark.integration
def test_the_shipped_adapter_converts_and_changes_llama_cpps_answers(tmp_path: Path) -> None:
    from agent.bench.gguf_lora import gguf_lora
    from agent.bench.llamacpp import load_llama
    from agent.core.shipped import shipped_adapter

    gguf = _gguf_or_skip()
    source = os.environ.get("WHAZZAT_TEST_LLAMACPP_SOURCE")
    if not source:
        pytest.skip("set WHAZZAT_TEST_LLAMACPP_SOURCE to a llama.cpp checkout or llama-cpp-python sdist")
    base = tmp_path / "base"  # the converter reads the base model's config.json only
    base.mkdir()
    (base / "config.json").write_text(
        '{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 576, '
        '"intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9, '
        '"num_key_value_heads": 3, "vocab_size": 49152, "max_position_embeddings": 8192, '
        '"rms_norm_eps": 1e-05, "rope_theta": 100000, "tie_word_embeddings": true}'
    )
    converted = gguf_lora(shipped_adapter(), base, tmp_path / "home", Path(source))
    assert converted.path is not None, converted.note
    prompt = "<|im_start|>user\nNeed: something to dig food<|im_end|>\n<|im_start|>assistant\n"
    answers = []
    for lora in (None, converted.path):
        llama = load_llama(gguf, threads=1, lora=lora)
        answers.append(LlamaCppLLM(llama=llama).invoke(prompt, pipeline_kwargs={"max_new_tokens": 16}))
    assert answers[0] != answers[1]  # the LoRA is applied
