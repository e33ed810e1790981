package evb.wallet;

import javacard.framework.JCSystem;
import javacard.framework.Util;
import javacard.security.ECKey;
import javacard.security.ECPrivateKey;
import javacard.security.ECPublicKey;
import javacard.security.KeyBuilder;
import javacard.security.KeyPair;
import javacard.security.MessageDigest;
import javacard.security.Signature;

/**
 * ECDSA P-256 with SHA-256 in the protocol's one canonical form (apdu/signature.py): strict DER with
 * the low s. The card's identity key pair is generated here at install; signatures leave through
 * {@link #finishSign}, which replaces s by n - s when s > n/2 (a 32-byte subtraction: 3.0.4 has no
 * big numbers); a signature to verify must already be canonical ({@link #canonical}), as every
 * verifier of the system requires, so a rewritten (r, n - s) is refused before the maths.
 *
 * Every message is ``label || 00 || SHA-256(audience) || fields`` (apdu/context.py): {@link #begin}
 * feeds the first three, the caller the fields.
 */
final class Ecc {
    static final short POINT_LEN = 65;
    static final short MAX_SIGNATURE = 72;

    private static final byte[] P = {
        (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF,
        (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF
    };
    private static final byte[] A = {
        (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF,
        (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFC
    };
    private static final byte[] B = {
        0x5A, (byte) 0xC6, 0x35, (byte) 0xD8, (byte) 0xAA, 0x3A, (byte) 0x93, (byte) 0xE7, (byte) 0xB3, (byte) 0xEB,
        (byte) 0xBD, 0x55, 0x76, (byte) 0x98, (byte) 0x86, (byte) 0xBC, 0x65, 0x1D, 0x06, (byte) 0xB0, (byte) 0xCC,
        0x53, (byte) 0xB0, (byte) 0xF6, 0x3B, (byte) 0xCE, 0x3C, 0x3E, 0x27, (byte) 0xD2, 0x60, 0x4B
    };
    private static final byte[] G = {
        0x04, 0x6B, 0x17, (byte) 0xD1, (byte) 0xF2, (byte) 0xE1, 0x2C, 0x42, 0x47, (byte) 0xF8, (byte) 0xBC,
        (byte) 0xE6, (byte) 0xE5, 0x63, (byte) 0xA4, 0x40, (byte) 0xF2, 0x77, 0x03, 0x7D, (byte) 0x81, 0x2D,
        (byte) 0xEB, 0x33, (byte) 0xA0, (byte) 0xF4, (byte) 0xA1, 0x39, 0x45, (byte) 0xD8, (byte) 0x98, (byte) 0xC2,
        (byte) 0x96, 0x4F, (byte) 0xE3, 0x42, (byte) 0xE2, (byte) 0xFE, 0x1A, 0x7F, (byte) 0x9B, (byte) 0x8E,
        (byte) 0xE7, (byte) 0xEB, 0x4A, 0x7C, 0x0F, (byte) 0x9E, 0x16, 0x2B, (byte) 0xCE, 0x33, 0x57, 0x6B, 0x31,
        0x5E, (byte) 0xCE, (byte) 0xCB, (byte) 0xB6, 0x40, 0x68, 0x37, (byte) 0xBF, 0x51, (byte) 0xF5
    };
    static final byte[] N = {
        (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, 0x00, 0x00, 0x00, 0x00, (byte) 0xFF, (byte) 0xFF,
        (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xBC, (byte) 0xE6,
        (byte) 0xFA, (byte) 0xAD, (byte) 0xA7, 0x17, (byte) 0x9E, (byte) 0x84, (byte) 0xF3, (byte) 0xB9,
        (byte) 0xCA, (byte) 0xC2, (byte) 0xFC, 0x63, 0x25, 0x51
    };
    /** floor(n / 2): a canonical s is at most this. */
    private static final byte[] HALF_N = {
        0x7F, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0x80, 0x00, 0x00, 0x00, 0x7F, (byte) 0xFF,
        (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xDE, 0x73,
        0x7D, 0x56, (byte) 0xD3, (byte) 0x8B, (byte) 0xCF, 0x42, 0x79, (byte) 0xDC, (byte) 0xE5, 0x61,
        0x7E, 0x31, (byte) 0x92, (byte) 0xA8
    };

    private final ECPrivateKey privateKey;
    /** The identity's public point (65 bytes), read once at install. */
    final byte[] identity;
    private final ECPublicKey peer;
    private final Signature signer;
    private final Signature verifier;
    private final MessageDigest sha256;
    /** 32 bytes of work space: an audience hash, or s while it is made low. */
    private final byte[] work;

    Ecc(MessageDigest sha256) {
        this.sha256 = sha256;
        KeyPair pair = new KeyPair(KeyPair.ALG_EC_FP, KeyBuilder.LENGTH_EC_FP_256);
        curve((ECKey) pair.getPublic());
        curve((ECKey) pair.getPrivate());
        pair.genKeyPair();
        privateKey = (ECPrivateKey) pair.getPrivate();
        identity = new byte[POINT_LEN];
        ((ECPublicKey) pair.getPublic()).getW(identity, (short) 0);
        peer = (ECPublicKey) KeyBuilder.buildKey(KeyBuilder.TYPE_EC_FP_PUBLIC, KeyBuilder.LENGTH_EC_FP_256, false);
        curve(peer);
        signer = Signature.getInstance(Signature.ALG_ECDSA_SHA_256, false);
        verifier = Signature.getInstance(Signature.ALG_ECDSA_SHA_256, false);
        work = JCSystem.makeTransientByteArray((short) 32, JCSystem.CLEAR_ON_RESET);
    }

    /** P-256's domain, set explicitly: a card's default curve for 256 bits is its maker's choice. */
    private static void curve(ECKey key) {
        key.setFieldFP(P, (short) 0, (short) P.length);
        key.setA(A, (short) 0, (short) A.length);
        key.setB(B, (short) 0, (short) B.length);
        key.setG(G, (short) 0, (short) G.length);
        key.setR(N, (short) 0, (short) N.length);
        key.setK((short) 1);
    }

    /**
     * Whether d[off..off+65) is an uncompressed point of P-256, as apdu.signature.valid_public_key.
     * The runtime decodes the point when a key is put to use and refuses one off the curve; a card
     * that does not would need an ECDH with it (KeyAgreement checks the point) instead.
     */
    boolean validPoint(byte[] d, short off, short n) {
        if (n != POINT_LEN || d[off] != 0x04) {
            return false;
        }
        try {
            peer.setW(d, off, POINT_LEN);
            verifier.init(peer, Signature.MODE_VERIFY);
        } catch (RuntimeException e) {
            return false;
        }
        return true;
    }

    /** Start a message: label || 00 || SHA-256(audience bytes), into the signer or the verifier. */
    void begin(Signature sig, byte[] label, byte[] aud, short audOff, short audLen) {
        sha256.reset();
        sha256.doFinal(aud, audOff, audLen, work, (short) 0);
        sig.update(label, (short) 0, (short) label.length);
        sig.update(ZERO, (short) 0, (short) 1);
        sig.update(work, (short) 0, (short) 32);
    }

    private static final byte[] ZERO = {0};

    Signature startSign(byte[] label, byte[] aud, short audOff, short audLen) {
        signer.init(privateKey, Signature.MODE_SIGN);
        begin(signer, label, aud, audOff, audLen);
        return signer;
    }

    /**
     * Sign the message's last field, leaving the canonical signature at out[outOff]; answers its
     * length. The runtime's DER is re-encoded with s replaced by n - s when s > n/2.
     */
    short finishSign(byte[] d, short off, short n, byte[] out, short outOff) {
        short len = signer.sign(d, off, n, out, outOff);
        return lowS(out, outOff, len);
    }

    /**
     * Start verifying with the public point at key[keyOff]: the verifier, its message begun, or
     * null when the key is no point of the curve (then nothing verifies).
     */
    Signature startVerify(byte[] key, short keyOff, byte[] label, byte[] aud, short audOff, short audLen) {
        if (!validPoint(key, keyOff, POINT_LEN)) {
            return null;
        }
        begin(verifier, label, aud, audOff, audLen);
        return verifier;
    }

    /** The last field, then the check: canonical form first, then the maths. */
    boolean finishVerify(byte[] d, short off, short n, byte[] sig, short sigOff, short sigLen) {
        if (!canonical(sig, sigOff, sigLen)) {
            return false;
        }
        try {
            return verifier.verify(d, off, n, sig, sigOff, sigLen);
        } catch (RuntimeException e) {
            return false;
        }
    }

    // --- the one canonical form --------------------------------------------------------------

    /**
     * Strict DER ``30 L 02 rl r 02 sl s`` with minimal positive integers, 0 < r < n and
     * 0 < s <= n/2: the one encoding apdu.signature.is_canonical accepts.
     */
    static boolean canonical(byte[] d, short off, short n) {
        if (n < 8 || n > MAX_SIGNATURE || d[off] != 0x30 || d[(short) (off + 1)] != (byte) (n - 2)) {
            return false;
        }
        short r = (short) (off + 2);
        short rLen = integer(d, r, (short) (off + n), N);
        if (rLen < 0) {
            return false;
        }
        short s = (short) (r + 2 + rLen);
        short sLen = integer(d, s, (short) (off + n), HALF_N);
        return sLen >= 0 && (short) (s + 2 + sLen) == (short) (off + n)
                && lessOrEqual(d, (short) (s + 2), sLen, HALF_N);
    }

    /**
     * The length of a minimal positive DER INTEGER at d[at] below ``bound`` (or at most, for HALF_N:
     * checked by the caller) and not zero; -1 otherwise.
     */
    private static short integer(byte[] d, short at, short end, byte[] bound) {
        if ((short) (at + 2) > end || d[at] != 0x02) {
            return -1;
        }
        short len = d[(short) (at + 1)];
        short v = (short) (at + 2);
        if (len < 1 || len > 33 || (short) (v + len) > end || d[v] < 0) {
            return -1;  // empty, too long, past the end, or negative
        }
        if (d[v] == 0 && (len == 1 || d[(short) (v + 1)] >= 0)) {
            return -1;  // zero, or a leading 00 not needed
        }
        if (bound == N && !less(d, v, len, N)) {
            return -1;
        }
        return len;
    }

    /** The unsigned big-endian d[v..v+len) (len <= 33, a leading 00 when 33) compared with a 32-byte bound. */
    private static short compare32(byte[] d, short v, short len, byte[] bound) {
        if (len == 33) {
            v++;
            len = 32;
        }
        short pad = (short) (32 - len);
        for (short i = 0; i < 32; i++) {
            short x = i < pad ? 0 : (short) (d[(short) (v + i - pad)] & 0xFF);
            short y = (short) (bound[i] & 0xFF);
            if (x != y) {
                return (short) (x - y);
            }
        }
        return 0;
    }

    private static boolean less(byte[] d, short v, short len, byte[] bound) {
        return compare32(d, v, len, bound) < 0;
    }

    private static boolean lessOrEqual(byte[] d, short v, short len, byte[] bound) {
        return compare32(d, v, len, bound) <= 0;
    }

    /** Make the DER signature at d[off..off+len) low-s in place; answers its new length. */
    private short lowS(byte[] d, short off, short len) {
        short rLen = d[(short) (off + 3)];
        short s = (short) (off + 4 + rLen);
        short sLen = d[(short) (s + 1)];
        if (lessOrEqual(d, (short) (s + 2), sLen, HALF_N)) {
            return len;
        }
        // work = n - s, over 32 bytes with a borrow
        Util.arrayFillNonAtomic(work, (short) 0, (short) 32, (byte) 0);
        short v = (short) (s + 2);
        short n = sLen;
        if (n == 33) {
            v++;
            n = 32;
        }
        Util.arrayCopyNonAtomic(d, v, work, (short) (32 - n), n);
        short borrow = 0;
        for (short i = 31; i >= 0; i--) {
            short x = (short) ((N[i] & 0xFF) - (work[i] & 0xFF) - borrow);
            borrow = x < 0 ? (short) 1 : (short) 0;
            work[i] = (byte) x;
        }
        // minimal positive INTEGER: n - s < n/2 < 2^255, so its top bit is clear and no 00 is needed
        short skip = 0;
        while (skip < 31 && work[skip] == 0) {
            skip++;
        }
        short newLen = (short) (32 - skip);
        d[(short) (s + 1)] = (byte) newLen;
        Util.arrayCopyNonAtomic(work, skip, d, (short) (s + 2), newLen);
        d[(short) (off + 1)] = (byte) (2 + rLen + 2 + newLen);
        return (short) (4 + rLen + 2 + newLen);
    }
}
