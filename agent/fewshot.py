"""Retrieval-augmented few-shot: the training needs most similar to a prompt, with their answers.

The suggest prompt can show the model how the k nearest training needs (by MiniLM cosine) were
answered, as earlier turns of the chat. A small model copies and adapts good product types far more
reliably than it recalls them. The examples come from the shipped training split
(``finetune/data/train.jsonl``), so nothing from the evaluation splits can leak into a prompt.
"""

from __future__ import annotations

import hashlib
import json
import threading
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.prompts import format_products

if TYPE_CHECKING:
    import numpy as np

TRAIN_FILE = Path(__file__).resolve().parent.parent / "finetune" / "data" / "train.jsonl"

Example = tuple[dict[str, Any], str]


class FewShotRetriever:
    """Finds the ``k`` training needs nearest to each text and returns them as prompt examples."""

    def __init__(self, needs: list[str], answers: list[str], vectors: np.ndarray) -> None:
        self.needs = needs
        self.answers = answers
        self.vectors = vectors

    @classmethod
    def from_jsonl(cls, path: Path, cache_dir: Path | None = None) -> FewShotRetriever:
        """Load ``need``/``products`` records; embeddings are cached under ``cache_dir`` by file hash."""
        import numpy as np

        from agent.embeddings import embed

        raw = path.read_bytes()
        records = [json.loads(line) for line in raw.decode("utf-8").splitlines() if line.strip()]
        needs = [record["need"] for record in records]
        answers = [format_products(record["products"]) for record in records]
        cached = cache_dir / f"fewshot-{hashlib.sha256(raw).hexdigest()[:16]}.npy" if cache_dir else None
        if cached is not None and cached.is_file():
            try:
                vectors = np.load(cached)
                if vectors.shape[0] == len(needs):
                    return cls(needs, answers, vectors)
            except (OSError, ValueError):
                pass  # a damaged cache is recomputed below
        vectors = embed(needs)
        if cached is not None:
            try:
                cached.parent.mkdir(parents=True, exist_ok=True)
                np.save(cached, vectors)
            except OSError:
                pass  # read-only home: embed again next time, still correct
        return cls(needs, answers, vectors)

    def examples(self, texts: list[str], k: int) -> list[list[Example]]:
        """For each text, its ``k`` nearest training needs as ``({"need": ...}, answer)``, nearest last
        (closest to the question in the chat). A training need equal to the text itself is skipped."""
        from agent.embeddings import embed

        if k <= 0 or not texts:
            return [[] for _ in texts]
        similarity = embed(texts) @ self.vectors.T
        found: list[list[Example]] = []
        for text, row in zip(texts, similarity, strict=True):
            order = [int(i) for i in row.argsort()[::-1] if self.needs[int(i)].casefold() != text.casefold()]
            nearest = order[:k]
            found.append([({"need": self.needs[i]}, self.answers[i]) for i in reversed(nearest)])
        return found


_lock = threading.Lock()


@cache
def _default_retriever(cache_dir: str) -> FewShotRetriever:
    return FewShotRetriever.from_jsonl(TRAIN_FILE, Path(cache_dir))


def default_retriever(home: Path) -> FewShotRetriever:
    """The retriever over the shipped training split, built once per process."""
    with _lock:
        return _default_retriever(str(home))
