"""Clean and import the original Whazzat data (a 2023 course project) into ``finetune/data/seed.jsonl``.

    whazzat data seed [--seed-dir ../shared/data/seed]

The raw files and their bugs (see finetune/data/README.md):

- ``dataset.txt`` (928 lines) is the richest file: 243 needs, most with several answers, but three line
  formats are mixed (``"need","a, b"``, ``need,a,b`` and ``need,a, b``), casing varies ("Smart Fitness
  Tracker"), a typographic quote (``”``) and a missing closing quote glue or cut lines, one line has a single
  cut-off item ("leather"), and parentheses hold lists ("stew ingredients (meat, vegetables)").
- ``unique_dataset.txt`` and ``hf_split_*.txt`` were derived from it one answer per need, and lost
  punctuation on the way ("a 5-year-old" became "a yearold", the parenthesis became two products). We use
  them only for *which* needs exist and which of them were the original test split; needs and answers are
  taken from ``dataset.txt``, matched on a letters-only key.

Each need keeps all of its answers, merged: the original split's answer first, then the other products by
how often the raw lines name them, exact duplicates removed and near-duplicates (MiniLM cosine >= 0.85,
e.g. "grill tool set" / "grilling tool set") folded, at most 6.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from agent.cli.common import fail
from finetune.data.clean import clean_need, clean_product, dedup_keep_order, letters_key, normalize_quotes

if TYPE_CHECKING:
    import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Where the original data lives in this workspace: ``shared/`` beside the repository.
DEFAULT_SEED_DIR = REPO_ROOT.parent / "shared" / "data" / "seed"
SEED_JSONL = Path(__file__).resolve().parent / "seed.jsonl"

MAX_PRODUCTS = 6
#: Two products of one need closer than this (MiniLM cosine) are one product named twice; the same value
#: as the chain's ``semantic_threshold``.
PRODUCT_FOLD_COSINE = 0.85


@dataclass
class SeedNeed:
    """One need of the original data with every answer the raw file gives for it."""

    need: str
    split: str  # "train" or "test": the original project's split
    answers: list[list[str]] = field(default_factory=list)  # cleaned products, one list per raw line
    split_answer: list[str] = field(default_factory=list)  # the answer its hf split used


def split_products(text: str) -> list[str]:
    """Split a raw product list on commas outside parentheses."""
    items, depth, current = [], 0, []
    for char in text:
        depth += char == "("
        depth -= char == ")" and depth > 0
        if char == "," and depth == 0:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    items.append("".join(current))
    return [item for item in items if item.strip()]


def parse_dataset_line(line: str) -> tuple[str, list[str]] | None:
    """``(need, products)`` from one raw ``dataset.txt`` line, or None when it cannot be read.

    A quoted line without its closing quote was cut off mid-item ("curry pot, tikka"): its last item is
    dropped. Products are cleaned; items that are no product (a brand alone, empty) are dropped.
    """
    line = normalize_quotes(line).strip()
    if not line:
        return None
    if line.startswith('"'):
        match = re.fullmatch(r'"([^"]*)",\s*"([^"]*?)(")?', line)
        if match is None:
            return None
        need, raw_products, closed = match.groups()
        items = split_products(raw_products)
        if not closed:
            items = items[:-1]
    else:
        need, _, raw_products = line.partition(",")
        items = split_products(raw_products)
    products = dedup_keep_order([p for p in map(clean_product, items) if p])
    return clean_need(need).lower(), products


def read_hf_split(path: Path) -> list[tuple[str, list[str]]]:
    """``(need, products)`` pairs from a ``<s>[INST]need[/INST]['a', 'b']</s>`` file."""
    pairs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.fullmatch(r"<s>\[INST\](.*)\[/INST\]\[(.*)\]</s>", line.strip())
        if match:
            products = re.findall(r"'([^']*)'", match.group(2))
            pairs.append((match.group(1), products))
    return pairs


def load_seed_needs(seed_dir: Path) -> tuple[list[SeedNeed], dict[str, int]]:
    """Every original need with its answers, and counts of what the cleaning did."""
    stats: Counter[str] = Counter()
    needs: dict[str, SeedNeed] = {}
    for split in ("train", "test"):
        for need, products in read_hf_split(seed_dir / f"hf_split_{split}.txt"):
            key = letters_key(need)
            needs[key] = SeedNeed(need=clean_need(need).lower(), split=split)
            needs[key].split_answer = [letters_key(p) for p in products]
            stats[f"hf_{split}_needs"] += 1

    for line in (seed_dir / "dataset.txt").read_text(encoding="utf-8").splitlines():
        stats["raw_lines"] += 1
        parsed = parse_dataset_line(line)
        if parsed is None:
            stats["unreadable_lines"] += 1
            continue
        need, products = parsed
        seed_need = needs.get(letters_key(need))
        if seed_need is None:
            stats["lines_for_unknown_needs"] += 1
            continue
        if len(products) < 2:  # the one-item bug: a line cut off after its first item
            stats["one_item_lines_dropped"] += 1
            continue
        seed_need.need = need  # the raw spelling keeps hyphens, apostrophes and digits
        seed_need.answers.append(products)
    return list(needs.values()), dict(stats)


def merge_answers(seed_need: SeedNeed) -> list[str]:
    """One product list: the split's answer first, then the others by frequency, duplicates folded."""
    counts: Counter[str] = Counter(p for answer in seed_need.answers for p in answer)
    first_seen = {p: i for i, p in reversed(list(enumerate(p for a in seed_need.answers for p in a)))}
    # Map the split answer's punctuation-stripped keys back to the raw spellings.
    by_key = {letters_key(p): p for p in counts}
    preferred = [by_key[k] for k in seed_need.split_answer if k in by_key]
    rest = sorted(counts, key=lambda p: (-counts[p], first_seen[p]))
    return dedup_keep_order(preferred + rest)


def fold_near_duplicates(
    products: list[str], vectors: dict[str, np.ndarray], threshold: float = PRODUCT_FOLD_COSINE
) -> list[str]:
    """Drop each product too close (MiniLM cosine of the unit ``vectors``) to one kept before it."""
    kept: list[str] = []
    for product in products:
        if all(float(vectors[product] @ vectors[other]) < threshold for other in kept):
            kept.append(product)
    return kept


def build_seed_records(seed_dir: Path) -> tuple[list[dict], dict[str, int]]:
    """Cleaned seed records ``{"need", "products", "split"}`` and the cleaning counts."""
    from agent.core.embeddings import embed

    seed_needs, stats = load_seed_needs(seed_dir)
    merged = [merge_answers(seed_need) for seed_need in seed_needs]
    distinct = sorted({p for products in merged for p in products})
    vectors = dict(zip(distinct, embed(distinct)))  # one batched call: embedding is the slow part
    records = []
    for seed_need, products in zip(seed_needs, merged):
        products = fold_near_duplicates(products, vectors)[:MAX_PRODUCTS]
        if len(products) < 2:
            stats["needs_dropped_under_2_products"] = stats.get("needs_dropped_under_2_products", 0) + 1
            continue
        records.append({"need": seed_need.need, "products": products, "split": seed_need.split})
    stats["records"] = len(records)
    stats["records_test"] = sum(r["split"] == "test" for r in records)
    stats["needs_with_several_answers"] = sum(len(n.answers) > 1 for n in seed_needs)
    return records, stats


def write_jsonl(path: Path, records: Iterable[dict]) -> None:
    """One JSON object per line, UTF-8, keys in the given order."""
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def check_seed_dir(seed_dir: Path) -> None:
    """Raise ``FileNotFoundError`` with a message that says what to pass when the raw files are missing."""
    missing = [
        n for n in ("dataset.txt", "hf_split_train.txt", "hf_split_test.txt") if not (seed_dir / n).is_file()
    ]
    if missing:
        raise FileNotFoundError(
            f"seed data not found in {seed_dir} (missing {', '.join(missing)}); pass --seed-dir"
        )


SeedDirOption = Annotated[
    Path, typer.Option("--seed-dir", help="The original data folder (dataset.txt, hf_split_*.txt).")
]


def seed(
    seed_dir: SeedDirOption = DEFAULT_SEED_DIR,
    out: Annotated[Path, typer.Option("--out", help="Where the cleaned seed records go.")] = SEED_JSONL,
) -> None:
    """Clean and import the original Whazzat data (a 2023 course project) into a seed JSONL.

    \b
    Example:
      whazzat data seed --seed-dir ../shared/data/seed
    """
    try:
        check_seed_dir(seed_dir)
    except FileNotFoundError as error:
        fail(str(error))
    records, stats = build_seed_records(seed_dir)
    write_jsonl(out, records)
    print(json.dumps(stats, indent=1))
    print(f"wrote {len(records)} seed records to {out}")


def main() -> None:
    """``python -m finetune.data.seed``: the same command as ``whazzat data seed``."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(seed)
    app()


if __name__ == "__main__":
    main()
