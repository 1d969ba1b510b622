"""Whazzat: turn a vague need into product types and buyable links.

    from agent import recommend
    result = recommend("something to dig food")
    result.products, result.listings

Heavy modules (torch, transformers) load on first use, so ``import agent`` stays instant.
"""

from __future__ import annotations

from typing import Any

from agent.core.schemas import Listing, Recommendation, Suggestion

__all__ = ["Listing", "Recommendation", "Suggestion", "build_chain", "recommend"]


def __getattr__(name: str) -> Any:
    if name in {"build_chain", "recommend"}:
        from agent.pipeline import chain

        return getattr(chain, name)
    raise AttributeError(f"module 'agent' has no attribute {name!r}")
