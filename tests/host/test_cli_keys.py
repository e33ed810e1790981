"""``evb key init|info`` through click's runner."""

from __future__ import annotations

import json
from pathlib import Path

from .test_cli import PIN, evb
from .test_cli import image as image  # noqa: F401 (fixture)


def test_key_init_and_info(image: Path) -> None:  # noqa: F811
    card = ["--card-image", str(image)]
    assert "no key yet" in evb("key", "info", *card).output
    r = evb("key", "init", *card, "--pin", PIN, "--json")
    assert r.exit_code == 0 and json.loads(r.output)["mode"] == "public"
    info = json.loads(evb("key", "info", *card, "--json").output)
    assert len(info["key_id"]) == 16 and info["public_key"].startswith("04")
    r = evb("key", "init", *card, "--pin", PIN)
    assert r.exit_code == 1 and "6985" in r.output and r.output.count("\n") == 1
