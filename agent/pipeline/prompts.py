"""Load the prompt templates in ``prompts/`` and render them into model input.

One source of truth for the prompt format: inference (the chain) and training (``finetune/``) both render
through :func:`render_prompt`, which goes through the tokenizer's own chat template.
"""

from __future__ import annotations

import string
from functools import cache
from importlib import resources
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, model_validator

from agent.core.errors import WhazzatError

Task = Literal["suggest", "suggest_grounded", "rewrite"]

#: Product types shown per neighbour in a grounded prompt: enough to copy from, short enough to stay cheap.
NEIGHBOUR_PRODUCTS = 5


class PromptError(WhazzatError, ValueError):
    """A prompt template file is missing, malformed or used with the wrong variables."""


class PromptTemplate(BaseModel):
    """A validated prompt template file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str
    variables: tuple[str, ...]
    system: str
    user: str

    @model_validator(mode="after")
    def _placeholders_match_variables(self) -> PromptTemplate:
        used = {field for _, field, _, _ in string.Formatter().parse(self.system + self.user) if field}
        if used != set(self.variables):
            raise ValueError(f"template uses {sorted(used)} but declares {sorted(self.variables)}")
        return self

    def messages(self, **values: Any) -> list[dict[str, str]]:
        missing = set(self.variables) - values.keys()
        if missing:
            raise PromptError(f"prompt {self.name!r} needs values for {sorted(missing)}")
        return [
            {"role": "system", "content": self.system.format(**values)},
            {"role": "user", "content": self.user.format(**values)},
        ]


@cache
def load_template(task: Task) -> PromptTemplate:
    """The template for ``task``, read from the ``prompts`` package."""
    try:
        text = resources.files("prompts").joinpath(f"{task}.yaml").read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise PromptError(f"no prompt template for task {task!r} in prompts/") from error
    try:
        return PromptTemplate.model_validate(yaml.safe_load(text))
    except (yaml.YAMLError, ValueError) as error:
        raise PromptError(f"prompts/{task}.yaml is invalid: {error}") from error


def render_prompt(
    tokenizer: Any,
    task: Task,
    answer: str | None = None,
    examples: list[tuple[dict[str, Any], str]] | None = None,
    **values: Any,
) -> str:
    """The model input for ``task``; with ``answer``, the full training text including the answer.

    ``examples`` are solved cases, ``(values, answer)``, shown as earlier turns of the same chat
    (retrieval-augmented few-shot): the model sees how similar needs were answered.
    Uses the tokenizer's chat template when it has one, and a plain layout otherwise (tiny test models).
    """
    template = load_template(task)
    messages = template.messages(**values)
    for example_values, example_answer in examples or []:
        user_turn = template.messages(**example_values)[1]
        messages[-1:-1] = [user_turn, {"role": "assistant", "content": example_answer}]
    if answer is not None:
        messages.append({"role": "assistant", "content": answer})
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=answer is None
        )
    text = "".join(f"{m['role']}: {m['content']}\n" for m in messages)
    if answer is None:
        return text + "assistant: "
    return text + (tokenizer.eos_token or "")


def format_products(products: list[str]) -> str:
    """The answer format the suggest task is trained to produce."""
    return ", ".join(products)


def format_paraphrases(paraphrases: list[str]) -> str:
    """The answer format the rewrite task is trained to produce."""
    return "\n".join(paraphrases)


def format_neighbours(neighbours: list[tuple[str, list[str]]], max_products: int = NEIGHBOUR_PRODUCTS) -> str:
    """The neighbours of a grounded suggest prompt: one compact ``- need: type, type`` line each."""
    return "\n".join(f"- {need}: {format_products(list(products)[:max_products])}" for need, products in neighbours)


def examples_from_neighbours(
    text: str, neighbours: list[tuple[str, list[str]]], k: int
) -> list[tuple[dict[str, Any], str]]:
    """Few-shot examples for ``text``: its ``k`` nearest known needs (given closest first) with their
    answers, nearest last (closest to the question in the chat). A known need equal to the text itself is
    skipped, so a need is never shown its own answer."""
    others = [(need, products) for need, products in neighbours if need.casefold() != text.casefold()]
    return [({"need": need}, format_products(products)) for need, products in reversed(others[:k])]

