package evb.wallet;

import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.JCSystem;
import javacard.framework.Util;
import javacard.security.ECPrivateKey;
import javacard.security.ECPublicKey;
import javacard.security.KeyBuilder;
import javacard.security.KeyPair;
import javacard.security.MessageDigest;
import javacard.security.RandomData;
import javacard.security.Signature;

/**
 * The key store 104 and encryption unit 105 (docs/APDU.md 7, seed E2-E4), byte for byte as
 * card/keys.py: GENERATE KEY, GET KEY INFO, EXPORT KEY, NEW TRANSPORT KEY, IMPORT KEY, SPLIT KEY,
 * IMPORT SHARE, and the E2 ciphertexts and registered values of the encrypted backup.
 *
 * The key is kept as key material: d | Q as genKeyPair made them (a 3.0.4 card cannot compute Q
 * from d), or K. What comes from outside is taken only after the pair check (d signs, Q verifies).
 * Every key change is one transaction; the commands that answer sealed bytes (EXPORT KEY, SPLIT
 * KEY, BEGIN ENCRYPTED BACKUP) build them in {@link #out}, EEPROM work space written outside any
 * transaction (nothing refers to it across a power loss), because they are longer than RAM allows.
 * The applet checks the PIN and P1-P2 ranges it shares with other commands before calling here.
 */
final class KeyStore {
    static final byte MODE_NONE = 0;
    static final byte MODE_PUBLIC = 1;
    static final byte MODE_SYMMETRIC = 2;
    static final short SECRET_LEN = 32;
    static final short POINT_LEN = 65;
    static final short PUBLIC_MATERIAL_LEN = (short) (SECRET_LEN + POINT_LEN);
    static final short KEY_ID_LEN = 8;
    static final short SHARE_LEN = 33;
    static final short MAX_SHARES = 3;
    /** Room for the longest registered value (a 1024-byte value's digest and ciphertext, key part,
     * signature), then for the value REENCRYPT opens (at {@link #OPENED}). */
    static final short OPENED = 2560;
    static final short OUT_LEN = (short) (OPENED + Seal.MAX_PLAINTEXT + Seal.BLOCK);

    private static final byte EXPORT_NEXT = 1;
    private static final byte EXPORT_PART = 2;
    private static final byte PART_KEYMGR = 1;
    private static final byte PART_VAULT = 2;

    private static final byte[] KEY_ID = {'E', 'V', 'B', '-', 'K', 'E', 'Y', '-', 'I', 'D'};
    private static final byte[] EXPORT = {'E', 'V', 'B', '-', 'K', 'E', 'Y', '-', 'E', 'X', 'P', 'O', 'R', 'T', '-', '1'};
    private static final byte[] IMPORT = {'E', 'V', 'B', '-', 'K', 'E', 'Y', '-', 'I', 'M', 'P', 'O', 'R', 'T', '-', '1'};
    private static final byte[] SHARE = {'E', 'V', 'B', '-', 'S', 'H', 'A', 'R', 'E', '-', '1'};
    private static final byte[] SHARE_IMPORT = {
        'E', 'V', 'B', '-', 'S', 'H', 'A', 'R', 'E', '-', 'I', 'M', 'P', 'O', 'R', 'T', '-', '1'
    };
    private static final byte[] PART = {'E', 'V', 'B', '-', 'K', 'E', 'Y', '-', 'P', 'A', 'R', 'T', '-', '1'};
    private static final byte[] PART_COEFFICIENT = {'E', 'V', 'B', '-', 'E', '4', '-', 'P', 'A', 'R', 'T', '-', '1'};
    private static final byte[] PAIR_CHECK = {
        'E', 'V', 'B', '-', 'K', 'E', 'Y', '-', 'P', 'A', 'I', 'R', '-', 'C', 'H', 'E', 'C', 'K', '-', '1'
    };
    private static final byte[] E2 = {'E', 'V', 'B', '-', 'E', '2', '-', '1'};
    private static final byte[] E2_IV = {'E', 'V', 'B', '-', 'E', '2', '-', 'I', 'V'};
    private static final byte[] E2_EPHEMERAL = {
        'E', 'V', 'B', '-', 'E', '2', '-', 'E', 'P', 'H', 'E', 'M', 'E', 'R', 'A', 'L'
    };
    private static final byte[] E2_NONCE = {'E', 'V', 'B', '-', 'E', '2', '-', 'N', 'O', 'N', 'C', 'E'};
    private static final byte[] REGISTERED = {
        'E', 'V', 'B', '-', 'R', 'E', 'G', 'I', 'S', 'T', 'E', 'R', 'E', 'D', '-', '2'
    };
    // persistent: the key (mode, d or K, Q), the transport key's scalar, the shares being collected
    private static final short K_MODE = 0;
    private static final short K_SECRET = 1;
    private static final short K_PUBLIC = 33;
    private static final short S_COUNT = 0;
    private static final short S_MODE = 1;
    private static final short S_KEY_ID = 2;
    private static final short S_SHARES = 10;
    private static final short SHARES_AREA = (short) (S_SHARES + MAX_SHARES * SHARE_LEN);
    private final byte[] key;
    /** A rotation's next key (seed E7), laid out as the key: its mode is 00 when none is under way. */
    private final byte[] next;
    private final byte[] transport;
    private final byte[] shares;
    /** What 3.0.4 has no atomic fill for: zeros copied over a cleared area inside a transaction. */
    private final byte[] zeros;
    /** EEPROM work space: the answers built here, E2 ciphertexts, opened values. */
    final byte[] out;

    private final byte[] cardId;
    private final byte[] vaultKey;
    private final byte[] keymgrKey;
    private final Seal seal;
    private final Ecc ecc;
    private final MessageDigest sha256;
    private final RandomData rng;
    /** genKeyPair's pair (the private half RAM); the private key also takes d, r, the transport scalar. */
    private final KeyPair pair;
    private final ECPrivateKey priv;
    private final ECPublicKey pub;
    private final Signature ecdsa;

    // RAM: an opened or rebuilt key material, the shares, HMAC output, a signature, a context
    private static final short R_PLAIN = 0;
    private static final short R_SHARES = 128;
    private static final short R_HMAC = 228;
    private static final short R_SIG = 260;
    private static final short R_CTX = 332;
    private final byte[] ram;
    /** [0]: where the answer in out[] starts, or a TLV's value offset; [1] a length; then a parsed registered value. */
    private final short[] at;
    private static final short A_DIGEST = 2;
    private static final short A_DIGEST_LEN = 3;
    private static final short A_KEY_ID = 4;
    private static final short A_CT = 5;
    private static final short A_CT_LEN = 6;

    KeyStore(byte[] cardId, byte[] vaultKey, byte[] keymgrKey, Ecc ecc, MessageDigest sha256) {
        this.cardId = cardId;
        this.vaultKey = vaultKey;
        this.keymgrKey = keymgrKey;
        this.ecc = ecc;
        this.sha256 = sha256;
        key = new byte[(short) (1 + PUBLIC_MATERIAL_LEN)];
        next = new byte[(short) (1 + PUBLIC_MATERIAL_LEN)];
        transport = new byte[SECRET_LEN];
        shares = new byte[SHARES_AREA];
        zeros = new byte[SHARES_AREA];
        out = new byte[OUT_LEN];
        seal = new Seal();
        rng = RandomData.getInstance(RandomData.ALG_SECURE_RANDOM);
        pub = (ECPublicKey) KeyBuilder.buildKey(KeyBuilder.TYPE_EC_FP_PUBLIC, KeyBuilder.LENGTH_EC_FP_256, false);
        priv = (ECPrivateKey) KeyBuilder.buildKey(KeyBuilder.TYPE_EC_FP_PRIVATE_TRANSIENT_DESELECT,
                                                  KeyBuilder.LENGTH_EC_FP_256, false);
        P256.setCurve(pub);
        P256.setCurve(priv);
        pair = new KeyPair(pub, priv);
        ecdsa = Signature.getInstance(Signature.ALG_ECDSA_SHA_256, false);
        ram = JCSystem.makeTransientByteArray((short) 384, JCSystem.CLEAR_ON_DESELECT);
        at = JCSystem.makeTransientShortArray((short) 7, JCSystem.CLEAR_ON_DESELECT);
    }

    byte mode() {
        return key[K_MODE];
    }

    /**
     * The key store's EEPROM, for GET MEMORY MAP: the key, the next key, the transport scalar, the
     * shares and their zeros, the work array, genKeyPair's public key (its private half is RAM)
     * and the seal's ephemeral pair.
     */
    short persistentBytes() {
        return (short) (key.length + next.length + transport.length + shares.length + zeros.length + out.length
                + P256.PUBLIC_KEY_BYTES + Seal.PERSISTENT_BYTES);
    }

    /** The key (for {@link #registered}). */
    byte[] current() {
        return key;
    }

    /** Whether a rotation is under way: BEGIN ROTATION made the next key, COMMIT ROTATION not yet. */
    boolean rotating() {
        return key[K_MODE] != MODE_NONE && next[K_MODE] != MODE_NONE;
    }

    /** Where the answer of EXPORT KEY, SPLIT KEY or BEGIN ENCRYPTED BACKUP starts in {@link #out}. */
    short answerAt() {
        return at[0];
    }

    // --- commands (the PIN checked by the applet) -------------------------------------------------

    /** GENERATE KEY, P1 = mode: a pair from genKeyPair, or K from the random generator. */
    short generate(byte p1, byte p2, short lc, byte[] answer) {
        noData(lc);
        byte mode = modeOf(p1);
        if (p2 != 0) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        if (key[K_MODE] != MODE_NONE) {
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
        }
        if (mode == MODE_PUBLIC) {
            newPair(ram, R_PLAIN);
            ((ECPublicKey) pair.getPublic()).getW(ram, (short) (R_PLAIN + SECRET_LEN));
        } else {
            rng.generateData(ram, R_PLAIN, SECRET_LEN);
        }
        install(mode, ram, R_PLAIN, false);
        return keyInfo(key, answer);
    }

    /** GET KEY INFO, P1 00 the key, 01 the next key of a rotation (mode 00 when none is under way). */
    short info(byte p1, byte p2, short lc, byte[] answer) {
        noData(lc);
        if ((p1 != 0 && p1 != 1) || p2 != 0) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        if (p1 == 1) {
            return rotating() ? keyInfo(next, answer) : noKeyInfo(answer);
        }
        return keyInfo(key, answer);
    }

    /**
     * EXPORT KEY: the key material sealed to the pinned key manager, or (P1 bit 02) its part 405
     * with Q; P1 bit 01 the next key of a rotation under way (6985 when none is).
     */
    short export(byte p1, byte p2, short lc) {
        noData(lc);
        if (p1 < 0 || p1 > (EXPORT_NEXT | EXPORT_PART) || p2 != 0) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        if (key[K_MODE] == MODE_NONE || keymgrKey[0] != 0x04 || ((p1 & EXPORT_NEXT) != 0 && !rotating())) {
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
        }
        byte[] kk = (p1 & EXPORT_NEXT) != 0 ? next : key;
        at[0] = 0;
        if ((p1 & EXPORT_PART) != 0) {
            short n = part(kk, PART_KEYMGR);
            short ctxLen = context(kk, PART, PART_KEYMGR);
            return seal.seal(keymgrKey, (short) 0, ram, R_PLAIN, n, ram, R_CTX, ctxLen, out, (short) 0);
        }
        short ctxLen = context(kk, EXPORT, (short) -1);
        return seal.seal(keymgrKey, (short) 0, kk, K_SECRET, materialLen(kk[K_MODE]), ram, R_CTX, ctxLen,
                         out, (short) 0);
    }

    /** NEW TRANSPORT KEY: a one-time pair for an import; its scalar kept, its point answered. */
    short newTransport(short lc, byte[] answer) {
        noData(lc);
        newPair(ram, R_PLAIN);
        ((ECPublicKey) pair.getPublic()).getW(answer, (short) 0);
        JCSystem.beginTransaction();
        Util.arrayCopy(ram, R_PLAIN, transport, (short) 0, SECRET_LEN);
        JCSystem.commitTransaction();
        return POINT_LEN;
    }

    /**
     * What the key manager sends this card (card/keys.py open_assisted): sealed under
     * ECDH(transport key, pinned key manager key), so only the pinned key manager made it and only
     * this card opens it; no transport key or no key manager pinned: 6985; anything else 6A80.
     * Answers the plaintext's length, the plaintext at dst[dstOff..).
     */
    short openAssisted(byte[] blob, short off, short len, byte[] ctx, short ctxOff, short ctxLen,
                       byte[] dst, short dstOff) {
        if (!hasTransport() || keymgrKey[0] != 0x04) {
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
        }
        priv.setS(transport, (short) 0, SECRET_LEN);
        return seal.openAgreed(priv, keymgrKey, (short) 0, blob, off, len, ctx, ctxOff, ctxLen, dst, dstOff);
    }

    /**
     * IMPORT KEY, P1 = mode (P2 not looked at, as on the Python card): key material sealed to the
     * transport key for this card and mode, a pair that fits; installed with the transport key
     * erased in one transaction.
     */
    short importKey(byte p1, byte[] d, short off, short lc, byte[] answer) {
        byte mode = modeOf(p1);
        if (key[K_MODE] != MODE_NONE || !hasTransport()) {
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
        }
        openMaterial(mode, IMPORT, d, off, lc);
        install(mode, ram, R_PLAIN, true);
        return keyInfo(key, answer);
    }

    /**
     * SPLIT KEY, P1 = k, P2 = n: Shamir k of n over GF(2^8) of d or K; share 1 sealed to the key
     * manager and share 2 to the vault, each with Q; the rest in clear. Answers in out[].
     */
    short split(byte k, byte n, short lc) {
        noData(lc);
        if (k < 2 || n < k || n > MAX_SHARES) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        if (key[K_MODE] == MODE_NONE || keymgrKey[0] != 0x04 || vaultKey[0] != 0x04) {
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
        }
        rng.generateData(ram, R_SHARES, (short) (SECRET_LEN * (k - 1)));  // the coefficients
        at[0] = 0;
        short pos = 0;
        for (byte x = 1; x <= n; x++) {
            ram[R_PLAIN] = x;
            for (short i = 0; i < SECRET_LEN; i++) {
                short y = (short) (key[(short) (K_SECRET + i)] & 0xFF);
                short power = 1;
                for (short c = 0; c < (short) (k - 1); c++) {
                    power = mul(power, x);
                    y ^= mul((short) (ram[(short) (R_SHARES + i * (k - 1) + c)] & 0xFF), power);
                }
                ram[(short) (R_PLAIN + 1 + i)] = (byte) y;
            }
            if (x > 2) {
                out[pos++] = (byte) 0x83;
                out[pos++] = (byte) SHARE_LEN;
                Util.arrayCopyNonAtomic(ram, R_PLAIN, out, pos, SHARE_LEN);
                pos += SHARE_LEN;
                continue;
            }
            short plain = withPublic(key, SHARE_LEN);
            short sealed = sealedLen(Seal.E_LEN, plain);
            out[pos++] = (byte) (0x80 + x);
            pos = Records.writeLength(out, pos, sealed);
            short ctxLen = context(key, SHARE, x);
            seal.seal(x == 1 ? keymgrKey : vaultKey, (short) 0, ram, R_PLAIN, plain, ram, R_CTX, ctxLen, out, pos);
            pos += sealed;
        }
        return pos;
    }

    /**
     * IMPORT SHARE, P1 = mode, P2 = 01 (sealed to the transport key) or 00 (a recovery code), data
     * = key id, Q (public mode), share. Shares of one key id are kept (up to three) until a subset
     * rebuilds a secret that fits; then the key is installed, else key info with mode 00.
     */
    short importShare(byte p1, byte p2, byte[] d, short off, short lc, byte[] answer) {
        byte mode = modeOf(p1);
        if (p2 != 0 && p2 != 1) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        if (key[K_MODE] != MODE_NONE) {
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
        }
        short publicLen = mode == MODE_PUBLIC ? POINT_LEN : 0;
        short q = (short) (off + KEY_ID_LEN);
        short share = (short) (q + publicLen);
        short shareLen = (short) (lc - KEY_ID_LEN - publicLen);
        if (shareLen < 0) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        if (publicLen != 0) {
            if (!ecc.validPoint(d, q, POINT_LEN)) {
                ISOException.throwIt(ISO7816.SW_WRONG_DATA);
            }
            keyId(d, q, POINT_LEN, ram, R_HMAC);
            if (Util.arrayCompare(ram, R_HMAC, d, off, KEY_ID_LEN) != 0) {
                ISOException.throwIt(ISO7816.SW_WRONG_DATA);
            }
        }
        short fresh = R_PLAIN;  // the new share, in RAM
        if (p2 == 1) {
            if (!hasTransport()) {
                ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
            }
            if (shareLen != sealedLen(Seal.E_LEN, SHARE_LEN)) {
                ISOException.throwIt(ISO7816.SW_WRONG_DATA);  // holds no 33-byte share, or fails its tag
            }
            short ctxLen = contextOf(SHARE_IMPORT);
            Util.arrayCopyNonAtomic(d, off, ram, (short) (R_CTX + ctxLen), KEY_ID_LEN);
            ctxLen += KEY_ID_LEN;
            priv.setS(transport, (short) 0, SECRET_LEN);
            shareLen = seal.open(priv, d, share, shareLen, ram, R_CTX, ctxLen, ram, R_PLAIN);
        } else if (shareLen == SHARE_LEN) {
            Util.arrayCopyNonAtomic(d, share, ram, R_PLAIN, SHARE_LEN);
        }
        if (shareLen != SHARE_LEN || ram[fresh] == 0) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        // the shares kept for this key id, less one with the new share's x, then the new one
        short count = 0;
        if (shares[S_MODE] == mode && Util.arrayCompare(shares, S_KEY_ID, d, off, KEY_ID_LEN) == 0) {
            for (short i = 0; i < shares[S_COUNT]; i++) {
                short from = (short) (S_SHARES + i * SHARE_LEN);
                if (shares[from] != ram[fresh]) {
                    Util.arrayCopyNonAtomic(shares, from, ram, (short) (R_SHARES + count * SHARE_LEN), SHARE_LEN);
                    count++;
                }
            }
        }
        Util.arrayCopyNonAtomic(ram, fresh, ram, (short) (R_SHARES + count * SHARE_LEN), SHARE_LEN);
        count++;
        if (publicLen != 0) {
            Util.arrayCopyNonAtomic(d, q, ram, (short) (R_PLAIN + SECRET_LEN), POINT_LEN);
        }
        // every subset of two or more, in itertools.combinations' order: the first that fits
        for (short size = 2; size <= count; size++) {
            for (short a = 0; a < count; a++) {
                for (short b = (short) (a + 1); b < count; b++) {
                    short c = (short) (size == 3 ? b + 1 : -1);
                    if (size == 3 && c >= count) {
                        continue;
                    }
                    combine(a, b, c);
                    if (fits(mode, d, off)) {
                        install(mode, ram, R_PLAIN, true);
                        return keyInfo(key, answer);
                    }
                }
            }
        }
        if (count >= MAX_SHARES) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);  // three that do not fit together: start again
        }
        JCSystem.beginTransaction();
        shares[S_COUNT] = (byte) count;
        shares[S_MODE] = mode;
        Util.arrayCopy(d, off, shares, S_KEY_ID, KEY_ID_LEN);
        Util.arrayCopy(ram, R_SHARES, shares, S_SHARES, (short) (count * SHARE_LEN));
        JCSystem.commitTransaction();
        return noKeyInfo(answer);
    }

    // --- the encrypted backup (E2, E4) -------------------------------------------------------------

    /**
     * The digest tags of BEGIN ENCRYPTED BACKUP as a bit set over WalletApplet.DIGEST_TAGS (a tag may
     * repeat, as in Python's list of DigestField); an unknown tag: 6A80.
     */
    static short digestMask(byte[] d, short off, short lc) {
        short mask = 0;
        for (short i = 0; i < lc; i++) {
            short bit = tagBit(d[(short) (off + i)]);
            if (bit == 0) {
                ISOException.throwIt(ISO7816.SW_WRONG_DATA);
            }
            mask |= bit;
        }
        return mask;
    }

    private static short tagBit(byte tag) {
        for (short i = 0; i < (short) WalletApplet.DIGEST_TAGS.length; i++) {
            if (WalletApplet.DIGEST_TAGS[i] == tag) {
                return (short) (1 << i);
            }
        }
        return 0;
    }

    /**
     * The registered value of the value v[vOff..+size) under the key ``kk`` in out[] (at
     * answerAt()): A0 { 80 digest, 81 key id, 82 E2 ciphertext, 83 the vault's part 406 with Q sealed
     * to the vault, 9E the identity key's signature over the REGISTERED context for the pinned
     * vault }. The digest is dg[dgOff..+dgLen) (REENCRYPT: the old one's), or when dg is null the
     * record's TLVs of the tags in ``mask`` (BEGIN ENCRYPTED BACKUP). Answers its length.
     */
    short registered(byte[] kk, short mask, byte[] dg, short dgOff, short dgLen, byte[] v, short vOff, short size) {
        short pos = 4;  // room for A0 and its length, written last
        short digestLen = dg == null ? digest(mask, v, vOff, size, null, (short) 0) : dgLen;
        out[pos++] = (byte) 0x80;
        pos = Records.writeLength(out, pos, digestLen);
        if (dg == null) {
            pos = digest(mask, v, vOff, size, out, pos);
        } else {
            Util.arrayCopyNonAtomic(dg, dgOff, out, pos, dgLen);
            pos += dgLen;
        }
        out[pos++] = (byte) 0x81;
        out[pos++] = KEY_ID_LEN;
        storedKeyId(kk, out, pos);
        pos += KEY_ID_LEN;
        out[pos++] = (byte) 0x82;
        pos = Records.writeLength(out, pos, sealedLen(kk[K_MODE] == MODE_PUBLIC ? Seal.X_ONLY_LEN : Seal.SALT_LEN, size));
        pos += sealValue(kk, v, vOff, size, cardId, (short) 0, out, pos);
        short n = part(kk, PART_VAULT);
        out[pos++] = (byte) 0x83;
        pos = Records.writeLength(out, pos, sealedLen(Seal.E_LEN, n));
        short ctxLen = context(kk, PART, PART_VAULT);
        pos += seal.seal(vaultKey, (short) 0, ram, R_PLAIN, n, ram, R_CTX, ctxLen, out, pos);
        Signature s = ecc.startSign(REGISTERED, vaultKey, (short) 0, POINT_LEN);
        s.update(cardId, (short) 0, (short) cardId.length);
        short sigLen = ecc.finishSign(out, (short) 4, (short) (pos - 4), ram, R_SIG);
        out[pos++] = (byte) 0x9E;
        out[pos++] = (byte) sigLen;
        Util.arrayCopyNonAtomic(ram, R_SIG, out, pos, sigLen);
        pos += sigLen;
        short content = (short) (pos - 4);
        short start = (short) (4 - 1 - Records.lengthFieldSize(content));
        out[start] = (byte) 0xA0;
        Records.writeLength(out, (short) (start + 1), content);
        at[0] = start;
        return (short) (pos - start);
    }

    /** The record's TLVs of the tags in ``mask``, in the record's order (make_digest): written to
     * dst[pos..) when dst is given; answers the end (or the length when measuring). */
    private short digest(short mask, byte[] v, short vOff, short size, byte[] dst, short pos) {
        short end = (short) (vOff + size);
        for (short p = vOff; p < end;) {
            byte tag = v[p];
            short len = Records.length(v, (short) (p + 1), end, at);
            short next = (short) (at[0] + len);
            if ((tagBit(tag) & mask) != 0) {
                if (dst != null) {
                    Util.arrayCopyNonAtomic(v, p, dst, pos, (short) (next - p));
                }
                pos += (short) (next - p);
            }
            p = next;
        }
        return pos;
    }

    /**
     * The E2 ciphertext of v[vOff..+len) under the key, for this card, to dst[dOff..): public mode
     * IV = HMAC(d, "EVB-E2-IV" | value)[:16], r the first HMAC(d, "EVB-E2-EPHEMERAL" | IV | i) below
     * n, header 02 | x(r·G), secret x(r·Q); symmetric mode IV | salt = HMAC(K, "EVB-E2-NONCE" | value).
     */
    short sealValue(byte[] kk, byte[] v, short vOff, short len, byte[] id, short idOff, byte[] dst, short dOff) {
        short ctxLen = e2Context(id, idOff);
        if (kk[K_MODE] == MODE_PUBLIC) {
            seal.hmacBegin(kk, K_SECRET, SECRET_LEN);
            seal.hmacUpdate(E2_IV, (short) 0, (short) E2_IV.length);
            seal.hmacFinish(v, vOff, len, ram, R_HMAC);
            short iv = (short) (dOff + Seal.X_ONLY_LEN);
            Util.arrayCopyNonAtomic(ram, R_HMAC, dst, iv, Seal.IV_LEN);
            ephemeral(kk, dst, iv);
            return seal.sealXOnly(priv, kk, K_PUBLIC, v, vOff, len, ram, R_CTX, ctxLen, dst, dOff);
        }
        seal.hmacBegin(kk, K_SECRET, SECRET_LEN);
        seal.hmacUpdate(E2_NONCE, (short) 0, (short) E2_NONCE.length);
        seal.hmacFinish(v, vOff, len, ram, R_HMAC);
        Util.arrayCopyNonAtomic(ram, (short) (R_HMAC + Seal.IV_LEN), dst, dOff, Seal.SALT_LEN);
        Util.arrayCopyNonAtomic(ram, R_HMAC, dst, (short) (dOff + Seal.SALT_LEN), Seal.IV_LEN);
        return seal.sealSymmetricGiven(kk, K_SECRET, v, vOff, len, ram, R_CTX, ctxLen, dst, dOff);
    }

    /** Whether SHA-256 of the E2 ciphertext of v[vOff..+len) is x[xOff..+32) (X of an encrypted backup). */
    boolean cipherHashIs(byte[] v, short vOff, short len, byte[] x, short xOff) {
        short n = sealValue(key, v, vOff, len, cardId, (short) 0, out, (short) 0);
        sha256.reset();
        sha256.doFinal(out, (short) 0, n, ram, R_HMAC);
        return Util.arrayCompare(ram, R_HMAC, x, xOff, (short) 32) == 0;
    }

    /**
     * A registered value r[off..+len) in its one encoding (apdu.backup.RegisteredValue: A0 { 80,
     * 81 (8), 82, 83 optional, 9E }, minimal lengths, nothing after); 6A80 otherwise. The offsets
     * of its digest, key id and ciphertext go to at[].
     */
    void parseRegistered(byte[] r, short off, short len) {
        short end = (short) (off + len);
        if (len < 2 || r[off] != (byte) 0xA0 || Records.length(r, (short) (off + 1), end, at) != (short) (end - at[0])) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        short pos = at[0];
        at[A_DIGEST] = field(r, pos, end, (byte) 0x80);
        at[A_DIGEST_LEN] = at[1];
        pos = (short) (at[A_DIGEST] + at[1]);
        at[A_KEY_ID] = field(r, pos, end, (byte) 0x81);
        if (at[1] != KEY_ID_LEN) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        pos = (short) (at[A_KEY_ID] + KEY_ID_LEN);
        at[A_CT] = field(r, pos, end, (byte) 0x82);
        at[A_CT_LEN] = at[1];
        pos = (short) (at[A_CT] + at[1]);
        if (pos < end && r[pos] == (byte) 0x83) {
            pos = (short) (field(r, pos, end, (byte) 0x83) + at[1]);
        }
        short signature = field(r, pos, end, (byte) 0x9E);
        if ((short) (signature + at[1]) != end) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
    }

    /** Whether the parsed registered value's digest is dg[dgOff..+dgLen) and its ciphertext hashes to x[xOff..+32). */
    boolean registeredIs(byte[] r, byte[] x, short xOff, byte[] dg, short dgOff, short dgLen) {
        sha256.reset();
        sha256.doFinal(r, at[A_CT], at[A_CT_LEN], ram, R_HMAC);
        return Util.arrayCompare(ram, R_HMAC, x, xOff, (short) 32) == 0 && at[A_DIGEST_LEN] == dgLen
                && Util.arrayCompare(r, at[A_DIGEST], dg, dgOff, dgLen) == 0;
    }

    /** Whether the parsed registered value names the key ``kk`` (by its key id). */
    boolean registeredUnder(byte[] kk, byte[] r) {
        if (kk[K_MODE] == MODE_NONE) {
            return false;
        }
        storedKeyId(kk, ram, R_HMAC);
        return Util.arrayCompare(ram, R_HMAC, r, at[A_KEY_ID], KEY_ID_LEN) == 0;
    }

    /**
     * COMMIT RESTORE of an encrypted certificate (card/backup.py _open_registered): the registered
     * value r[off..+len) in its one encoding (6A80), its ciphertext's hash X and its digest those
     * of the certificate (6A80), its key id the card's key, or the next key of a rotation under way
     * (6984), the ciphertext opening under the context of the card id the certificate names
     * (6A80). The value goes to out[0..); its length is answered.
     */
    short openRegistered(byte[] r, short off, short len, byte[] cert, short certCardId, short certHash,
                         short certDigest, short certDigestLen) {
        parseRegistered(r, off, len);
        if (!registeredIs(r, cert, certHash, cert, certDigest, certDigestLen)) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        if (key[K_MODE] == MODE_NONE) {
            ISOException.throwIt(SW_REFERENCE_NOT_USABLE);  // restore the key first
        }
        byte[] kk = !registeredUnder(key, r) && rotating() ? next : key;
        if (!registeredUnder(kk, r)) {
            ISOException.throwIt(SW_REFERENCE_NOT_USABLE);  // another key: restore the key first
        }
        return openValue(kk, r, cert, certCardId, (short) 0);
    }

    /** The parsed registered value's ciphertext opened with ``kk`` for the card id at id[idOff] into out[at..); 6A80. */
    private short openValue(byte[] kk, byte[] r, byte[] id, short idOff, short dst) {
        short ct = at[A_CT];
        short ctLen = at[A_CT_LEN];
        short ctxLen = e2Context(id, idOff);
        if (kk[K_MODE] == MODE_PUBLIC) {
            if (ctLen < (short) (Seal.X_ONLY_LEN + Seal.IV_LEN)) {
                ISOException.throwIt(ISO7816.SW_WRONG_DATA);
            }
            ephemeral(kk, r, (short) (ct + Seal.X_ONLY_LEN));
            return seal.openXOnly(priv, kk, K_PUBLIC, r, ct, ctLen, ram, R_CTX, ctxLen, out, dst);
        }
        return seal.openSymmetric(kk, K_SECRET, r, ct, ctLen, ram, R_CTX, ctxLen, out, dst);
    }

    private static final short SW_REFERENCE_NOT_USABLE = (short) 0x6984;

    /** The value offset of a TLV with ``tag`` at r[pos] (its length in at[1]); 6A80 for another. */
    private short field(byte[] r, short pos, short end, byte tag) {
        if (pos >= end || r[pos] != tag) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        at[1] = Records.length(r, (short) (pos + 1), end, at);
        return at[0];
    }

    // --- rotation (docs/APDU.md 7.1, card/rotation.py) ------------------------------------------------

    /**
     * BEGIN ROTATION (the applet checked the PIN, the data and that nothing is pending): the next
     * key, random in the key's mode, made once; again, the same next key's info.
     */
    short beginRotation(byte[] answer) {
        if (!rotating()) {
            byte mode = key[K_MODE];
            if (mode == MODE_PUBLIC) {
                newPair(ram, R_PLAIN);
                ((ECPublicKey) pair.getPublic()).getW(ram, (short) (R_PLAIN + SECRET_LEN));
            } else {
                rng.generateData(ram, R_PLAIN, SECRET_LEN);
                Util.arrayFillNonAtomic(ram, (short) (R_PLAIN + SECRET_LEN), POINT_LEN, (byte) 0);
            }
            JCSystem.beginTransaction();
            Util.arrayCopy(ram, R_PLAIN, next, K_SECRET, PUBLIC_MATERIAL_LEN);
            next[K_MODE] = mode;
            JCSystem.commitTransaction();
        }
        return keyInfo(next, answer);
    }

    /**
     * REENCRYPT: the registered value r[off..+len) the vault holds for an encrypted certificate
     * (its X, digest), checked (6A80), under the key (6984), a vault pinned (6984), opened, and
     * sealed again under the next key for this card, with the next key's part 406, signed. The
     * registered value is built in out[] (answerAt()); its length is answered. No card write.
     */
    short reencrypt(byte[] r, short off, short len, byte[] cert, short certCardId, short certHash, short certDigest,
                    short certDigestLen) {
        parseRegistered(r, off, len);
        if (!registeredIs(r, cert, certHash, cert, certDigest, certDigestLen)) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        if (!registeredUnder(key, r) || vaultKey[0] != 0x04) {
            ISOException.throwIt(SW_REFERENCE_NOT_USABLE);
        }
        short n = openValue(key, r, cert, certCardId, OPENED);
        if (n > Records.MAX_RECORD) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        return registered(next, (short) 0, r, at[A_DIGEST], at[A_DIGEST_LEN], out, OPENED, n);
    }

    /**
     * SWAP CERTIFICATE's checks of the new registered value r[off..+len) (parsed: 6A80): its
     * digest the old certificate's, its ciphertext hashing to the new certificate's X, under the
     * next key, opening for this card (to out[OPENED..), its length answered) to a value whose
     * ciphertext under the key, for the card the old certificate names, the old certificate's X is.
     */
    short swapped(byte[] r, short off, short len, byte[] newCert, short newHash, byte[] old, short oldCardId,
                  short oldHash, short oldDigest, short oldDigestLen) {
        parseRegistered(r, off, len);
        if (!registeredIs(r, newCert, newHash, old, oldDigest, oldDigestLen) || !registeredUnder(next, r)) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        short n = openValue(next, r, cardId, (short) 0, OPENED);
        if (n > Records.MAX_RECORD) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        short c = sealValue(key, out, OPENED, n, old, oldCardId, out, (short) 0);
        sha256.reset();
        sha256.doFinal(out, (short) 0, c, ram, R_HMAC);
        if (Util.arrayCompare(ram, R_HMAC, old, oldHash, (short) 32) != 0) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);  // not the value the old certificate names
        }
        return n;
    }

    /**
     * COMMIT ROTATION's key change, inside the applet's transaction (which also clears the
     * entries' ROTATED and BACKED UP flags): the next key becomes the key, the old one overwritten.
     */
    void promoteNext() {
        Util.arrayCopy(next, (short) 0, key, (short) 0, (short) next.length);
        Util.arrayCopy(zeros, (short) 0, next, (short) 0, (short) next.length);
    }

    // --- re-keying by the key manager (docs/APDU.md 7.2, card/rekey.py) -------------------------------

    private static final byte[] REPLACE = {'E', 'V', 'B', '-', 'K', 'E', 'Y', '-', 'R', 'E', 'P', 'L', 'A', 'C', 'E', '-', '1'};

    /**
     * REPLACE KEY's opening (the applet checked the PIN, P2 and that no rotation or pending value
     * stands in the way): a transport key and a pinned key manager (6985), the material sealed
     * under ECDH(transport key, key manager key) for this card and mode, a pair that fits (6A80).
     * Left in RAM for {@link #putReplaced}, inside the applet's transaction.
     */
    void openReplacement(byte mode, byte[] d, short off, short lc) {
        if (!hasTransport() || keymgrKey[0] != 0x04) {
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
        }
        openMaterial(mode, REPLACE, d, off, lc);
    }

    /**
     * Key material for ``mode`` opened with the transport key into ram[R_PLAIN..), for this card,
     * the purpose ``label`` and the mode; a pair that fits (6A80 otherwise). IMPORT's blob is sealed
     * to the transport key (E | IV | C | T); REPLACE's under ECDH(transport key, key manager key)
     * (S | IV | C | T), so only the pinned key manager makes one that opens.
     */
    private void openMaterial(byte mode, byte[] label, byte[] d, short off, short lc) {
        boolean byKeymgr = label == REPLACE;
        short len = materialLen(mode);
        // any other length holds other than len bytes of plaintext (or fails its tag): 6A80 either way
        if (lc != sealedLen(byKeymgr ? Seal.SALT_LEN : Seal.E_LEN, len)) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        short ctxLen = (short) (contextOf(label) + 1);
        ram[(short) (R_CTX + ctxLen - 1)] = mode;
        priv.setS(transport, (short) 0, SECRET_LEN);
        short n = byKeymgr ? seal.openAgreed(priv, keymgrKey, (short) 0, d, off, lc, ram, R_CTX, ctxLen, ram, R_PLAIN)
                           : seal.open(priv, d, off, lc, ram, R_CTX, ctxLen, ram, R_PLAIN);
        if (n != len || (mode == MODE_PUBLIC && !pairFits(ram, R_PLAIN))) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
    }

    /** The opened replacement in place of the key (or of none), the transport key and the shares erased. */
    void putReplaced(byte mode) {
        put(mode, ram, R_PLAIN, true);
    }

    static byte replaceMode(byte p1) {
        return modeOf(p1);
    }

    /** The key's info into answer[0..) (COMMIT ROTATION). */
    short info(byte[] answer) {
        return keyInfo(key, answer);
    }

    // --- pieces ----------------------------------------------------------------------------------

    private static void noData(short lc) {
        if (lc != 0) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
    }

    private static byte modeOf(byte p1) {
        if (p1 != MODE_PUBLIC && p1 != MODE_SYMMETRIC) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        return p1;
    }

    private static short materialLen(byte mode) {
        return mode == MODE_PUBLIC ? PUBLIC_MATERIAL_LEN : SECRET_LEN;
    }

    /** The length of a blob sealing ``plain`` bytes behind a header of ``header`` bytes. */
    private static short sealedLen(short header, short plain) {
        return (short) (header + Seal.IV_LEN + (short) ((short) (plain / Seal.BLOCK + 1) * Seal.BLOCK) + Seal.TAG_LEN);
    }

    private boolean hasTransport() {
        for (short i = 0; i < SECRET_LEN; i++) {
            if (transport[i] != 0) {
                return true;
            }
        }
        return false;
    }

    /** A new pair in {@link #pair}; d, 32 bytes with its leading zeros, to dst[off..). */
    private void newPair(byte[] dst, short off) {
        pair.genKeyPair();
        short n = priv.getS(ram, R_SIG);
        Util.arrayFillNonAtomic(dst, off, SECRET_LEN, (byte) 0);
        Util.arrayCopyNonAtomic(ram, R_SIG, dst, (short) (off + SECRET_LEN - n), n);
    }

    /** The key material at src[off..) (d | Q, or K) in place of none, in one transaction; the
     * shares (and, for an import, the transport key) erased with it. */
    private void install(byte mode, byte[] src, short off, boolean clearTransport) {
        JCSystem.beginTransaction();
        put(mode, src, off, clearTransport);
        JCSystem.commitTransaction();
    }

    /** {@link #install}'s writes, inside the caller's transaction. */
    private void put(byte mode, byte[] src, short off, boolean clearTransport) {
        Util.arrayCopy(src, off, key, K_SECRET, SECRET_LEN);
        if (mode == MODE_PUBLIC) {
            Util.arrayCopy(src, (short) (off + SECRET_LEN), key, K_PUBLIC, POINT_LEN);
        } else {
            Util.arrayCopy(zeros, (short) 0, key, K_PUBLIC, POINT_LEN);
        }
        key[K_MODE] = mode;
        if (clearTransport) {
            Util.arrayCopy(zeros, (short) 0, transport, (short) 0, SECRET_LEN);
        }
        Util.arrayCopy(zeros, (short) 0, shares, (short) 0, SHARES_AREA);
    }

    /** Whether the material at m[off..) = d | Q is a pair: Q on the curve, 1 <= d < n, d signs what Q verifies. */
    private boolean pairFits(byte[] m, short off) {
        short q = (short) (off + SECRET_LEN);
        if (!P256.validScalar(m, off) || !ecc.validPoint(m, q, POINT_LEN)) {
            return false;
        }
        try {
            priv.setS(m, off, SECRET_LEN);
            ecdsa.init(priv, Signature.MODE_SIGN);
            short n = ecdsa.sign(PAIR_CHECK, (short) 0, (short) PAIR_CHECK.length, ram, R_SIG);
            pub.setW(m, q, POINT_LEN);
            ecdsa.init(pub, Signature.MODE_VERIFY);
            return ecdsa.verify(PAIR_CHECK, (short) 0, (short) PAIR_CHECK.length, ram, R_SIG, n);
        } catch (RuntimeException e) {  // CryptoException on a card; jCardSim's BouncyCastle throws its own
            return false;
        }
    }

    /** The rebuilt secret in ram[R_PLAIN..) (Q after it in public mode) fits the key id given at d[idOff]. */
    private boolean fits(byte mode, byte[] d, short idOff) {
        if (mode == MODE_PUBLIC) {
            return pairFits(ram, R_PLAIN);
        }
        keyId(ram, R_PLAIN, SECRET_LEN, ram, R_HMAC);
        return Util.arrayCompare(ram, R_HMAC, d, idOff, KEY_ID_LEN) == 0;
    }

    /** Lagrange at 0 over GF(2^8) of the shares a, b (and c unless negative) in ram[R_SHARES..), to ram[R_PLAIN..). */
    private void combine(short a, short b, short c) {
        short la = lagrange(a, b, c);
        short lb = lagrange(b, a, c);
        short lc = c < 0 ? 0 : lagrange(c, a, b);
        for (short i = 1; i <= SECRET_LEN; i++) {
            short y = (short) (mul(shareByte(a, i), la) ^ mul(shareByte(b, i), lb));
            if (c >= 0) {
                y ^= mul(shareByte(c, i), lc);
            }
            ram[(short) (R_PLAIN + i - 1)] = (byte) y;
        }
    }

    private short shareByte(short share, short i) {
        return (short) (ram[(short) (R_SHARES + share * SHARE_LEN + i)] & 0xFF);
    }

    /** The Lagrange coefficient at 0 of share j among j, m1 and m2 (m2 negative: none). */
    private short lagrange(short j, short m1, short m2) {
        short xj = shareByte(j, (short) 0);
        short num = shareByte(m1, (short) 0);
        short den = (short) (num ^ xj);
        if (m2 >= 0) {
            short x2 = shareByte(m2, (short) 0);
            num = mul(num, x2);
            den = mul(den, (short) (x2 ^ xj));
        }
        return mul(num, inverse(den));
    }

    /** Multiplication in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1 (AES's field, apdu/shamir.py). */
    private static short mul(short a, short b) {
        short p = 0;
        a &= 0xFF;
        b &= 0xFF;
        while (b != 0) {
            if ((b & 1) != 0) {
                p ^= a;
            }
            a <<= 1;
            if ((a & 0x100) != 0) {
                a ^= 0x11B;
            }
            b >>= 1;
        }
        return p;
    }

    /** a^254 = a^-1 in GF(2^8) (a != 0). */
    private static short inverse(short a) {
        short r = 1;
        for (short i = 0; i < 254; i++) {
            r = mul(r, a);
        }
        return r;
    }

    /**
     * Part x of the per-value split of d (or K) to ram[R_PLAIN..): x | d ^ x·a per byte, a =
     * HMAC(d, "EVB-E4-PART-1"), then Q in public mode; answers its length.
     */
    private short part(byte[] kk, byte x) {
        seal.hmacBegin(kk, K_SECRET, SECRET_LEN);
        seal.hmacFinish(PART_COEFFICIENT, (short) 0, (short) PART_COEFFICIENT.length, ram, R_HMAC);
        ram[R_PLAIN] = x;
        for (short i = 0; i < SECRET_LEN; i++) {
            short y = (short) ((kk[(short) (K_SECRET + i)] & 0xFF) ^ mul((short) (ram[(short) (R_HMAC + i)] & 0xFF), x));
            ram[(short) (R_PLAIN + 1 + i)] = (byte) y;
        }
        return withPublic(kk, SHARE_LEN);
    }

    /** Q after the n bytes at ram[R_PLAIN..) in public mode; answers the new length. */
    private short withPublic(byte[] kk, short n) {
        if (kk[K_MODE] != MODE_PUBLIC) {
            return n;
        }
        Util.arrayCopyNonAtomic(kk, K_PUBLIC, ram, (short) (R_PLAIN + n), POINT_LEN);
        return (short) (n + POINT_LEN);
    }

    /** The E2 ephemeral scalar r for the IV at iv[ivOff..+16), into {@link #priv}. */
    private void ephemeral(byte[] kk, byte[] iv, short ivOff) {
        for (short i = 0; i < 256; i++) {
            seal.hmacBegin(kk, K_SECRET, SECRET_LEN);
            seal.hmacUpdate(E2_EPHEMERAL, (short) 0, (short) E2_EPHEMERAL.length);
            seal.hmacUpdate(iv, ivOff, Seal.IV_LEN);
            ram[R_SIG] = (byte) i;
            seal.hmacFinish(ram, R_SIG, (short) 1, ram, R_HMAC);
            if (P256.validScalar(ram, R_HMAC)) {
                priv.setS(ram, R_HMAC, SECRET_LEN);
                return;
            }
        }
        ISOException.throwIt(ISO7816.SW_WRONG_DATA);  // 256 draws above n: probability 2^-8192
    }

    /** "EVB-E2-1" | the card id at id[idOff..+8) into ram[R_CTX..); answers its length. */
    private short e2Context(byte[] id, short idOff) {
        Util.arrayCopyNonAtomic(E2, (short) 0, ram, R_CTX, (short) E2.length);
        Util.arrayCopyNonAtomic(id, idOff, ram, (short) (R_CTX + E2.length), (short) 8);
        return (short) (E2.length + 8);
    }

    /** label | card id into ram[R_CTX..); answers its length (the caller appends the rest). */
    private short contextOf(byte[] label) {
        short n = (short) label.length;
        Util.arrayCopyNonAtomic(label, (short) 0, ram, R_CTX, n);
        Util.arrayCopyNonAtomic(cardId, (short) 0, ram, (short) (R_CTX + n), (short) 8);
        return (short) (n + 8);
    }

    /** label | card id | the key's id | x (unless negative) into ram[R_CTX..); answers its length. */
    private short context(byte[] kk, byte[] label, short x) {
        short n = contextOf(label);
        storedKeyId(kk, ram, (short) (R_CTX + n));
        n += KEY_ID_LEN;
        if (x >= 0) {
            ram[(short) (R_CTX + n)] = (byte) x;
            n++;
        }
        return n;
    }

    /** The key info of the key into answer[0..): 80 01 mode, 81 08 key id, 82 41 Q (public mode). */
    private short keyInfo(byte[] kk, byte[] answer) {
        byte mode = kk[K_MODE];
        if (mode == MODE_NONE) {
            return noKeyInfo(answer);
        }
        answer[0] = (byte) 0x80;
        answer[1] = 1;
        answer[2] = mode;
        answer[3] = (byte) 0x81;
        answer[4] = KEY_ID_LEN;
        storedKeyId(kk, answer, (short) 5);
        if (mode != MODE_PUBLIC) {
            return (short) (5 + KEY_ID_LEN);
        }
        answer[13] = (byte) 0x82;
        answer[14] = POINT_LEN;
        Util.arrayCopyNonAtomic(kk, K_PUBLIC, answer, (short) 15, POINT_LEN);
        return (short) (15 + POINT_LEN);
    }

    private static short noKeyInfo(byte[] answer) {
        answer[0] = (byte) 0x80;
        answer[1] = 1;
        answer[2] = MODE_NONE;
        return 3;
    }

    /** The stored key's id to dst[off..+8). */
    private void storedKeyId(byte[] kk, byte[] dst, short off) {
        if (kk[K_MODE] == MODE_PUBLIC) {
            keyId(kk, K_PUBLIC, POINT_LEN, dst, off);
        } else {
            keyId(kk, K_SECRET, SECRET_LEN, dst, off);
        }
    }

    /** SHA-256("EVB-KEY-ID" | Q or K)[:8] to dst[off..+8) (through ram[R_SIG..), which it uses). */
    private void keyId(byte[] m, short mOff, short mLen, byte[] dst, short off) {
        sha256.reset();
        sha256.update(KEY_ID, (short) 0, (short) KEY_ID.length);
        sha256.doFinal(m, mOff, mLen, ram, R_SIG);
        Util.arrayCopyNonAtomic(ram, R_SIG, dst, off, KEY_ID_LEN);
    }
}
