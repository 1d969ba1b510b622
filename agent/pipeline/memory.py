"""The need memory: known needs and their product types, in a LangChain vector store the chain retrieves from.

A small model knows less than the data it was trained on, so the chain looks the need (and each
paraphrase) up here and shows the model the nearest known needs, and the fusion counts their product
types as votes of their own.

Rows come from two places:

- the shipped dataset (``finetune/data/{train,val,test}.jsonl``), source ``dataset``;
- the user's rows, appended to ``$WHAZZAT_HOME/memory/rows.jsonl`` by ``whazzat memory add FILE``,
  the UI's thumbs-up and ``whazzat feedback export`` (source ``user`` or ``feedback``). They count from
  the next search on: nothing is retrained.

The embedded store (:class:`~agent.pipeline.vector_stores.MatrixVectorStore`) keeps each source file's MiniLM
vectors in ``$WHAZZAT_HOME/memory/vectors/<file>-<hash>.npy``. A file whose bytes changed gets a new hash
and is embedded again; a cache that cannot be read, or does not match its file, is rebuilt. With
``memory_url`` the rows live in a Chroma server instead, shared by every worker (docs/serving.md).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agent.core.concurrency import Memo
from agent.core.config import MAX_NEED_CHARS, Settings
from agent.core.errors import WhazzatError
from agent.core.schemas import Neighbour
from agent.core.shipped import shipped_split

if TYPE_CHECKING:
    import numpy as np
    from langchain_core.embeddings import Embeddings
    from langchain_core.vectorstores import VectorStore

log = logging.getLogger(__name__)

MemorySource = Literal["dataset", "user", "feedback"]
#: The shipped dataset splits the memory can be seeded from.
SPLITS: tuple[str, ...] = ("train", "val", "test")
MEMORY_DIR = "memory"
USER_ROWS_FILE = "rows.jsonl"
MAX_ROW_PRODUCTS = 12
MAX_PRODUCT_CHARS = 80
#: Rows embedded per progress-bar step when a source file is (re)built.
EMBED_CHUNK = 256

_append_lock = threading.Lock()


class MemoryDataError(WhazzatError, ValueError):
    """A memory file cannot be read, or rows given to it are invalid; the message says which and why."""


class MemoryRow(BaseModel):
    """One known need and its product types (other fields of a dataset line, e.g. ``area``, are ignored)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    need: str = Field(min_length=3, max_length=MAX_NEED_CHARS)
    products: list[str] = Field(min_length=1, max_length=MAX_ROW_PRODUCTS)
    source: MemorySource = "user"

    @field_validator("need")
    @classmethod
    def _one_line(cls, need: str) -> str:
        if any(ord(char) < 32 for char in need):
            raise ValueError("the need must be one line of text without control characters")
        return need

    @field_validator("products", mode="before")
    @classmethod
    def _split_text(cls, products: object) -> object:
        # CSV cells hold the list as text: "garden trowel; hand rake" or "garden trowel, hand rake".
        if isinstance(products, str):
            separator = ";" if ";" in products else ","
            return [part for part in products.split(separator) if part.strip()]
        return products

    @field_validator("products")
    @classmethod
    def _clean_products(cls, products: list[str]) -> list[str]:
        cleaned: list[str] = []
        for product in products:
            product = " ".join(str(product).split())
            if not product or len(product) > MAX_PRODUCT_CHARS or any(ord(c) < 32 for c in product):
                raise ValueError(f"each product type must be 1-{MAX_PRODUCT_CHARS} characters of text: {product!r}")
            if product.casefold() not in {p.casefold() for p in cleaned}:
                cleaned.append(product)
        return cleaned

    @property
    def row_id(self) -> str:
        """Stable id: the same row added twice is stored once."""
        key = json.dumps([self.need.casefold(), [p.casefold() for p in self.products], self.source])
        return hashlib.sha1(key.encode()).hexdigest()[:20]


class MemoryStats(BaseModel):
    """What ``whazzat memory stats`` reports."""

    rows: int
    by_source: dict[str, int]
    store: str = Field(description="'embedded' or the Chroma server's URL.")
    user_rows_file: str


@dataclass
class SourceFile:
    """A JSONL file of rows and the source label its rows get (None: each row's own ``source``)."""

    path: Path
    source: MemorySource | None


def shipped_split_path(split: str) -> Path:
    """A shipped dataset split (one indirection, so tests can point the memory at their own rows)."""
    return shipped_split(split)


def user_rows_path(home: Path) -> Path:
    return home / MEMORY_DIR / USER_ROWS_FILE


def parse_rows(text: str, origin: str, source: MemorySource | None = None) -> list[MemoryRow]:
    """Rows from JSONL text; :class:`MemoryDataError` names the first bad line and why (nothing is half-read)."""
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            if not isinstance(raw, dict):
                raise ValueError("not a JSON object")
            if source is not None:
                raw = {**raw, "source": source}
            rows.append(MemoryRow.model_validate(raw))
        except (ValueError, ValidationError) as error:
            raise MemoryDataError(f"{origin}:{number}: {_reason(error)}") from None
    return rows


def read_rows_file(path: Path, source: MemorySource | None = None) -> list[MemoryRow]:
    """Rows of a JSONL or CSV file (CSV: a ``need`` and a ``products`` column, types split on ``;`` or ``,``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MemoryDataError(f"file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise MemoryDataError(f"cannot read {path}: {error}") from None
    if path.suffix.lower() != ".csv":
        return parse_rows(text, str(path), source)
    import csv
    import io

    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or not {"need", "products"} <= {f.strip() for f in reader.fieldnames}:
        raise MemoryDataError(f"{path}: a CSV file needs 'need' and 'products' columns")
    rows = []
    for number, raw in enumerate(reader, start=2):
        raw = {key.strip(): value for key, value in raw.items() if key}
        try:
            rows.append(MemoryRow.model_validate({**raw, "source": source or raw.get("source") or "user"}))
        except ValidationError as error:
            raise MemoryDataError(f"{path}:{number}: {_reason(error)}") from None
    return rows


def _reason(error: Exception) -> str:
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "row"
        return f"{where}: {first['msg']}"
    if isinstance(error, json.JSONDecodeError):
        return "not valid JSON"
    return str(error)


class NeedMemory:
    """Rows of (need, product types, source) in a LangChain vector store, searched in batches."""

    def __init__(self, store: VectorStore, embeddings: Embeddings, user_file: Path | None, label: str = "embedded") -> None:
        self.store = store
        self.embeddings = embeddings
        self.user_file = user_file
        self.label = label

    def search(self, queries: Sequence[str], k: int) -> list[list[Neighbour]]:
        """The ``k`` nearest rows of each query, closest first: one embedding call and one search for all."""
        import numpy as np

        from agent.pipeline.vector_stores import search_by_vectors

        if not queries or k <= 0:
            return [[] for _ in queries]
        vectors = np.asarray(self.embeddings.embed_documents(list(queries)), dtype=np.float32)
        hits = search_by_vectors(self.store, vectors, k)
        return [
            [
                Neighbour(
                    need=document.page_content,
                    products=json.loads(document.metadata.get("products", "[]")),
                    similarity=round(similarity, 4),
                    source=str(document.metadata.get("source", "dataset")),
                    query=query,
                )
                for document, similarity in found
            ]
            for query, found in zip(queries, hits, strict=True)
        ]

    def add(self, rows: Sequence[MemoryRow]) -> int:
        """Store ``rows`` now (searchable at once) and append them to the user rows file, so they stay.
        Returns how many rows were new (a row already there is not stored twice)."""
        import numpy as np

        if not rows:
            return 0
        vectors = np.asarray(self.embeddings.embed_documents([row.need for row in rows]), dtype=np.float32)
        new = append_rows(self.user_file, rows) if self.user_file is not None else len(rows)
        _store_rows(self.store, rows, vectors)  # ids are stable: a row already stored is replaced, not doubled
        return new

    def stats(self) -> MemoryStats:
        from collections import Counter

        from agent.pipeline.vector_stores import count_rows

        sources: Counter[str] = Counter()
        store_rows = getattr(self.store, "store", None)
        if isinstance(store_rows, dict):
            sources.update(str(row["metadata"].get("source", "dataset")) for row in store_rows.values())
        else:
            sources["all"] = count_rows(self.store)
        return MemoryStats(
            rows=count_rows(self.store),
            by_source=dict(sorted(sources.items())),
            store=self.label,
            user_rows_file=str(self.user_file) if self.user_file else "",
        )


def append_rows(path: Path, rows: Sequence[MemoryRow]) -> int:
    """Append the rows the file does not hold yet, whole lines only, flushed to disk (safe with several
    writers in-process); returns how many were new. A row liked twice is stored once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _append_lock:
        held = {row.row_id for row in _read_source(SourceFile(path, None), path.read_bytes())} if path.is_file() else set()
        new = [row for row in {row.row_id: row for row in rows}.values() if row.row_id not in held]
        if new:
            with path.open("a", encoding="utf-8") as handle:
                handle.write("".join(row.model_dump_json() + "\n" for row in new))
                handle.flush()
                os.fsync(handle.fileno())
    return len(new)


def remember(home: Path, rows: Sequence[MemoryRow], memory: NeedMemory | None = None) -> int:
    """Keep ``rows`` in the user's memory: in ``memory`` now when one is loaded (searchable at once),
    else in the rows file, read by the next memory built. Returns how many rows were new."""
    if memory is not None and memory.user_file is not None:
        return memory.add(rows)
    return append_rows(user_rows_path(home), rows)


def _metadata(row: MemoryRow) -> dict[str, str]:
    # Chroma metadata holds scalars only, so the list travels as JSON text.
    return {"products": json.dumps(row.products), "source": row.source}


def _store_rows(store: VectorStore, rows: Sequence[MemoryRow], vectors: np.ndarray) -> None:
    from agent.pipeline.vector_stores import add_embedded

    add_embedded(store, [row.need for row in rows], vectors, [_metadata(row) for row in rows], [row.row_id for row in rows])


# --- building the default memory ---------------------------------------------------------------------


def memory_sources(home: Path, splits: Sequence[str] = SPLITS, include_user: bool = True) -> list[SourceFile]:
    """The files a memory is built from: the chosen shipped splits, then the user's rows."""
    unknown = sorted(set(splits) - set(SPLITS))
    if unknown:
        raise MemoryDataError(f"unknown dataset split(s) {unknown}; choose from {', '.join(SPLITS)}")
    files = [SourceFile(shipped_split_path(split), "dataset") for split in splits]
    if include_user:
        files.append(SourceFile(user_rows_path(home), None))
    return files


def _cached_vectors(source: SourceFile, raw: bytes, rows: list[MemoryRow], cache_dir: Path, embeddings: Embeddings) -> np.ndarray:
    """The rows' vectors from the cache when it matches the file's bytes, else embedded and cached anew."""
    import numpy as np

    stem = source.path.stem
    # The vectors depend on the file's bytes and on the embedding model: either changing makes a new cache.
    embedder = f"{type(embeddings).__name__}:{getattr(embeddings, 'model_name', '')}".encode()
    digest = hashlib.sha256(raw + b"\0" + embedder).hexdigest()[:16]
    cached = cache_dir / f"{stem}-{digest}.npy"
    if cached.is_file():
        try:
            vectors = np.load(cached, allow_pickle=False)
            if vectors.shape[0] == len(rows) and vectors.ndim == 2 and np.isfinite(vectors).all():
                return vectors
            log.warning("memory cache %s does not match its file: rebuilding it", cached.name)
        except (OSError, ValueError, EOFError):
            log.warning("memory cache %s is damaged: rebuilding it", cached.name)
    vectors = _embed_with_progress([row.need for row in rows], embeddings, label=stem)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        for stale in cache_dir.glob(f"{stem}-*.npy"):
            stale.unlink(missing_ok=True)
        partial = cached.with_suffix(f".{os.getpid()}.tmp")
        with partial.open("wb") as handle:
            np.save(handle, vectors)
        os.replace(partial, cached)  # atomic: a crash never leaves half a cache behind
    except OSError as error:
        log.warning("cannot write the memory cache in %s (%s): it is rebuilt next time", cache_dir, error)
    return vectors


def _embed_with_progress(texts: list[str], embeddings: Embeddings, label: str) -> np.ndarray:
    import numpy as np

    if len(texts) <= EMBED_CHUNK:
        return np.asarray(embeddings.embed_documents(texts), dtype=np.float32).reshape(len(texts), -1)
    from tqdm import tqdm

    parts = []
    with tqdm(total=len(texts), desc=f"building the need memory ({label})", unit="need", leave=False) as bar:
        for start in range(0, len(texts), EMBED_CHUNK):
            chunk = texts[start : start + EMBED_CHUNK]
            parts.append(np.asarray(embeddings.embed_documents(chunk), dtype=np.float32))
            bar.update(len(chunk))
    return np.concatenate(parts)


def build_memory(
    home: Path,
    *,
    splits: Sequence[str] = SPLITS,
    include_user: bool = True,
    embeddings: Embeddings | None = None,
    url: str | None = None,
    collection: str = "whazzat-needs",
) -> NeedMemory:
    """A memory of the chosen shipped splits (and the user's rows), embedded or on a Chroma server."""
    from agent.pipeline.vector_stores import MatrixVectorStore, chroma_store, missing_ids

    if embeddings is None:
        from agent.core.embeddings import get_langchain_embeddings

        embeddings = get_langchain_embeddings()
    store = chroma_store(url, collection, embeddings) if url else MatrixVectorStore(embeddings)
    cache_dir = home / MEMORY_DIR / "vectors"
    loaded: list[tuple[list[MemoryRow], np.ndarray]] = []
    for source in memory_sources(home, splits, include_user):
        if not source.path.is_file():
            continue  # no user rows yet
        raw = source.path.read_bytes()
        rows = _read_source(source, raw)
        if rows:
            loaded.append((rows, _cached_vectors(source, raw, rows, cache_dir, embeddings)))
    # Only the rows the store lacks are written: a shared server another worker seeded is not written
    # to again, and rows that only this worker's file holds still reach it.
    missing = missing_ids(store, [row.row_id for rows, _ in loaded for row in rows])
    for rows, vectors in loaded:
        keep = [i for i, row in enumerate(rows) if row.row_id in missing]
        if keep:
            _store_rows(store, [rows[i] for i in keep], vectors[keep])
    user_file = user_rows_path(home) if include_user else None
    return NeedMemory(store, embeddings, user_file, label=url or "embedded")


def _read_source(source: SourceFile, raw: bytes) -> list[MemoryRow]:
    """A source's rows; in the user's own file a damaged line (e.g. a crash mid-write) is skipped, not fatal."""
    text = raw.decode("utf-8", errors="replace")
    if source.source is not None:
        return parse_rows(text, str(source.path), source.source)
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.extend(parse_rows(line, str(source.path)))
        except MemoryDataError:
            log.warning("%s:%d is not a valid memory row: skipped", source.path, number)
    return rows


_memories: Memo[tuple[object, ...], NeedMemory] = Memo()


def default_memory(settings: Settings, splits: Sequence[str] | None = None, include_user: bool = True) -> NeedMemory:
    """The memory for ``settings``, built once per process (per home, splits and server)."""
    splits = tuple(splits or settings.memory_splits)
    key = (str(settings.home_dir), splits, include_user, settings.memory_url, settings.memory_collection)
    return _memories.get(
        key,
        lambda: build_memory(
            settings.home_dir,
            splits=splits,
            include_user=include_user,
            url=settings.memory_url,
            collection=settings.memory_collection,
        ),
    )


def training_memory(settings: Settings) -> NeedMemory:
    """The training split alone, in this process, built once: the source of few-shot examples, so nothing
    from the evaluation splits or the user's rows can leak into a prompt."""
    key = (str(settings.home_dir), ("train",), False, None, None)
    return _memories.get(key, lambda: build_memory(settings.home_dir, splits=("train",), include_user=False))

