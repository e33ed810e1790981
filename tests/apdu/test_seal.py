"""Known answers for every primitive the sealing scheme uses (from their RFCs and NIST), the
scheme's own vectors, and refusal of every tampered byte, wrong key and wrong context."""

from __future__ import annotations

import hmac
from hashlib import sha256

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apdu import seal as s

# RFC 5903 section 8.1: ECDH on P-256
I_SCALAR = bytes.fromhex("C88F01F510D9AC3F70A292DAA2316DE544E9AAB8AFE84049C62A9C57862D1433")
R_SCALAR = bytes.fromhex("C6EF9C5D78AE012A011164ACB397CE2088685D8F06BF9BE0B283AB46476BEE53")
GI = bytes.fromhex("04DAD0B65394221CF9B051E1FECA5787D098DFE637FC90B9EF945D0C3772581180"
                   "5271A0461CDB8252D61F1C456FA3E59AB1F45B33ACCF5F58389E0577B8990BB3")
GR = bytes.fromhex("04D12DFB5289C8D4F81208B70270398C342296970A0BCCB74C736FC7554494BF63"
                   "56FBF3CA366CC23E8157854C13C58D6AAC23F046ADA30F8353E74F33039872AB")
GIR = bytes.fromhex("D6840F6B42F6EDAFD13116E0E12565202FEF8E9ECE7DCE03812464D04B9442DE")


def test_ecdh_rfc5903() -> None:
    assert s.public_key(I_SCALAR) == GI and s.public_key(R_SCALAR) == GR
    assert s.ecdh(I_SCALAR, GR) == s.ecdh(R_SCALAR, GI) == GIR


def test_hkdf_rfc5869_case_1() -> None:
    okm = s.hkdf(bytes([0x0B] * 22), bytes(range(13)), bytes(range(0xF0, 0xFA)), 42)
    assert okm.hex() == "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"


def test_aes256_cbc_sp800_38a_f25() -> None:
    key = bytes.fromhex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4")
    ct = s.aes_cbc(key, bytes(range(16)), bytes.fromhex("6bc1bee22e409f96e93d7e117393172a"), encrypt=True)
    assert ct.hex() == "f58c4c04d6e5f1ba779eabfb5f7bfbd6"


def test_hmac_sha256_rfc4231_case_2() -> None:
    mac = hmac.new(b"Jefe", b"what do ya want for nothing?", sha256).hexdigest()
    assert mac == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


@pytest.mark.parametrize(("data", "padded"), [
    ("", "80000000000000000000000000000000"),
    ("00" * 15, "00" * 15 + "80"),
    ("80", "8080" + "00" * 14),
    ("ab" * 16, "ab" * 16 + "80" + "00" * 15),
])
def test_iso9797_padding(data: str, padded: str) -> None:
    assert s.pad(bytes.fromhex(data)).hex() == padded
    assert s.unpad(bytes.fromhex(padded)) == bytes.fromhex(data)


@pytest.mark.parametrize("bad", ["00" * 16, "ab" * 16, "80" + "00" * 31])
def test_bad_padding(bad: str) -> None:
    with pytest.raises(s.SealError):
        s.unpad(bytes.fromhex(bad))


SEALED = ("04dad0b65394221cf9b051e1feca5787d098dfe637fc90b9ef945d0c37725811805271a0461cdb8252d61f1c456fa3e5"
          "9ab1f45b33accf5f58389e0577b8990bb3000102030405060708090a0b0c0d0e0f6dc1fe4b37a587c94ffa36b22b1f25"
          "79f1089f032cc54a6d5b707a55660a9d76")
SEALED_SYM = ("00000000000000000000000000000000000102030405060708090a0b0c0d0e0f037c17e1b265faf28f4579f7f135a678"
              "2c3399c137ed2d6f6630db42eda2f726")


def test_scheme_vectors() -> None:
    """Pinned outputs of the scheme itself: any change to the wire format fails here."""
    assert s.seal(GR, b"Movie ticket A", b"ctx", ephemeral=I_SCALAR, iv=bytes(range(16))).hex() == SEALED
    assert s.open_sealed(R_SCALAR, bytes.fromhex(SEALED), b"ctx") == b"Movie ticket A"
    assert s.seal_symmetric(bytes(range(32)), b"Movie ticket A", b"ctx", salt=bytes(16),
                            iv=bytes(range(16))).hex() == SEALED_SYM
    assert s.open_symmetric(bytes(range(32)), bytes.fromhex(SEALED_SYM), b"ctx") == b"Movie ticket A"
    assert s.key_id(GR).hex() == "f064fe502103531b"


@pytest.mark.parametrize(("scalar", "valid"), [
    ("00" * 32, False), ("00" * 31 + "01", True), (f"{s.N - 1:064x}", True), (f"{s.N:064x}", False),
    (f"{s.N + 1:064x}", False), ("ff" * 32, False), ("01" * 31, False),
])
def test_scalars_are_checked_by_a_byte_comparison(scalar: str, valid: bool) -> None:
    """1 <= d < n without arithmetic, as a 3.0.4 card decides it: what rejection sampling keeps."""
    assert s.valid_scalar(bytes.fromhex(scalar)) is valid


def test_random_scalars_are_valid_and_fresh() -> None:
    drawn = {s.random_scalar() for _ in range(64)}
    assert len(drawn) == 64 and all(s.valid_scalar(d) for d in drawn)


def test_x_only_header_opens_for_either_point_it_names() -> None:
    """``02 || x`` may name -E rather than E; ECDH uses x only, so the recipient's d opens it,
    and the maker reopens it from its ephemeral scalar and the uncompressed recipient key."""
    blob = s.seal_x_only(GR, b"Movie ticket A", b"ctx", I_SCALAR, bytes(range(16)))
    assert blob[:33] == b"\x02" + GI[1:33] and GI[-1] % 2 == 1  # y of E is odd: 02 names -E
    header = blob[:33]  # the recipient's standard ECIES step, with the point 02 || x names
    assert s._open(header, s.ecdh(R_SCALAR, header), blob[33:], b"ctx") == b"Movie ticket A"
    with pytest.raises(s.SealError):  # the uncompressed-only opening (a card's) refuses it
        s.open_sealed(R_SCALAR, blob, b"ctx")
    assert s.open_x_only_by_ephemeral(I_SCALAR, GR, blob, b"ctx") == b"Movie ticket A"
    with pytest.raises(s.SealError):  # another ephemeral than the header's
        s.open_x_only_by_ephemeral(R_SCALAR, GR, blob, b"ctx")


def test_a_pair_is_checked_by_signing_and_verifying() -> None:
    assert s.pair_matches(I_SCALAR, GI) and s.pair_matches(R_SCALAR, GR)
    assert not s.pair_matches(I_SCALAR, GR) and not s.pair_matches(bytes(32), GI)
    assert not s.pair_matches(I_SCALAR, GI[:-1] + bytes((GI[-1] ^ 1,)))  # not on the curve


@pytest.mark.parametrize("position", range(0, len(SEALED) // 2, 7))
def test_every_tampered_byte_is_refused(position: int) -> None:
    blob = bytearray.fromhex(SEALED)
    blob[position] ^= 0x01
    with pytest.raises(s.SealError):
        s.open_sealed(R_SCALAR, bytes(blob), b"ctx")


@pytest.mark.parametrize(("key", "context", "blob"), [
    (I_SCALAR, b"ctx", SEALED),  # another key
    (R_SCALAR, b"other", SEALED),  # another context
    (R_SCALAR, b"ctx", SEALED[:-2]),  # truncated
    (R_SCALAR, b"ctx", SEALED[:130]),  # header only
])
def test_wrong_key_context_or_length(key: bytes, context: bytes, blob: str) -> None:
    with pytest.raises(s.SealError):
        s.open_sealed(key, bytes.fromhex(blob), context)


@given(st.binary(max_size=600), st.binary(max_size=40))
def test_round_trip(plaintext: bytes, context: bytes) -> None:
    assert s.open_sealed(R_SCALAR, s.seal(GR, plaintext, context), context) == plaintext
    key = bytes(range(32))
    assert s.open_symmetric(key, s.seal_symmetric(key, plaintext, context), context) == plaintext
