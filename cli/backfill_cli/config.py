"""Where `backfill login` keeps the server's address and the API token.

One JSON file, `credentials.json`, in the user's config directory: $BACKFILL_CONFIG_DIR, else
$XDG_CONFIG_HOME/backfill, else ~/.config/backfill. The directory is made 0700 and the file
0600 (written to a temporary file of that mode, then renamed over the old one), so no other
user of the machine can read the token. $BACKFILL_URL and $BACKFILL_TOKEN override the file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

FILE_NAME = "credentials.json"
DEFAULT_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class Credentials:
    url: str
    token: str


def config_dir() -> Path:
    explicit = os.environ.get("BACKFILL_CONFIG_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "backfill"


def credentials_path() -> Path:
    return config_dir() / FILE_NAME


def load() -> Credentials | None:
    """The saved credentials, or None if there are none (or the file is not ours to read)."""
    try:
        data = json.loads(credentials_path().read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    url, token = data.get("url"), data.get("token")
    if not isinstance(url, str) or not isinstance(token, str) or not token:
        return None
    return Credentials(url=url, token=token)


def save(credentials: Credentials) -> Path:
    directory = config_dir()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / FILE_NAME
    temporary = directory / f".{FILE_NAME}.{os.getpid()}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump({"url": credentials.url, "token": credentials.token}, handle)
            handle.write("\n")
        os.chmod(temporary, 0o600)  # whatever the umask made of it
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()
    return path


def forget() -> bool:
    try:
        credentials_path().unlink()
    except FileNotFoundError:
        return False
    return True
