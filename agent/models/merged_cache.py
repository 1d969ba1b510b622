"""The embedded model with its adapter merged, cached on disk so that later loads skip the merge.

Merging the shipped LoRA adapter into the embedded model took 1.7 s of a 3.5 s warm load (``peft`` loads
the adapter, then ``merge_and_unload`` writes every touched weight into the checkpoint's copy-on-write
memory map). The merged weights depend only on the base checkpoint and the adapter, so they are saved
once beside the base, named by both fingerprints, and later loads read them like any checkpoint: a
retrained adapter or a re-converted base gets a new folder, never stale weights.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from agent.models.folders import directory_fingerprint, model_dir_is_usable, save_model_dir

log = logging.getLogger(__name__)

#: Merged folders kept per base model (the most recently used): one per adapter a user switches between.
#: Each is a full copy of the base's weights (538 MB for the embedded model), so older ones are removed.
MERGED_FOLDERS_KEPT = 3


def merged_dir(base: Path, adapter: Path) -> Path:
    """Where ``base`` with ``adapter`` merged into it is cached: beside ``base``, named by the base's
    fingerprint (config, weight files' sizes and times) and the adapter's (its content)."""
    identity = "\0".join(
        (directory_fingerprint(base, by_content=False), directory_fingerprint(adapter, by_content=True))
    )
    return base.parent / f"{base.name}-merged-{hashlib.sha256(identity.encode()).hexdigest()[:16]}"


def cached_merged_dir(base: Path, adapter: Path) -> Path | None:
    """The merged folder of ``base`` and ``adapter`` if one is saved and complete, else None."""
    target = merged_dir(base, adapter)
    if not model_dir_is_usable(target):
        return None
    try:
        os.utime(target)  # most recently used: the last folder pruning removes
    except OSError:
        pass  # a read-only home still reads its cache
    return target


def save_merged(model: Any, tokenizer: Any, base: Path, adapter: Path) -> None:
    """Cache ``model`` (``base`` with ``adapter`` merged) for the next load, and remove the least recently
    used merged folders of ``base`` beyond :data:`MERGED_FOLDERS_KEPT`. A folder that cannot be written (a
    read-only home, a full disk) costs only the speed-up: the model in memory is already merged."""
    from safetensors import SafetensorError

    target = merged_dir(base, adapter)
    try:
        save_model_dir(model, tokenizer, target)
    except (OSError, SafetensorError) as error:  # safetensors reports a failed write as its own error
        log.warning(
            "Could not cache the merged model in %s (%s); the next load merges it again.", target, error
        )
        return
    siblings = sorted(
        (path for path in base.parent.glob(f"{base.name}-merged-*") if path.is_dir()),
        key=lambda path: path.stat().st_mtime,
        reverse=True,
    )
    for stale in siblings[MERGED_FOLDERS_KEPT:]:
        shutil.rmtree(stale, ignore_errors=True)
