"""The build fails when the converter refuses the applet (it exits 0 even then: the script reads
its summary line), so a CAP in CI means a package the converter verified for 3.0.4."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .applet import NO_KIT, ROOT

if not os.environ.get("JC_HOME"):
    pytest.skip(NO_KIT, allow_module_level=True)


def test_an_int_field_fails_the_build(tmp_path: Path) -> None:
    """Java Card 3.0.4 has no int: javac compiles it, only the converter refuses it."""
    shutil.copytree(ROOT / "javacard", tmp_path / "javacard", ignore=shutil.ignore_patterns("build"))
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "javacard", tmp_path / "scripts" / "javacard")
    source = tmp_path / "javacard" / "src" / "evb" / "wallet" / "WalletApplet.java"
    text = source.read_text()
    marker = "    private final byte[] cardId;\n"
    assert marker in text
    source.write_text(text.replace(marker, "    private int uses;\n" + marker))
    done = subprocess.run(["bash", str(tmp_path / "scripts" / "javacard"), "build"],
                          capture_output=True, text=True, check=False)
    assert done.returncode != 0
    assert "unsupported int type of field uses" in done.stderr
    assert not list((tmp_path / "javacard" / "build").glob("cap/**/*.cap"))
