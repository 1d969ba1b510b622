"""Helpers every ``whazzat`` command shares: one-line errors, settings from flags, quiet libraries.

Light to import (typer only), so every command module can use it without slowing ``whazzat --help``.
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import TYPE_CHECKING, Any, NoReturn

import typer

if TYPE_CHECKING:
    from agent.core.config import Settings

#: The exit code of an error the user can fix (a bad flag, a missing file).
EXIT_BAD_INPUT = 2


def fail(message: str) -> NoReturn:
    """One clear line on stderr and exit code 2: the user can fix this."""
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(EXIT_BAD_INPUT)


def make_settings(**overrides: Any) -> Settings:
    """Settings from the environment plus flags, or a one-line error naming the flag to fix."""
    from pydantic import ValidationError

    from agent.core.config import get_settings

    try:
        return get_settings(**overrides)
    except ValidationError as error:
        first = error.errors()[0]
        flag = "--" + str(first["loc"][0]).replace("_", "-") if first["loc"] else "a setting"
        fail(f"{flag}: {first['msg']} (got {first.get('input')!r})")


def check_choice(value: str | None, choices: tuple[str, ...], flag: str) -> None:
    if value is not None and value not in choices:
        fail(f"{flag} must be one of {', '.join(choices)} (got {value!r})")


def quiet_libraries() -> None:
    """Keep stderr for our own progress and stdout for the result: no load bars or advisory warnings."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore")
    for name in ("transformers", "peft", "torch", "sentence_transformers", "httpx", "bitsandbytes"):
        logging.getLogger(name).setLevel(logging.ERROR)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
