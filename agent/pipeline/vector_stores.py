"""The LangChain vector stores behind the need memory, and one batched cosine search over any of them.

- :class:`MatrixVectorStore`: LangChain's ``InMemoryVectorStore`` with its vectors also held as one numpy
  matrix, so a batch of queries is one matrix product instead of a Python loop over every row per query
  (the parent rebuilds a list of all vectors on each search). The embedded default.
- A Chroma collection on a Chroma server (``langchain-chroma``), for several workers sharing one memory:
  :func:`chroma_store`.

:func:`search_by_vectors` answers "the ``k`` nearest rows of each query vector, with their cosine" for
either, so the memory does not care which one it holds.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import InMemoryVectorStore, VectorStore

if TYPE_CHECKING:
    import numpy as np

#: Chroma's distance for the collection: cosine, so that ``1 - distance`` is the cosine similarity.
CHROMA_SPACE = {"hnsw:space": "cosine"}

Hit = tuple[Document, float]


class MatrixVectorStore(InMemoryVectorStore):
    """``InMemoryVectorStore`` with batched, matrix-product search. Rows are ``(text, metadata, vector)``;
    vectors are unit length (MiniLM with ``normalize_embeddings``), so a dot product is the cosine."""

    def __init__(self, embedding: Embeddings) -> None:
        super().__init__(embedding)
        self._matrix: np.ndarray | None = None
        self._rows: list[dict[str, Any]] = []

    def add_embedded(
        self, texts: Sequence[str], vectors: np.ndarray, metadatas: Sequence[dict[str, Any]], ids: Sequence[str] | None = None
    ) -> list[str]:
        """Add rows whose vectors are already known (loaded from the memory's cache): no embedding call."""
        ids = list(ids) if ids is not None else [str(uuid.uuid4()) for _ in texts]
        for row_id, text, vector, metadata in zip(ids, texts, vectors, metadatas, strict=True):
            self.store[row_id] = {"id": row_id, "vector": vector, "text": text, "metadata": dict(metadata)}
        self._matrix = None
        return ids

    def add_documents(self, documents: list[Document], ids: list[str] | None = None, **kwargs: Any) -> list[str]:
        self._matrix = None
        return super().add_documents(documents, ids=ids, **kwargs)

    def delete(self, ids: Sequence[str] | None = None, **kwargs: Any) -> None:
        self._matrix = None
        super().delete(ids, **kwargs)

    def _refresh(self) -> np.ndarray:
        import numpy as np

        if self._matrix is None or len(self._rows) != len(self.store):
            self._rows = list(self.store.values())
            vectors = [row["vector"] for row in self._rows]
            self._matrix = (
                np.asarray(vectors, dtype=np.float32).reshape(len(vectors), -1) if vectors else np.zeros((0, 0), np.float32)
            )
        return self._matrix

    def search_many(self, vectors: np.ndarray, k: int) -> list[list[Hit]]:
        """The ``k`` most similar rows for each query vector, best first: one matrix product for all."""
        import numpy as np

        matrix = self._refresh()
        if len(matrix) == 0 or len(vectors) == 0:
            return [[] for _ in range(len(vectors))]
        scores = np.asarray(vectors, dtype=np.float32) @ matrix.T
        k = min(k, len(matrix))
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        found = []
        for row_scores, candidates in zip(scores, top, strict=True):
            best = candidates[np.argsort(-row_scores[candidates], kind="stable")]
            found.append([(self._document(int(i)), float(row_scores[i])) for i in best])
        return found

    def _document(self, index: int) -> Document:
        row = self._rows[index]
        return Document(id=row["id"], page_content=row["text"], metadata=row["metadata"])

    def similarity_search_with_score_by_vector(self, embedding: list[float], k: int = 4, filter=None, **kwargs: Any):  # noqa: A002, ANN001, ANN201
        if filter is not None:  # rare: the parent's loop supports arbitrary filters
            return super().similarity_search_with_score_by_vector(embedding, k, filter, **kwargs)
        import numpy as np

        return self.search_many(np.asarray([embedding], dtype=np.float32), k)[0]


def chroma_store(url: str, collection: str, embedding: Embeddings) -> VectorStore:
    """A Chroma collection on the server at ``url`` (e.g. ``http://127.0.0.1:8001``), cosine space."""
    from urllib.parse import urlparse

    import chromadb
    from chromadb.config import Settings as ChromaSettings
    from langchain_chroma import Chroma

    parsed = urlparse(url)
    if parsed.scheme not in {"http", "https"} or not parsed.hostname:
        raise ValueError(f"memory URL must look like http://HOST:PORT, not {url!r}")
    client = chromadb.HttpClient(
        host=parsed.hostname,
        port=parsed.port or (443 if parsed.scheme == "https" else 8000),
        ssl=parsed.scheme == "https",
        settings=ChromaSettings(anonymized_telemetry=False),
    )
    return Chroma(
        collection_name=collection,
        embedding_function=embedding,
        client=client,
        collection_metadata=CHROMA_SPACE,
    )


def add_embedded(
    store: VectorStore, texts: Sequence[str], vectors: np.ndarray, metadatas: Sequence[dict[str, Any]], ids: Sequence[str]
) -> None:
    """Add rows with known vectors to either store; re-adding an id replaces the row (idempotent)."""
    if isinstance(store, MatrixVectorStore):
        store.add_embedded(texts, vectors, metadatas, ids)
        return
    collection = store._collection  # Chroma: upsert with our vectors, no second embedding pass
    ids, texts, metadatas = list(ids), list(texts), list(metadatas)
    if not (len(ids) == len(texts) == len(metadatas) == len(vectors)):
        raise ValueError("add_embedded needs one text, vector, metadata and id per row")
    # The server refuses a request over its batch limit (5461 rows for chromadb 1.5; the shipped train
    # split alone is larger), so the rows go up in chunks it accepts.
    step = _chroma_batch_limit(store)
    for start in range(0, len(ids), step):
        end = start + step
        collection.upsert(
            ids=ids[start:end],
            embeddings=[list(map(float, v)) for v in vectors[start:end]],
            documents=texts[start:end],
            metadatas=metadatas[start:end],
        )


def _chroma_batch_limit(store: VectorStore, fallback: int = 1000) -> int:
    """The most rows the Chroma server takes in one request (``fallback`` when it cannot say)."""
    try:
        limit = int(store._client.get_max_batch_size())
    except Exception:  # noqa: BLE001 - an older or unusual client: stay well under any server's limit
        return fallback
    return limit if limit > 0 else fallback


def search_by_vectors(store: VectorStore, vectors: np.ndarray, k: int) -> list[list[Hit]]:
    """The ``k`` nearest rows of each query vector with their cosine similarity, best first."""
    if isinstance(store, MatrixVectorStore):
        return store.search_many(vectors, k)
    collection = store._collection  # Chroma: one query call for the whole batch
    if len(vectors) == 0:
        return []
    if k <= 0:  # the server refuses n_results=0
        return [[] for _ in range(len(vectors))]
    result = collection.query(
        query_embeddings=[list(map(float, v)) for v in vectors],
        n_results=k,
        include=["documents", "metadatas", "distances"],
    )
    found: list[list[Hit]] = []
    for ids, texts, metadatas, distances in zip(
        result["ids"], result["documents"], result["metadatas"], result["distances"], strict=True
    ):
        found.append(
            [
                (Document(id=row_id, page_content=text, metadata=dict(metadata or {})), 1.0 - float(distance))
                for row_id, text, metadata, distance in zip(ids, texts, metadatas, distances, strict=True)
            ]
        )
    return found


def missing_ids(store: VectorStore, ids: Sequence[str]) -> set[str]:
    """Which of ``ids`` the store does not hold yet (a shared server may hold rows another worker added)."""
    if isinstance(store, InMemoryVectorStore):
        return {row_id for row_id in ids if row_id not in store.store}
    ids = list(ids)
    held: set[str] = set()
    step = _chroma_batch_limit(store)
    for start in range(0, len(ids), step):
        held.update(store._collection.get(ids=ids[start : start + step], include=[])["ids"])
    return set(ids) - held


def count_rows(store: VectorStore) -> int:
    """How many rows the store holds."""
    if isinstance(store, InMemoryVectorStore):
        return len(store.store)
    return int(store._collection.count())
