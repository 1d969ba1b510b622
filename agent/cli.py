"""The ``whazzat`` command line. Heavy libraries (torch, transformers) are imported inside commands, so
``whazzat --help`` answers at once."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agent.cli_options import (
    AdapterOption,
    EndpointOption,
    JsonOption,
    ModelOption,
    NoAdapterOption,
    ParaphrasesOption,
    fail,
)
from agent.config import AMAZON_DOMAINS, BACKENDS

if TYPE_CHECKING:
    from agent.config import Settings
    from agent.schemas import Recommendation

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

NeedArgument = Annotated[str, typer.Argument(help="What you need, in your own words, e.g. 'my back hurts'.")]


def make_settings(**overrides: Any) -> Settings:
    """Settings from the environment plus flags, or a one-line error naming the flag to fix."""
    from pydantic import ValidationError

    from agent.config import get_settings

    try:
        return get_settings(**overrides)
    except ValidationError as error:
        first = error.errors()[0]
        flag = "--" + str(first["loc"][0]).replace("_", "-") if first["loc"] else "a setting"
        fail(f"{flag}: {first['msg']} (got {first.get('input')!r})")


def _check_choice(value: str | None, choices: tuple[str, ...], flag: str) -> None:
    if value is not None and value not in choices:
        fail(f"{flag} must be one of {', '.join(choices)} (got {value!r})")


def quiet_libraries() -> None:
    """Keep stderr for our own progress: silence transformers' load bars and advisory warnings."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def run_chain(need: str, settings: Settings, quiet: bool) -> Recommendation:
    """Validate, build the chain and answer, turning the project's errors into one-line messages."""
    from rich.console import Console
    from rich.markup import escape

    from agent.errors import WhazzatError
    from agent.validation import validate_need

    try:
        need = validate_need(need)
        quiet_libraries()
        from agent.chain import build_chain

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
        from agent.render import print_recommendation

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
        bool, typer.Option("--no-cache", help="Fetch fresh Axesso results instead of cached ones (24 h).")
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
    _check_choice(backend, BACKENDS, "--backend")
    _check_choice(domain, AMAZON_DOMAINS, "--domain")
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
from agent.batch_cli import batch  # noqa: E402
from agent.bench.cli import bench  # noqa: E402
from agent.memory_cli import memory_app  # noqa: E402
from agent.ui.cli import feedback_app, ui  # noqa: E402
from finetune.cli import finetune, merge  # noqa: E402
from finetune.eval_cli import eval_command  # noqa: E402

app.command("batch")(batch)
app.command("bench")(bench)
app.command("eval")(eval_command)
app.command("finetune")(finetune)
app.command("merge")(merge)
app.command("ui")(ui)
app.add_typer(feedback_app, name="feedback")
app.add_typer(memory_app, name="memory")
