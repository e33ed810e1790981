"""The split key (seed E4, Shamir 2 of 3) across card, key manager and vault on both backends:
the key manager's share and the owner's recovery code rebuild the key on a fresh card; no
single party can; tampered or foreign shares are refused and change nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from apdu import SW, ApduError, seal, shamir
from apdu import keys as k
from host import factors
from host.backup import connect
from host.keymgr_client import KeyManagerClient
from host.keys import KeyFlowError, enrol_card, restore_split_key, split_key
from host.session import WalletSession
from host.vault_client import VaultClient
from servers.keymgr.config import KeyManagerConfig
from servers.keymgr.server import running as keymgr_running
from servers.vault.server import running as vault_running

from ..card.helpers import observe, personalized

FAST = KeyManagerConfig(argon2_time_cost=1, argon2_memory_kib=8192, argon2_parallelism=1)


@pytest.fixture
def servers(db_url: str, tmp_path: Path) -> Iterator[tuple[KeyManagerClient, VaultClient]]:
    with keymgr_running(db_url, tmp_path / "km.pem", tmp_path / "master.key", FAST) as km_url, \
            vault_running(f"sqlite:///{tmp_path / 'vault.db'}", tmp_path / "vault.pem") as vault_url, \
            KeyManagerClient(km_url) as keymgr, VaultClient(vault_url) as vault:
        keymgr.create_account("hanako", "correct horse battery")
        factors.login(keymgr, "hanako", "correct horse battery")
        yield keymgr, vault


def split_card(keymgr: KeyManagerClient, vault: VaultClient) -> tuple[WalletSession, k.KeyInfo, tuple[str, ...]]:
    _, s = personalized()
    s.generate_key()
    connect(s, vault)
    info, codes = split_key(s, keymgr, vault)
    return s, info, codes


def test_key_manager_share_and_recovery_code_rebuild_the_key(servers: tuple[KeyManagerClient, VaultClient]) -> None:
    keymgr, vault = servers
    old, info, codes = split_card(keymgr, vault)
    assert len(codes) == 1 and len(codes[0].replace("-", "")) == 2 * k.SHARE_LEN
    _, new = personalized()
    assert restore_split_key(new, keymgr, old.identity().card_id, codes) == info


def test_the_key_manager_share_alone_is_not_enough(servers: tuple[KeyManagerClient, VaultClient]) -> None:
    keymgr, vault = servers
    old, _, _ = split_card(keymgr, vault)
    _, new = personalized()
    with pytest.raises(KeyFlowError, match="another recovery code is needed"):
        restore_split_key(new, keymgr, old.identity().card_id, ())
    assert new.key_info().mode == k.KeyMode.NONE


def test_a_wrong_code_is_not_installed(servers: tuple[KeyManagerClient, VaultClient]) -> None:
    keymgr, vault = servers
    old, _, codes = split_card(keymgr, vault)
    raw = bytearray(k.parse_recovery_code(codes[0]))
    raw[5] ^= 1
    _, new = personalized()
    with pytest.raises(KeyFlowError, match="another recovery code"):
        restore_split_key(new, keymgr, old.identity().card_id, (k.recovery_code(bytes(raw)),))
    assert new.key_info().mode == k.KeyMode.NONE


def test_shares_of_one_card_do_not_open_for_another(servers: tuple[KeyManagerClient, VaultClient]) -> None:
    keymgr, vault = servers
    old, info, _ = split_card(keymgr, vault)
    card, thief = personalized()
    thief.new_transport_key()
    _, other = personalized()
    enrol_card(other, keymgr)
    blob = keymgr.restore_share(old.identity().card_id, other.identity().card_id,
                                other.new_transport_key()).sealed  # made for another card
    before = observe(card)
    with pytest.raises(ApduError) as refused:
        thief.import_share(info.mode, info.key_id, blob, True, info.public_key)
    assert refused.value.sw == SW.WRONG_DATA and observe(card) == before


def test_no_single_share_rebuilds_and_two_do() -> None:
    """Card-level: 2 of 3 over the real d; every pair rebuilds, no single share does."""
    card, s = personalized()
    s.generate_key()
    material = card.applets[0]._material()  # type: ignore[attr-defined]
    d, q = material[:32], material[32:]
    shares = shamir.split(d, 2, 3)
    for one in shares:
        assert not seal.pair_matches(shamir.combine([one, bytes((one[0] % 3 + 1,)) + bytes(32)]), q)
    for pair in ((0, 1), (0, 2), (1, 2)):
        assert shamir.combine([shares[i] for i in pair]) == d
    assert seal.key_id(seal.public_key(d)) == s.key_info().key_id and seal.public_key(d) == q
