"""Model folders on disk: whether one is complete, saving one atomically, and a hash that names one."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

#: Files of a model or adapter directory that decide its answers.
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt")
_CONFIG_NAMES = (
    "config.json",
    "adapter_config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
)


def model_dir_is_usable(target: Path) -> bool:
    """Whether a model folder is complete: config files that parse, and weights whose safetensors header
    reads and covers the whole file (safetensors checks both on open, without loading any tensor)."""
    weights = target / "model.safetensors"
    configs = (target / "config.json", target / "tokenizer_config.json")
    if not all(path.is_file() for path in (weights, *configs)):
        return False
    from safetensors import SafetensorError, safe_open

    try:
        for config in configs:
            json.loads(config.read_text(encoding="utf-8"))
        with safe_open(str(weights), framework="pt") as tensors:
            return bool(list(tensors.keys()))
    except (SafetensorError, OSError, ValueError):  # ValueError covers bad JSON and bad UTF-8
        return False


def save_model_dir(model: Any, tokenizer: Any, target: Path) -> None:
    """Save a model and its tokenizer as ``target``, atomically: a crash or a full disk leaves no half
    folder, and when another process published ``target`` first, its copy is kept."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        if target.exists() and not model_dir_is_usable(target):  # a stale, incomplete folder
            shutil.rmtree(target)
        try:
            staging.rename(target)
        except OSError:
            if not model_dir_is_usable(target):  # not a lost race with a sibling worker
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


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
