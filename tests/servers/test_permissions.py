"""Files that hold secrets are the owner's alone: databases 0600, data folders 0700, key files
0600; a key file that group or others can read is refused, naming the file and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keyfile import KeyFileError, load_or_create_key
from servers.serverkey import MasterKey
from servers.storage import Database
from servers.tls import init_folder
from servers.vault.repository import MIGRATIONS
from servers.vault.server import build

from ..host.test_cli import PIN, evb


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_a_new_sqlite_database_is_the_owners_alone(tmp_path: Path) -> None:
    db = Database.open(f"sqlite:///{tmp_path / 'data' / 'vault.db'}", MIGRATIONS)
    try:
        with db.transaction() as tx:
            tx.execute("SELECT 1")
    finally:
        db.close()
    assert mode(tmp_path / "data") == 0o700
    made = [p for p in (tmp_path / "data").iterdir()]
    assert {p.name for p in made} >= {"vault.db"} and all(mode(p) == 0o600 for p in made), made


def test_key_files_are_made_0600_in_a_0700_folder(tmp_path: Path) -> None:
    load_or_create_key(tmp_path / "keys" / "vault.pem")
    MasterKey.load_or_create(tmp_path / "master" / "keymgr-master.key")
    assert mode(tmp_path / "keys") == mode(tmp_path / "master") == 0o700
    assert mode(tmp_path / "keys" / "vault.pem") == mode(tmp_path / "master" / "keymgr-master.key") == 0o600


@pytest.mark.parametrize("permissions", [0o640, 0o604, 0o660])
def test_a_key_file_others_can_read_is_refused(tmp_path: Path, permissions: int) -> None:
    key = tmp_path / "vault.pem"
    load_or_create_key(key)
    key.chmod(permissions)
    message = f"key file {key} is open to group or others (mode {permissions:o}): run 'chmod 600 {key}'"
    with pytest.raises(KeyFileError) as refused:
        load_or_create_key(key)
    assert str(refused.value) == message
    with pytest.raises(KeyFileError, match="chmod 600"):
        build(f"sqlite:///{tmp_path / 'v.db'}", key)
    key.chmod(0o600)
    load_or_create_key(key)  # the fix works


def test_a_master_key_others_can_read_is_refused(tmp_path: Path) -> None:
    master = tmp_path / "keymgr-master.key"
    MasterKey.load_or_create(master)
    master.chmod(0o644)
    with pytest.raises(KeyFileError, match=f"chmod 600 {master}"):
        MasterKey.load_or_create(master)


def test_the_servers_refuse_to_start_with_a_readable_key_in_one_line(tmp_path: Path) -> None:
    key, master, statements = tmp_path / "k.pem", tmp_path / "m.key", tmp_path / "k-statements.pem"
    for made in (key, statements):
        load_or_create_key(made)
    MasterKey.load_or_create(master)
    tls = init_folder(tmp_path / "tls").server
    serving = ["--db", f"sqlite:///{tmp_path / 'x.db'}", "--tls-cert", str(tls.cert), "--tls-key", str(tls.key)]
    cases = [(key, ["vault", "serve", "--key", str(key), *serving]),
             (key, ["keymgr", "serve", "--key", str(key), "--master-key", str(master), *serving]),
             (master, ["keymgr", "serve", "--key", str(key), "--master-key", str(master), *serving]),
             (statements, ["keymgr", "statement-key", "--key", str(key)])]
    for readable, args in cases:
        readable.chmod(0o644)
        r = evb(*args)
        assert r.exit_code == 1 and r.output.splitlines() == [
            f"Error: key file {readable} is open to group or others (mode 644): run 'chmod 600 {readable}'"]
        readable.chmod(0o600)
    assert not (tmp_path / "x.db").exists()


def test_the_cli_makes_card_and_login_folders_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    assert evb("card", "init", "--pin", PIN).exit_code == 0  # the default image, under the data folder
    assert mode(data / "evb") == 0o700 and mode(data / "evb" / "card.img") == 0o600
    from servers.keymgr.server import running

    from ..servers.test_split_key import FAST

    with running(f"sqlite:///{tmp_path / 'km.db'}", tmp_path / "km.pem", tmp_path / "m.key", FAST) as url:
        assert evb("account", "create", "hanako", "--keymgr", url, "--password", "pw-pw-pw").exit_code == 0
        assert evb("account", "login", "hanako", "--keymgr", url, "--password", "pw-pw-pw").exit_code == 0
    session = data / "evb" / "keymgr-session.json"
    assert json.loads(session.read_text())["url"] == url and mode(session) == 0o600
