"""A fake language model that answers like the fine-tuned model, keyed on what the prompt asks."""

from __future__ import annotations

import re
from typing import Any

from langchain_core.embeddings import Embeddings
from langchain_core.language_models.llms import LLM

DEFAULT_PRODUCTS = {
    "something to dig food": "garden trowel, hand rake, kneeling pad, garden gloves",
    "a tool for digging in the garden": "garden trowel, shovel, garden gloves",
    "I need to dig up vegetables": "garden shovel, garden trowels, harvest basket",
    "digging food out of the ground": "Garden Trowel, garden fork",
}
DEFAULT_REWRITES = {
    "something to dig food": "1. a tool for digging in the garden\n2. \"I need to dig up vegetables\"\n"
    "- digging food out of the ground\nsomething to dig food",
}


class FakeWhazzatLLM(LLM):
    """Answers rewrite prompts from ``rewrites`` and suggest prompts from ``products`` (by need);
    records every prompt it saw, and how many generate calls were made."""

    rewrites: dict[str, str] = DEFAULT_REWRITES
    products: dict[str, str] = DEFAULT_PRODUCTS
    fallback_products: str = "notebook, pen, desk lamp"
    prompts: list[str] = []
    generate_calls: int = 0
    rewrite_calls: dict[str, int] = {}

    @property
    def _llm_type(self) -> str:
        return "fake-whazzat"

    def _generate(self, prompts: list[str], *args: Any, **kwargs: Any):  # noqa: ANN202
        self.generate_calls += 1
        return super()._generate(prompts, *args, **kwargs)

    def _call(self, prompt: str, stop: list[str] | None = None, run_manager: Any = None, **kwargs: Any) -> str:
        self.prompts.append(prompt)
        prompt = prompt.replace("<|im_end|>", "")  # a chat template's end marker would end up in the needs
        rewrite = re.search(r"Write \d+ rewrites of this need: (.+)", prompt)
        if rewrite:
            # Each call starts one line further down the answer, like samples that differ: the
            # 'parallel' rewrite keeps each sample's first line, the 'list' rewrite keeps them all.
            need = rewrite.group(1).strip()
            lines = self.rewrites.get(need, "").split("\n")
            start = self.rewrite_calls.get(need, 0) % len(lines)
            self.rewrite_calls[need] = self.rewrite_calls.get(need, 0) + 1
            return "\n".join(lines[start:] + lines[:start])
        return self.products.get(asked_need(prompt), self.fallback_products)


def asked_need(prompt: str) -> str:
    """The text a suggest prompt asks about: its last 'Need:' line (earlier ones are few-shot examples)."""
    asked = re.findall(r"Need: (.+)", prompt.replace("<|im_end|>", ""))
    return asked[-1].strip() if asked else ""


class WordEmbeddings(Embeddings):
    """Bag-of-words embeddings with no model: each word hashes to one of ``size`` dimensions, and rows are
    unit length, so texts that share words are close (enough for memory and fusion tests)."""

    def __init__(self, size: int = 256) -> None:
        self.size = size

    def _vector(self, text: str) -> list[float]:
        import hashlib
        import math

        vector = [0.0] * self.size
        for word in re.findall(r"[a-z]+", text.lower()):
            word = word[:-1] if word.endswith("s") and len(word) > 3 else word
            vector[int(hashlib.md5(word.encode()).hexdigest(), 16) % self.size] += 1.0
        norm = math.sqrt(sum(v * v for v in vector)) or 1.0
        return [v / norm for v in vector]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._vector(text) for text in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._vector(text)
