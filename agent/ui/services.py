"""What the UI needs from the rest of Whazzat, built once per server process and shared by every chat.

The language model is the expensive part: it loads once (``agent.models.llm.load_llm`` caches it per model
settings) and every chain built here reuses it, whatever the chat's paraphrases, backend or domain.
Chats share the model and the search backends, never their results (those live in each chat's session).

Tests build a :class:`Services` with a fake model and backend; the app uses :func:`default_services`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from agent.core.concurrency import BatchingWorker, Memo
from agent.core.config import Settings, get_settings

if TYPE_CHECKING:
    from langchain_core.language_models import BaseLanguageModel
    from langchain_core.runnables import Runnable

    from agent.core.schemas import Listing, Recommendation, Suggestion
    from agent.pipeline.memory import NeedMemory
    from agent.pipeline.ranking import RelevanceFn
    from tools.base import SearchBackend

BackendFactory = Callable[[Settings], "SearchBackend"]
Similarity = Callable[[Sequence[str]], list[list[float]]]


class Services:
    """Caches chains and backends by settings, and owns the one generation worker every chat's chain
    calls the model through: Hugging Face pipelines are not meant to be called from several threads at
    once, and a chat that asks while another's prompts are decoding joins the next batched call with the
    other waiting chats rather than queueing behind each of them."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        llm: BaseLanguageModel | None = None,
        backend_factory: BackendFactory | None = None,
        similarity: Similarity | None = None,
        relevance: RelevanceFn | None = None,
        memory: NeedMemory | None = None,
    ) -> None:
        self._settings = settings
        self._memory = memory
        self._llm = llm
        self._backend_factory = backend_factory
        self._similarity = similarity
        self._relevance = relevance
        self._chains: Memo[str, Runnable[Any, Recommendation]] = Memo()
        self._backends: Memo[str, SearchBackend] = Memo()
        self.generation_worker = BatchingWorker("whazzat-generation")

    @property
    def settings(self) -> Settings:
        """The server's settings (environment), read once."""
        if self._settings is None:
            self._settings = get_settings()
        return self._settings

    def has_chain(self, settings: Settings) -> bool:
        """Whether a chain for ``settings`` is built (so answering will not wait for the model to load)."""
        return settings.model_dump_json() in self._chains

    def chain(self, settings: Settings) -> Runnable[Any, Recommendation]:
        """The chain for ``settings``, built on first use (loading the model the first time). Blocking."""
        from agent.pipeline.chain import build_chain

        return self._chains.get(
            settings.model_dump_json(),
            lambda: build_chain(settings, llm=self._llm, backend=self.backend(settings), similarity=self._similarity,
                                memory=self.memory(settings), generation_worker=self.generation_worker),
        )

    def memory(self, settings: Settings) -> NeedMemory | None:
        """The need memory every chat shares (None when the model answers alone). Blocking on first use."""
        if settings.memory_mode == "model":
            return None
        if self._memory is None:
            from agent.pipeline.memory import default_memory

            self._memory = default_memory(settings)
        return self._memory

    def backend(self, settings: Settings) -> SearchBackend:
        """The search backend for ``settings`` (shared, so its cache and call budget are shared too)."""
        from tools.registry import make_backend

        key = settings.model_dump_json(include={"backend", "domain", "catalog", "axesso_url", "home",
                                                "include_sponsored", "no_cache"})
        return self._backends.get(key, lambda: (self._backend_factory or make_backend)(settings))

    def rank(
        self, listings: list[Listing], suggestions: list[Suggestion], *, settings: Settings, budget: float | None
    ) -> list[Listing]:
        """Rank ``listings`` as the chain does, with another budget (follow-ups). Blocking (MiniLM)."""
        from agent.pipeline.ranking import rank_listings

        return rank_listings(listings, suggestions, budget=budget, top_k=settings.top_k,
                             include_sponsored=settings.include_sponsored, relevance=self._relevance)

    def warm_up(self) -> None:
        """Load the model for the default settings now, so the first chat does not wait for it."""
        self.chain(self.settings)


_default: Services | None = None
_default_lock = threading.Lock()


def default_services() -> Services:
    """The process-wide services of the app."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Services()
        return _default
