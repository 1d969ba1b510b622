"""``whazzat bench`` on a tiny random Llama: behaviour only, never timings.

The whole bench runs once (module fixture, a child process like a user's) on 2 needs with a 0.01 s Axesso
delay and must print exactly one JSON object with every figure present, the real ``whazzat batch --workers 2``
row included; a second, partial run adds a ``--compare-set`` reference and must report its latency too (and
leaves the workers row out with ``--skip workers``). The other tests check the parts:
the bound's arithmetic, the baseline's way of working, the fake Axesso, and that the fast settings give
the same greedy answers as the slow ones where they should (merged vs unmerged adapter, batched vs alone).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from agent.bench.figures import BenchResult, Latency, PipelineFigures, percentile, speedups
from tests.tiny_models import make_random_lora, make_tiny_llama

NEEDS = ["something to dig food", "a quiet fan for my bedroom", "gift for a dad who loves fishing"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(tiny model dir, random LoRA adapter dir)."""
    root = tmp_path_factory.mktemp("bench-tiny")
    base = make_tiny_llama(root)
    return base, make_random_lora(base, root / "lora")


def tiny_settings(tiny: tuple[Path, Path], **overrides: object):
    """fp32 unless asked: dynamic int8 quantises activations with one scale per batch tensor, so its greedy
    answers may depend on the batch a prompt is in, and exact-equality checks need fp32."""
    from agent.core.config import get_settings

    values = {"model": str(tiny[0]), "adapter": str(tiny[1]), "semantic_dedup": False, "quantize": "none"}
    return get_settings(**{**values, **overrides})


# --- the whole bench, as a user runs it -----------------------------------------------------------------
def _child_env(root: Path) -> dict[str, str]:
    """A user's environment: no WHAZZAT_ variables (so no conftest memory_mode: the runs --set it) or key."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("WHAZZAT_") and key not in ("RAPIDAPI_KEY",)
    }
    env["WHAZZAT_HOME"] = str(root / "home")
    return env


@pytest.fixture(scope="module")
def bench_run(
    tiny: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[subprocess.CompletedProcess, Path]:
    root = tmp_path_factory.mktemp("bench-run")
    env = _child_env(root)
    out = root / "bench.json"
    command = [
        sys.executable,
        "-m",
        "agent",
        "bench",
        "--model",
        str(tiny[0]),
        "--adapter",
        str(tiny[1]),
        "--n",
        "2",
        "--batch-n",
        "3",
        "--delay",
        "0.01",
        "--json",
        "--out",
        str(out),
        "--set",
        "paraphrases=1",
        "--set",
        "semantic_dedup=false",
        "--set",
        "memory_mode=model",  # the model alone: the default memory would embed the whole dataset
        "--decode-tokens",
        "8",
        "--bandwidth-mb",
        "16",
        "--cli-repeats",
        "1",
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, check=False)
    return done, out


def test_bench_prints_one_json_object_with_every_figure(bench_run) -> None:
    done, out = bench_run
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(done.stdout.strip().splitlines()) == 1  # nothing else on stdout
    data = json.loads(done.stdout)
    result = BenchResult.model_validate(data)  # every field of the right type
    assert json.loads(out.read_text()) == data  # --out holds the same object
    assert result.skipped == [] and result.quality is None
    assert result.reference is None  # no --compare-set: no reference timed
    assert result.needs.count == 2 and result.needs.axesso_delay_s == 0.01
    assert result.needs.batch_count == 3  # --batch-n: only whazzat's batch runs take the larger sample
    assert "--batch-n 3" in result.command
    for figures in (result.baseline, result.whazzat):
        for name in PipelineFigures.model_fields:
            assert getattr(figures, name) is not None, name  # nothing skipped: every figure measured
        for latency in (figures.latency_links, figures.latency_axesso):
            assert len(latency.per_need_s) == 2 and 0 < latency.p50_s <= latency.p95_s
        assert figures.needs_per_s_links > 0 and figures.needs_per_s_axesso > 0
        assert figures.load_cold_s > 0 and figures.load_warm_s > 0 and figures.cli_help_s > 0
        assert figures.peak_rss_ask_mb > 50  # a process that loaded torch
        assert list(figures.products) == list(result.whazzat.products) and len(figures.products) == 2
    assert set(result.speedup) >= {
        "latency_p50_links",
        "latency_p50_axesso",
        "needs_per_s_links",
        "decode_tokens_per_s",
        "load_warm_s",
        "cli_help_s",
        "peak_rss_ask_mb",
    }
    assert result.settings["baseline"]["max_length"] == 250 and result.settings["baseline"]["top_k"] == 10
    assert result.settings["whazzat"]["adapter_merged"] is True
    assert "RAPIDAPI_KEY" not in done.stdout and "whazzat-bench-fake-key" not in done.stdout
    assert result.bench_peak_rss_mb > 0 and result.machine.logical_cores >= 1
    # The llama.cpp peer runs the shipped GGUF only: on a tiny model it is skipped, saying why.
    assert result.llamacpp is not None and "has none" in (result.llamacpp.skipped or "")


@pytest.fixture(scope="module")
def compare_run(
    tiny: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> subprocess.CompletedProcess:
    """The links phase only, with a reference that differs in paraphrases (and so shares the loaded model)."""
    root = tmp_path_factory.mktemp("bench-compare")
    command = [sys.executable, "-m", "agent", "bench", "--model", str(tiny[0]), "--adapter", str(tiny[1])]
    command += ["--n", "2", "--json", "--set", "paraphrases=1", "--set", "semantic_dedup=false"]
    command += ["--set", "memory_mode=model", "--compare-set", "paraphrases=0"]
    for part in ("load", "cli", "rss", "axesso", "decode", "workers"):
        command += ["--skip", part]
    env = _child_env(root)
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, check=False)


def test_compare_set_times_the_reference_right_after_whazzat(compare_run, capsys, monkeypatch) -> None:
    from agent.bench.figures import print_table

    monkeypatch.setenv("COLUMNS", "200")  # rich would wrap the row's label at its default 80 columns
    assert compare_run.returncode == 0, compare_run.stderr[-2000:]
    result = BenchResult.model_validate_json(compare_run.stdout)
    reference = result.reference
    assert reference is not None and reference.settings == {"paraphrases": 0}  # only what differs
    assert reference.shares_model is True  # same model settings: whazzat's loaded model, no second load
    assert len(reference.latency_links.per_need_s) == 2 and reference.latency_links.p50_s >= 0
    assert reference.whazzat_p50_over_reference_p50 > 0 and reference.products_per_need >= 0
    assert "--compare-set paraphrases=0" in result.command
    assert result.quality is not None  # --compare-set still implies --quality
    stderr = compare_run.stderr
    assert stderr.index("whazzat: 2 needs one after another, links") < stderr.index("reference: 2 needs")
    assert stderr.index("reference: 2 needs") < stderr.index("whazzat: batch mode")
    print_table(result)  # the table shows it as a row under whazzat's own p50
    table = capsys.readouterr().out
    assert "reference paraphrases=0" in table and "p50 latency per need, links" in table


def test_skip_workers_leaves_the_row_out_and_says_so(compare_run, capsys, monkeypatch) -> None:
    from agent.bench.figures import print_table

    monkeypatch.setenv("COLUMNS", "200")
    result = BenchResult.model_validate_json(compare_run.stdout)
    assert "workers" in result.skipped and "--skip workers" in result.command
    assert result.workers is not None and result.workers.skipped == "--skip workers"
    assert result.workers.needs_per_s_workers is None and result.workers.wall_s is None
    assert result.speedup["needs_per_s_workers"] is None
    assert "whazzat batch --workers" not in compare_run.stderr  # no child was started
    print_table(result)
    table = capsys.readouterr().out
    assert "--workers row skipped: --skip workers" in table and "links, --workers" not in table


def test_workers_zero_is_a_skip_too() -> None:
    from agent.bench.workers_row import workers_row

    said: list[str] = []
    row = workers_row(0, False, NEEDS, {}, said.append)
    assert row.skipped == "--workers 0" and row.needs_per_s_workers is None and said == []


def test_a_reference_with_other_model_settings_loads_its_own(tiny: tuple[Path, Path]) -> None:
    from agent.bench.runner import _reference_latency
    from agent.models.llm import load_llm

    settings = tiny_settings(tiny, paraphrases=0, max_new_tokens_suggest=16)
    reference = tiny_settings(tiny, paraphrases=0, max_new_tokens_suggest=16, quantize="int8")
    timed = _reference_latency(NEEDS[:2], settings, reference, load_llm(settings), 1.0, lambda message: None)
    assert timed.shares_model is False and timed.settings == {"quantize": "int8"}
    assert len(timed.latency_links.per_need_s) == 2 and timed.whazzat_p50_over_reference_p50 > 0


def test_hardware_bound_is_positive(bench_run) -> None:
    result = BenchResult.model_validate_json(bench_run[0].stdout)
    assert result.hardware is not None and result.hardware.bandwidth_gb_s > 0
    for figures in (result.baseline, result.whazzat):
        decode = figures.decode
        assert decode.weight_bytes_per_token > 0 and decode.tokens_per_s > 0
        assert decode.bound_tokens_per_s > 0 and decode.fraction_of_bound > 0
    # The unmerged adapter's LoRA matrices are read on every token too.
    assert result.baseline.decode.weight_bytes_per_token > result.whazzat.decode.weight_bytes_per_token


def test_progress_goes_to_stderr(bench_run) -> None:
    stderr = bench_run[0].stderr
    for phase in (
        "CLI start time",
        "model load",
        "peak RSS",
        "decode rate",
        "warm-up",
        "links backend",
        "axesso backend",
        "batch mode",
    ):
        assert phase in stderr


# --- the --workers row ------------------------------------------------------------------------------------
def test_workers_row_times_the_real_batch_command(bench_run, tiny, capsys, monkeypatch) -> None:
    from agent.bench.figures import print_table

    monkeypatch.setenv("COLUMNS", "200")
    done, _ = bench_run
    result = BenchResult.model_validate_json(done.stdout)
    workers = result.workers
    assert workers is not None and workers.skipped is None and workers.failed is None, workers
    assert (workers.workers, workers.needs, workers.records) == (2, 3, 3)  # the --batch-n needs, one each
    assert workers.needs_per_s_workers > 0 and workers.wall_s > 0
    assert workers.command == "whazzat batch needs.txt --out out.jsonl --workers 2 --quiet"
    env = workers.environment  # the whazzat side's settings, and generation, not answer-cache reads
    assert env["WHAZZAT_MODEL"] == str(tiny[0]) and env["WHAZZAT_ADAPTER"] == str(tiny[1])
    assert env["WHAZZAT_PARAPHRASES"] == "1" and env["WHAZZAT_MEMORY_MODE"] == "model"
    assert env["WHAZZAT_ANSWER_CACHE_DAYS"] == "0" and env["WHAZZAT_BACKEND"] == "links"
    assert result.speedup["needs_per_s_workers"] == pytest.approx(
        workers.needs_per_s_workers / result.baseline.needs_per_s_links, rel=1e-2
    )
    assert "whazzat batch --workers 2, 3 needs" in done.stderr
    print_table(result)
    table = capsys.readouterr().out
    assert "batch needs/s, links, --workers 2" in table and "each worker's model load included" in table


#: A stand-in for ``whazzat batch``: copies the needs file to JSON records, after checking the settings it
#: was given; argv: needs file, out file, then what to do (ok, short, errors).
_FAKE_BATCH = r"""
import json, os, sys
needs = open(sys.argv[1], encoding="utf-8").read().splitlines()
if os.environ["WHAZZAT_ANSWER_CACHE_DAYS"] != "0" or os.environ["WHAZZAT_BACKEND"] != "links":
    sys.exit("the answer cache is on or the backend is not links")
if os.environ.get("WHAZZAT_PARAPHRASES") != "3" or os.environ.get("WHAZZAT_NO_ADAPTER") != "true":
    sys.exit("the whazzat side's settings did not arrive")
if sys.argv[3] == "short":
    needs = needs[:1]
failed = sys.argv[3] == "errors"
records = [{"need": need, "error": "model crashed"} if failed else {"need": need} for need in needs]
with open(sys.argv[2], "w", encoding="utf-8") as out:
    out.writelines(json.dumps(record) + "\n" for record in records)
"""


def _fake_batch(mode: str):
    return lambda needs, out, workers: [sys.executable, "-c", _FAKE_BATCH, str(needs), str(out), mode]


_OVERRIDES = {"paraphrases": "3", "no_adapter": True, "answer_cache_days": "30", "backend": "axesso"}


def test_workers_row_gives_the_child_the_settings_and_counts_its_records() -> None:
    from agent.bench.workers_row import run_workers_batch

    row = run_workers_batch(NEEDS, _OVERRIDES, 2, command=_fake_batch("ok"))
    assert row.failed is None, row.failed
    assert row.records == 3 and row.needs == 3 and row.needs_per_s_workers > 0
    assert row.environment["WHAZZAT_ANSWER_CACHE_DAYS"] == "0"  # forced over the bench's own --set


@pytest.mark.parametrize(
    ("mode", "reason"),
    [("short", "1 records for 3 needs"), ("errors", "3 of 3 records are errors, e.g. model crashed")],
)
def test_a_batch_without_one_good_record_per_need_gives_no_rate(mode: str, reason: str) -> None:
    from agent.bench.workers_row import run_workers_batch

    row = run_workers_batch(NEEDS, _OVERRIDES, 2, command=_fake_batch(mode))
    assert row.needs_per_s_workers is None and row.failed is not None and reason in row.failed


def test_a_failing_batch_gives_its_last_stderr_line_not_a_traceback(bench_run, capsys, monkeypatch) -> None:
    from agent.bench.figures import print_table
    from agent.bench.workers_row import run_workers_batch

    stderr = 'Loading: 9%\rLoading: 100%\nTraceback (most recent call last):\n  File "x.py"\n'
    stderr += "MemoryError: out of memory\n"
    crash = f"import sys; sys.stderr.write({stderr!r}); sys.exit(3)"
    row = run_workers_batch(NEEDS, {}, 2, command=lambda *_: [sys.executable, "-c", crash])
    assert row.failed == "exit 3: MemoryError: out of memory"
    assert row.needs_per_s_workers is None and row.wall_s > 0
    stuck = run_workers_batch(
        NEEDS, {}, 2, command=lambda *_: [sys.executable, "-c", "import time; time.sleep(30)"], timeout_s=0.5
    )
    assert stuck.failed is not None and "no result after 0.5 s" in stuck.failed
    # The table shows the row as failed and says why, and the bench's speed-up has no figure for it.
    monkeypatch.setenv("COLUMNS", "200")
    result = BenchResult.model_validate_json(bench_run[0].stdout)
    failed = result.model_copy(
        update={"workers": row, "speedup": {**result.speedup, "needs_per_s_workers": None}}
    )
    print_table(failed)
    table = capsys.readouterr().out
    assert "--workers 2 row failed: exit 3: MemoryError: out of memory" in table
    assert "Traceback" not in table
    line = next(line for line in table.splitlines() if "links, --workers 2" in line)
    assert "failed" in line


def test_workers_option_reaches_the_bench(monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.bench import runner

    seen = {}

    def capture(options, say):
        seen["options"] = options
        raise runner.BenchError("stop here")

    monkeypatch.setattr(runner, "run_bench", capture)
    assert CliRunner().invoke(_app(), ["--n", "1", "--workers", "3"]).exit_code == 2
    assert seen["options"].workers == 3 and "--workers 3" in seen["options"].command
    assert CliRunner().invoke(_app(), ["--n", "1"]).exit_code == 2
    assert seen["options"].workers == 2 and "--workers" not in seen["options"].command  # the default
    assert CliRunner().invoke(_app(), ["--workers", "-1"]).exit_code == 2


# --- figures ---------------------------------------------------------------------------------------------
def test_percentiles_interpolate_like_numpy() -> None:
    assert percentile([1.0, 2.0], 50) == 1.5
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([1.0, 2.0], 95) == pytest.approx(1.95)
    latency = Latency.of([2.0, 1.0])
    assert (latency.p50_s, latency.mean_s, latency.per_need_s) == (1.5, 1.5, [2.0, 1.0])


def _figures(**values: object) -> PipelineFigures:
    base = {"latency_links": Latency.of([1.0]), "needs_per_s_links": 1.0, "products_per_need": 1.0, "products": {}}
    return PipelineFigures(**{**base, **values})


def test_speedups_read_as_times_better() -> None:
    baseline = _figures(latency_links=Latency.of([6.0]), needs_per_s_links=0.5, cli_help_s=4.0)
    whazzat = _figures(latency_links=Latency.of([1.5]), needs_per_s_links=2.0, cli_help_s=None)
    result = speedups(baseline, whazzat)
    assert result["latency_p50_links"] == 4.0  # a time: baseline / whazzat
    assert result["needs_per_s_links"] == 4.0  # a rate: whazzat / baseline
    assert result["cli_help_s"] is None and result["latency_p50_axesso"] is None  # skipped sides


# --- hardware ------------------------------------------------------------------------------------------------
def test_weight_bytes_count_what_a_token_reads(tiny: tuple[Path, Path]) -> None:
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    from agent.bench.hardware import measure_bandwidth, weight_bytes_per_token

    model = AutoModelForCausalLM.from_pretrained(tiny[0])
    embedding = model.get_input_embeddings().weight
    total = sum(p.numel() for p in model.parameters())
    assert weight_bytes_per_token(model) == 4 * (total - embedding.numel())  # fp32, embedding rows excluded

    tied = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=100,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            tie_word_embeddings=True,
        )
    )
    unique = sum(p.numel() for p in tied.parameters())  # parameters() yields a tied weight once
    assert weight_bytes_per_token(tied) == 4 * unique  # the tied matrix is read once, as lm_head

    int8 = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    assert weight_bytes_per_token(int8) == weight_bytes_per_token(model) - 3 * linear  # 1 byte, not 4
    assert measure_bandwidth(megabytes=4, repeats=1) > 0


def test_decode_rate_is_measured_against_a_positive_bound(tiny: tuple[Path, Path]) -> None:
    from agent.bench.hardware import decode_figures
    from agent.models.llm import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(tiny_settings(tiny))
    figures = decode_figures(model, tokenizer, bandwidth_gb_s=10.0, new_tokens=4)
    assert figures.tokens_per_s > 0 and figures.bound_tokens_per_s > 0 and figures.fraction_of_bound > 0
    assert figures.bound_tokens_per_s == pytest.approx(10e9 / figures.weight_bytes_per_token, rel=1e-3)
    assert figures.step_ms is None  # the step split is asked for

    split = decode_figures(model, tokenizer, bandwidth_gb_s=10.0, new_tokens=4, split_step=True)
    assert split.linear_layers == 2 * 7 + 1 and 0 < split.linear_layers_ms and 0 < split.step_ms


def test_the_step_split_counts_an_unmerged_loras_parts_once_each(tiny: tuple[Path, Path]) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from agent.bench.hardware import step_split_ms

    base = AutoModelForCausalLM.from_pretrained(tiny[0])
    model = PeftModel.from_pretrained(base, tiny[1])
    split = step_split_ms(model, AutoTokenizer.from_pretrained(tiny[0]), steps=2)
    # 2 layers of 7 projections and lm_head, plus A and B of the 3 adapted projections per layer; the
    # LoRA wrappers themselves are not called again on top of their parts.
    assert split["linear_layers"] == 2 * 7 + 1 + 2 * 3 * 2


def test_the_decode_gap_to_llama_cpp_is_told_from_the_measured_step_split() -> None:
    from agent.bench.figures import Decode, LlamaCppPeer, decode_gap

    def decode(rate: float, **split: float) -> Decode:
        return Decode(new_tokens=8, tokens_per_s=rate, weight_bytes_per_token=10**8, bound_tokens_per_s=100.0,
                      fraction_of_bound=rate / 100, **split)

    whazzat = PipelineFigures.model_construct(decode=decode(40.0, step_ms=25.0, linear_layers_ms=15.0,
                                                            linear_layers=211))
    peer = LlamaCppPeer.model_construct(decode=decode(100.0))
    why = decode_gap(peer, whazzat)
    assert why is not None
    assert "llama.cpp 10.0 ms in all" in why and "whazzat 25.0 ms" in why
    assert "15.0 ms in its 211 linear layers" in why and "1.50x llama.cpp's whole step" in why
    assert "10.0 ms in the rest" in why
    assert decode_gap(peer, PipelineFigures.model_construct(decode=decode(40.0))) is None  # no split measured


@pytest.mark.parametrize("lever", ["int8", "int8-dynamic", "int8-static-cache", "bf16"])
def test_each_decode_lever_reports_its_rate_against_its_own_bound(tiny: tuple[Path, Path], lever: str) -> None:
    from agent.bench.decode_levers import LEVERS, measure

    row = measure(lever, 10.0, 4, model=str(tiny[0]), adapter=str(tiny[1]))
    assert row["lever"] == lever and row["what"] == LEVERS[lever][1]
    assert row["tokens_per_s"] > 0 and row["fraction_of_bound"] > 0
    assert row["bound_tokens_per_s"] == round(10.0e9 / row["weight_bytes_per_token"], 2)
    if lever == "int8":  # the step split: every linear layer counted, the step no faster than its parts
        assert row["linear_layers"] == 2 * 7 + 1  # 2 layers of q, k, v, o, gate, up, down, and lm_head
        assert 0 < row["linear_layers_ms"] and 0 < row["step_ms"]
    if lever == "bf16":  # half of fp32's weight bytes
        fp32 = measure("fp32", 10.0, 4, model=str(tiny[0]), adapter=str(tiny[1]))
        assert row["weight_bytes_per_token"] * 2 == fp32["weight_bytes_per_token"]


def test_a_child_reports_its_own_peak_rss_not_the_parents() -> None:
    from agent.bench.probes import run_measured

    hook = "import atexit; from agent.bench.probes import report_peak_rss; atexit.register(report_peak_rss)"
    parent_sized = bytearray(300_000_000)  # noqa: F841 - Linux would carry this peak into wait4's ru_maxrss
    small = run_measured([sys.executable, "-c", hook])
    large = run_measured([sys.executable, "-c", hook + "; block = bytearray(200_000_000)"])
    assert small.returncode == 0 and large.returncode == 0
    assert small.peak_rss_mb < 200 < large.peak_rss_mb
    assert run_measured([sys.executable, "-c", "pass"]).peak_rss_mb is None  # no hook, no figure


# --- fast settings give the same answers as slow ones where they should -----------------------------------
@pytest.fixture(scope="module")
def suggest_prompts(tiny: tuple[Path, Path]) -> list[str]:
    from agent.models.llm import load_llm
    from agent.pipeline.prompts import render_prompt

    tokenizer = load_llm(tiny_settings(tiny)).pipeline.tokenizer
    return [render_prompt(tokenizer, "suggest", need=need) for need in NEEDS]


def test_merged_adapter_answers_like_the_unmerged_peft_model(tiny, suggest_prompts) -> None:
    from peft import PeftModel

    from agent.bench.baseline import BaselineConfig, BaselinePipeline
    from agent.models.llm import load_llm

    settings = tiny_settings(tiny)
    merged = load_llm(settings).bind(pipeline_kwargs={"max_new_tokens": 24})
    unmerged = BaselinePipeline.load(settings, config=BaselineConfig(do_sample=False, max_new_tokens=24))
    assert isinstance(unmerged.model, PeftModel)  # really not merged
    answers = [merged.invoke(prompt) for prompt in suggest_prompts]
    assert all(answer.strip() for answer in answers)
    assert [unmerged.generate(prompt)[0] for prompt in suggest_prompts] == answers
    # ...and the adapter matters: without it the model answers otherwise.
    plain = load_llm(tiny_settings(tiny, no_adapter=True)).bind(pipeline_kwargs={"max_new_tokens": 24})
    assert [plain.invoke(prompt) for prompt in suggest_prompts] != answers


def test_one_batched_generate_answers_like_one_prompt_at_a_time(tiny, suggest_prompts) -> None:
    from agent.models.llm import load_llm

    llm = load_llm(tiny_settings(tiny)).bind(pipeline_kwargs={"max_new_tokens": 24})
    assert llm.batch(suggest_prompts) == [llm.invoke(prompt) for prompt in suggest_prompts]


def test_chain_batch_gives_the_product_types_of_invoke(tiny: tuple[Path, Path]) -> None:
    from agent.pipeline.chain import build_chain
    from tools.links import LinksBackend

    chain = build_chain(
        tiny_settings(tiny, paraphrases=2, max_new_tokens_rewrite=24, max_new_tokens_suggest=16),
        backend=LinksBackend(),
    )
    batched = chain.batch(NEEDS)
    alone = [chain.invoke(need) for need in NEEDS]
    assert [r.paraphrases for r in batched] == [r.paraphrases for r in alone]
    assert [r.products for r in batched] == [r.products for r in alone]


def test_parallel_rewrite_repeats_on_a_fixed_seed(tiny: tuple[Path, Path]) -> None:
    from agent.pipeline.chain import build_chain
    from tools.links import LinksBackend

    settings = tiny_settings(
        tiny,
        paraphrases=3,
        rewrite_strategy="parallel",
        seed=7,
        max_new_tokens_paraphrase=8,
        max_new_tokens_suggest=16,
    )
    chain = build_chain(settings, backend=LinksBackend())
    first, second = chain.invoke(NEEDS[0]), chain.invoke(NEEDS[0])
    assert (first.paraphrases, first.products) == (second.paraphrases, second.products)


# --- the baseline's way of working ----------------------------------------------------------------------------
def test_baseline_generates_per_prompt_and_searches_one_after_another(tiny: tuple[Path, Path]) -> None:
    from agent.bench.baseline import BaselinePipeline
    from tools.base import SearchBackend, SearchOutcome, SearchQuery
    from tools.links import LinksBackend

    class Recording(SearchBackend):
        name = "recording"

        def __init__(self) -> None:
            self.queries: list[str] = []

        def search(self, query: SearchQuery) -> SearchOutcome:
            self.queries.append(query.keyword)
            return LinksBackend().search(query)

        def search_many(self, queries):
            raise AssertionError("the baseline searches one query at a time")

    import transformers

    transformers.set_seed(0)
    backend = Recording()
    pipeline = BaselinePipeline.load(tiny_settings(tiny, paraphrases=1), backend=backend)
    calls: list[int] = []
    generate = pipeline.model.generate

    def counting_generate(**kwargs):
        calls.append(kwargs["input_ids"].shape[0])
        assert kwargs["max_length"] == 250 and kwargs["top_k"] == 10 and kwargs["do_sample"]
        return generate(**kwargs)

    pipeline.model.generate = counting_generate
    result = pipeline.answer(NEEDS[0])
    assert calls == [1] * (2 + len(result.paraphrases))  # the rewrite, then one call per suggest prompt
    assert backend.queries == result.products  # one search per product type, in order
    prices = [listing.price for listing in result.listings]
    assert prices == sorted(prices, key=lambda p: (p is None, p or 0.0))


def test_fake_axesso_speaks_the_schema_and_the_baseline_never_reads_the_cache(tmp_path: Path) -> None:
    from agent.bench.fake_axesso import FakeAxesso
    from agent.bench.runner import _axesso_backend, _axesso_settings
    from agent.core.config import get_settings
    from tools.base import SearchQuery

    queries = [SearchQuery(keyword="garden trowel"), SearchQuery(keyword="hand rake")]
    with FakeAxesso(delay_s=0.01) as server:
        settings = _axesso_settings(get_settings(home=tmp_path), server.url, 0.01)
        uncached = _axesso_backend(settings, tmp_path / "baseline.sqlite3", reads=False)
        cached = _axesso_backend(settings, tmp_path / "whazzat.sqlite3")
        first = uncached.search(queries[0])
        assert first.warnings == [] and first.calls == 1
        assert all(listing.url.startswith("https://www.amazon.com/dp/") for listing in first.listings)
        assert len(first.listings) == 3 and first.listings[0].rating is not None
        assert uncached.search(queries[0]).calls == 1  # asked again: no cache
        cached.search_many(queries)
        assert cached.search_many(queries).cache_hits == 2  # whazzat: served from its cache
        assert server.calls == 4


def test_quality_scores_both_setting_sets_on_the_same_needs(tiny: tuple[Path, Path]) -> None:
    from agent.bench.runner import BenchError, BenchOptions, NeedItem, _quality
    from agent.models.llm import load_llm

    overrides = {
        "model": str(tiny[0]),
        "adapter": str(tiny[1]),
        "paraphrases": "1",
        "semantic_dedup": "false",
        "max_new_tokens_rewrite": "16",
        "max_new_tokens_paraphrase": "8",
        "max_new_tokens_suggest": "16",
    }
    options = BenchOptions(
        overrides=overrides, quality=True, compare_overrides={"rewrite_strategy": "parallel"}
    )
    settings = tiny_settings(tiny, paraphrases=1, max_new_tokens_rewrite=16, max_new_tokens_suggest=16)
    items = [NeedItem(need=NEEDS[0], products=["garden trowel"]), NeedItem(need=NEEDS[1], products=["fan"])]
    quality = _quality(options, settings, items, load_llm(settings), lambda message: None)
    assert quality.needs == 2
    assert quality.whazzat.settings["rewrite_strategy"] == "list"  # both runs show the lever's value
    assert quality.reference.settings["rewrite_strategy"] == "parallel"
    assert 0 <= quality.whazzat.hit_at_5 <= 1 and 0 <= quality.reference.precision_at_5 <= 1
    with pytest.raises(BenchError, match="gold product types"):
        _quality(options, settings, [NeedItem(need=NEEDS[0])], None, lambda message: None)


# --- needs and the command line ------------------------------------------------------------------------------
def test_needs_from_jsonl_and_text(tmp_path: Path) -> None:
    from agent.bench.runner import DEFAULT_NEEDS, BenchError, load_needs

    default = load_needs(DEFAULT_NEEDS, 3)
    assert len(default) == 3 and all(item.products for item in default)  # the test split has gold types
    text = tmp_path / "needs.txt"
    text.write_text("a quiet fan\n\na quiet fan\nrunning shoes\n", encoding="utf-8")
    assert [item.need for item in load_needs(text, 5)] == ["a quiet fan", "running shoes"]
    with pytest.raises(BenchError):
        load_needs(tmp_path / "missing.txt", 2)


def _app() -> typer.Typer:
    from agent.cli.bench import bench

    app = typer.Typer()
    app.command()(bench)
    return app


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "not_a_setting=1"], "not a setting"),
        (["--set", "quantize"], "KEY=VALUE"),
        (["--set", "quantize=int4"], "quantize"),
        (["--skip", "everything"], "--skip takes"),
        (["--needs", "no/such/file.jsonl"], "no such file"),
    ],
)
def test_bad_options_fail_with_one_line(args: list[str], message: str) -> None:
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 2
    assert message in result.output


def test_a_failed_child_process_is_one_line_not_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.bench import probes, runner

    def child_fails(options, say):  # what a crashed probe child makes the runner raise
        return probes._checked(
            probes.ProcessRun(returncode=1, stdout="", stderr="MemoryError", wall_s=0.1, peak_rss_mb=None),
            "loading the whazzat model",
        )

    monkeypatch.setattr(runner, "run_bench", child_fails)
    result = CliRunner().invoke(_app(), ["--n", "1"])
    assert result.exit_code == 2
    assert "loading the whazzat model failed (exit 1): MemoryError" in result.output
    assert "Traceback" not in result.output


def test_the_command_module_imports_no_torch() -> None:
    code = "import sys, agent.cli.bench; sys.exit('torch' in sys.modules or 'transformers' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# --- the real embedded model ----------------------------------------------------------------------------------
@pytest.mark.integration
def test_bench_on_the_real_embedded_model(embedded_home: Path) -> None:
    """`whazzat bench --n 2 --json` on SmolLM2-135M with the shipped adapter. The fresh-process probes
    (load, CLI, RSS) are left out to stay near 3 minutes on 2 cores (the tiny-model test covers them, and
    tests/test_integration.py the GGUF conversion); the baseline alone samples up to 250 tokens per prompt."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("WHAZZAT_") and key != "RAPIDAPI_KEY"
    }
    env["WHAZZAT_HOME"] = str(embedded_home)
    command = [
        sys.executable,
        "-m",
        "agent",
        "bench",
        "--n",
        "2",
        "--json",
        "--delay",
        "0.05",
        "--set",
        "paraphrases=1",
        "--skip",
        "load",
        "--skip",
        "cli",
        "--skip",
        "rss",
        "--decode-tokens",
        "16",
        "--bandwidth-mb",
        "128",
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    result = BenchResult.model_validate_json(done.stdout)
    assert result.settings["whazzat"]["model"] == "embedded:smollm2-135m-instruct"
    assert result.skipped == ["cli", "load", "rss"]
    for figures in (result.baseline, result.whazzat):
        assert figures.latency_links.p50_s > 0 and figures.latency_axesso.p50_s > 0
        assert figures.needs_per_s_links > 0 and figures.needs_per_s_axesso > 0
        assert figures.load_warm_s is None and figures.peak_rss_ask_mb is None
    # ~135M parameters, the tied lm_head once: fp32 on the baseline side, 1 byte per linear weight on the
    # whazzat side when it quantizes (the default), still fp32 where it does not.
    assert 400e6 < result.baseline.decode.weight_bytes_per_token < 700e6
    int8 = result.settings["whazzat"].get("quantize") == "int8"
    low, high = (100e6, 400e6) if int8 else (400e6, 700e6)
    assert low < result.whazzat.decode.weight_bytes_per_token < high
    for figures in (result.baseline, result.whazzat):
        assert figures.decode.tokens_per_s > 0 and figures.decode.fraction_of_bound > 0
    if result.settings["whazzat"]["adapter_path"]:  # the shipped adapter: the fine-tuned model answers
        assert result.whazzat.products_per_need > 0
        assert result.baseline.decode.weight_bytes_per_token > result.whazzat.decode.weight_bytes_per_token
    assert result.hardware.bandwidth_gb_s > 0
