"""The simulator's state file: JSON, replaced atomically so a crash never leaves half a file."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def load_state(path: Path) -> dict[str, Any] | None:
    """The saved state, or None when there is no state file yet."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a simulator state")
    return data


def encode_state(data: dict[str, Any]) -> str:
    """The file's text: one line, by json's C encoder (an indent makes json fall back to its
    Python encoder, ~20x slower; the state is written on every change)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def save_state(path: Path, data: dict[str, Any] | str) -> None:
    """Write the state (a dict, or its text from `encode_state`), fsynced, atomically."""
    text = data if isinstance(data, str) else encode_state(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
