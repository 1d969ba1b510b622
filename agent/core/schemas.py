"""The pydantic models at Whazzat's boundaries: what the chain returns and what search backends produce."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Neighbour(BaseModel):
    """A known need from the need memory, found near the user's need or one of its paraphrases."""

    model_config = ConfigDict(extra="forbid")

    need: str = Field(description="The known need, as stored in the memory.")
    products: list[str] = Field(description="Its product types, best first.")
    similarity: float = Field(description="MiniLM cosine with the closest of the prompts that found it.")
    source: str = Field(default="dataset", description="'dataset' (shipped), 'user' or 'feedback'.")
    query: str | None = Field(default=None, description="The prompt (need or paraphrase) that found it closest.")


class Suggestion(BaseModel):
    """A product type for the need, after duplicates were folded, with what backs it.

    ``votes`` and ``sources`` are the model's part (the prompts that proposed it); ``neighbours`` the
    memory's (the known needs that list it). ``score`` ranks the suggestions, from ``score_parts``.
    """

    model_config = ConfigDict(extra="forbid")

    product: str = Field(description="Generic product type, e.g. 'garden trowel'.")
    votes: int = Field(ge=0, description="How many of the prompts (need + paraphrases) the model proposed it for.")
    sources: list[str] = Field(default_factory=list, description="The prompts the model proposed it for.")
    neighbours: list[str] = Field(
        default_factory=list, description="The memory's known needs that list it, closest first."
    )
    score: float | None = Field(default=None, description="Fused score (model, memory, relevance); higher first.")
    score_parts: dict[str, float] = Field(
        default_factory=dict,
        description="The weighted parts of the score: 'model' (share of prompts), 'memory' (share of the "
        "neighbours' similarity), 'relevance' (MiniLM cosine with the need and its paraphrases).",
    )


class Listing(BaseModel):
    """One buyable item (or, for the links backend, one marketplace search page) for a product type."""

    model_config = ConfigDict(extra="forbid")

    product: str = Field(description="The product type this listing was found for.")
    title: str
    url: str = Field(description="Absolute https URL on the marketplace.")
    price: float | None = None
    rating: float | None = Field(default=None, ge=0, le=5)
    reviews: int | None = Field(default=None, ge=0)
    image: str | None = None
    asin: str | None = None
    sponsored: bool = False
    prime: bool = False
    score: float | None = Field(default=None, description="Ranking score; higher is better.")
    score_parts: dict[str, float] = Field(
        default_factory=dict, description="The named parts the score is made of, so users see why."
    )


class Recommendation(BaseModel):
    """The chain's answer to one need."""

    model_config = ConfigDict(extra="forbid")

    need: str
    paraphrases: list[str] = Field(default_factory=list, description="Generated paraphrases (not the need).")
    neighbours: list[Neighbour] = Field(
        default_factory=list, description="Nearest known needs in the need memory, closest first."
    )
    suggestions: list[Suggestion] = Field(default_factory=list)
    listings: list[Listing] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    search_outages: list[str] = Field(
        default_factory=list, description="The warnings saying the search backend did not answer at all."
    )
    timings: dict[str, float] = Field(default_factory=dict, description="Seconds per stage.")

    @property
    def products(self) -> list[str]:
        return [suggestion.product for suggestion in self.suggestions]

    def to_records(self) -> list[dict[str, object]]:
        """One flat row per listing (or per suggestion when nothing was listed), for tables and DataFrames."""
        votes = {suggestion.product: suggestion.votes for suggestion in self.suggestions}
        if not self.listings:
            return [{"need": self.need, "product": s.product, "votes": s.votes} for s in self.suggestions]
        return [
            {"need": self.need, "votes": votes.get(listing.product, 0), **listing.model_dump(exclude={"score_parts"})}
            for listing in self.listings
        ]

    def _repr_html_(self) -> str:
        """HTML cards in Jupyter (rendering lives in :mod:`agent.core.html`)."""
        from agent.core.html import recommendation_html

        return recommendation_html(self)

    def to_dataframe(self):  # noqa: ANN201 - pandas is optional
        """The rows of :meth:`to_records` as a pandas DataFrame (needs ``pandas``)."""
        import pandas as pd

        return pd.DataFrame(self.to_records())
