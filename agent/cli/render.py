"""Show a :class:`Recommendation` to people in a terminal (rich tables)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from agent.core.schemas import Recommendation


def print_recommendation(result: Recommendation, console: Console | None = None) -> None:
    """Paraphrases, product types with votes, then listings with links. API text is escaped: titles
    are shown as text, never interpreted as markup."""
    console = console or Console()
    console.print(f"[bold]Need:[/bold] {escape(result.need)}")
    if result.paraphrases:
        console.print("[bold]Also asked as:[/bold]")
        for paraphrase in result.paraphrases:
            console.print(f"  • {escape(paraphrase)}")

    asked = 1 + len(result.paraphrases)
    fused = any(s.score is not None for s in result.suggestions)
    if result.suggestions:
        table = Table(title="Product types", title_justify="left")
        table.add_column("#", justify="right")
        table.add_column("Product type")
        table.add_column("Votes", justify="right")
        if fused:
            table.add_column("Score", justify="right")
            table.add_column("Similar needs behind it", overflow="fold")
        for rank, suggestion in enumerate(result.suggestions, start=1):
            row = [str(rank), escape(suggestion.product), f"{suggestion.votes}/{asked}"]
            if fused:
                row += [f"{suggestion.score or 0.0:.2f}", escape("; ".join(suggestion.neighbours[:2]))]
            table.add_row(*row)
        console.print(table)

    if result.listings:
        has_details = any(listing.price is not None or listing.rating is not None for listing in result.listings)
        table = Table(title="Where to buy", title_justify="left", show_lines=False)
        table.add_column("Product type")
        table.add_column("Listing", overflow="fold")
        if has_details:
            table.add_column("Price", justify="right")
            table.add_column("Rating", justify="right")
        table.add_column("Link", overflow="fold")
        for listing in result.listings:
            row = [escape(listing.product), escape(listing.title)]
            if has_details:
                row.append("" if listing.price is None else f"{listing.price:.2f}")
                rating = "" if listing.rating is None else f"{listing.rating:.1f}★ ({listing.reviews or 0})"
                row.append(rating)
            row.append(escape(listing.url))
            table.add_row(*row)
        console.print(table)

    for warning in result.warnings:
        console.print(f"[yellow]Note:[/yellow] {escape(warning)}")
    if "total" in result.timings:
        console.print(f"[dim]Answered in {result.timings['total']:.1f} s[/dim]")
