"""A short hash naming the exact model that answers: the answer cache's key (see
:mod:`agent.pipeline.answer_cache`), so a retrained adapter or another model never reads old answers.

* The adapter is hashed by content: it is small (a few MB), and retraining in place keeps its path.
* A local base model is hashed by its config's content and its weight files' names, sizes and modification
  times: reading gigabytes of weights on every start would cost more than the cache saves.
* A Hub id or an endpoint is named by what identifies it (the id; the URL without credentials and the
  served model's name).
* The settings that change the weights' arithmetic (quantisation, 4-bit) are part of it too.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from urllib.parse import urlsplit

from agent.core.config import Settings

#: Files of a model or adapter directory that decide its answers.
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt")
_CONFIG_NAMES = ("config.json", "adapter_config.json", "generation_config.json", "tokenizer.json",
                 "tokenizer_config.json")


def model_fingerprint(settings: Settings) -> str:
    """16 hex characters naming the model, adapter and numeric settings that ``settings`` load."""
    return _digest(json.dumps(_identity(settings), sort_keys=True))[:16]


def _identity(settings: Settings) -> dict[str, object]:
    if settings.llm_endpoint:
        from agent.models.endpoint import normalize_endpoint

        parts = urlsplit(normalize_endpoint(settings.llm_endpoint))  # credentials never enter the key
        return {"endpoint": f"{parts.scheme}://{parts.hostname}:{parts.port}{parts.path}", "model": settings.model}
    from agent.models.llm import resolve_model

    base, adapter = resolve_model(settings)
    return {
        "base": directory_fingerprint(Path(base), by_content=False) if Path(base).is_dir() else base,
        "adapter": directory_fingerprint(Path(adapter), by_content=True) if adapter else None,
        "quantize": settings.quantize,
        "load_in_4bit": settings.load_in_4bit,
    }


def directory_fingerprint(directory: Path, *, by_content: bool) -> str:
    """A hash of a model or adapter directory: config files by content; weights by content when
    ``by_content``, else by name, size and modification time."""
    digest = hashlib.sha256()
    for path in sorted(directory.iterdir()):
        if path.name in _CONFIG_NAMES or (by_content and path.suffix in _WEIGHT_SUFFIXES):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
        elif path.suffix in _WEIGHT_SUFFIXES:
            stat = path.stat()
            digest.update(f"{path.name}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
