"""Secrets stay out of traces and argv: ``evb -vv`` never shows a recovery code, a PIN or a
password, and every secret option also reads from the environment or a file descriptor, so none
needs to be on the command line where ``ps`` shows it to every user."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from servers.keymgr.server import running as keymgr_running
from servers.tls import Issued
from servers.vault.server import running as vault_running

from ..servers.test_split_key import FAST
from .test_cli import PIN, evb

PASSWORD = "correct horse battery"


def run(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``evb`` as its own process: the trace goes to stderr exactly as a user would see it."""
    return subprocess.run([sys.executable, "-m", "host.cli", *args], input=stdin, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


def fragments(secret: bytes) -> list[str]:
    """Every 6-byte run of ``secret`` in hex: a trace that shows any part of it contains one."""
    return [secret[i:i + 6].hex().upper() for i in range(len(secret) - 5)]


def shows(trace: str, secret: bytes) -> bool:
    flat = trace.upper().replace(" ", "").replace("-", "")
    return any(f in flat for f in fragments(secret))


@pytest.fixture
def servers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli_tls: Issued) -> Iterator[list[str]]:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    with keymgr_running(f"sqlite:///{tmp_path / 'km.db'}", tmp_path / "km.pem", tmp_path / "km.key", FAST,
                        tls=cli_tls.server) as km, \
            vault_running(f"sqlite:///{tmp_path / 'v.db'}", tmp_path / "v.pem", cli_tls.server) as vault:
        yield ["--keymgr", km, "--vault", vault]


def test_traces_never_show_a_recovery_code_pin_or_password(tmp_path: Path, servers: list[str]) -> None:
    card, fresh = ["--card-image", str(tmp_path / "c.img")], ["--card-image", str(tmp_path / "fresh.img")]
    for c in (card, fresh):
        assert evb("card", "init", *c, "--pin", PIN).exit_code == 0
    assert evb("key", "init", *card, "--pin", PIN).exit_code == 0
    km = servers[:2]
    secrets = {"EVB_PIN": PIN, "EVB_PASSWORD": PASSWORD}
    assert run("account", "create", "hanako", *km, env=secrets).returncode == 0
    login = run("-vv", "account", "login", "hanako", *km, env=secrets)
    assert login.returncode == 0 and "DEBUG" in login.stderr and PASSWORD not in login.stderr

    split = run("-vv", "key", "backup", "--split", *card, *servers, "--json", env=secrets)
    assert split.returncode == 0, split.stderr
    assert "TRACE evb.apdu: > 80 6C 02 03" in split.stderr  # the card was asked for the shares, traced
    codes = json.loads(split.stdout)["recovery_codes"]
    assert len(codes) == 1
    code = bytes.fromhex(codes[0].replace("-", ""))
    assert not shows(split.stderr, code)
    assert not shows(split.stderr, PIN.encode())  # the PIN block is redacted too

    card_id = json.loads(evb("card", "info", *card, "--json").output)["card_id"]
    read, write = os.pipe()
    os.write(write, f"{codes[0]}\n".encode())
    os.close(write)
    try:
        restore = subprocess.run([sys.executable, "-m", "host.cli", "-vv", "key", "restore", "--from-card", card_id,
                                  *fresh, *km, "--code-file", f"/dev/fd/{read}"], capture_output=True, text=True,
                                 env={**os.environ, **secrets}, pass_fds=(read,), timeout=120)
    finally:
        os.close(read)
    assert restore.returncode == 0, restore.stderr
    assert "restored onto this card" in restore.stdout
    assert "TRACE evb.apdu: > 80 6E" in restore.stderr and not shows(restore.stderr, code)


def cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def test_a_pin_from_a_file_descriptor_never_appears_in_argv(tmp_path: Path) -> None:
    secret = "86420975"
    image = tmp_path / "c.img"
    read, write = os.pipe()
    env = {k: v for k, v in os.environ.items() if k not in ("EVB_PIN",)}
    child = subprocess.Popen([sys.executable, "-m", "host.cli", "card", "init", "--card-image", str(image),
                              "--pin-file", f"/dev/fd/{read}"], pass_fds=(read,), env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    os.close(read)
    try:
        deadline = time.monotonic() + 30
        while "host.cli" not in cmdline(child.pid):  # exec'd: now it waits for the PIN on the pipe
            assert child.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        argv = cmdline(child.pid)
        assert "--pin-file" in argv and not any(secret in a for a in argv)
        os.write(write, f"{secret}\n".encode())
    finally:
        os.close(write)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    # the PIN set from the descriptor is the card's PIN: the environment route proves it
    store = ["card", "store", "--card-image", str(image), "--type", "coupon", "--name", "C"]
    assert evb(*store, env={"EVB_PIN": secret}).exit_code == 0
    wrong = evb(*store, env={"EVB_PIN": PIN})
    assert wrong.exit_code == 1 and "wrong PIN" in wrong.output


def test_secrets_from_the_environment_and_standard_input(tmp_path: Path) -> None:
    image = ["--card-image", str(tmp_path / "c.img")]
    assert evb("card", "init", *image, env={"EVB_PIN": PIN}).exit_code == 0
    r = evb("card", "pin", "change", *image, "--old-file", "-", env={"EVB_NEW_PIN": "5678"}, input=f"{PIN}\n")
    assert r.exit_code == 0, r.output
    store = ["card", "store", *image, "--type", "coupon", "--name", "C", "--pin-file", "-"]
    assert evb(*store, input="5678\n").exit_code == 0
    r = evb(*store, env={"EVB_PIN": "0000"}, input="5678\n")  # a file on the command line wins over the variable
    assert r.exit_code == 0, r.output
    r = evb(*store, "--pin", "5678", input="5678\n")
    assert r.exit_code == 1 and r.output.splitlines() == ["Error: give --pin or --pin-file, not both"]
    r = evb("card", "store", *image, "--type", "coupon", "--name", "C", "--pin-file", str(tmp_path / "none"))
    assert r.exit_code == 1 and r.output.splitlines() == [
        f"Error: cannot read --pin-file {tmp_path / 'none'}: No such file or directory"]
