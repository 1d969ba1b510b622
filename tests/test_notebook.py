"""Notebooks: a Recommendation's HTML cards (escaped, https only), and the quickstart notebook executed
with a real kernel so it cannot rot."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.core.html import recommendation_html, safe_https
from agent.core.schemas import Listing, Recommendation, Suggestion

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = ROOT / "examples" / "quickstart.ipynb"


def make_result(**listing_fields: object) -> Recommendation:
    listing = {
        "product": "garden trowel",
        "title": "Steel Garden Trowel",
        "url": "https://www.amazon.com/dp/B000TEST01",
        "price": 12.5,
        "rating": 4.6,
        "reviews": 1234,
        "image": "https://m.media-amazon.com/images/I/trowel.jpg",
        "prime": True,
        **listing_fields,
    }
    return Recommendation(
        need="something to dig food",
        paraphrases=["a tool for digging in the garden"],
        suggestions=[Suggestion(product="garden trowel", votes=2, sources=["something to dig food"])],
        listings=[Listing(**listing)],
        warnings=["Axesso is not used: RAPIDAPI_KEY is not set"],
    )


def test_cards_show_the_answer() -> None:
    html = make_result()._repr_html_()
    assert html == recommendation_html(make_result())
    assert "something to dig food" in html and "a tool for digging in the garden" in html
    assert "garden trowel <small>2/2</small>" in html
    assert (
        '<a href="https://www.amazon.com/dp/B000TEST01" target="_blank" rel="noopener noreferrer nofollow">'
        in html
    )
    assert '<img src="https://m.media-amazon.com/images/I/trowel.jpg"' in html
    assert "12.50" in html and "★ 4.6 (1,234)" in html and "Prime" in html
    assert "Note: Axesso is not used" in html


def test_every_text_is_escaped_and_only_https_is_linked() -> None:
    attack = '"><script>alert(1)</script><img src=x onerror=alert(1)>'
    result = make_result(
        title=attack, product=attack, url="javascript:alert(1)", image="http://tracker.example/x.gif"
    )
    result = result.model_copy(update={"need": attack, "paraphrases": [attack], "warnings": [attack]})
    html = result._repr_html_()
    assert "<script>" not in html and "<img src=x" not in html and "onerror=alert(1)>" not in html
    assert html.count("&lt;script&gt;") == 5  # need, paraphrase, product, title, warning
    assert "javascript:" not in html and "href=" not in html  # a non-https link is shown as text only
    assert "tracker.example" not in html  # a non-https image is dropped


def test_an_https_url_with_quotes_cannot_leave_its_attribute() -> None:
    html = make_result(url='https://www.amazon.com/s?k=a"onmouseover="alert(1)')._repr_html_()
    assert 'href="https://www.amazon.com/s?k=a&quot;onmouseover=&quot;alert(1)"' in html


@pytest.mark.parametrize(
    ("url", "safe"),
    [
        ("https://www.amazon.com/dp/X", True),
        ("http://www.amazon.com/dp/X", False),
        ("javascript:alert(1)", False),
        ("https://", False),
        ("https://www.amazon.com/a b", False),
        ("https://www.amazon.com/\u2028", False),
        (None, False),
    ],
)
def test_safe_https(url: str | None, safe: bool) -> None:
    assert (safe_https(url) is not None) is safe


def test_empty_answer_renders() -> None:
    html = Recommendation(need="x", warnings=["The model proposed nothing"])._repr_html_()
    assert "Need:</strong> x" in html and "Note: The model proposed nothing" in html


@pytest.mark.integration
def test_quickstart_notebook_executes(embedded_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs every cell on the real embedded model, in a real kernel, as a user would."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("WHAZZAT_HOME", str(embedded_home))  # the kernel inherits the environment
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    # Convert the GGUF here, once for all integration tests (the shared home), not inside the kernel:
    # the conversion's status spinner and transformers' progress bar recurse under ipykernel (reported).
    from agent.models.llm import embedded_model_dir

    embedded_model_dir(embedded_home)

    notebook = nbformat.read(QUICKSTART, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    )
    client.execute()

    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    html = [output.data["text/html"] for output in outputs if "text/html" in output.get("data", {})]
    cards = [text for text in html if "whazzat-recommendation" in text]
    assert len(cards) == 3  # the asked need and the two batched ones
    assert "something to dig food" in cards[0]
    assert any("with 2 rewrites" in text for text in html)  # the comparison table
