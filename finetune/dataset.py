"""From JSONL records to trl prompt/completion examples, rendered through :mod:`agent.pipeline.prompts`.

A record is ``{"need", "products", "paraphrases", "area", "source"}``. It becomes:

- suggest: need -> products (and, as augmentation, each paraphrase -> the same products);
- suggest_grounded: the same, with the prompt showing the nearest other training needs and their products
  (``prompts/suggest_grounded.yaml``; neighbours from :mod:`finetune.grounding`);
- rewrite: need -> its paraphrases, one per line, when it has at least ``min_rewrite_paraphrases``.

Both the prompt and the answer go through :func:`agent.pipeline.prompts.render_prompt` and the tokenizer's chat
template, so training sees byte for byte what inference sends. The completion is the rendered answer
turn (ending with the template's end-of-turn token), and trl puts the loss on it alone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.core.errors import WhazzatError
from agent.pipeline.prompts import format_neighbours, format_paraphrases, format_products, render_prompt
from finetune.grounding import DEFAULT_EXCLUDE_COSINE, DEFAULT_NEIGHBOURS, Embed, training_neighbours


class DataError(WhazzatError, ValueError):
    """A data file is missing or a record is malformed."""


@dataclass(frozen=True)
class Record:
    """One need with its gold product types and paraphrases."""

    need: str
    products: list[str]
    paraphrases: list[str]
    area: str = ""
    source: str = ""


def read_records(path: Path) -> list[Record]:
    """Parse a JSONL file of records; :class:`DataError` names the first bad line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            record = Record(
                need=str(raw["need"]).strip(),
                products=[str(p).strip() for p in raw["products"]],
                paraphrases=[str(p).strip() for p in raw.get("paraphrases") or []],
                area=str(raw.get("area", "")),
                source=str(raw.get("source", "")),
            )
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise DataError(f"{path}:{number}: not a valid record ({error!r})") from error
        if not record.need or not record.products:
            raise DataError(f"{path}:{number}: a record needs a non-empty need and products")
        records.append(record)
    return records


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, recorded in the model card so a run names its exact data."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def prompt_completion(tokenizer: Any, task: str, answer: str, **values: Any) -> dict[str, str]:
    """One trl prompt/completion example (plain strings) for ``task``.

    The prompt is the rendered conversation up to the assistant turn; the completion is the rest of the
    fully rendered conversation. Trailing whitespace after the end-of-turn token is dropped, so the
    completion ends with EOS (trl would otherwise append a second one).
    """
    prompt = render_prompt(tokenizer, task, **values)
    full = render_prompt(tokenizer, task, answer=answer, **values)
    if not full.startswith(prompt):
        raise DataError(
            "the chat template renders the prompt differently with an answer appended, so the completion "
            f"cannot be split off; prompt: {prompt!r}"
        )
    return {"prompt": prompt, "completion": full[len(prompt) :].rstrip()}


def iter_examples(
    records: Iterable[Record],
    tokenizer: Any,
    tasks: Iterable[str] = ("suggest", "rewrite"),
    paraphrase_augmentation: bool = True,
    min_rewrite_paraphrases: int = 3,
    neighbours_k: int = DEFAULT_NEIGHBOURS,
    neighbour_exclude_cosine: float = DEFAULT_EXCLUDE_COSINE,
    embed: Embed | None = None,
) -> Iterator[dict[str, str]]:
    """Yield the prompt/completion examples for ``records`` (see the module docstring).

    ``embed`` (MiniLM by default) is used only by ``suggest_grounded``, to retrieve each prompt's
    neighbours among ``records``.
    """
    tasks = set(tasks)
    records = list(records)
    asked = [
        (index, text)
        for index, record in enumerate(records)
        for text in [record.need, *(record.paraphrases if paraphrase_augmentation else [])]
    ]
    grounded: dict[tuple[int, str], str] = {}
    if "suggest_grounded" in tasks:
        if embed is None:
            from agent.core.embeddings import embed
        found = training_neighbours(
            records, asked, embed, k=neighbours_k, exclude_cosine=neighbour_exclude_cosine
        )
        grounded = {query: format_neighbours(near) for query, near in zip(asked, found, strict=True) if near}
    for index, record in enumerate(records):
        products = format_products(record.products)
        for text in [record.need, *(record.paraphrases if paraphrase_augmentation else [])]:
            if "suggest" in tasks:
                yield prompt_completion(tokenizer, "suggest", products, need=text)
            if (index, text) in grounded:
                yield prompt_completion(
                    tokenizer, "suggest_grounded", products, need=text, neighbours=grounded[(index, text)]
                )
        if "rewrite" in tasks and len(record.paraphrases) >= min_rewrite_paraphrases:
            yield prompt_completion(
                tokenizer,
                "rewrite",
                format_paraphrases(record.paraphrases),
                need=record.need,
                n=len(record.paraphrases),
            )


def build_dataset(
    path: Path,
    tokenizer: Any,
    *,
    tasks: Iterable[str] = ("suggest", "rewrite"),
    paraphrase_augmentation: bool = True,
    min_rewrite_paraphrases: int = 3,
    neighbours_k: int = DEFAULT_NEIGHBOURS,
    neighbour_exclude_cosine: float = DEFAULT_EXCLUDE_COSINE,
    max_examples: int | None = None,
    seed: int = 42,
    embed: Embed | None = None,
):
    """A shuffled ``datasets.Dataset`` with ``prompt`` and ``completion`` columns."""
    from datasets import Dataset

    examples = list(
        iter_examples(
            read_records(path),
            tokenizer,
            tasks=tasks,
            paraphrase_augmentation=paraphrase_augmentation,
            min_rewrite_paraphrases=min_rewrite_paraphrases,
            neighbours_k=neighbours_k,
            neighbour_exclude_cosine=neighbour_exclude_cosine,
            embed=embed,
        )
    )
    if not examples:
        raise DataError(f"{path}: no training examples for tasks {sorted(tasks)}")
    dataset = Dataset.from_list(examples).shuffle(seed=seed)
    if max_examples is not None and len(dataset) > max_examples:
        dataset = dataset.select(range(max_examples))
    return dataset
