"""Run the baseline and Whazzat on the same needs, warm, in one process, and collect the figures.

Order matters for honesty:

1. fresh-process probes first (bandwidth, CLI start, cold and warm model load, peak RSS of one answer),
   while the bench process holds no model; then ``whazzat batch --workers N`` over the batch-mode needs,
   a fresh process timed whole (:mod:`agent.bench.workers_row`);
2. both pipelines loaded here; batch-1 decode rate of each against the bandwidth bound;
3. one warm-up need per pipeline (not in the measured set), then each need alone, one after another,
   with the links backend; with ``--compare-set``, Whazzat's chain under the reference settings right
   after Whazzat's own run, the same way; then Whazzat in batch mode (one ``chain.batch`` over all needs);
4. the same with the axesso backend against :class:`FakeAxesso` (every call delayed), each run with an
   empty search cache, so no run reuses another's results;
5. optionally the eval's quality figures for the Whazzat settings and a reference set;
6. the bench's own peak RSS (both pipelines loaded), read before the last phase: the llama.cpp peer
   (:mod:`agent.bench.llamacpp`), Whazzat's chain with llama.cpp generating on the shipped GGUF, warm, the
   same needs one after another, links backend, then its batch-1 decode rate; skipped, saying why, when
   ``llama-cpp-python`` is not installed or the model is not the shipped one.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from agent.bench.figures import (
    BenchResult,
    Hardware,
    Latency,
    LlamaCppPeer,
    NeedsInfo,
    PipelineFigures,
    Quality,
    QualityRun,
    ReferenceLatency,
    mean_jaccard,
    peer_speedups,
    percentile,
    speedups,
    workers_speedup,
)
from agent.core.errors import WhazzatError
from agent.core.schemas import Recommendation
from agent.core.shipped import shipped_split
from agent.pipeline.validation import validate_need

if TYPE_CHECKING:
    from agent.bench.baseline import BaselinePipeline
    from agent.core.config import Settings
    from tools.base import SearchBackend

#: The project's test split (needs with gold product types).
DEFAULT_NEEDS = shipped_split("test")
#: Answered once per pipeline before anything is timed (first-call allocations, MiniLM's load).
WARMUP_NEED = "a gift for someone who just started gardening"
#: The only key the bench ever sends, and only to its own local server.
FAKE_RAPIDAPI_KEY = "whazzat-bench-fake-key"

Skippable = Literal["load", "cli", "rss", "axesso", "decode", "llamacpp", "workers"]
SKIPPABLE: tuple[str, ...] = ("load", "cli", "rss", "axesso", "decode", "llamacpp", "workers")
Say = Callable[[str], None]
#: The settings ``load_llm`` builds a model from: a reference equal on all of them runs on whazzat's loaded
#: model (one copy in memory, already warm); otherwise it loads its own, as its settings ask.
MODEL_SETTINGS = (
    "model",
    "adapter",
    "no_adapter",
    "load_in_4bit",
    "quantize",
    "batch_size",
    "home",
    "llm_endpoint",
)


class BenchError(WhazzatError, ValueError):
    """The bench cannot run as asked (bad needs file, quality without gold answers...)."""


class NeedItem(BaseModel):
    """A need to answer, with its gold product types when the file has them (for --quality)."""

    need: str
    products: list[str] = Field(default_factory=list)


class BenchOptions(BaseModel):
    """What to measure; the CLI builds it from flags."""

    model_config = ConfigDict(extra="forbid")

    needs_file: Path | None = Field(
        default=None, description="JSONL with a need field, or text; default: test split."
    )
    n: int = Field(default=30, ge=1, description="The first N needs of the file.")
    batch_n: int | None = Field(
        default=None, ge=1, description="Needs in each batch-mode run (the first N of the file); default: n."
    )
    delay_s: float = Field(default=1.0, ge=0, description="Seconds the fake Axesso waits before each answer.")
    overrides: dict[str, Any] = Field(default_factory=dict, description="Settings of the whazzat side.")
    quality: bool = False
    compare_overrides: dict[str, Any] = Field(
        default_factory=dict,
        description="The reference: these on top of ``overrides``; its links latency is timed, and with "
        "``quality`` its quality scored.",
    )
    skip: list[Skippable] = Field(default_factory=list)
    workers: int = Field(
        default=2,
        ge=0,
        description="Also time `whazzat batch --workers N` over the batch-mode needs in a fresh process "
        "(process start and each worker's model load included); 0 leaves it out, like --skip workers.",
    )
    decode_tokens: int = Field(default=64, ge=2, le=1024)
    bandwidth_mb: int = Field(default=512, ge=1)
    cli_repeats: int = Field(default=3, ge=1, description="CLI start time is the best of this many runs.")
    llamacpp_source: Path | None = Field(
        default=None,
        description="A llama.cpp checkout or llama-cpp-python sdist whose convert_lora_to_gguf.py converts "
        "the adapter for the llama.cpp peer (once: the GGUF LoRA is cached under WHAZZAT_HOME).",
    )
    command: str = "whazzat bench"


def load_needs(path: Path, n: int) -> list[NeedItem]:
    """The first ``n`` distinct valid needs of a JSONL file (``need``, optional ``products``) or a text file."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise BenchError(f"cannot read the needs file {path}: {error}") from error
    items: list[NeedItem] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            if path.suffix in (".jsonl", ".ndjson"):
                record = json.loads(line)
                item = NeedItem(need=validate_need(record["need"]), products=record.get("products") or [])
            else:
                item = NeedItem(need=validate_need(line))
        except (ValueError, KeyError, TypeError) as error:
            raise BenchError(f"{path}:{number}: not a usable need ({error})") from error
        if item.need not in seen:
            seen.add(item.need)
            items.append(item)
        if len(items) == n:
            break
    if not items:
        raise BenchError(f"{path} holds no needs")
    return items


def _timed_each(
    answer: Callable[[str], Recommendation], needs: Sequence[str]
) -> tuple[list[float], float, list[Recommendation]]:
    """Answer each need alone, one after another: (seconds per need, total wall time, results)."""
    seconds, results = [], []
    started = time.perf_counter()
    for need in needs:
        begun = time.perf_counter()
        results.append(answer(need))
        seconds.append(time.perf_counter() - begun)
    return seconds, time.perf_counter() - started, results


def _axesso_settings(settings: Settings, url: str, delay_s: float) -> Settings:
    """The same settings pointed at the local fake, with a fake key that never leaves this process."""
    return settings.model_copy(
        update={
            "backend": "axesso",
            "rapidapi_key": SecretStr(FAKE_RAPIDAPI_KEY),
            "axesso_url": url,
            "ratelimit_floor": 0,
            "no_cache": False,
            "http_read_timeout": max(settings.http_read_timeout, delay_s + 10),
        }
    )


def _axesso_backend(settings: Settings, cache_file: Path, *, reads: bool = True) -> SearchBackend:
    """An Axesso backend with its own, empty search cache (``reads=False``: never served from it)."""
    from tools.axesso import AxessoBackend
    from tools.registry import axesso_options

    options = axesso_options(settings).model_copy(update={"cache_file": cache_file, "read_cache": reads})
    return AxessoBackend(options)


def _convert_in_a_child(settings: Settings, overrides: dict[str, Any], say: Say) -> None:
    """Convert the embedded model from GGUF once, in a child process: converting here would leave the
    dequantised copies in this process's peak RSS (and in the figure the bench reports for itself)."""
    from agent.bench.probes import load_seconds
    from agent.core.config import EMBEDDED_MODEL
    from agent.models.paths import EMBEDDED_CACHE_NAME

    cached = settings.home_dir / "models" / EMBEDDED_CACHE_NAME / "model.safetensors"
    if settings.model == EMBEDDED_MODEL and not cached.is_file():
        say("first run: converting the embedded model from GGUF (in a child process)")
        load_seconds("whazzat", overrides)


class _Figures:
    """Figures gathered for one pipeline so far (the runner fills it phase by phase; the rest stay None)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def build(self) -> PipelineFigures:
        return PipelineFigures(**self.values)


def _probe(
    options: BenchOptions, figures: dict[str, _Figures], need: str, paraphrases: int, say: Say
) -> None:
    """The fresh-process measurements of both pipelines."""
    from agent.bench import probes

    for pipeline in ("baseline", "whazzat"):
        values = figures[pipeline].values
        if "cli" not in options.skip:
            say(f"{pipeline}: CLI start time (best of {options.cli_repeats})")
            values["cli_help_s"] = round(probes.cli_help_seconds(pipeline, options.cli_repeats), 4)
        if "load" not in options.skip:
            with tempfile.TemporaryDirectory(prefix="whazzat-bench-home-") as empty_home:
                say(f"{pipeline}: model load in a fresh process, cold (empty WHAZZAT_HOME)")
                values["load_cold_s"] = round(probes.load_seconds(pipeline, options.overrides, empty_home), 3)
            say(f"{pipeline}: model load in a fresh process, warm (cached safetensors)")
            values["load_warm_s"] = round(probes.load_seconds(pipeline, options.overrides), 3)
        if "rss" not in options.skip:
            say(f"{pipeline}: peak RSS of a fresh process answering one need")
            values["peak_rss_ask_mb"] = probes.ask_peak_rss_mb(pipeline, options.overrides, need, paraphrases)


def _bandwidth_gb_s(megabytes: int) -> float:
    """Measured in a child process, so the arrays stay out of the bench's peak RSS."""
    from agent.bench.probes import ProbeError, child_env, run_measured

    command = [sys.executable, "-m", "agent.bench.hardware", "--megabytes", str(megabytes)]
    run = run_measured(command, child_env())
    if run.returncode != 0:
        raise ProbeError(f"measuring memory bandwidth failed: {run.stderr.strip()[-400:]}")
    return float(json.loads(run.stdout.strip().splitlines()[-1])["bandwidth_gb_s"])


def _quality(options: BenchOptions, settings: Settings, items: list[NeedItem], llm: Any, say: Say) -> Quality:
    """hit@5 / precision@5 of the whazzat settings and of the reference settings on the same needs."""
    from agent.core.config import get_settings
    from agent.pipeline.chain import build_chain
    from agent.pipeline.evaluation import EvalItem, evaluate
    from tools.links import LinksBackend

    if any(not item.products for item in items):
        raise BenchError(
            "--quality needs gold product types: use a JSONL needs file with a 'products' "
            "field, like finetune/data/test.jsonl"
        )
    gold = [EvalItem(need=item.need, products=item.products) for item in items]
    reference = get_settings(**{**options.overrides, **options.compare_overrides})
    runs = []
    for name, run_settings, run_llm in (("whazzat", settings, llm), ("reference", reference, None)):
        say(f"quality: evaluating the {name} settings on {len(items)} needs")
        # As in `whazzat eval`: the memory never holds the split the needs come from (the shipped memory
        # holds every split, which would answer test needs with their own gold types).
        memory = None
        if run_settings.memory_mode != "model":
            from agent.pipeline.evaluation import eval_memory, memory_splits_for

            memory = eval_memory(run_settings, memory_splits_for(gold))
        chain = build_chain(run_settings, llm=run_llm, backend=LinksBackend(), memory=memory)
        summary = evaluate(gold, chain.batch, batch_size=run_settings.batch_size).summary
        changed = set(options.overrides) | set(options.compare_overrides)  # both runs show the levers' values
        runs.append(
            QualityRun(
                settings=run_settings.model_dump(mode="json", include=changed),
                hit_at_5=summary.hit_at_5,
                precision_at_5=summary.precision_at_5,
                recall_at_5=summary.recall_at_5,
                valid_output_rate=summary.valid_output_rate,
            )
        )
    ours, ref = runs
    return Quality(
        needs=len(items),
        whazzat=ours,
        reference=ref,
        hit_at_5_delta_points=round(100 * (ours.hit_at_5 - ref.hit_at_5), 2),
        precision_at_5_delta_points=round(100 * (ours.precision_at_5 - ref.precision_at_5), 2),
    )


def _hardware(options: BenchOptions, say: Say) -> Hardware | None:
    if "decode" in options.skip:
        return None
    from agent.bench.hardware import BANDWIDTH_METHOD, BANDWIDTH_REPEATS

    say(f"memory bandwidth ({options.bandwidth_mb} MB copies, in a child process)")
    return Hardware(
        bandwidth_gb_s=round(_bandwidth_gb_s(options.bandwidth_mb), 2),
        bandwidth_method=BANDWIDTH_METHOD.format(mb=options.bandwidth_mb, repeats=BANDWIDTH_REPEATS),
    )


def _differing(settings: Settings, reference: Settings) -> dict[str, Any]:
    """The reference's settings whose values differ from whazzat's (what the reference row is about)."""
    ours, theirs = (s.model_dump(mode="json", exclude={"rapidapi_key"}) for s in (settings, reference))
    return {key: value for key, value in theirs.items() if ours.get(key) != value}


def _reference_latency(
    needs: list[str], settings: Settings, reference: Settings, llm: Any, whazzat_p50_s: float, say: Say
) -> ReferenceLatency:
    """Whazzat's chain under the reference settings, each need alone, one after another, links backend."""
    import torch
    import transformers

    from agent.pipeline.chain import build_chain
    from tools.links import LinksBackend

    shares_model = all(getattr(settings, key) == getattr(reference, key) for key in MODEL_SETTINGS)
    # A reference that loads its own model would read the answer cache: timings must count the model.
    chain = build_chain(reference, llm=llm if shares_model else None, backend=LinksBackend(), answer_cache_days=0)
    # torch's thread count is per process and load_llm sets it only when it builds a model: set the
    # reference's for its run and give whazzat's back after, so the later phases keep whazzat's.
    threads = torch.get_num_threads()
    if reference.torch_threads:
        torch.set_num_threads(reference.torch_threads)
    try:
        # Its own warm-up (first-call allocations, a model or memory of its own), as whazzat had.
        chain.invoke(WARMUP_NEED)
        say(f"reference: {len(needs)} needs one after another, links backend")
        transformers.set_seed(reference.seed)  # whazzat's seed unless --compare-set changes it
        seconds, _, results = _timed_each(chain.invoke, needs)
    finally:
        torch.set_num_threads(threads)
    return ReferenceLatency(
        settings=_differing(settings, reference),
        shares_model=shares_model,
        latency_links=Latency.of(seconds),
        products_per_need=round(sum(len(r.products) for r in results) / len(results), 2),
        # From the unrounded p50s: the rounded figures of a tiny model can be 0.
        whazzat_p50_over_reference_p50=round(whazzat_p50_s / percentile(seconds, 50), 4),
    )


def _links_phase(
    needs: list[str],
    batch_needs: list[str],
    settings: Settings,
    baseline: BaselinePipeline,
    chain: Any,
    figures: dict[str, _Figures],
    say: Say,
    reference: Settings | None = None,
    llm: Any = None,
) -> ReferenceLatency | None:
    """Latency per need for both (and the reference's, if any), then whazzat's batch mode, links backend."""
    import transformers

    per_need: dict[str, list[float]] = {}
    for name, answer in (("baseline", baseline.answer), ("whazzat", chain.invoke)):
        say(f"{name}: {len(needs)} needs one after another, links backend")
        transformers.set_seed(settings.seed)
        seconds, wall, results = _timed_each(answer, needs)
        per_need[name] = seconds
        figures[name].values.update(
            latency_links=Latency.of(seconds),
            products={result.need: result.products for result in results},
            products_per_need=round(sum(len(r.products) for r in results) / len(results), 2),
        )
        if name == "baseline":  # no batch mode: its throughput is one need after another
            figures[name].values["needs_per_s_links"] = round(len(needs) / wall, 4)
    timed = None
    if reference is not None:  # right after whazzat's run, on the same machine state: the two are compared
        whazzat_p50_s = percentile(per_need["whazzat"], 50)
        timed = _reference_latency(needs, settings, reference, llm, whazzat_p50_s, say)
    say(f"whazzat: batch mode, {len(batch_needs)} needs in one chain.batch, links backend")
    begun = time.perf_counter()
    chain.batch(batch_needs)
    figures["whazzat"].values["needs_per_s_links"] = round(len(batch_needs) / (time.perf_counter() - begun), 4)
    return timed


def _axesso_phase(
    options: BenchOptions,
    needs: list[str],
    batch_needs: list[str],
    settings: Settings,
    baseline: BaselinePipeline,
    llm: Any,
    figures: dict[str, _Figures],
    say: Say,
) -> None:
    """The links phase again against the delayed local Axesso; every run gets an empty search cache."""
    import transformers

    from agent.bench.fake_axesso import FakeAxesso
    from agent.pipeline.chain import build_chain

    with (
        tempfile.TemporaryDirectory(prefix="whazzat-bench-cache-") as scratch,
        FakeAxesso(options.delay_s) as server,
    ):
        remote = _axesso_settings(settings, server.url, options.delay_s)

        def whazzat_chain(cache_name: str) -> Any:
            return build_chain(settings, llm=llm, backend=_axesso_backend(remote, Path(scratch) / cache_name))

        uncached = _axesso_backend(remote, Path(scratch) / "baseline.sqlite3", reads=False)
        runs: list[tuple[str, Callable[[str], Recommendation]]] = [
            ("baseline", baseline.with_backend(uncached).answer),
            ("whazzat", whazzat_chain("whazzat.sqlite3").invoke),
        ]
        for name, answer in runs:
            say(
                f"{name}: {len(needs)} needs one after another, axesso backend ({options.delay_s:g} s per call)"
            )
            transformers.set_seed(settings.seed)
            calls_before = server.calls
            seconds, wall, _ = _timed_each(answer, needs)
            figures[name].values.update(
                latency_axesso=Latency.of(seconds), axesso_calls=server.calls - calls_before
            )
            if name == "baseline":
                figures[name].values["needs_per_s_axesso"] = round(len(needs) / wall, 4)
        say(f"whazzat: batch mode, {len(batch_needs)} needs in one chain.batch, axesso backend")
        batch_chain = whazzat_chain("whazzat-batch.sqlite3")
        begun = time.perf_counter()
        batch_chain.batch(batch_needs)
        elapsed = time.perf_counter() - begun
        figures["whazzat"].values["needs_per_s_axesso"] = round(len(batch_needs) / elapsed, 4)


def _llamacpp_phase(
    options: BenchOptions,
    needs: list[str],
    settings: Settings,
    llm: Any,
    whazzat: PipelineFigures,
    hardware: Hardware | None,
    say: Say,
) -> LlamaCppPeer:
    """Whazzat's chain with llama.cpp generating on the shipped GGUF: warm, the same needs one after
    another, links backend; then llama.cpp's batch-1 decode rate. Skipped, saying why, when it cannot run."""
    if "llamacpp" in options.skip:
        return LlamaCppPeer(skipped="--skip llamacpp")
    from agent.bench.llamacpp import skip_reason

    reason = skip_reason(settings)
    if reason is not None:
        say(f"llama.cpp peer skipped: {reason}")
        return LlamaCppPeer(skipped=reason)

    import llama_cpp
    import torch

    from agent.bench.gguf_lora import gguf_lora
    from agent.bench.hardware import DECODE_PROMPT
    from agent.bench.llamacpp import (
        LlamaCppLLM,
        decode_figures,
        gguf_weight_bytes_per_token,
        load_llama,
        peer_settings,
    )
    from agent.models.llm import resolve_model
    from agent.models.paths import embedded_gguf_path
    from agent.pipeline.chain import build_chain
    from tools.links import LinksBackend

    base, adapter = resolve_model(settings)
    lora, note = None, "none: base weights, as the whazzat side (no adapter)"
    if adapter is not None:
        say("llama.cpp peer: the adapter as a GGUF LoRA (converted once, then cached)")
        converted = gguf_lora(Path(adapter), Path(base), settings.home_dir, options.llamacpp_source)
        lora, note = converted.path, converted.note
        if lora is None:
            say(f"llama.cpp peer: {note}")
    threads = torch.get_num_threads()  # what the whazzat rows ran with (load_llm set it from torch_threads)
    gguf = embedded_gguf_path()
    say(f"llama.cpp peer: loading {gguf.name} ({threads} thread(s))")
    llama = load_llama(gguf, threads, lora, settings.seed)
    tokenizer = llm.pipeline.tokenizer  # the chain's prompts and their token ids, exactly as whazzat's
    peer_llm = LlamaCppLLM(llama=llama, tokenizer=tokenizer, seed=settings.seed)
    chain = build_chain(peer_settings(settings), llm=peer_llm, backend=LinksBackend())
    chain.invoke(WARMUP_NEED)
    say(f"llama.cpp peer: {len(needs)} needs one after another, links backend")
    peer_llm.reset_counts()
    seconds, _, results = _timed_each(chain.invoke, needs)
    decode = None
    if hardware is not None:
        say(f"llama.cpp peer: batch-1 decode rate ({options.decode_tokens} tokens)")
        tokens = tokenizer(DECODE_PROMPT, add_special_tokens=False)["input_ids"]  # as the whazzat side's
        weight_bytes = gguf_weight_bytes_per_token(gguf, lora)
        decode = decode_figures(llama, tokens, hardware.bandwidth_gb_s, weight_bytes, options.decode_tokens)
    products = {result.need: result.products for result in results}
    peer = LlamaCppPeer(
        version=llama_cpp.__version__,
        gguf_file=gguf.name,
        adapter=note,
        adapter_applied=lora is not None,
        n_threads=threads,
        decode=decode,
        latency_links=Latency.of(seconds),
        products_per_need=round(sum(len(r.products) for r in results) / len(results), 2),
        products=products,
        same_products_as_whazzat=sum(whazzat.products.get(need) == found for need, found in products.items()),
        products_jaccard_with_whazzat=round(mean_jaccard(products, whazzat.products), 4),
        generated_tokens=peer_llm.generated_tokens,
        generate_s=round(peer_llm.generate_s, 4),
        chain_tokens_per_s=round(peer_llm.generated_tokens / max(peer_llm.generate_s, 1e-9), 2),
    )
    return peer.model_copy(update={"speedup": peer_speedups(whazzat, peer)})


def _llm_cache(llm: Any) -> str | None:
    """The LLM answer cache in use, if any: with one, a repeated prompt costs no generation (say so)."""
    from langchain_core.globals import get_llm_cache

    cache = getattr(llm, "cache", None)  # a BaseCache; None or True: the global one; False: none
    if cache is False:
        return None
    if cache is None or cache is True:
        cache = get_llm_cache()
    return None if cache is None else type(cache).__name__


def _settings_report(
    settings: Settings, base: str, adapter: str | None, baseline: BaselinePipeline, llm: Any
) -> dict[str, dict[str, Any]]:
    from agent.bench.probes import EAGER_IMPORTS

    shared = {
        "model": settings.model,
        "base_model_path": base,
        "adapter_path": adapter,
        "paraphrases": settings.paraphrases,
        "max_products": settings.max_products,
    }
    whazzat = {
        **settings.model_dump(mode="json", exclude={"rapidapi_key"}),
        "base_model_path": base,
        "adapter_path": adapter,
        "adapter_merged": bool(adapter) and not settings.load_in_4bit,
        "llm_cache": _llm_cache(llm),
    }
    return {
        "whazzat": whazzat,
        "baseline": {**shared, **baseline.config.model_dump(), "cli_imports": EAGER_IMPORTS},
    }


def run_bench(options: BenchOptions, say: Say = lambda message: None) -> BenchResult:
    """Measure both pipelines as described in this module's docstring."""
    import transformers

    from agent.bench.baseline import BaselinePipeline
    from agent.bench.hardware import decode_figures, machine_info
    from agent.bench.probes import own_peak_rss_bytes
    from agent.bench.workers_row import workers_row
    from agent.core.config import get_settings
    from agent.models.llm import load_llm, resolve_model
    from agent.pipeline.chain import build_chain
    from tools.links import LinksBackend

    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    started = time.perf_counter()
    source = options.needs_file or DEFAULT_NEEDS
    # The baseline has no batch mode (its needs/s is its one-after-another rate), so only Whazzat's batch
    # runs take the larger sample: throughput over 100 needs costs no 100 slow baseline answers.
    batch_n = options.batch_n or options.n
    loaded = load_needs(source, max(options.n, batch_n))
    items = loaded[: options.n]
    needs = [item.need for item in items]
    batch_needs = [item.need for item in loaded[:batch_n]]
    settings = get_settings(**options.overrides)
    _convert_in_a_child(settings, options.overrides, say)
    base, adapter = resolve_model(settings)
    figures = {"baseline": _Figures(), "whazzat": _Figures()}

    hardware = _hardware(options, say)
    _probe(options, figures, needs[0], settings.paraphrases, say)
    # Here, while this process holds no model: the workers' copies are the only ones in memory.
    workers = workers_row(options.workers, "workers" in options.skip, batch_needs, options.overrides, say)

    say("loading both pipelines in this process")
    llm = load_llm(settings)
    baseline = BaselinePipeline.load(settings)
    if hardware is not None:
        for name, model, tokenizer in (
            ("baseline", baseline.model, baseline.tokenizer),
            ("whazzat", llm.pipeline.model, llm.pipeline.tokenizer),
        ):
            say(f"{name}: batch-1 decode rate ({options.decode_tokens} tokens)")
            decode = decode_figures(model, tokenizer, hardware.bandwidth_gb_s, options.decode_tokens, split_step=True)
            figures[name].values["decode"] = decode

    chain = build_chain(settings, llm=llm, backend=LinksBackend())
    say("warm-up: one need per pipeline")
    transformers.set_seed(settings.seed)
    baseline.answer(WARMUP_NEED)
    chain.invoke(WARMUP_NEED)
    compared = {**options.overrides, **options.compare_overrides}
    reference = get_settings(**compared) if options.compare_overrides else None
    reference_latency = _links_phase(
        needs, batch_needs, settings, baseline, chain, figures, say, reference=reference, llm=llm
    )
    if "axesso" not in options.skip:
        _axesso_phase(options, needs, batch_needs, settings, baseline, llm, figures, say)
    quality = _quality(options, settings, items, llm, say) if options.quality else None

    baseline_figures, whazzat_figures = figures["baseline"].build(), figures["whazzat"].build()
    bench_peak_rss = own_peak_rss_bytes()  # both pipelines loaded; the peer's model is not counted
    peer = _llamacpp_phase(options, needs, settings, llm, whazzat_figures, hardware, say)
    return BenchResult(
        command=options.command,
        started_at=started_at,
        wall_s=round(time.perf_counter() - started, 2),
        machine=machine_info(),
        hardware=hardware,
        needs=NeedsInfo(
            source=str(source),
            count=len(needs),
            batch_count=len(batch_needs),
            warmup=WARMUP_NEED,
            axesso_delay_s=options.delay_s,
        ),
        settings=_settings_report(settings, base, adapter, baseline, llm),
        skipped=sorted(set(options.skip) | ({"workers"} if options.workers == 0 else set())),
        baseline=baseline_figures,
        whazzat=whazzat_figures,
        speedup={
            **speedups(baseline_figures, whazzat_figures),
            "needs_per_s_workers": workers_speedup(baseline_figures, workers),
        },
        bench_peak_rss_mb=round(bench_peak_rss / 1e6, 1),
        quality=quality,
        reference=reference_latency,
        llamacpp=peer,
        workers=workers,
    )
