"""Options shared by the ``whazzat`` commands (ask, suggest, batch, eval, ...).

Light to import (typer only), so every command module can use it without slowing ``whazzat --help``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from agent.core.config import MAX_PARAPHRASES

ParaphrasesOption = Annotated[
    int,
    typer.Option("--paraphrases", "-p", help=f"Rewrites of the need to ask the model with (0-{MAX_PARAPHRASES}); "
                 "more rewrites find more product types but take longer. 0 turns rewriting off."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout, nothing else.")]
ModelOption = Annotated[
    str | None, typer.Option("--model", help="A Hugging Face model id or local directory instead of the embedded model.")
]
AdapterOption = Annotated[str | None, typer.Option("--adapter", help="A LoRA adapter directory to apply.")]
NoAdapterOption = Annotated[
    bool, typer.Option("--no-adapter", help="Run the base model without the fine-tuned adapter (to compare).")
]
EndpointOption = Annotated[
    str | None,
    typer.Option("--llm-endpoint", help="URL of an OpenAI-compatible server (vLLM, TGI) serving the model, "
                 "instead of loading it here. Also WHAZZAT_LLM_ENDPOINT."),
]
