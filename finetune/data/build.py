"""Build the dataset: seed + hand-written sources -> ``finetune/data/{train,val,test,seed_test}.jsonl``.

    whazzat data build [--seed-dir ../shared/data/seed] [--out-dir finetune/data]

Steps (each explained in finetune/data/README.md):

1. Seed: cleaned from the original project's raw files when ``--seed-dir`` exists (and saved to
   ``seed.jsonl``); otherwise read from the committed ``seed.jsonl``.
2. Written: every ``sources/<area>.jsonl`` line cleaned (products lowercased, de-branded, deduplicated,
   at most 6) and validated with :class:`~finetune.data.schema.NeedRecord`; what fails is dropped and counted.
3. Exact duplicate needs are dropped (the seed's copy wins); seed needs get the area of their nearest
   written needs (MiniLM, majority of 5).
4. Near-duplicate groups: two records are linked when a need of one is within MiniLM cosine 0.9 of the need
   or a paraphrase of the other. A linked group always lands in one split, so no test or val need has a
   near-duplicate in train. Groups holding an original test need go to test, and original train needs
   in them are dropped (the seed's own split had 19 such leaks).
5. Splits are sticky: a need already in a committed split stays there when the data grows, and a new need
   linked to it joins it (a new need that links needs of two different splits is dropped). So a test need
   never moves into train, and an adapter trained on the old train split is never evaluated on it.
   ``--fresh`` ignores the committed splits.
6. The remaining (new) written groups are split about 80/10/10 per area with a fixed seed; small groups
   fill test and val, big ones go to train.

Deterministic: same sources, same output.
"""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError

from agent.cli.common import fail
from finetune.data.clean import clean_need, clean_product, dedup_keep_order
from finetune.data.schema import MAX_PARAPHRASES, MAX_PRODUCTS, NeedRecord
from finetune.data.seed import (
    DEFAULT_SEED_DIR,
    SEED_JSONL,
    SeedDirOption,
    build_seed_records,
    check_seed_dir,
    write_jsonl,
)

if TYPE_CHECKING:
    import numpy as np

DATA_DIR = Path(__file__).resolve().parent
SOURCES_DIR = DATA_DIR / "sources"
SPLITS = ("train", "val", "test")

#: MiniLM cosine at or above which two needs count as near-duplicates (the issue's rule).
NEAR_DUPLICATE_COSINE = 0.9
VAL_FRACTION = TEST_FRACTION = 0.10
#: Groups bigger than this go to train: putting a whole cluster of similar needs into test would make
#: the test split repetitive and starve training of that topic.
MAX_HELD_OUT_GROUP = 2
RANDOM_SEED = 13
AREA_NEIGHBOURS = 5


@dataclass
class Candidate:
    """A cleaned record on its way into a split."""

    record: NeedRecord
    seed_split: str | None = None  # "train"/"test" for seed records: the original project's split


# --- loading ---------------------------------------------------------------------------------------


def clean_written(raw: dict, area: str) -> NeedRecord:
    """A hand-written source line as a validated record (raises ``ValueError`` when it cannot be one)."""
    need = clean_need(str(raw.get("need", "")))
    products = dedup_keep_order([p for p in map(clean_product, raw.get("products") or []) if p])
    paraphrases = dedup_keep_order(
        [
            clean_need(str(p))
            for p in raw.get("paraphrases") or []
            if clean_need(str(p)).lower() != need.lower()
        ]
    )
    return NeedRecord(
        need=need,
        products=products[:MAX_PRODUCTS],
        paraphrases=[p for p in paraphrases if p][:MAX_PARAPHRASES],
        area=area,
        source="written",
    )


def load_written(sources_dir: Path, stats: Counter[str], problems: list[str]) -> list[Candidate]:
    """Every usable record of ``sources_dir/*.jsonl``, in file and line order."""
    candidates = []
    for path in sorted(sources_dir.glob("*.jsonl")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            stats["written_lines"] += 1
            try:
                raw = json.loads(line)
                candidates.append(Candidate(clean_written(raw, area=path.stem)))
            except (ValueError, AttributeError, TypeError) as error:
                stats["written_dropped_invalid"] += 1
                reason = error.errors()[0]["msg"] if isinstance(error, ValidationError) else str(error)
                problems.append(f"{path.name}:{number}: {reason[:160]}")
    return candidates


def load_seed(seed_dir: Path, stats: Counter[str]) -> list[Candidate]:
    """Seed records from the raw files (refreshing ``seed.jsonl``) or, without them, from ``seed.jsonl``."""
    if seed_dir.is_dir():
        check_seed_dir(seed_dir)
        rows, seed_stats = build_seed_records(seed_dir)
        write_jsonl(SEED_JSONL, rows)
        stats.update({f"seed_{key}": value for key, value in seed_stats.items()})
    else:
        print(f"note: {seed_dir} not found, using the committed {SEED_JSONL.name}")
        rows = [json.loads(line) for line in SEED_JSONL.read_text(encoding="utf-8").splitlines()]
    return [
        Candidate(NeedRecord(need=r["need"], products=r["products"], area="seed", source="seed"), r["split"])
        for r in rows
    ]


def drop_exact_duplicates(candidates: list[Candidate], stats: Counter[str]) -> list[Candidate]:
    """First record per lowercased need (seed records come first, so the seed's copy wins)."""
    seen: set[str] = set()
    kept = []
    for candidate in candidates:
        key = candidate.record.need.lower()
        if key in seen:
            stats["dropped_exact_duplicate_need"] += 1
            continue
        seen.add(key)
        kept.append(candidate)
    return kept


# --- areas and near-duplicate groups -----------------------------------------------------------------


def infer_seed_areas(candidates: list[Candidate], need_vectors: np.ndarray) -> None:
    """Give each seed record the most common area among its nearest written needs (ties: closest first)."""
    written = [i for i, c in enumerate(candidates) if c.record.source == "written"]
    if not written:
        return
    for i, candidate in enumerate(candidates):
        if candidate.record.source != "seed":
            continue
        sims = need_vectors[written] @ need_vectors[i]
        nearest = [written[j] for j in sims.argsort()[::-1][:AREA_NEIGHBOURS]]
        votes = Counter(candidates[j].record.area for j in nearest)
        top = max(votes.values())
        area = next(candidates[j].record.area for j in nearest if votes[candidates[j].record.area] == top)
        candidates[i].record = candidate.record.model_copy(update={"area": area})


def near_duplicate_groups(candidates: list[Candidate], need_vectors: np.ndarray) -> list[list[int]]:
    """Indices of candidates, grouped by links "need within cosine 0.9 of the other's need or paraphrase"."""
    from agent.core.embeddings import embed

    owner = [i for i, c in enumerate(candidates) for _ in c.record.paraphrases]
    para_vectors = embed([p for c in candidates for p in c.record.paraphrases])
    parent = list(range(len(candidates)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    need_sims = need_vectors @ need_vectors.T
    para_sims = need_vectors @ para_vectors.T
    pairs = [tuple(p) for p in zip(*(need_sims >= NEAR_DUPLICATE_COSINE).nonzero())]
    pairs += [(i, owner[j]) for i, j in zip(*(para_sims >= NEAR_DUPLICATE_COSINE).nonzero())]
    for i, j in pairs:
        parent[find(i)] = find(j)

    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(len(candidates)):
        groups[find(i)].append(i)
    return sorted(groups.values())


# --- splitting ---------------------------------------------------------------------------------------


def read_previous_splits(out_dir: Path) -> dict[str, str]:
    """The split of every need in the committed split files (casefolded need -> split); empty if none."""
    previous: dict[str, str] = {}
    for name in SPLITS:
        path = out_dir / f"{name}.jsonl"
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    previous[json.loads(line)["need"].casefold()] = name
    return previous


def assign_splits(
    candidates: list[Candidate],
    groups: list[list[int]],
    stats: Counter[str],
    previous: dict[str, str] | None = None,
) -> dict[str, list[NeedRecord]]:
    """Records per split; every near-duplicate group lands whole in one split, and a need keeps the split
    ``previous`` gives it (casefolded need -> split)."""
    previous = previous or {}
    split_of: dict[int, str] = {}
    free_groups: dict[str, list[list[int]]] = defaultdict(list)  # written-only groups, by area
    held_out: Counter[tuple[str, str]] = Counter()  # (area, split) -> records already there
    area_size: Counter[str] = Counter(c.record.area for c in candidates if c.record.source == "written")

    for group in groups:
        seed_splits = {candidates[i].seed_split for i in group} - {None}
        kept = {previous[key] for i in group if (key := candidates[i].record.need.casefold()) in previous}
        if "test" in seed_splits:
            for i in group:
                if candidates[i].seed_split == "train":  # too close to an original test need
                    stats["seed_train_dropped_near_seed_test"] += 1
                    continue
                split_of[i] = "test"
                held_out[(candidates[i].record.area, "test")] += candidates[i].record.source == "written"
        elif len(kept) > 1:
            # New needs that tie needs of different splits together: keep the old ones where they were.
            for i in group:
                if (split := previous.get(candidates[i].record.need.casefold())) is None:
                    stats["new_dropped_linking_two_splits"] += 1
                    continue
                split_of[i] = split
                held_out[(candidates[i].record.area, split)] += candidates[i].record.source == "written"
        elif kept:
            split = kept.pop()
            for i in group:
                split_of[i] = split
                held_out[(candidates[i].record.area, split)] += candidates[i].record.source == "written"
        elif seed_splits:
            split_of.update({i: "train" for i in group})
        else:
            free_groups[candidates[group[0]].record.area].append(group)

    rng = random.Random(RANDOM_SEED)
    for area in sorted(free_groups):
        area_groups = free_groups[area]
        rng.shuffle(area_groups)
        quota = {"test": round(TEST_FRACTION * area_size[area]), "val": round(VAL_FRACTION * area_size[area])}
        for group in area_groups:
            split = "train"
            for held in ("test", "val"):
                if len(group) <= MAX_HELD_OUT_GROUP and held_out[(area, held)] + len(group) <= quota[held]:
                    split = held
                    break
            held_out[(area, split)] += len(group)
            split_of.update({i: split for i in group})

    splits: dict[str, list[NeedRecord]] = {name: [] for name in SPLITS}
    for i, candidate in enumerate(candidates):  # candidate order: seed first, then areas alphabetically
        if i in split_of:
            splits[split_of[i]].append(candidate.record)
    return splits


def max_cross_similarity(held_out: list[int], train: list[int], need_vectors: np.ndarray) -> float:
    """The largest MiniLM cosine between a held-out need and a train need (by candidate index)."""
    if not held_out or not train:
        return 0.0
    return float((need_vectors[held_out] @ need_vectors[train].T).max())


# --- main --------------------------------------------------------------------------------------------


def build(
    seed_dir: Path, sources_dir: Path, out_dir: Path, fresh: bool = False
) -> tuple[dict[str, list[NeedRecord]], Counter[str], list[str]]:
    """Build and write every split; returns the splits, the counts and the problems found in sources.
    Needs already in ``out_dir``'s splits keep their split unless ``fresh``."""
    from agent.core.embeddings import embed

    previous = {} if fresh else read_previous_splits(out_dir)
    stats: Counter[str] = Counter()
    problems: list[str] = []
    candidates = load_seed(seed_dir, stats) + load_written(sources_dir, stats, problems)
    candidates = drop_exact_duplicates(candidates, stats)

    need_vectors = embed([c.record.need for c in candidates])
    infer_seed_areas(candidates, need_vectors)
    groups = near_duplicate_groups(candidates, need_vectors)
    stats["near_duplicate_groups_of_2_or_more"] = sum(len(g) > 1 for g in groups)
    splits = assign_splits(candidates, groups, stats, previous)

    index = {c.record.need: i for i, c in enumerate(candidates)}
    train = [index[r.need] for r in splits["train"]]
    for name in ("val", "test"):
        worst = max_cross_similarity([index[r.need] for r in splits[name]], train, need_vectors)
        if worst >= NEAR_DUPLICATE_COSINE:  # cannot happen by construction; a bug if it does
            raise RuntimeError(f"{name} has a need within cosine {worst:.3f} of a train need")
        stats[f"max_cosine_{name}_vs_train"] = round(worst, 3)  # type: ignore[assignment]

    out_dir.mkdir(parents=True, exist_ok=True)
    for name, records in splits.items():
        write_jsonl(out_dir / f"{name}.jsonl", (r.model_dump() for r in records))
    seed_test = [r for r in splits["test"] if r.source == "seed"]
    write_jsonl(out_dir / "seed_test.jsonl", (r.model_dump() for r in seed_test))
    return splits, stats, problems


def print_report(splits: dict[str, list[NeedRecord]], stats: Counter[str], problems: list[str]) -> None:
    """Counts per split and area, and the cleaning counts."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="records per area and split")
    for column in ("area", *SPLITS, "total", "seed"):
        table.add_column(column, justify="left" if column == "area" else "right")
    areas = sorted({r.area for records in splits.values() for r in records})
    for area in areas:
        counts = [sum(r.area == area for r in splits[name]) for name in SPLITS]
        seed = sum(r.area == area and r.source == "seed" for records in splits.values() for r in records)
        table.add_row(area, *map(str, counts), str(sum(counts)), str(seed))
    table.add_row(
        "[b]all",
        *(str(len(splits[name])) for name in SPLITS),
        str(sum(map(len, splits.values()))),
        str(sum(r.source == "seed" for s in splits.values() for r in s)),
    )
    console.print(table)
    with_paraphrases = sum(len(r.paraphrases) >= 3 for s in splits.values() for r in s)
    console.print(
        f"areas: {len(areas)}; records with 3-5 paraphrases: {with_paraphrases}; "
        f"seed test needs: {sum(r.source == 'seed' for r in splits['test'])}"
    )
    console.print(dict(sorted(stats.items())))
    for problem in problems[:20]:
        console.print(f"[yellow]dropped[/] {problem}", highlight=False)
    if len(problems) > 20:
        console.print(f"... and {len(problems) - 20} more dropped lines")


def build_command(
    seed_dir: SeedDirOption = DEFAULT_SEED_DIR,
    sources_dir: Annotated[
        Path, typer.Option("--sources-dir", help="Hand-written records, one <area>.jsonl per area.")
    ] = SOURCES_DIR,
    out_dir: Annotated[Path, typer.Option("--out-dir", help="Where the splits are written.")] = DATA_DIR,
    fresh: Annotated[
        bool,
        typer.Option("--fresh", help="Ignore the committed splits (test needs may move into train)."),
    ] = False,
) -> None:
    """Build the dataset: seed + hand-written sources -> train, val, test and seed_test JSONL.

    Without --seed-dir's raw files the committed seed.jsonl is used. Deterministic: same sources, same
    output; needs already in a committed split stay there unless --fresh.

    \b
    Examples:
      whazzat data build
      whazzat data build --fresh
    """
    if not sources_dir.is_dir():
        fail(f"--sources-dir: no such directory {sources_dir}")
    try:
        splits, stats, problems = build(seed_dir, sources_dir, out_dir, fresh=fresh)
    except FileNotFoundError as error:
        fail(str(error))
    print_report(splits, stats, problems)


def main() -> None:
    """``python -m finetune.data.build``: the same command as ``whazzat data build``."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(build_command)
    app()


if __name__ == "__main__":
    main()
