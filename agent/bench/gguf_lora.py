"""The LoRA adapter as a GGUF LoRA for llama.cpp, converted once by llama.cpp's own script and cached.

llama.cpp applies a LoRA from its own GGUF format, written by ``convert_lora_to_gguf.py`` from a llama.cpp
checkout (it permutes the q/k matrices the way the base model's conversion did, so we do not re-implement
it). The script is not part of the ``llama-cpp-python`` wheel: the bench takes it from ``--llamacpp-source``,
a llama.cpp checkout or a ``llama-cpp-python`` sdist (``vendor/llama.cpp`` inside). The GGUF LoRA is cached
under ``WHAZZAT_HOME/models/llamacpp/``, keyed by the adapter's bytes, so later runs need no source at all.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

from pydantic import BaseModel

#: llama.cpp's converter of a PEFT LoRA adapter to a GGUF LoRA.
LORA_SCRIPT = "convert_lora_to_gguf.py"
#: What the script needs beside it: its model definitions and llama.cpp's own gguf-py (newer than PyPI's).
_SCRIPT_FOLDERS = ("conversion", "gguf-py")
#: A conversion imports torch and transformers and writes ~10 MB: a minute is plenty even on a slow machine.
CONVERT_TIMEOUT_S = 600


class GgufLora(BaseModel):
    """The GGUF LoRA to apply, or None with the reason (the peer then runs on the base weights)."""

    path: Path | None
    note: str


def cache_path(adapter: Path, home: Path) -> Path:
    """Where the GGUF LoRA of ``adapter`` is cached: named after the adapter and a hash of its files."""
    digest = hashlib.sha256()
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        file = adapter / name
        digest.update(name.encode())
        digest.update(file.read_bytes() if file.is_file() else b"")
    return home.expanduser() / "models" / "llamacpp" / f"{adapter.name}-{digest.hexdigest()[:12]}.gguf"


def _script_in(directory: Path) -> Path | None:
    for candidate in (directory / LORA_SCRIPT, directory / "vendor" / "llama.cpp" / LORA_SCRIPT):
        if candidate.is_file():
            return candidate
    return None


def _extract_script(archive: Path, into: Path) -> Path | None:
    """The converter and the Python files it imports, from a source archive (sdist or llama.cpp tarball).

    Only regular ``.py`` files under the script's own folder are written, each checked to stay inside
    ``into``: an archive is data, never trusted with paths."""
    with tarfile.open(archive) as tar:
        members = [member for member in tar.getmembers() if member.isfile()]
        scripts = sorted(
            (PurePosixPath(m.name) for m in members if PurePosixPath(m.name).name == LORA_SCRIPT),
            key=lambda path: len(path.parts),
        )
        if not scripts:
            return None
        prefix = scripts[0].parent
        root = into.resolve()
        for member in members:
            path = PurePosixPath(member.name)
            if path.suffix != ".py" or ".." in path.parts or not path.is_relative_to(prefix):
                continue
            relative = path.relative_to(prefix)
            if len(relative.parts) > 1 and relative.parts[0] not in _SCRIPT_FOLDERS:
                continue
            target = (root / relative).resolve()
            if root not in target.parents:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            if source is not None:
                target.write_bytes(source.read())
    return _script_in(into)


def _run_script(script: Path, adapter: Path, base: Path, out: Path) -> str | None:
    """Run the converter into ``out``; None on success, else the end of its error output."""
    command = [sys.executable, str(script), "--base", str(base), "--outtype", "f32", "--outfile", str(out)]
    env = {key: value for key, value in os.environ.items() if key != "NO_LOCAL_GGUF"}  # its own gguf-py
    try:
        done = subprocess.run(
            [*command, str(adapter)],
            cwd=script.parent,
            env=env,
            capture_output=True,
            text=True,
            timeout=CONVERT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return str(error)
    if done.returncode != 0 or not out.is_file():
        lines = (done.stderr or done.stdout).strip().splitlines()
        return " / ".join(lines[-3:]) or f"exit status {done.returncode}"
    return None


def gguf_lora(adapter: Path, base: Path, home: Path, source: Path | None) -> GgufLora:
    """The cached GGUF LoRA of ``adapter``, converting it first when ``source`` holds llama.cpp's script.

    ``base`` is the base model's Hugging Face folder (the script reads its ``config.json``). Never raises
    for a missing or failing converter: the note says why no LoRA is applied, and the bench says so.
    """
    target = cache_path(adapter, home)
    if target.is_file():
        return GgufLora(path=target, note=f"{adapter.name}, converted to a GGUF LoRA (cached: {target})")
    if source is None:
        return GgufLora(
            path=None,
            note="base weights: the adapter has no GGUF LoRA yet; pass --llamacpp-source with a llama.cpp "
            f"checkout or a llama-cpp-python sdist to convert it with its {LORA_SCRIPT}",
        )
    with tempfile.TemporaryDirectory(prefix="whazzat-gguf-lora-") as scratch:
        script = _script_in(source) if source.is_dir() else None
        if script is None and source.is_file() and tarfile.is_tarfile(source):
            script = _extract_script(source, Path(scratch) / "llama.cpp")
        if script is None:
            return GgufLora(path=None, note=f"base weights: no {LORA_SCRIPT} in {source}")
        target.parent.mkdir(parents=True, exist_ok=True)
        # Written beside the target and renamed: a cache file is whole or absent, even after a crash.
        staging = target.with_name(f".{target.name}.{os.getpid()}.converting")
        try:
            error = _run_script(script, adapter, base, staging)
            if error is not None:
                return GgufLora(path=None, note=f"base weights: converting the adapter failed ({error})")
            os.replace(staging, target)
        finally:
            staging.unlink(missing_ok=True)
    return GgufLora(path=target, note=f"{adapter.name}, converted to a GGUF LoRA by {LORA_SCRIPT} ({target})")
