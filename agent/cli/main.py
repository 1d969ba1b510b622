"""The ``whazzat`` command line. Heavy libraries (torch, transformers) are imported inside commands, so
``whazzat --help`` answers at once."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from agent.cli.common import check_choice, fail, make_settings, quiet_libraries
from agent.cli.options import (
    AdapterOption,
    EndpointOption,
    JsonOption,
    ModelOption,
    NoAdapterOption,
    ParaphrasesOption,
)
from agent.core.config import AMAZON_DOMAINS, BACKENDS

if TYPE_CHECKING:
    from agent.core.config import Settings
    from agent.core.schemas import Recommendation

app = typer.Typer(
    name="whazzat",
    help=(
        "Turn a vague need into product types and buyable links.\n\n"
        "Example: whazzat ask \"something to dig food\"\n\n"
        "Runs on the embedded SmolLM2-135M model with the project's fine-tuned adapter by default; "
        "no key and no GPU needed. Set RAPIDAPI_KEY and use --backend axesso for real Amazon listings."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: The entry point group through which other packages add commands (finetune adds its own this way).
PLUGIN_GROUP = "whazzat.commands"

NeedArgument = Annotated[str, typer.Argument(help="What you need, in your own words, e.g. 'my back hurts'.")]


def run_chain(need: str, settings: Settings, quiet: bool) -> Recommendation:
    """Validate, build the chain and answer, turning the project's errors into one-line messages."""
    from rich.console import Console
    from rich.markup import escape

    from agent.core.errors import WhazzatError
    from agent.pipeline.validation import validate_need

    try:
        need = validate_need(need)
        quiet_libraries()
        from agent.pipeline.chain import build_chain

        console = Console(stderr=True, quiet=quiet)
        with console.status("Loading the model..."):
            chain = build_chain(settings)
        with console.status(f"Thinking about “{escape(need)}”..."):  # the need is text, not rich markup
            return chain.invoke(need)
    except WhazzatError as error:
        fail(str(error))


def show(result: Recommendation, json_output: bool) -> None:
    """Exactly the Recommendation as JSON on stdout, or tables for people."""
    if json_output:
        typer.echo(result.model_dump_json(indent=2))
    else:
        from agent.cli.render import print_recommendation

        print_recommendation(result)


@app.command()
def ask(
    need: NeedArgument,
    paraphrases: ParaphrasesOption = 4,
    top: Annotated[int, typer.Option("--top", "-k", help="How many listings to show.")] = 10,
    backend: Annotated[str, typer.Option(help=f"Where to find products: {', '.join(BACKENDS)}.")] = "links",
    domain: Annotated[str, typer.Option(help=f"Amazon marketplace: {', '.join(AMAZON_DOMAINS)}.")] = "com",
    budget: Annotated[float | None, typer.Option(help="Maximum price per item (axesso and catalog backends).")] = None,
    catalog: Annotated[
        Path | None, typer.Option(help="Product feed (JSONL or CSV) for --backend catalog.")
    ] = None,
    no_cache: Annotated[
        bool,
        typer.Option("--no-cache", help="Ask the model and Axesso afresh instead of reading cached answers "
                     "(model answers: 30 days, keyed by model and adapter; searches: 24 h)."),
    ] = False,
    model: ModelOption = None,
    adapter: AdapterOption = None,
    no_adapter: NoAdapterOption = False,
    llm_endpoint: EndpointOption = None,
    json_output: JsonOption = False,
) -> None:
    """Answer a need with product types and links (the whole chain).

    \b
    Examples:
      whazzat ask "something to dig food"
      whazzat ask "gift for a dad who loves fishing" --domain co.uk --top 5
      whazzat ask "my back hurts after sitting all day" --json
      RAPIDAPI_KEY=... whazzat ask "quiet fan for a bedroom" --backend axesso --budget 40
      whazzat ask "running shoes" --backend catalog --catalog shop.jsonl
    """
    check_choice(backend, BACKENDS, "--backend")
    check_choice(domain, AMAZON_DOMAINS, "--domain")
    if backend == "catalog" and catalog is None:
        fail("--backend catalog needs --catalog PATH (a JSONL or CSV product feed)")
    settings = make_settings(paraphrases=paraphrases, top_k=top, backend=backend, domain=domain,
                             budget=budget, catalog=catalog, no_cache=no_cache or None, model=model,
                             adapter=adapter, no_adapter=no_adapter or None, llm_endpoint=llm_endpoint)
    show(run_chain(need, settings, quiet=json_output), json_output)


@app.command()
def suggest(
    need: NeedArgument,
    paraphrases: ParaphrasesOption = 4,
    model: ModelOption = None,
    adapter: AdapterOption = None,
    no_adapter: NoAdapterOption = False,
    llm_endpoint: EndpointOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show the paraphrases and product types for a need, without searching for listings.

    \b
    Example:
      whazzat suggest "first camping trip next month" --paraphrases 2
    """
    settings = make_settings(paraphrases=paraphrases, model=model, adapter=adapter,
                             no_adapter=no_adapter or None, llm_endpoint=llm_endpoint, backend="links")
    show(run_chain(need, settings, quiet=json_output).model_copy(update={"listings": []}), json_output)


def main() -> None:  # pragma: no cover - console script entry
    sys.exit(app())


# --- commands that live beside the code they drive (each module is light: heavy imports happen inside)
from agent.cli.batch import batch  # noqa: E402
from agent.cli.bench import bench, levers  # noqa: E402
from agent.cli.memory import memory_app  # noqa: E402
from agent.cli.ui import feedback_app, ui  # noqa: E402

app.command("batch")(batch)
app.command("bench")(bench)
app.command("bench-levers")(levers)
app.command("ui")(ui)
app.add_typer(feedback_app, name="feedback")
app.add_typer(memory_app, name="memory")


def _register_plugins() -> None:
    """Commands other packages add through the ``whazzat.commands`` entry point group: each entry is a
    function that takes the app (``finetune.cli:register`` adds finetune, merge and eval). The agent
    never imports them by name, so the training package stays a layer above it."""
    from importlib.metadata import entry_points

    for entry in entry_points(group=PLUGIN_GROUP):
        try:
            entry.load()(app)
        except Exception as error:  # noqa: BLE001 - a broken plugin must not take the core commands down
            print(f"whazzat: the {entry.name!r} commands could not be loaded: {error}", file=sys.stderr)


_register_plugins()
