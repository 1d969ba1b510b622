"""Neighbours for grounded training examples, retrieved from the training rows themselves.

At inference the chain shows the model the nearest needs of the need memory (``prompts/suggest_grounded.yaml``).
Training shows it the same kind of prompt, with one difference that matters: a training need's
neighbours never include the need itself, nor any need within MiniLM cosine ``exclude_cosine`` (0.9, the
split rule) of it. Otherwise every answer would sit in its own prompt and the model would learn only to
copy; this way it sees neighbours that are related but not the same and learns when to copy a type and
when to add one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from finetune.dataset import Record

#: Neighbours shown per grounded prompt, in training and (by default) at inference.
DEFAULT_NEIGHBOURS = 3
#: A training row this close to the asked need (or to its record's need) is never its neighbour.
DEFAULT_EXCLUDE_COSINE = 0.9

Embed = Callable[[Sequence[str]], "np.ndarray"]
Neighbours = list[tuple[str, list[str]]]


def training_neighbours(
    records: Sequence[Record],
    queries: Sequence[tuple[int, str]],
    embed: Embed,
    *,
    k: int = DEFAULT_NEIGHBOURS,
    exclude_cosine: float = DEFAULT_EXCLUDE_COSINE,
) -> list[Neighbours]:
    """For each ``(record index, text)`` query, the ``k`` nearest other records as ``(need, products)``,
    nearest first.

    A record is left out when it is the query's own record, or when its need is within ``exclude_cosine``
    of the query text or of the query's record need (a paraphrase's neighbours must not contain a
    rewording of the need it paraphrases).
    """
    import numpy as np

    if not queries:
        return []
    needs = embed([record.need for record in records])
    asked = embed([text for _, text in queries])
    similarity = asked @ needs.T  # (queries, records)
    own = np.array([index for index, _ in queries])
    too_close = (similarity >= exclude_cosine) | ((needs[own] @ needs.T) >= exclude_cosine)
    too_close[np.arange(len(queries)), own] = True
    similarity = np.where(too_close, -np.inf, similarity)
    found: list[Neighbours] = []
    for row in similarity:
        nearest = np.argsort(-row, kind="stable")[:k]
        found.append([(records[i].need, list(records[i].products)) for i in nearest if np.isfinite(row[i])])
    return found
