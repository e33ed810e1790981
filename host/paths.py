"""Where the terminal keeps its files: one data folder, ``$XDG_DATA_HOME/evb`` (by default
``~/.local/share/evb``), for card images, the saved login, the shell history and the issuer key."""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "evb"
