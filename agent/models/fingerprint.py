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
from agent.models.folders import directory_fingerprint


def model_fingerprint(settings: Settings) -> str:
    """16 hex characters naming the model, adapter and numeric settings that ``settings`` load."""
    return _digest(json.dumps(_identity(settings), sort_keys=True))[:16]


def _identity(settings: Settings) -> dict[str, object]:
    if settings.llm_endpoint:
        from agent.models.endpoint import normalize_endpoint

        parts = urlsplit(normalize_endpoint(settings.llm_endpoint))  # credentials never enter the key
        return {
            "endpoint": f"{parts.scheme}://{parts.hostname}:{parts.port}{parts.path}",
            "model": settings.model,
        }
    from agent.models.llm import resolve_model

    base, adapter = resolve_model(settings)
    return {
        "base": directory_fingerprint(Path(base), by_content=False) if Path(base).is_dir() else base,
        "adapter": directory_fingerprint(Path(adapter), by_content=True) if adapter else None,
        "quantize": settings.quantize,
        "load_in_4bit": settings.load_in_4bit,
    }


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
