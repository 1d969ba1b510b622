"""The model's answers on disk, so a need asked again skips the model: the slow part of every answer.

What is cached is each generate call's answer to one prompt, keyed by the model's fingerprint
(:func:`agent.models.fingerprint.model_fingerprint`: base model, adapter hash, quantisation), the prompt and
the generation parameters. Caching the prompts rather than whole recommendations keeps every answer exact:

* a suggest prompt holds the neighbours the need memory found, so a memory grown by feedback asks a new
  prompt and misses, while retrieval, fusion, search and ranking (all cheap, or cached on their own) rerun;
* a retrained adapter changes the fingerprint, so old answers are never read for it;
* sampled rewrites ask the same prompt N times for N different paraphrases: each copy has its own entry
  (the occurrence is part of the key), so a hit gives back N paraphrases, not one N times.

``no_cache`` skips reading (fresh answers still refresh the cache); ``answer_cache_days=0`` turns it off.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from agent.core.config import Settings
from tools.cache import DiskCache

ANSWER_CACHE_FILE = "answers.sqlite3"

#: Answers the prompts at the given positions (one batched model call), in that order.
Generate = Callable[[list[int]], list[str]]


class AnswerCache:
    """Model answers by (model fingerprint, prompt, generation parameters, occurrence)."""

    def __init__(self, path: Path, model: str, *, ttl_days: float = 30.0, read: bool = True) -> None:
        self.model = model
        self.read = read
        self._store = DiskCache(path, ttl_seconds=ttl_days * 86400)

    @classmethod
    def for_settings(cls, settings: Settings, model: str) -> AnswerCache | None:
        """The cache under ``WHAZZAT_HOME`` for the model named ``model``; None when it is turned off."""
        if settings.answer_cache_days <= 0:
            return None
        return cls(settings.home_dir / ANSWER_CACHE_FILE, model, ttl_days=settings.answer_cache_days,
                   read=not settings.no_cache)

    def generate(self, prompts: Sequence[str], parameters: dict[str, Any], generate: Generate) -> list[str]:
        """The answers to ``prompts``: stored ones, and ``generate`` called once on the positions of the
        rest (if any).

        ``parameters`` are everything besides the prompt that shapes an answer (token limit, sampling).
        """
        keys = self._keys(prompts, parameters)
        answers: list[str | None] = [self._store.get(key) if self.read else None for key in keys]
        missing = [index for index, answer in enumerate(answers) if answer is None]
        if missing:
            fresh = generate(missing)
            for index, answer in zip(missing, fresh, strict=True):
                answers[index] = answer
                self._store.set(keys[index], answer)
        return [str(answer) for answer in answers]

    def _keys(self, prompts: Sequence[str], parameters: dict[str, Any]) -> list[str]:
        sampled = bool(parameters.get("do_sample"))
        seen: Counter[str] = Counter()
        keys = []
        for prompt in prompts:
            # Greedy answers to one prompt are all the same answer; sampled ones are N different samples.
            occurrence = seen[prompt] if sampled else 0
            seen[prompt] += 1
            identity = json.dumps([self.model, prompt, parameters, occurrence], sort_keys=True, default=str)
            keys.append(hashlib.sha256(identity.encode()).hexdigest())
        return keys
