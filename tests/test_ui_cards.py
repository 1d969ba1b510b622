"""The product cards element's props (agent/ui/card_element.py): grouping, plain text, safe URLs only, the
compact shape of search links, and how an answer message carries both its Markdown and the element."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from agent.core.schemas import Listing, Suggestion
from agent.ui.card_element import (
    ELEMENT_NAME,
    FOLLOW_UP_HINT,
    PART_LABELS,
    AnswerContent,
    CardsProps,
    cards_props,
)
from agent.ui.cards import render_answer

ROOT = Path(__file__).resolve().parents[1]
NEED = "something to dig food"


def product(name: str, n: int, **fields: Any) -> Listing:
    values: dict[str, Any] = {
        "product": name,
        "title": f"{name} model {n}",
        "url": f"https://www.amazon.com/dp/{name.replace(' ', '-')}-{n}",
        "price": 9.99 * n,
        "rating": 4.5,
        "reviews": 1200 * n,
        "image": f"https://m.media-amazon.com/images/I/{n}.jpg",
        "asin": f"B0000000{n:02d}",
        "score": 0.81234,
        "score_parts": {"relevance": 0.9, "rating": 0.7, "price": 1.0},
    }
    values.update(fields)
    return Listing(**values)


def search_link(name: str, url: str | None = None) -> Listing:
    return Listing(product=name, title=f"Search Amazon for “{name}”",
                   url=url or f"https://www.amazon.com/s?k={name.replace(' ', '+')}")


def props_for(listings: list[Listing], suggestions: list[Suggestion] | None = None, **kwargs: Any) -> CardsProps:
    made = cards_props(need=kwargs.pop("need", NEED), paraphrases=kwargs.pop("paraphrases", []),
                       suggestions=suggestions or [], listings=listings, domain=kwargs.pop("domain", "com"), **kwargs)
    assert made is not None
    return made


# --- grouping and content --------------------------------------------------------------------------------
def test_listings_are_grouped_by_product_type_in_ranking_order() -> None:
    listings = [product("garden trowel", 1), product("hand rake", 1), product("Garden Trowels", 2),
                product("hand rake", 2)]
    props = props_for(listings)
    assert [g.product for g in props.groups] == ["Garden trowel", "Hand rake"]  # folded like the dedup step
    assert [c.title for c in props.groups[0].listings] == ["garden trowel model 1", "Garden Trowels model 2"]
    assert not any(g.compact for g in props.groups)


def test_a_card_has_its_price_rating_reviews_picture_link_and_score_parts() -> None:
    card = props_for([product("garden trowel", 1, prime=True)]).groups[0].listings[0]
    assert card.price == "$9.99" and card.rating == 4.5 and card.reviews == 1200 and card.reviews_label == "1,200"
    assert card.url == "https://www.amazon.com/dp/garden-trowel-1"
    assert card.image == "https://m.media-amazon.com/images/I/1.jpg"
    assert card.image_alt == "garden trowel model 1" and card.prime and card.score == 0.812
    assert [(p.name, p.label, p.value, p.weight) for p in card.parts] == [
        ("relevance", PART_LABELS["relevance"], 0.9, 0.35),
        ("rating", PART_LABELS["rating"], 0.7, 0.25),
        ("price", PART_LABELS["price"], 1.0, 0.10),
    ]


def test_prices_use_the_marketplace_currency() -> None:
    assert props_for([product("trowel", 1)], domain="de").groups[0].listings[0].price == "€9.99"
    assert props_for([product("trowel", 1, price=None)]).groups[0].listings[0].price == ""


def test_titles_are_plain_text_on_one_line_never_markdown_escaped() -> None:
    title = "Trowel [click](javascript:alert(1)) <b>bold</b>\n**stars** & more" + " long" * 60
    card = props_for([product("garden trowel", 1, title=title)]).groups[0].listings[0]
    assert card.title.startswith("Trowel [click](javascript:alert(1)) <b>bold</b> **stars** & more long")
    assert "\\" not in card.title and "\n" not in card.title  # React shows text as text: no escaping
    assert len(card.title) == 160 and card.title.endswith("…")
    assert len(card.image_alt) <= 100


@pytest.mark.parametrize("url", ["javascript:alert(1)", "data:text/html,<script>x</script>", "/dp/B000",
                                 "ftp://example.com/x", "https:///no-host", "  ", None])
def test_only_http_urls_reach_the_element(url: str | None) -> None:
    listing = product("garden trowel", 1, url="https://www.amazon.com/dp/ok").model_copy(
        update={"url": url or "", "image": url})
    card = props_for([listing]).groups[0].listings[0]
    assert card.url is None and card.image is None
    # A search link with an unsafe URL is dropped, not shown without a target.
    group = props_for([search_link("hand rake", url=url or "javascript:x")]).groups[0]
    assert group.links == []


def test_urls_are_percent_encoded_like_the_markdown_links() -> None:
    card = props_for([product("trowel", 1, url="https://www.amazon.com/s?k=a (b)\"<x>")]).groups[0].listings[0]
    assert card.url == "https://www.amazon.com/s?k=a%20%28b%29%22%3Cx%3E"


# --- the links backend: one compact card per product type ---------------------------------------------------
def test_search_links_make_one_compact_card_per_product_type() -> None:
    suggestions = [Suggestion(product="garden trowel", votes=3, sources=[NEED, "dig", "soil"]),
                   Suggestion(product="hand rake", votes=1, sources=["soil"])]
    props = props_for([search_link("garden trowel"), search_link("hand rake")], suggestions,
                      paraphrases=["dig", "soil"])
    assert [(g.product, g.compact, len(g.listings)) for g in props.groups] == [
        ("Garden trowel", True, 0), ("Hand rake", True, 0)]
    trowel = props.groups[0]
    assert [(link.title, link.url) for link in trowel.links] == [
        ("Search Amazon for “garden trowel”", "https://www.amazon.com/s?k=garden+trowel")]
    assert trowel.votes == "3 of 3 phrasings"
    assert trowel.why == "suggested for your words, rewrite 1, rewrite 2"
    assert props.groups[1].why == "suggested for rewrite 2"
    assert props.rewrites == ["dig", "soil"] and props.hint == FOLLOW_UP_HINT


def test_a_group_with_products_keeps_its_search_link_beside_the_cards() -> None:
    group = props_for([product("garden trowel", 1), search_link("garden trowel")]).groups[0]
    assert not group.compact and len(group.listings) == 1 and len(group.links) == 1


def test_similar_needs_are_quoted_as_plain_text() -> None:
    suggestion = Suggestion(product="garden trowel", votes=0, score=0.9, neighbours=["dig *food* [x](y)"])
    group = props_for([search_link("garden trowel")], [suggestion]).groups[0]
    assert group.why == "listed for similar needs like “dig *food* [x](y)”"
    assert group.votes.startswith("score 0.90")


def test_warnings_become_notes_once_each_and_no_listing_means_no_element() -> None:
    props = props_for([search_link("trowel")], warnings=["Search unavailable: x", "Search unavailable: x", "b"])
    assert props.notes == ["Search unavailable: x", "b"]
    assert cards_props(need=NEED, paraphrases=[], suggestions=[], listings=[], domain="com") is None
    assert AnswerContent(markdown="nothing").elements() == []


def test_props_are_json_and_their_shape_is_what_the_jsx_reads() -> None:
    props = props_for([product("garden trowel", 1), search_link("hand rake")], warnings=["w"])
    data = json.loads(json.dumps(props.model_dump(mode="json")))
    assert set(data) == {"groups", "notes", "rewrites", "hint"}
    assert set(data["groups"][0]) == {"product", "votes", "why", "compact", "listings", "links"}
    jsx = (ROOT / "public" / "elements" / f"{ELEMENT_NAME}.jsx").read_text(encoding="utf-8")
    for name in [*data, *data["groups"][0], *data["groups"][0]["listings"][0], "image_alt", "reviews_label"]:
        assert f".{name}" in jsx, f"the element never reads {name}"


# --- the answer message -------------------------------------------------------------------------------------
async def test_an_answer_message_carries_its_markdown_and_the_cards_element(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pytest.importorskip("chainlit", reason="the UI needs chainlit: pip install 'chainlit>=2.10.1'")
    import chainlit.config
    from chainlit.context import ChainlitContext, context_var
    from chainlit.emitter import BaseChainlitEmitter
    from chainlit.session import HTTPSession

    from agent.ui import handlers
    from agent.ui.session_state import ShownAnswer

    class Recorder(BaseChainlitEmitter):
        def __init__(self, session: HTTPSession) -> None:
            super().__init__(session)
            self.steps: list[dict[str, Any]] = []
            self.elements: list[dict[str, Any]] = []

        async def send_step(self, step_dict):
            self.steps.append(dict(step_dict))

        async def update_step(self, step_dict):
            self.steps.append(dict(step_dict))

        async def send_element(self, element_dict):
            self.elements.append(dict(element_dict))

        async def emit(self, event, data):
            return None

    # Chainlit keeps elements without a URL as files there: the cards have one, so nothing is written.
    monkeypatch.setattr(chainlit.config, "FILES_DIRECTORY", tmp_path / "missing")
    session = HTTPSession(id=str(uuid.uuid4()), thread_id=str(uuid.uuid4()), client_type="webapp")
    recorder = Recorder(session)
    context_var.set(ChainlitContext(session, emitter=recorder))

    listings = [product("garden trowel", 1), product("hand rake", 1)]
    answer = ShownAnswer(need=NEED, listings=listings,
                         suggestions=[Suggestion(product="garden trowel", votes=1, sources=[NEED])])
    working = await handlers.say("Working...")
    content = handlers._answer_markdown(answer, warnings=["Search unavailable for hand rake"])
    await handlers.show_answer(working, "Done:", answer, content)

    expected = render_answer(need=NEED, paraphrases=[], suggestions=answer.suggestions, listings=listings,
                             domain="com", warnings=["Search unavailable for hand rake"])
    texts = [step["output"] for step in recorder.steps if step.get("type") == "assistant_message"]
    assert texts[-1] == expected  # the Markdown stays the message's text (copy, no-JS fallback)
    assert "Done:" in texts
    (element,) = recorder.elements
    assert element["type"] == "custom" and element["name"] == ELEMENT_NAME and element["display"] == "inline"
    assert element["url"] == "/public/elements/WhazzatCards.jsx" and not (tmp_path / "missing").exists()
    answer_id = next(s["id"] for s in recorder.steps if s.get("output") == expected)
    assert element["forId"] == answer_id
    assert element["props"] == content.cards.model_dump(mode="json")
    assert element["props"]["notes"] == ["Search unavailable for hand rake"]
    assert [g["product"] for g in element["props"]["groups"]] == ["Garden trowel", "Hand rake"]


async def test_an_answer_without_listings_sends_no_element(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("chainlit", reason="the UI needs chainlit: pip install 'chainlit>=2.10.1'")
    from agent.ui import handlers
    from agent.ui.session_state import ShownAnswer

    content = handlers._answer_markdown(ShownAnswer(need=NEED))
    assert content.cards is None and content.elements() == []
    assert "I found no listings" in content.markdown
