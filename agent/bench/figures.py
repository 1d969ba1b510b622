"""The bench's result: pydantic models (what ``--json`` prints) and the rich table people read.

Every figure a part of the bench can skip (``--skip``) is ``None`` when skipped, so the JSON always has
the same keys. Speed-ups are "how many times better Whazzat is": > 1 means Whazzat wins.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 5  # 2: needs.batch_count (--batch-n); 3: reference (--compare-set latency); 4: llamacpp;
# 5: workers (whazzat batch --workers N)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation between closest ranks (numpy's default)."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class Latency(_Strict):
    """Seconds per need, each need answered alone (``invoke``), one after another."""

    per_need_s: list[float]
    p50_s: float
    p95_s: float
    mean_s: float

    @classmethod
    def of(cls, seconds: list[float]) -> Latency:
        return cls(
            per_need_s=[round(s, 4) for s in seconds],
            p50_s=round(percentile(seconds, 50), 4),
            p95_s=round(percentile(seconds, 95), 4),
            mean_s=round(sum(seconds) / len(seconds), 4),
        )


class Decode(_Strict):
    """Batch-1 greedy decoding against the memory-bandwidth bound."""

    new_tokens: int = Field(description="Tokens generated per timed run (min_new_tokens forces all).")
    tokens_per_s: float = Field(description="Decode rate, prefill excluded: (N-1) / (t(N) - t(1)).")
    weight_bytes_per_token: int = Field(
        description="Bytes of weights read per generated token: every parameter used per token, "
        "embedding rows excluded (lm_head included); int8 linear layers count 1 byte per weight."
    )
    bound_tokens_per_s: float = Field(description="Memory bandwidth / weight bytes per token.")
    fraction_of_bound: float = Field(description="tokens_per_s / bound_tokens_per_s.")
    # Why a rate is what it is: one cached batch-1 step, and its linear layers called alone on the same
    # shapes. None for llama.cpp, whose step is 1000 / tokens_per_s ms.
    step_ms: float | None = Field(default=None, description="One decode step, batch 1, cached.")
    linear_layers_ms: float | None = Field(
        default=None, description="The step's linear layers (matrix products) called alone, one after another."
    )
    linear_layers: int | None = Field(default=None, description="How many linear layers one step calls.")


class PipelineFigures(_Strict):
    """One pipeline's figures (baseline or whazzat). ``None``: not measured (``--skip``)."""

    latency_links: Latency
    needs_per_s_links: float = Field(
        description="Batch mode: whazzat answers all needs in one chain.batch; the baseline has no batch "
        "mode, so it is its latency run's needs over that run's wall time (one after another)."
    )
    products_per_need: float = Field(description="Mean product types per need in the links latency run.")
    products: dict[str, list[str]] = Field(description="Product types per need in the links latency run.")
    latency_axesso: Latency | None = Field(
        default=None, description="Against the local server with the injected delay."
    )
    axesso_calls: int | None = Field(
        default=None, description="HTTP calls the local server answered in the axesso latency run."
    )
    needs_per_s_axesso: float | None = None
    decode: Decode | None = None
    load_cold_s: float | None = Field(
        default=None,
        description="Fresh process, empty WHAZZAT_HOME (the embedded model "
        "converts from GGUF); the load call alone, imports excluded.",
    )
    load_warm_s: float | None = Field(
        default=None, description="Fresh process, converted safetensors cache present."
    )
    cli_help_s: float | None = Field(
        default=None, description="Best wall time (of 3 by default) of a fresh process printing --help."
    )
    peak_rss_ask_mb: float | None = Field(
        default=None, description="Peak RSS of a fresh process answering one need."
    )


class Machine(_Strict):
    cpu_model: str
    logical_cores: int
    physical_cores: int | None
    torch_threads: int
    cpu_flags: list[str] = Field(
        description="Flags that matter for the speed levers (avx2, avx512, bf16, amx)."
    )
    memory_gb: float
    python: str
    torch: str
    transformers: str
    platform: str


class Hardware(_Strict):
    bandwidth_gb_s: float
    bandwidth_method: str


class NeedsInfo(_Strict):
    source: str
    count: int  # answered one after another by both pipelines
    batch_count: int  # answered in each of Whazzat's batch-mode runs (``--batch-n``)
    warmup: str
    axesso_delay_s: float


class QualityRun(_Strict):
    settings: dict[str, Any]
    hit_at_5: float
    precision_at_5: float
    recall_at_5: float
    valid_output_rate: float


class Quality(_Strict):
    """The eval's figures for the bench's whazzat settings and for a reference set, on the same needs."""

    needs: int
    whazzat: QualityRun
    reference: QualityRun
    hit_at_5_delta_points: float = Field(description="100 * (whazzat - reference).")
    precision_at_5_delta_points: float


class ReferenceLatency(_Strict):
    """Whazzat's chain under the ``--compare-set`` settings, timed like whazzat's own links latency run
    (same needs, one after another, same seed, right after it), so one run compares the two settings."""

    settings: dict[str, Any] = Field(description="The reference's settings that differ from whazzat's.")
    shares_model: bool = Field(
        description="True: the reference ran on whazzat's loaded model (same model settings); "
        "False: it loaded its own before the timed run."
    )
    latency_links: Latency
    products_per_need: float = Field(description="Mean product types per need in the reference's run.")
    whazzat_p50_over_reference_p50: float = Field(
        description="Whazzat's links p50 / the reference's: 1.10 means whazzat is 10% slower per need, "
        "0.90 that it is 10% faster."
    )


class WorkersBatch(_Strict):
    """``whazzat batch --workers N`` over the batch-mode needs (:mod:`agent.bench.workers_row`): the real
    command in a fresh process, links backend, answer cache off. Its wall time counts everything a user
    waits for: process start, imports, each worker's model load, the answers and the writes. ``skipped``
    or ``failed`` says why there is no rate."""

    workers: int | None = Field(default=None, description="Model processes (--workers).")
    needs: int | None = Field(default=None, description="Needs in the batch: the in-process batch row's.")
    command: str | None = Field(default=None, description="The command the child ran, as a user types it.")
    environment: dict[str, str] = Field(
        default_factory=dict,
        description="WHAZZAT_ variables the bench set for the child: the whazzat side's overrides, the "
        "links backend, answer cache off (the rest of the environment is the bench's own).",
    )
    wall_s: float | None = Field(default=None, description="Wall time of the whole child process.")
    needs_per_s_workers: float | None = Field(
        default=None, description="needs / wall_s; None unless the output held one good record per need."
    )
    records: int | None = Field(default=None, description="Records found in the batch's output file.")
    skipped: str | None = Field(default=None, description="Why it did not run (--skip workers, --workers 0).")
    failed: str | None = Field(
        default=None,
        description="Why it gave no rate: the exit status and last stderr line, a timeout, or an output "
        "without one good record per need.",
    )


def workers_speedup(baseline: PipelineFigures, workers: WorkersBatch | None) -> float | None:
    """The workers rate over the baseline's one-after-another rate (None when either is missing)."""
    ours = workers.needs_per_s_workers if workers is not None else None
    if not ours or not baseline.needs_per_s_links:
        return None
    return round(ours / baseline.needs_per_s_links, 3)


class LlamaCppPeer(_Strict):
    """Whazzat's chain with llama.cpp generating (:mod:`agent.bench.llamacpp`) on the shipped GGUF: the same
    prompts, greedy, the same ``max_new_tokens`` and threads. ``skipped`` says why when it did not run; every
    figure is None then."""

    skipped: str | None = Field(default=None, description="Why the peer did not run; None when it ran.")
    version: str | None = Field(default=None, description="llama-cpp-python's version.")
    gguf_file: str | None = Field(default=None, description="The GGUF file llama.cpp ran, as shipped.")
    adapter: str | None = Field(
        default=None, description="The GGUF LoRA applied, or why none was (then: base weights)."
    )
    adapter_applied: bool | None = None
    n_threads: int | None = Field(
        default=None, description="llama.cpp's threads: the Whazzat side's torch threads."
    )
    decode: Decode | None = Field(
        default=None, description="Measured as the pipelines' decode, against llama.cpp's own bound."
    )
    latency_links: Latency | None = Field(
        default=None, description="Whazzat's chain, llama.cpp generating: each need alone, links backend."
    )
    products_per_need: float | None = None
    products: dict[str, list[str]] | None = None
    same_products_as_whazzat: int | None = Field(
        default=None, description="Needs whose product types equal Whazzat's in its links latency run."
    )
    products_jaccard_with_whazzat: float | None = Field(
        default=None,
        description="Mean over the needs of |both| / |either| of the product-type sets of llama.cpp and "
        "Whazzat (1: the same types, in any order; different weights rarely give the same list).",
    )
    generated_tokens: int | None = Field(
        default=None, description="Tokens llama.cpp generated in the latency run."
    )
    generate_s: float | None = Field(
        default=None, description="Seconds inside llama.cpp in the latency run (prefill and decode)."
    )
    chain_tokens_per_s: float | None = Field(
        default=None,
        description="generated_tokens / generate_s: the chain's generation rate, prefill included.",
    )
    speedup: dict[str, float | None] = Field(
        default_factory=dict,
        description="How many times better whazzat is than llama.cpp: whazzat/llama.cpp for rates "
        "(decode_tokens_per_s is whazzat tok/s / llama.cpp tok/s), llama.cpp/whazzat for times.",
    )


#: (key, label, getter on a LlamaCppPeer or PipelineFigures, True when higher is better).
_PEER_FIGURES: list[tuple[str, str, Any, bool]] = [
    ("decode_tokens_per_s", "decode tokens/s (batch 1)", lambda p: p.decode and p.decode.tokens_per_s, True),
    (
        "decode_fraction_of_bound",
        "decode / its bandwidth bound",
        lambda p: p.decode and p.decode.fraction_of_bound,
        True,
    ),
    ("latency_p50_links", "p50 s/need, links", lambda p: p.latency_links and p.latency_links.p50_s, False),
    ("latency_p95_links", "p95 s/need, links", lambda p: p.latency_links and p.latency_links.p95_s, False),
    ("latency_mean_links", "mean s/need, links", lambda p: p.latency_links and p.latency_links.mean_s, False),
]


def mean_jaccard(ours: dict[str, list[str]], theirs: dict[str, list[str]]) -> float:
    """Mean over ``ours``' needs of the Jaccard index of the two product-type sets (both empty: 1)."""
    if not ours:
        raise ValueError("no needs")
    total = 0.0
    for need, products in ours.items():
        a, b = set(products), set(theirs.get(need, []))
        total += len(a & b) / len(a | b) if a | b else 1.0
    return total / len(ours)


def peer_speedups(whazzat: PipelineFigures, peer: LlamaCppPeer) -> dict[str, float | None]:
    """How many times better whazzat is than the llama.cpp peer, per figure (None when either is missing)."""
    result: dict[str, float | None] = {}
    for key, _label, get, higher_is_better in _PEER_FIGURES:
        ours, theirs = get(whazzat), get(peer)
        if not ours or not theirs:
            result[key] = None
            continue
        result[key] = round(ours / theirs if higher_is_better else theirs / ours, 3)
    return result


class BenchResult(_Strict):
    """Everything one ``whazzat bench`` run measured (the ``--json`` object)."""

    schema_version: int = SCHEMA_VERSION
    command: str
    started_at: str
    wall_s: float
    machine: Machine
    hardware: Hardware | None
    needs: NeedsInfo
    settings: dict[str, dict[str, Any]] = Field(
        description="'whazzat': its Settings; 'baseline': its method."
    )
    skipped: list[str]
    baseline: PipelineFigures
    whazzat: PipelineFigures
    speedup: dict[str, float | None] = Field(
        description="How many times better whazzat is: baseline/whazzat for times and memory, "
        "whazzat/baseline for rates; None when a side was skipped."
    )
    bench_peak_rss_mb: float = Field(description="Peak RSS of the bench process (both pipelines loaded).")
    quality: Quality | None
    reference: ReferenceLatency | None = Field(
        default=None, description="The --compare-set settings' links latency; None without --compare-set."
    )
    llamacpp: LlamaCppPeer | None = Field(
        default=None, description="The llama.cpp peer (its 'skipped' says why it did not run); None only "
        "in results older than schema 4."
    )
    workers: WorkersBatch | None = Field(
        default=None, description="whazzat batch --workers N in a fresh process (its 'skipped' or 'failed' "
        "says why there is no rate); None only in results older than schema 5. Its speed-up over the "
        "baseline's one-after-another rate is speedup['needs_per_s_workers']."
    )


#: (speed-up key, figure getter, True when higher is better).
_FIGURES: list[tuple[str, str, Any, bool]] = [
    ("latency_p50_links", "p50 latency per need, links (s)", lambda p: p.latency_links.p50_s, False),
    ("latency_p95_links", "p95 latency per need, links (s)", lambda p: p.latency_links.p95_s, False),
    (
        "latency_p50_axesso",
        "p50 latency per need, axesso (s)",
        lambda p: p.latency_axesso and p.latency_axesso.p50_s,
        False,
    ),
    (
        "latency_p95_axesso",
        "p95 latency per need, axesso (s)",
        lambda p: p.latency_axesso and p.latency_axesso.p95_s,
        False,
    ),
    ("axesso_calls", "axesso HTTP calls", lambda p: p.axesso_calls, False),
    ("needs_per_s_links", "batch needs/s, links", lambda p: p.needs_per_s_links, True),
    ("needs_per_s_axesso", "batch needs/s, axesso", lambda p: p.needs_per_s_axesso, True),
    ("decode_tokens_per_s", "decode tokens/s (batch 1)", lambda p: p.decode and p.decode.tokens_per_s, True),
    (
        "decode_fraction_of_bound",
        "decode / bandwidth bound",
        lambda p: p.decode and p.decode.fraction_of_bound,
        True,
    ),
    ("load_cold_s", "model load, cold from GGUF (s)", lambda p: p.load_cold_s, False),
    ("load_warm_s", "model load, warm (s)", lambda p: p.load_warm_s, False),
    ("cli_help_s", "CLI --help (s)", lambda p: p.cli_help_s, False),
    ("peak_rss_ask_mb", "peak RSS, one need (MB)", lambda p: p.peak_rss_ask_mb, False),
]


def speedups(baseline: PipelineFigures, whazzat: PipelineFigures) -> dict[str, float | None]:
    """Each figure's speed-up of whazzat over the baseline (None when either side is missing or zero)."""
    result: dict[str, float | None] = {}
    for key, _label, get, higher_is_better in _FIGURES:
        base, ours = get(baseline), get(whazzat)
        if not base or not ours:
            result[key] = None
            continue
        result[key] = round(ours / base if higher_is_better else base / ours, 3)
    return result


def _format(value: float | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"


def _reference_row(reference: ReferenceLatency) -> tuple[str, str, str, str]:
    """The reference's p50 under whazzat's own, in the whazzat column (it is whazzat's chain, other
    settings); the last column keeps the table's meaning, how many times faster whazzat's settings are."""
    changed = ", ".join(f"{key}={value}" for key, value in reference.settings.items()) or "same settings"
    ratio = reference.whazzat_p50_over_reference_p50
    return (
        f"p50 latency per need, links, reference {changed} (s)",
        "-",
        _format(reference.latency_links.p50_s),
        f"{1 / ratio:.2f}x" if ratio else "-",
    )


def _workers_row(result: BenchResult) -> tuple[str, str, str, str] | None:
    """The --workers row under the in-process batch row, or None when it was skipped."""
    workers = result.workers
    if workers is None or workers.skipped is not None:
        return None
    speedup = result.speedup.get("needs_per_s_workers")
    return (
        f"batch needs/s, links, --workers {workers.workers}",
        _format(result.baseline.needs_per_s_links),
        "failed" if workers.failed is not None else _format(workers.needs_per_s_workers),
        "-" if speedup is None else f"{speedup:.2f}x",
    )


def _print_workers_note(console: Any, workers: WorkersBatch | None) -> None:
    """Why the --workers row has no rate, and what it timed when it has one (plain text: not markup)."""
    if workers is None:
        return
    if workers.skipped is not None:
        console.print(f"--workers row skipped: {workers.skipped}", highlight=False, markup=False)
    elif workers.failed is not None:
        console.print(f"--workers {workers.workers} row failed: {workers.failed}", highlight=False, markup=False)
    else:
        console.print(
            f"--workers {workers.workers}: `{workers.command}` over {workers.needs} needs in "
            f"{workers.wall_s:.1f} s, process start and each worker's model load included",
            highlight=False,
            markup=False,
        )


def _print_peer(console: Any, peer: LlamaCppPeer, whazzat: PipelineFigures) -> None:
    """The llama.cpp peer's own table beside Whazzat's figures, or one line saying why it was skipped."""
    from rich.table import Table
    from rich.text import Text

    if peer.skipped is not None:  # plain text: the install hint's "[llamacpp]" is not markup
        console.print(f"llama.cpp peer skipped: {peer.skipped}", highlight=False, markup=False)
        return
    title = f"llama.cpp peer: llama-cpp-python {peer.version}, {peer.gguf_file}, {peer.n_threads} thread(s)"
    table = Table(title=Text(title), caption=Text(f"adapter: {peer.adapter}"))
    table.add_column("figure")
    table.add_column("llama.cpp", justify="right")
    table.add_column("whazzat", justify="right")
    table.add_column("whazzat vs llama.cpp", justify="right")
    for key, label, get, _higher in _PEER_FIGURES:
        ratio = peer.speedup.get(key)
        shown = "-" if ratio is None else f"{ratio:.2f}x"
        table.add_row(label, _format(get(peer)), _format(get(whazzat)), shown)
    if peer.same_products_as_whazzat is not None and peer.products is not None:
        same = f"{peer.same_products_as_whazzat}/{len(peer.products)}"
        table.add_row("needs with whazzat's product types", same, "-", "-")
    if peer.products_jaccard_with_whazzat is not None:
        shared = f"{peer.products_jaccard_with_whazzat:.2f}"
        table.add_row("product types shared with whazzat's (Jaccard)", shared, "-", "-")
    if peer.chain_tokens_per_s is not None:
        table.add_row("chain generation tokens/s (prefill in)", _format(peer.chain_tokens_per_s), "-", "-")
    console.print(table)
    if (why := decode_gap(peer, whazzat)) is not None:
        console.print(why, highlight=False)


def decode_gap(peer: LlamaCppPeer, whazzat: PipelineFigures) -> str | None:
    """Where whazzat's decode step goes, beside llama.cpp's whole step: the measured reason for the gap."""
    ours, theirs = whazzat.decode, peer.decode
    if ours is None or theirs is None or ours.step_ms is None or ours.linear_layers_ms is None:
        return None
    their_step = 1e3 / theirs.tokens_per_s
    return (
        f"decode step, batch 1: llama.cpp {their_step:.1f} ms in all; whazzat {ours.step_ms:.1f} ms, of which "
        f"{ours.linear_layers_ms:.1f} ms in its {ours.linear_layers} linear layers called alone "
        f"({ours.linear_layers_ms / their_step:.2f}x llama.cpp's whole step) and "
        f"{ours.step_ms - ours.linear_layers_ms:.1f} ms in the rest (attention, norms, sampling, Python)"
    )


def print_table(result: BenchResult) -> None:
    """The figures side by side, then the machine, the hardware bound and the settings (stdout)."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    machine = result.machine
    console.print(
        f"{result.needs.count} needs from {result.needs.source} ({result.needs.batch_count} in batch mode), "
        f"axesso delay {result.needs.axesso_delay_s:g} s; "
        f"{machine.cpu_model}, {machine.logical_cores} cores, torch threads {machine.torch_threads}",
        highlight=False,
    )
    table = Table(title="whazzat bench")
    table.add_column("figure")
    table.add_column("baseline", justify="right")
    table.add_column("whazzat", justify="right")
    table.add_column("speed-up", justify="right")
    for key, label, get, _higher in _FIGURES:
        speedup = result.speedup.get(key)
        table.add_row(
            label,
            _format(get(result.baseline)),
            _format(get(result.whazzat)),
            "-" if speedup is None else f"{speedup:.2f}x",
        )
        if key == "latency_p50_links" and result.reference is not None:
            table.add_row(*_reference_row(result.reference))
        if key == "needs_per_s_links" and (row := _workers_row(result)) is not None:
            table.add_row(*row)
    console.print(table)
    _print_workers_note(console, result.workers)
    if result.llamacpp is not None:
        _print_peer(console, result.llamacpp, result.whazzat)
    if result.hardware is not None:
        console.print(
            f"memory bandwidth {result.hardware.bandwidth_gb_s:.1f} GB/s ({result.hardware.bandwidth_method})",
            highlight=False,
        )
    for name, figures in (("baseline", result.baseline), ("whazzat", result.whazzat)):
        if figures.decode is not None:
            d = figures.decode
            console.print(
                f"{name}: {d.weight_bytes_per_token / 1e6:.0f} MB of weights per token, bound "
                f"{d.bound_tokens_per_s:.1f} tok/s, measured {d.tokens_per_s:.1f} tok/s "
                f"({100 * d.fraction_of_bound:.0f}% of the bound)"
                + (f"; one step {d.step_ms:.1f} ms, of which its {d.linear_layers} linear layers called alone "
                   f"{d.linear_layers_ms:.1f} ms" if d.step_ms is not None and d.linear_layers_ms is not None else ""),
                highlight=False,
            )
    if result.quality is not None:
        q = result.quality
        console.print(
            f"quality on {q.needs} needs: hit@5 {q.whazzat.hit_at_5:.3f} vs reference {q.reference.hit_at_5:.3f} "
            f"({q.hit_at_5_delta_points:+.1f} points), precision@5 {q.whazzat.precision_at_5:.3f} vs "
            f"{q.reference.precision_at_5:.3f} ({q.precision_at_5_delta_points:+.1f} points)",
            highlight=False,
        )
    whazzat = result.settings["whazzat"]
    console.print(
        "whazzat settings: "
        + ", ".join(
            f"{key}={whazzat.get(key)}"
            for key in (
                "paraphrases",
                "rewrite_strategy",
                "quantize",
                "batch_size",
                "torch_threads",
                "search_concurrency",
            )
        ),
        highlight=False,
    )
    console.print(
        f"bench process peak RSS {result.bench_peak_rss_mb:.0f} MB; wall {result.wall_s:.0f} s; "
        f"skipped: {', '.join(result.skipped) or 'nothing'}",
        highlight=False,
    )
