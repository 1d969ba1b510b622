"""Commands of the chat UI: ``whazzat ui`` and ``whazzat feedback export``.

Light at import (no chainlit, no torch), so ``whazzat --help`` stays instant. ``agent/cli/main.py`` registers
them::

    app.command("ui")(ui)
    app.add_typer(feedback_app, name="feedback")    # whazzat feedback export OUT

Before registration (or to run the UI alone): ``python -m agent.cli.ui --port 8000``.
"""

from __future__ import annotations

import os
import shutil
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer

#: The Chainlit app module that ``chainlit run`` loads.
APP_PATH = Path(str(resources.files("agent.ui").joinpath("app.py")))
#: Where ``chainlit.md`` (the welcome page), ``.chainlit/config.toml`` (safe defaults) and ``public/`` (logo,
#: favicon, theme, styles and the product cards element) live in a source checkout.
APP_ROOT = Path(str(resources.files("agent"))).parent
#: The same files as package data (links to the checkout's, copied into wheels), for installs without a
#: checkout.
PACKAGED_APP_FILES = Path(str(resources.files("agent.ui").joinpath("app_files")))
#: Files of ``public/`` that are Whazzat's code, not its branding: they must match the installed version
#: (the cards element reads the props this version builds), so every start refreshes them.
REFRESHED_PUBLIC = ("elements", "whazzat.css", "whazzat.js")


def app_root(home: Path) -> Path:
    """The Chainlit app root: the source checkout when there is one, else ``home/ui``.

    Chainlit writes next to its config (translations, uploaded files), so an installed package gets a
    writable copy under ``WHAZZAT_HOME`` rather than its site-packages directory. The config, the welcome
    page and the branding in ``public/`` (logo, favicon, theme) are copied only when missing: edits made
    there are kept. The cards element and its styles (:data:`REFRESHED_PUBLIC`) are always refreshed.
    """
    if (APP_ROOT / ".chainlit" / "config.toml").is_file() and (APP_ROOT / "chainlit.md").is_file():
        return APP_ROOT
    root = home / "ui"
    (root / ".chainlit").mkdir(parents=True, exist_ok=True)
    copies = {"chainlit.md": root / "chainlit.md", "config.toml": root / ".chainlit" / "config.toml"}
    for source, target in copies.items():
        if not target.is_file():
            shutil.copyfile(PACKAGED_APP_FILES / source, target)
    copy_public(PACKAGED_APP_FILES / "public", root / "public")
    return root


def copy_public(source: Path, target: Path) -> None:
    """Copy the packaged ``public/`` files to ``target``: branding when missing, code always."""
    for path in sorted(source.rglob("*")):
        if not path.is_file():
            continue
        relative = path.relative_to(source)
        destination = target / relative
        if relative.parts[0] in REFRESHED_PUBLIC or not destination.is_file():
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, destination)


def ui(
    host: Annotated[str, typer.Option(help="Interface to listen on; keep 127.0.0.1 unless login is on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    headless: Annotated[bool, typer.Option("--headless", help="Do not open a browser tab.")] = False,
) -> None:
    """Chat with Whazzat in the browser: steps, product cards, follow-ups and feedback.

    \b
    Examples:
      whazzat ui                      # http://127.0.0.1:8000
      whazzat ui --port 8080 --headless
    Optional password login: set CHAINLIT_AUTH_SECRET and WHAZZAT_UI_PASSWORD (see .chainlit/config.toml).
    """
    from agent.core.config import get_settings
    from agent.core.errors import WhazzatError

    try:
        root = app_root(get_settings().home_dir)
    except (OSError, WhazzatError) as error:
        typer.echo(f"Error: cannot set up the UI files under WHAZZAT_HOME: {error}", err=True)
        raise typer.Exit(2) from None
    # Chainlit reads its config, the welcome page and the translations from its app root, at import.
    os.environ["CHAINLIT_APP_ROOT"] = str(root)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from chainlit.cli import cli as chainlit_cli  # heavy: only when the server starts

    from agent.ui.auth import PASSWORD_ENV, login_enabled

    if host not in ("127.0.0.1", "localhost", "::1") and not login_enabled():
        typer.echo(f"Warning: serving on {host} without login: anyone who reaches it can use it. "
                   f"Set {PASSWORD_ENV} and CHAINLIT_AUTH_SECRET to require a password.", err=True)
    args = ["run", str(APP_PATH), "--host", host, "--port", str(port)]
    if headless:
        args.append("--headless")
    typer.echo(f"Whazzat UI on http://{host}:{port} (Ctrl+C stops it)", err=True)
    # In-process, so this process's PID is the server's (one signal stops it, no orphaned child).
    chainlit_cli.main(args=args, prog_name="chainlit", standalone_mode=True)


def feedback_export(
    out: Annotated[Path, typer.Argument(help="JSONL file to write, e.g. finetune/data/feedback.jsonl.")],
) -> None:
    """Turn the thumbs-up answers of the UI's feedback into training rows for the finetune command, and
    add them to the need memory (used by the next question, no retraining needed).

    \b
    Each row is {"need", "products", "paraphrases": []}, the format of finetune/data/train.jsonl:
      whazzat feedback export feedback-train.jsonl
      whazzat finetune -r finetune/recipes/smollm2-135m-lora-cpu.yaml \
          --set data.train_file=feedback-train.jsonl
    """
    from agent.core.config import get_settings
    from agent.pipeline.feedback import export_training_rows, feedback_path

    source = feedback_path(get_settings().home_dir)
    if not source.is_file():
        typer.echo(f"No feedback yet ({source} does not exist); rate some answers in `whazzat ui` first.", err=True)
        raise typer.Exit(1)
    try:
        summary = export_training_rows(source, out)
    except OSError as error:
        typer.echo(f"Error: could not write {out}: {error.strerror or error}", err=True)
        raise typer.Exit(2) from error
    skipped = f"; {summary.skipped_lines} unreadable lines skipped" if summary.skipped_lines else ""
    typer.echo(f"Wrote {summary.rows} training rows to {out} from {summary.liked} liked of "
               f"{summary.answers} rated answers{skipped}.", err=True)
    from agent.pipeline.memory import MemoryDataError, MemoryRow, read_rows_file, remember

    try:
        rows = [MemoryRow(need=r.need, products=r.products, source="feedback") for r in read_rows_file(out)]
        added = remember(get_settings().home_dir, rows)
    except (MemoryDataError, OSError) as error:
        typer.echo(f"Error: the rows were written but not added to the need memory: {error}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"Added {added} new rows to the need memory.", err=True)


feedback_app = typer.Typer(help="Work with the feedback users gave in the chat UI.", no_args_is_help=True)
feedback_app.command("export")(feedback_export)


if __name__ == "__main__":  # python -m agent.cli.ui [--host H] [--port P] [--headless]
    typer.run(ui)
