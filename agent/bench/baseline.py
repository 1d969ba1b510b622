"""The original Whazzat's way of working (a 2023 course project), re-implemented with transformers directly.

The bench's baseline does the same work as Whazzat (same model and adapter, same prompts, same parsing,
same number of paraphrases, same search backend) the way the original project did it:

* the LoRA adapter wraps the model as a ``PeftModel``, not merged into the weights;
* one ``generate`` call per prompt: the rewrite as one long answer, then each suggest prompt (the need's
  and every paraphrase's) one after another;
* sampling with ``top_k=10`` and ``max_length=250`` counting the prompt, so an answer that does not stop
  by itself runs on to the limit;
* one search call per product type, one after another, no cache; results sorted cheapest first.

Product types still go through our parser and a cheap fold of duplicates (no MiniLM), so both pipelines
search a comparable number of product types.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from agent.core.schemas import Listing, Recommendation
from agent.pipeline.dedup import merge_suggestions
from agent.pipeline.parsing import parse_paraphrases, parse_products
from agent.pipeline.prompts import load_template, render_prompt
from tools.base import SearchBackend, SearchQuery

if TYPE_CHECKING:
    from agent.core.config import Settings


class BaselineConfig(BaseModel):
    """How the baseline generates and searches (reported with the figures)."""

    model_config = ConfigDict(extra="forbid")

    adapter: str = Field(default="PeftModel, not merged", description="How the LoRA adapter is applied.")
    do_sample: bool = True
    top_k: int = 10
    max_length: int | None = Field(default=250, description="Token limit counting the prompt.")
    max_new_tokens: int | None = Field(
        default=None, description="Used instead of max_length when set (tests)."
    )
    prompts_per_generate: int = 1
    search: str = "one call per product type, one after another, no cache"
    ranking: str = "cheapest first"


def load_baseline_model(settings: Settings) -> tuple[Any, Any]:
    """The base model with the adapter wrapped, not merged, and its tokenizer (fp32, eval mode)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from agent.models.llm import resolve_model

    if settings.torch_threads:  # a machine setting, not a method: both pipelines run with the same
        import torch

        torch.set_num_threads(settings.torch_threads)
    base, adapter = resolve_model(settings)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base)
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    model.eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


class BaselinePipeline:
    """Answers one need at a time, the original project's way; returns our :class:`Recommendation`."""

    def __init__(
        self,
        settings: Settings,
        model: Any,
        tokenizer: Any,
        backend: SearchBackend,
        config: BaselineConfig | None = None,
    ) -> None:
        self.settings = settings
        self.model = model
        self.tokenizer = tokenizer
        self.backend = backend
        self.config = config or BaselineConfig()

    @classmethod
    def load(
        cls, settings: Settings, backend: SearchBackend | None = None, config: BaselineConfig | None = None
    ) -> BaselinePipeline:
        """Load the model (unmerged adapter); the links backend unless ``backend`` is given."""
        from tools.links import LinksBackend

        model, tokenizer = load_baseline_model(settings)
        return cls(settings, model, tokenizer, backend or LinksBackend(), config)

    def with_backend(self, backend: SearchBackend) -> BaselinePipeline:
        """The same loaded model searching elsewhere."""
        return BaselinePipeline(self.settings, self.model, self.tokenizer, backend, self.config)

    def generate(self, prompt: str) -> tuple[str, bool]:
        """One generate call for one prompt: (the answer's text, whether it hit the token limit)."""
        import torch

        inputs = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        limits: dict[str, int] = (
            {"max_new_tokens": self.config.max_new_tokens}
            if self.config.max_new_tokens
            else {"max_length": self.config.max_length or 250}
        )
        sampling: dict[str, Any] = (
            {"do_sample": True, "top_k": self.config.top_k} if self.config.do_sample else {"do_sample": False}
        )
        with torch.inference_mode():
            output = self.model.generate(
                **inputs, **limits, **sampling, pad_token_id=self.tokenizer.pad_token_id
            )
        new_tokens = output[0, inputs["input_ids"].shape[1] :]
        limit = limits.get("max_new_tokens") or limits["max_length"] - inputs["input_ids"].shape[1]
        text = self.tokenizer.decode(new_tokens, skip_special_tokens=True)
        return text, len(new_tokens) >= limit

    def answer(self, need: str) -> Recommendation:
        """The whole pipeline for one need, stage by stage, timed."""
        started = time.perf_counter()
        timings: dict[str, float] = {}

        def lap(stage: str, since: float) -> float:
            now = time.perf_counter()
            timings[stage] = round(now - since, 4)
            return now

        mark = started
        n = self.settings.paraphrases
        paraphrases: list[str] = []
        if n:
            prompt = render_prompt(self.tokenizer, "rewrite", need=need, n=n)
            text, _ = self.generate(prompt)
            echoed = tuple(
                message["content"] for message in load_template("rewrite").messages(need=need, n=n)
            )
            paraphrases = parse_paraphrases(text, need, n, echoed=echoed)
        mark = lap("rewrite", mark)

        proposals = []
        for asked in [need, *paraphrases]:  # one generate call per prompt, one after another
            text, cut = self.generate(render_prompt(self.tokenizer, "suggest", need=asked))
            proposals.append((asked, parse_products(text, truncated=cut)))
        mark = lap("suggest", mark)

        suggestions = merge_suggestions(
            proposals,
            fuzzy_threshold=self.settings.fuzzy_threshold,
            semantic_threshold=None,
            limit=self.settings.max_products,
        )
        mark = lap("dedup", mark)

        listings: list[Listing] = []
        warnings: list[str] = []
        for suggestion in suggestions:  # sequential: each call waits for the one before
            outcome = self.backend.search(
                SearchQuery(keyword=suggestion.product, domain=self.settings.domain)
            )
            listings.extend(outcome.listings)
            warnings.extend(outcome.warnings)
        mark = lap("search", mark)

        listings.sort(key=lambda listing: (listing.price is None, listing.price or 0.0))
        lap("rank", mark)
        timings["total"] = round(time.perf_counter() - started, 4)
        return Recommendation(
            need=need,
            paraphrases=paraphrases,
            suggestions=suggestions,
            listings=listings[: self.settings.top_k],
            warnings=warnings,
            timings=timings,
        )
