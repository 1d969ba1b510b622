"""The Whazzat chain: need → rewrite → retrieve → suggest → fuse → search → rank → :class:`Recommendation`.

Each stage is a LangChain runnable, so the chain supports ``invoke``, ``batch``, ``stream``,
``astream_events`` and callbacks (each stage shows up as its own run, named after the stage).
The stages are batch-aware: ``chain.batch(needs)`` sends the rewrite prompts of all needs in one
batched generate call, looks every need up in the need memory in one search (its paraphrases too with
``memory_queries="all"``), and sends the suggest prompts of all needs and all their paraphrases in one
more generate call. With ``need_prompt_with_rewrite`` each need's own suggest prompt goes in the
rewrite's call instead (the two do not depend on each other), and the need is looked up before it.

``memory_mode`` picks what answers: ``fused`` (default: the model reads the nearest known needs, and its
votes are fused with theirs), ``model`` (the model alone) or ``memory`` (the known needs' votes alone).

    from agent import build_chain
    chain = build_chain(paraphrases=2)
    chain.invoke("something to dig food").products
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.language_models import BaseLanguageModel
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda

from agent.core.concurrency import BatchingWorker, Memo
from agent.core.config import Settings, get_settings
from agent.core.schemas import Neighbour, Recommendation
from agent.pipeline.dedup import merge_suggestions
from agent.pipeline.fusion import FusionWeights, fuse, merge_neighbours
from agent.pipeline.parsing import parse_paraphrases, parse_products
from agent.pipeline.prompts import examples_from_neighbours, format_neighbours, load_template, render_prompt
from agent.pipeline.state import CHAIN_NAME, FINISH_NAME, ChainState, StageName
from agent.pipeline.validation import validate_need
from tools.base import SearchBackend, SearchQuery

if TYPE_CHECKING:
    from agent.pipeline.answer_cache import AnswerCache
    from agent.pipeline.fusion import Relevance
    from agent.pipeline.memory import NeedMemory

StageFunction = Callable[[list[ChainState], list[RunnableConfig]], list[ChainState]]

NO_PARAPHRASE_WARNING = "The rewrite step produced no usable paraphrase; the need was used alone."
NO_PRODUCT_WARNING = "The model proposed no usable product type for this need; try rephrasing it."


class Stage(Runnable[ChainState, ChainState]):
    """A named chain stage whose function sees the whole batch at once (so it can batch the model)."""

    def __init__(self, name: StageName, function: StageFunction) -> None:
        self.name = name
        self._function = function

    def invoke(self, input: ChainState, config: RunnableConfig | None = None, **kwargs: Any) -> ChainState:
        return self.batch([input], config)[0]

    def batch(
        self,
        inputs: list[ChainState],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[ChainState]:
        return self._batch_with_config(self._timed, inputs, config, return_exceptions=return_exceptions)

    def _timed(self, states: list[ChainState], config: list[RunnableConfig]) -> list[ChainState]:
        started = time.perf_counter()
        results = self._function(states, config)
        elapsed = round(time.perf_counter() - started, 4)
        for state in results:
            state.timings[self.name] = elapsed  # a batch shares one figure: the stage's wall time
        return results


def _start(need: object) -> ChainState:
    """Validate the input (a need string, or a mapping with a ``need`` key) into the chain's state."""
    if isinstance(need, dict):
        need = need.get("need")
    return ChainState(need=validate_need(need))


def _fusion_texts(states: list[ChainState]) -> list[str]:
    """Every string the fusion of these states compares: the types proposed, and the prompts."""
    from agent.pipeline.dedup import normalize_product

    texts: set[str] = set()
    for state in states:
        texts.update(state.asked)
        types = [p for _, products in state.proposals for p in products]
        types += [p for neighbour in state.neighbours for p in neighbour.products]
        texts.update(types)
        texts.update(normalize_product(p) for p in types)  # the semantic fold compares normalised keys
    return sorted(texts)


class WhazzatChain:
    """Builds the stages from settings, a language model and a search backend."""

    def __init__(
        self,
        settings: Settings,
        llm: BaseLanguageModel,
        backend: SearchBackend,
        similarity: Callable[[Sequence[str]], list[list[float]]] | None = None,
        memory: NeedMemory | None = None,
        relevance: Relevance | None = None,
        answer_cache: AnswerCache | None = None,
        generation_worker: BatchingWorker | None = None,
    ) -> None:
        self.settings = settings
        self.answer_cache = answer_cache
        self.generation_worker = generation_worker
        self.llm = llm
        self.backend = backend
        self.similarity = similarity
        self.memory = memory
        self.relevance = relevance
        # HuggingFacePipeline exposes the tokenizer (for the chat template and to detect cut-off
        # answers); fake LLMs in tests have none and get a plain prompt layout.
        self.tokenizer = getattr(llm, "tokenizer", None) or getattr(getattr(llm, "pipeline", None), "tokenizer", None)

    @property
    def uses_memory(self) -> bool:
        """Whether answers draw on the need memory (fused or memory alone), not on the model alone."""
        return self.memory is not None and self.settings.memory_mode != "model"

    def runnable(self) -> Runnable[Any, Recommendation]:
        # The model alone has no memory to look in: no retrieve stage, and no empty step in the UI.
        stages = [
            Stage("rewrite", self._rewrite),
            *([Stage("retrieve", self._retrieve)] if self.uses_memory else []),
            Stage("suggest", self._suggest),
            Stage("fuse", self._fuse),
            Stage("search", self._search),
            Stage("rank", self._rank),
        ]
        chain = RunnableLambda(_start, name="validate")
        for stage in stages:
            chain = chain | stage
        finish = RunnableLambda(ChainState.recommendation, name=FINISH_NAME)
        return (chain | finish).with_config(run_name=CHAIN_NAME)

    # --- stages ---------------------------------------------------------------------------------------
    def _generate(
        self,
        prompts: list[str],
        configs: list[RunnableConfig],
        max_new_tokens: int,
        sampling: dict[str, Any] | None = None,
    ) -> list[str]:
        """One batched call of the model; greedy unless ``sampling`` gives sampling parameters."""
        if not prompts:
            return []
        pipeline_kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, **(sampling or {})}
        bound = self.llm.bind(pipeline_kwargs=pipeline_kwargs)

        def run_model(asked: list[tuple[str, RunnableConfig]]) -> list[str]:
            """One batched call of the model on (prompt, config) pairs."""
            if sampling and self.tokenizer is not None:  # a local transformers model: make the sample repeatable
                from transformers import set_seed

                set_seed(self.settings.seed)
            # Prompts of similar length share a batch: a batch is padded to its longest prompt, so one
            # grounded prompt among plain ones would make the whole batch pay for its length.
            order = sorted(range(len(asked)), key=lambda i: len(asked[i][0]))
            answers = bound.batch([asked[i][0] for i in order], [asked[i][1] for i in order])
            by_index = dict(zip(order, answers, strict=True))
            return [str(getattr(by_index[i], "content", by_index[i])) for i in range(len(asked))]

        def call_model(positions: list[int]) -> list[str]:
            """The model's answers to the prompts at ``positions``: through the shared generation worker
            when there is one (merged with other chats' waiting prompts of the same kind), else directly."""
            asked = [(prompts[i], configs[i]) for i in positions]
            if self.generation_worker is None:
                return run_model(asked)
            kind = (id(self.llm), repr(sorted(pipeline_kwargs.items())), self.settings.seed if sampling else None)
            return self.generation_worker.run(kind, asked, run_model)

        if self.answer_cache is None:
            return call_model(list(range(len(prompts))))
        # The seed shapes sampled answers, so it is part of what they are stored under.
        shaping = {**pipeline_kwargs, "seed": self.settings.seed} if sampling else pipeline_kwargs
        return self.answer_cache.generate(prompts, shaping, call_model)

    def _rewrite(self, states: list[ChainState], configs: list[RunnableConfig]) -> list[ChainState]:
        n = self.settings.paraphrases
        if n == 0:
            return states
        rewriting = [(state, config) for state, config, worth in zip(states, configs, self._worth_rewriting(states),
                                                                     strict=True) if worth]
        if not rewriting:
            return states
        template = load_template("rewrite")
        prompts = [render_prompt(self.tokenizer, "rewrite", need=s.need, n=n) for s, _ in rewriting]
        rewrite_configs = [config for _, config in rewriting]
        if self.settings.rewrite_strategy == "parallel":
            answers = self._rewrite_in_parallel(prompts, rewrite_configs, n)
        elif self._asks_need_with_rewrite:
            answers = self._rewrite_and_ask_needs([s for s, _ in rewriting], prompts, rewrite_configs)
        else:
            answers = self._generate(prompts, rewrite_configs, self.settings.max_new_tokens_rewrite)
        for (state, _), answer in zip(rewriting, answers, strict=True):
            echoed = tuple(message["content"] for message in template.messages(need=state.need, n=n))
            state.paraphrases = parse_paraphrases(answer, state.need, n, echoed=echoed)
            if not state.paraphrases:
                state.warnings.append(NO_PARAPHRASE_WARNING)
        return states

    def _worth_rewriting(self, states: list[ChainState]) -> list[bool]:
        """Whether paraphrasing each need can still help: not when the need memory already holds a need at
        least ``rewrite_skip_similarity`` close, whose product types then carry the answer (one model call
        instead of two). The needs are looked up in one search, kept for the retrieve stage."""
        if not self.uses_memory or self.settings.rewrite_skip_similarity > 1:
            return [True] * len(states)
        self._look_up_needs(states)
        return [
            not (nearest := state.retrieved[state.need]) or nearest[0].similarity < self.settings.rewrite_skip_similarity
            for state in states
        ]

    def _look_up_needs(self, states: list[ChainState]) -> None:
        """Look up the needs not looked up yet in the need memory, in one search (kept for the retrieve stage)."""
        missing = [state for state in states if state.need not in state.retrieved]
        found = self.memory.search([state.need for state in missing], self.settings.neighbours_k) if missing else []
        for state, neighbours in zip(missing, found, strict=True):
            state.retrieved[state.need] = neighbours

    @property
    def _asks_need_with_rewrite(self) -> bool:
        """Whether each need's own suggest prompt is decoded in the rewrite's generate call (greedy 'list'
        rewrites only: a sampled call cannot carry a greedy prompt)."""
        return (self.settings.need_prompt_with_rewrite and self.settings.memory_mode != "memory"
                and self.settings.rewrite_strategy == "list")

    def _rewrite_and_ask_needs(
        self, states: list[ChainState], prompts: list[str], configs: list[RunnableConfig]
    ) -> list[str]:
        """The rewrite prompts and the needs' own suggest prompts in one generate call: the need's prompt
        does not wait for the paraphrases, and the suggest call that follows pads the short paraphrase
        prompts to their own length instead of to the long grounded need prompt. Each answer is cut to its
        own token limit. The needs' proposals are kept; the rewrite answers are returned."""
        if self.uses_memory:
            self._look_up_needs(states)
        need_prompts = self._suggest_prompts(states, [state.need for state in states])
        rewrite_limit, suggest_limit = self.settings.max_new_tokens_rewrite, self.settings.max_new_tokens_suggest
        answers = self._generate(prompts + need_prompts, configs + configs, max(rewrite_limit, suggest_limit))
        rewrites, need_answers = answers[: len(prompts)], answers[len(prompts):]
        for state, answer in zip(states, need_answers, strict=True):
            state.proposals.append((state.need, self._parse_suggestion(self._cut_to_tokens(answer, suggest_limit))))
        return [self._cut_to_tokens(answer, rewrite_limit) for answer in rewrites]

    def _rewrite_in_parallel(self, prompts: list[str], configs: list[RunnableConfig], n: int) -> list[str]:
        """N sampled answers per need, decoded side by side, each cut at its first line: N short
        sequences in one batch instead of one long answer decoded token by token."""
        repeated = [prompt for prompt in prompts for _ in range(n)]
        repeated_configs = [config for config in configs for _ in range(n)]
        sampling = {"do_sample": True, "temperature": self.settings.temperature, "top_p": 0.95,
                    "stop_sequence": "\n"}
        samples = self._generate(repeated, repeated_configs, self.settings.max_new_tokens_paraphrase, sampling)
        first_lines = [sample.strip().split("\n", 1)[0] for sample in samples]
        return ["\n".join(first_lines[i * n:(i + 1) * n]) for i in range(len(prompts))]

    def _retrieve(self, states: list[ChainState], configs: list[RunnableConfig]) -> list[ChainState]:
        """Look the need (and each paraphrase, if ``memory_queries`` is 'all') up in the need memory: one
        search for the whole batch (the needs the rewrite stage looked up already are not looked up again)."""
        asked = [(index, text) for index, state in enumerate(states) for text in self._memory_queries(state)
                 if text not in state.retrieved]
        found = self.memory.search([text for _, text in asked], self.settings.neighbours_k)
        for (index, text), neighbours in zip(asked, found, strict=True):
            states[index].retrieved[text] = neighbours
        for state in states:
            state.neighbours = merge_neighbours(list(state.retrieved.values()), self.settings.neighbours_k)
        return states

    def _memory_queries(self, state: ChainState) -> list[str]:
        return list(state.asked) if self.settings.memory_queries == "all" else [state.need]

    def _suggest(self, states: list[ChainState], configs: list[RunnableConfig]) -> list[ChainState]:
        if self.settings.memory_mode == "memory":
            return states  # the memory's votes alone: no generation
        # One flat batch over every need and every paraphrase not answered yet (a need's own prompt may
        # have gone with its rewrite): one batched generate call.
        owners: list[ChainState] = []
        asked: list[str] = []
        prompt_configs: list[RunnableConfig] = []
        for state, config in zip(states, configs, strict=True):
            answered = {text for text, _ in state.proposals}
            for text in state.asked:
                if text not in answered:
                    owners.append(state)
                    asked.append(text)
                    prompt_configs.append(config)
        prompts = self._suggest_prompts(owners, asked)
        answers = self._generate(prompts, prompt_configs, self.settings.max_new_tokens_suggest)
        for owner, text, answer in zip(owners, asked, answers, strict=True):
            owner.proposals.append((text, self._parse_suggestion(answer)))
        return states

    def _suggest_prompts(self, owners: list[ChainState], texts: list[str]) -> list[str]:
        """The suggest prompt of each text (a need or a paraphrase of its owner's need)."""
        examples = self._fewshot_examples(texts)
        return [
            self._suggest_prompt(text, self._shown_neighbours(owner, text), shots)
            for owner, text, shots in zip(owners, texts, examples, strict=True)
        ]

    def _parse_suggestion(self, answer: str) -> list[str]:
        return parse_products(answer, truncated=self._hit_token_limit(answer, self.settings.max_new_tokens_suggest))

    def _shown_neighbours(self, state: ChainState, text: str) -> list[Neighbour]:
        """The neighbours a suggest prompt shows: its own, unless only the need's prompt is grounded."""
        if self.settings.grounded_prompts == "need" and text != state.need:
            return []
        return state.retrieved.get(text, [])

    def _suggest_prompt(self, text: str, neighbours: list[Neighbour], examples: list[Any]) -> str:
        """The grounded prompt when the memory found neighbours for this text, else the plain one."""
        shown = neighbours[: self.settings.neighbours_in_prompt]
        if shown and self.settings.memory_mode == "fused":
            listed = format_neighbours([(n.need, n.products) for n in shown])
            return render_prompt(self.tokenizer, "suggest_grounded", need=text, neighbours=listed, examples=examples)
        return render_prompt(self.tokenizer, "suggest", need=text, examples=examples)

    def _fewshot_examples(self, texts: list[str]) -> list[list[Any]]:
        if self.settings.fewshot_k == 0:
            return [[] for _ in texts]
        from agent.pipeline.memory import training_memory

        k = self.settings.fewshot_k
        found = training_memory(self.settings).search(texts, k + 1)  # one more: the text itself may be known
        return [
            examples_from_neighbours(text, [(n.need, n.products) for n in neighbours], k)
            for text, neighbours in zip(texts, found, strict=True)
        ]

    def _hit_token_limit(self, answer: str, limit: int) -> bool:
        if self.tokenizer is None:
            return False
        return len(self.tokenizer(answer, add_special_tokens=False)["input_ids"]) >= limit - 1

    def _cut_to_tokens(self, answer: str, limit: int) -> str:
        """``answer`` cut to its first ``limit`` tokens: what a call with that token limit would have given."""
        if self.tokenizer is None:
            return answer
        tokens = self.tokenizer(answer, add_special_tokens=False)["input_ids"]
        return answer if len(tokens) <= limit else self.tokenizer.decode(tokens[:limit])

    def _fuse(self, states: list[ChainState], configs: list[RunnableConfig]) -> list[ChainState]:
        settings = self.settings
        semantic = settings.semantic_threshold if settings.semantic_dedup else None
        similarity, relevance = self.similarity, self.relevance
        if self.uses_memory and (similarity is None or relevance is None):
            # One MiniLM call for every type and prompt of the batch, instead of a few per need.
            from agent.core.embeddings import EmbeddingTable

            table = EmbeddingTable.of(_fusion_texts(states))
            similarity, relevance = similarity or table.similarity, relevance or table.cosine
        for state in states:
            proposals = state.proposals
            if not self.uses_memory:
                # The model alone: types ranked by votes across prompts, as before the memory existed.
                suggestions = merge_suggestions(
                    proposals,
                    fuzzy_threshold=settings.fuzzy_threshold,
                    semantic_threshold=semantic,
                    similarity=self.similarity,
                    limit=settings.max_products,
                )
            else:
                suggestions = fuse(
                    proposals,
                    state.neighbours,
                    state.asked,
                    self._fusion_weights(),
                    relevance=relevance,
                    fuzzy_threshold=settings.fuzzy_threshold,
                    semantic_threshold=semantic,
                    similarity=similarity,
                )
            state.suggestions = suggestions
            if not suggestions:
                state.warnings.append(NO_PRODUCT_WARNING)
        return states

    def _fusion_weights(self) -> FusionWeights:
        settings = self.settings
        if settings.memory_mode == "memory":  # the memory's votes alone, as measured in the ablation
            return FusionWeights(model=0.0, memory=1.0, relevance=0.0, min_score=0.0,
                                 min_products=settings.min_products, max_products=settings.max_products)
        return FusionWeights(
            model=settings.fusion_model_weight,
            memory=settings.fusion_memory_weight,
            relevance=settings.fusion_relevance_weight,
            min_score=settings.fusion_min_score,
            min_products=settings.min_products,
            max_products=settings.max_products,
        )

    def _search(self, states: list[ChainState], configs: list[RunnableConfig]) -> list[ChainState]:
        queries = [
            [SearchQuery(keyword=suggestion.product, domain=self.settings.domain) for suggestion in state.suggestions]
            for state in states
        ]
        # A backend shared across a batch (agent/batch/search.py) can search every distinct product
        # type of the whole batch at once, before any need asks; other backends have no such hook.
        prefetch = getattr(self.backend, "prefetch", None)
        if prefetch is not None:
            prefetch([query for per_need in queries for query in per_need])
        for state, per_need in zip(states, queries, strict=True):
            outcome = self.backend.search_many(per_need)
            state.listings = list(outcome.listings)
            state.warnings.extend(outcome.warnings)
            state.search_outages.extend(outcome.outages)
        return states

    def _rank(self, states: list[ChainState], configs: list[RunnableConfig]) -> list[ChainState]:
        from agent.pipeline.ranking import rank_listings

        for state in states:
            state.listings = rank_listings(
                state.listings,
                state.suggestions,
                budget=self.settings.budget,
                top_k=self.settings.top_k,
                include_sponsored=self.settings.include_sponsored,
            )
        return states


def build_chain(
    settings: Settings | None = None,
    *,
    llm: BaseLanguageModel | None = None,
    backend: SearchBackend | str | None = None,
    similarity: Callable[[Sequence[str]], list[list[float]]] | None = None,
    memory: NeedMemory | None = None,
    relevance: Relevance | None = None,
    answer_cache: AnswerCache | None = None,
    generation_worker: BatchingWorker | None = None,
    **overrides: Any,
) -> Runnable[Any, Recommendation]:
    """The Whazzat chain. Settings come from the environment, then ``settings``, then ``overrides``
    (e.g. ``build_chain(paraphrases=2, domain="de")``). ``llm`` and ``backend`` replace the model and the
    search backend (tests pass fakes); ``backend`` may also be a backend's name ("links", "axesso",
    "catalog"), like any other setting. ``memory`` replaces the need memory (by default the shipped
    dataset plus the user's rows, built once per process; none with ``memory_mode="model"``), and
    ``relevance`` the MiniLM cosine of the fusion. By default the model loads once per process.

    The model's answers are cached on disk (``answer_cache_days``) when the chain loads its own model, whose
    fingerprint names them; a chain given ``llm`` caches only through an explicit ``answer_cache``.
    ``generation_worker`` runs the model calls of every chain that shares it on one thread, merging the
    calls that wait together (the UI's concurrent chats); without one the chain calls the model itself."""
    if isinstance(backend, str):
        overrides["backend"], backend = backend, None
    _check_setting_names(overrides)
    if settings is not None:
        base = settings.model_dump()
        base.update({key: value for key, value in overrides.items() if value is not None})
        settings = Settings.model_validate(base)
    else:
        settings = get_settings(**overrides)
    if llm is None:
        from agent.models.fingerprint import model_fingerprint
        from agent.models.llm import load_llm
        from agent.pipeline.answer_cache import AnswerCache

        llm = load_llm(settings)
        answer_cache = answer_cache or AnswerCache.for_settings(settings, model_fingerprint(settings))
    if backend is None:
        from tools.registry import make_backend

        backend = make_backend(settings)
    if memory is None and settings.memory_mode != "model":
        from agent.pipeline.memory import default_memory

        memory = default_memory(settings)
    return WhazzatChain(settings, llm, backend, similarity, memory, relevance, answer_cache,
                        generation_worker).runnable()


#: One default chain (and one loaded model) per distinct set of settings, for :func:`recommend`.
_default_chains: Memo[tuple[str, str | None], Runnable[Any, Recommendation]] = Memo()


def _check_setting_names(overrides: dict[str, Any]) -> None:
    unknown = sorted(set(overrides) - set(Settings.model_fields))
    if unknown:
        raise TypeError(f"unknown setting(s) {unknown}; valid ones: {', '.join(sorted(Settings.model_fields))}")


def recommend(need: str, **overrides: Any) -> Recommendation:
    """Answer one need with the default chain; ``overrides`` are settings (e.g. ``paraphrases=2``).

    One chain (and one loaded model) per distinct set of settings, reused across calls.
    """
    _check_setting_names(overrides)
    settings = get_settings(**overrides)
    secret = settings.rapidapi_key.get_secret_value() if settings.rapidapi_key else None
    key = (settings.model_dump_json(exclude={"rapidapi_key"}), secret)
    return _default_chains.get(key, lambda: build_chain(settings)).invoke(need)
