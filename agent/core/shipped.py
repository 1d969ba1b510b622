"""Where the files that ship with Whazzat are, found through ``importlib.resources`` so a wheel works.

Two sets of released files answer needs at run time: the fine-tuned adapter and the dataset splits that
seed the need memory. Both are package data of the ``finetune`` distribution folders (where training
writes them); the agent reads them as files and never imports training code.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

#: The grounded adapter (trained on prompts with the need memory's neighbours). It continues the first
#: adapter, ``smollm2-135m-whazzat``, which stays beside it as its starting point.
SHIPPED_ADAPTER_NAME = "smollm2-135m-whazzat-grounded"
#: The package whose data folders hold the released files (``adapters/``, ``data/``).
_RELEASE_PACKAGE = "finetune"


def _release_file(*parts: str) -> Path:
    return Path(str(resources.files(_RELEASE_PACKAGE).joinpath(*parts)))


def shipped_adapter() -> Path:
    """The shipped LoRA adapter's folder."""
    return _release_file("adapters", SHIPPED_ADAPTER_NAME)


def shipped_split(split: str) -> Path:
    """A shipped dataset split (``train``, ``val``, ``test``, ``seed_test``) as a JSONL file."""
    return _release_file("data", f"{split}.jsonl")
