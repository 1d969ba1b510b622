"""What the chain carries from stage to stage: one typed :class:`ChainState` per need.

Stages fill it in place and hand the same object on, so the pydantic models a stage makes (neighbours,
suggestions, listings) reach the next stage and the final :class:`Recommendation` as they are: nothing is
dumped to a dict and validated back.

The stage names are defined here once; the UI's steps, the bench and callbacks use these constants.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

from agent.core.schemas import Listing, Neighbour, Recommendation, Suggestion

StageName = Literal["validate", "rewrite", "retrieve", "suggest", "fuse", "search", "rank"]
#: The chain's stages, in order. ``retrieve`` runs only when answers draw on the need memory.
STAGES: tuple[StageName, ...] = ("validate", "rewrite", "retrieve", "suggest", "fuse", "search", "rank")
#: The run name of the whole chain in callbacks and traces.
CHAIN_NAME = "whazzat"
#: The run name of the last step, which turns the state into a :class:`Recommendation`.
FINISH_NAME = "recommendation"

#: One suggest prompt's answer: the text asked (the need or a paraphrase) and the product types parsed.
Proposal = tuple[str, list[str]]


@dataclass
class ChainState:
    """One need on its way through the chain."""

    need: str
    paraphrases: list[str] = field(default_factory=list)
    #: Each asked text (the need and every paraphrase) -> the need memory's neighbours for it.
    retrieved: dict[str, list[Neighbour]] = field(default_factory=dict)
    #: The neighbours of all asked texts, merged (best similarity per known need).
    neighbours: list[Neighbour] = field(default_factory=list)
    proposals: list[Proposal] = field(default_factory=list)
    suggestions: list[Suggestion] = field(default_factory=list)
    listings: list[Listing] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: The search warnings that say the backend did not answer at all (also in ``warnings``).
    search_outages: list[str] = field(default_factory=list)
    #: Stage name -> seconds (a batch shares one figure per stage: the stage's wall time).
    timings: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    @property
    def asked(self) -> list[str]:
        """Every text the model and the memory are asked with: the need, then its paraphrases."""
        return [self.need, *self.paraphrases]

    def recommendation(self) -> Recommendation:
        timings = {**self.timings, "total": round(time.perf_counter() - self.started, 4)}
        return Recommendation(
            need=self.need,
            paraphrases=self.paraphrases,
            neighbours=self.neighbours,
            suggestions=self.suggestions,
            listings=self.listings,
            warnings=self.warnings,
            search_outages=self.search_outages,
            timings=timings,
        )
