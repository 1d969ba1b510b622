"""llama.cpp as a peer: Whazzat's own chain with llama-cpp-python generating, on the shipped GGUF file.

Everything but the engine is Whazzat's: the chain builds the same rewrite and suggest prompts (same chat
template, tokenised by the same Hugging Face tokenizer call as Whazzat's pipeline, so llama.cpp gets the same
token ids), with the same ``max_new_tokens``, and parses, fuses and searches as usual. Decoding is greedy
(temperature 0), on as many threads as torch uses for the Whazzat side. What differs is the engine's own way:

* the weights are the shipped GGUF as it is (Q4_1, Q8_0 embeddings), where Whazzat dequantises them,
  merges the adapter and quantises to int8 (``quantize``);
* the adapter is a GGUF LoRA (:mod:`agent.bench.gguf_lora`) applied at run time: llama.cpp does not merge;
* one prompt at a time (the high-level API decodes one sequence), reusing the KV cache of the prefix a
  prompt shares with the one before (llama-cpp-python's default).

``llama-cpp-python`` is optional (the ``llamacpp`` extra builds it from source): without it the bench says
so and skips the row.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.language_models.llms import LLM
from pydantic import ConfigDict, PrivateAttr

from agent.bench.figures import Decode

if TYPE_CHECKING:
    from langchain_core.callbacks import CallbackManagerForLLMRun

    from agent.core.config import Settings

INSTALL_HINT = "llama-cpp-python is not installed: pip install 'whazzat[llamacpp]' (builds from source)"
#: Context of the peer: the longest grounded prompt plus its answer fits with room to spare (SmolLM2: 8192).
N_CTX = 4096
#: The keys of ``pipeline_kwargs`` the chain sends and how each maps to llama.cpp (any other is an error, so
#: a new chain option cannot be silently ignored by the peer).
_KNOWN_KWARGS = {"max_new_tokens", "do_sample", "temperature", "top_p", "stop_sequence"}


def unavailable_reason() -> str | None:
    """None when ``llama_cpp`` imports; else why the peer cannot run."""
    try:
        import llama_cpp  # noqa: F401
    except ImportError as error:
        if getattr(error, "name", None) == "llama_cpp":
            return INSTALL_HINT
        return f"llama-cpp-python is installed but does not import ({error}); install what it names"
    except (OSError, RuntimeError) as error:  # installed, but its shared library does not load
        return f"llama-cpp-python is installed but does not load ({error}); reinstall it"
    return None


def skip_reason(settings: Settings) -> str | None:
    """Why the peer cannot run with these settings (None: it can)."""
    from agent.core.config import EMBEDDED_MODEL

    if settings.llm_endpoint:
        return "whazzat's model is a remote endpoint (llm_endpoint), not the shipped GGUF"
    if settings.model != EMBEDDED_MODEL:
        return f"llama.cpp runs the shipped GGUF; the model {settings.model!r} has none"
    return unavailable_reason()


def peer_settings(settings: Settings) -> Settings:
    """The chain settings the peer runs with: Whazzat's, but each prompt in a call of its own kind, since
    llama.cpp's Python API answers one prompt at a time (merging the need's suggest prompt into the
    rewrite's call would only give it the rewrite's token limit)."""
    return settings.model_copy(update={"need_prompt_with_rewrite": False})


def gguf_weight_bytes_per_token(model: Path, lora: Path | None = None) -> int:
    """Bytes of weights a generated token reads in llama.cpp, counted from the GGUF files' tensors.

    As for Whazzat's side (:func:`agent.bench.hardware.weight_bytes_per_token`): the token embedding is left
    out (a token reads one row) unless the model has no ``output.weight``, where the tied embedding is the
    output projection and is read whole; an unmerged LoRA's matrices are read on every token too.
    """
    from gguf import GGUFReader

    sizes = {tensor.name: int(tensor.n_bytes) for tensor in GGUFReader(model).tensors}
    if "output.weight" in sizes:
        sizes.pop("token_embd.weight", None)
    total = sum(sizes.values())
    if lora is not None:
        total += sum(int(tensor.n_bytes) for tensor in GGUFReader(lora).tensors)
    return total


class LlamaCppLLM(LLM):
    """A LangChain LLM over a ``llama_cpp.Llama``: what the chain asks of its model, one prompt at a time.

    ``tokenizer`` is Whazzat's Hugging Face tokenizer: the chain renders its prompts with its chat template,
    and each prompt is tokenised here with the same call as Whazzat's pipeline, then handed to llama.cpp as
    token ids. Without one (tests) llama.cpp tokenises the text itself.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    llama: Any
    tokenizer: Any = None
    seed: int = 0
    _generated_tokens: int = PrivateAttr(default=0)
    _generate_s: float = PrivateAttr(default=0.0)

    @property
    def _llm_type(self) -> str:
        return "llama-cpp"

    @property
    def generated_tokens(self) -> int:
        """Tokens generated since the last :meth:`reset_counts`."""
        return self._generated_tokens

    @property
    def generate_s(self) -> float:
        """Seconds spent inside llama.cpp (prefill and decode) since the last :meth:`reset_counts`."""
        return self._generate_s

    def reset_counts(self) -> None:
        self._generated_tokens, self._generate_s = 0, 0.0

    def token_ids(self, prompt: str) -> list[int]:
        if self.tokenizer is not None:
            return list(self.tokenizer(prompt)["input_ids"])
        return list(self.llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True))

    def completion_options(self, pipeline_kwargs: dict[str, Any], stop: list[str] | None) -> dict[str, Any]:
        """llama.cpp's ``create_completion`` options for the chain's ``pipeline_kwargs``: greedy unless the
        chain asks for sampling (the parallel rewrite), and no repeat penalty (transformers has none)."""
        unknown = set(pipeline_kwargs) - _KNOWN_KWARGS
        if unknown:
            raise ValueError(f"the llama.cpp peer does not map the chain's option(s) {sorted(unknown)}")
        stops = list(stop or [])
        if "stop_sequence" in pipeline_kwargs:  # the parallel rewrite: each sample ends at its first line
            stops.append(pipeline_kwargs["stop_sequence"])
        options: dict[str, Any] = {
            "max_tokens": pipeline_kwargs.get("max_new_tokens", 16),
            "repeat_penalty": 1.0,
            "temperature": 0.0,  # llama.cpp's greedy sampler
            "stop": stops,
        }
        if pipeline_kwargs.get("do_sample"):
            options.update(
                temperature=float(pipeline_kwargs.get("temperature", 1.0)),
                top_p=float(pipeline_kwargs.get("top_p", 1.0)),
                top_k=0,  # Whazzat's pipeline clears transformers' top_k and min_p: none here either
                min_p=0.0,
                seed=self.seed,
            )
        return options

    def _call(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> str:
        options = self.completion_options(dict(kwargs.get("pipeline_kwargs") or {}), stop)
        ids = self.token_ids(prompt)
        started = time.perf_counter()
        result = self.llama.create_completion(prompt=ids, **options)
        self._generate_s += time.perf_counter() - started
        self._generated_tokens += int(result["usage"]["completion_tokens"])
        return str(result["choices"][0]["text"])


def load_llama(gguf: Path, threads: int, lora: Path | None = None, seed: int = 0) -> Any:
    """The GGUF model in llama.cpp on the CPU, ``threads`` threads for prefill and decode alike."""
    from llama_cpp import Llama

    return Llama(
        model_path=str(gguf),
        n_ctx=N_CTX,
        n_threads=threads,
        n_threads_batch=threads,
        n_gpu_layers=0,
        lora_path=str(lora) if lora else None,
        seed=seed,
        verbose=False,
    )


def _generate_seconds(llama: Any, tokens: Sequence[int], new_tokens: int) -> float:
    """Seconds for a fresh prefill and ``new_tokens`` greedy tokens (EOS does not stop ``generate``)."""
    llama.reset()  # no KV prefix reuse: every run pays its prefill, so t(N) - t(1) removes it
    started = time.perf_counter()
    for count, _token in enumerate(llama.generate(tokens, temp=0.0, repeat_penalty=1.0), start=1):
        if count >= new_tokens:
            break
    return time.perf_counter() - started


def decode_tokens_per_s(llama: Any, tokens: Sequence[int], new_tokens: int = 64, repeats: int = 2) -> float:
    """Batch-1 greedy decode rate with the prefill taken out, ``(N-1) / (t(N) - t(1))``, best of ``repeats``:
    the measurement :func:`agent.bench.hardware.decode_tokens_per_s` makes on the Whazzat side."""
    if new_tokens < 2:
        raise ValueError("new_tokens must be at least 2")
    _generate_seconds(llama, tokens, 4)  # warm-up
    one = min(_generate_seconds(llama, tokens, 1) for _ in range(repeats))
    many = min(_generate_seconds(llama, tokens, new_tokens) for _ in range(repeats))
    return (new_tokens - 1) / max(many - one, 1e-9)


def decode_figures(
    llama: Any, tokens: Sequence[int], bandwidth_gb_s: float, weight_bytes: int, new_tokens: int = 64
) -> Decode:
    """llama.cpp's decode rate against its own bandwidth bound (its weights' bytes per token)."""
    rate = decode_tokens_per_s(llama, tokens, new_tokens)
    bound = bandwidth_gb_s * 1e9 / weight_bytes
    return Decode(
        new_tokens=new_tokens,
        tokens_per_s=round(rate, 2),
        weight_bytes_per_token=weight_bytes,
        bound_tokens_per_s=round(bound, 2),
        fraction_of_bound=round(rate / bound, 4),
    )
