package evb.wallet;

import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.Util;
import javacard.security.ECKey;
import javacard.security.ECPrivateKey;
import javacard.security.ECPublicKey;
import javacard.security.KeyBuilder;
import javacard.security.KeyPair;

/**
 * NIST P-256 for the package's applets: a card sets the curve on every EC key itself (a 3.0.4 card
 * has no named curves), and the signatures must be canonical (low s, apdu/signature.py), which
 * ECDSA on a card does not promise: {@link #lowS} rewrites s as n - s in applet code.
 */
final class P256 {
    static final short SCALAR_LEN = 32;
    static final short POINT_LEN = 65;
    /** EEPROM a persistent key keeps of its own (GET MEMORY MAP): a public key's point, a pair's
     * point and scalar; the curve's parameters are the runtime's. */
    static final short PUBLIC_KEY_BYTES = POINT_LEN;
    static final short PAIR_BYTES = (short) (POINT_LEN + SCALAR_LEN);

    private static final byte[] P = {
        (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, 0x00, 0x00, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF,
        (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF
    };
    private static final byte[] A = {
        (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, 0x00, 0x00, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF,
        (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFC
    };
    private static final byte[] B = {
        0x5A, (byte) 0xC6, 0x35, (byte) 0xD8, (byte) 0xAA, 0x3A, (byte) 0x93, (byte) 0xE7,
        (byte) 0xB3, (byte) 0xEB, (byte) 0xBD, 0x55, 0x76, (byte) 0x98, (byte) 0x86, (byte) 0xBC,
        0x65, 0x1D, 0x06, (byte) 0xB0, (byte) 0xCC, 0x53, (byte) 0xB0, (byte) 0xF6,
        0x3B, (byte) 0xCE, 0x3C, 0x3E, 0x27, (byte) 0xD2, 0x60, 0x4B
    };
    /** The generator, uncompressed: the peer of an ECDH that answers x(r·G). */
    static final byte[] G = {
        0x04,
        0x6B, 0x17, (byte) 0xD1, (byte) 0xF2, (byte) 0xE1, 0x2C, 0x42, 0x47,
        (byte) 0xF8, (byte) 0xBC, (byte) 0xE6, (byte) 0xE5, 0x63, (byte) 0xA4, 0x40, (byte) 0xF2,
        0x77, 0x03, 0x7D, (byte) 0x81, 0x2D, (byte) 0xEB, 0x33, (byte) 0xA0,
        (byte) 0xF4, (byte) 0xA1, 0x39, 0x45, (byte) 0xD8, (byte) 0x98, (byte) 0xC2, (byte) 0x96,
        0x4F, (byte) 0xE3, 0x42, (byte) 0xE2, (byte) 0xFE, 0x1A, 0x7F, (byte) 0x9B,
        (byte) 0x8E, (byte) 0xE7, (byte) 0xEB, 0x4A, 0x7C, 0x0F, (byte) 0x9E, 0x16,
        0x2B, (byte) 0xCE, 0x33, 0x57, 0x6B, 0x31, 0x5E, (byte) 0xCE,
        (byte) 0xCB, (byte) 0xB6, 0x40, 0x68, 0x37, (byte) 0xBF, 0x51, (byte) 0xF5
    };
    /** The group order n. */
    private static final byte[] N = {
        (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, 0x00, 0x00, 0x00, 0x00,
        (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF,
        (byte) 0xBC, (byte) 0xE6, (byte) 0xFA, (byte) 0xAD, (byte) 0xA7, 0x17, (byte) 0x9E, (byte) 0x84,
        (byte) 0xF3, (byte) 0xB9, (byte) 0xCA, (byte) 0xC2, (byte) 0xFC, 0x63, 0x25, 0x51
    };
    /** n / 2, rounded down: an s above it is "high". */
    private static final byte[] HALF_N = {
        0x7F, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0x80, 0x00, 0x00, 0x00,
        0x7F, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF,
        (byte) 0xDE, 0x73, 0x7D, 0x56, (byte) 0xD3, (byte) 0x8B, (byte) 0xCF, 0x42,
        0x79, (byte) 0xDC, (byte) 0xE5, 0x61, 0x7E, 0x31, (byte) 0x92, (byte) 0xA8
    };

    private P256() {
    }

    /** 1 <= d < n for the 32 bytes at d[off], decided by byte comparison (apdu.seal.valid_scalar). */
    static boolean validScalar(byte[] d, short off) {
        boolean zero = true;
        for (short i = 0; i < SCALAR_LEN; i++) {
            if (d[(short) (off + i)] != 0) {
                zero = false;
            }
        }
        return !zero && Util.arrayCompare(d, off, N, (short) 0, SCALAR_LEN) < 0;
    }

    static void setCurve(ECKey key) {
        key.setFieldFP(P, (short) 0, SCALAR_LEN);
        key.setA(A, (short) 0, SCALAR_LEN);
        key.setB(B, (short) 0, SCALAR_LEN);
        key.setG(G, (short) 0, POINT_LEN);
        key.setR(N, (short) 0, SCALAR_LEN);
        key.setK((short) 1);
    }

    /** A P-256 key pair in EEPROM, generated on the card. */
    static KeyPair generate() {
        ECPublicKey pub = (ECPublicKey) KeyBuilder.buildKey(KeyBuilder.TYPE_EC_FP_PUBLIC, KeyBuilder.LENGTH_EC_FP_256, false);
        ECPrivateKey priv = (ECPrivateKey) KeyBuilder.buildKey(KeyBuilder.TYPE_EC_FP_PRIVATE, KeyBuilder.LENGTH_EC_FP_256, false);
        setCurve(pub);
        setCurve(priv);
        KeyPair pair = new KeyPair(pub, priv);
        pair.genKeyPair();
        return pair;
    }

    /**
     * Rewrite the DER signature at sig[off..off+len) with s replaced by n - s when s > n/2, in
     * place; answers the new length. {@code work} holds at least 32 bytes of scratch (RAM).
     * DER: 30 L 02 lr r 02 ls s, each integer minimal with a 00 before a high bit.
     */
    static short lowS(byte[] sig, short off, short len, byte[] work) {
        short rLen = sig[(short) (off + 3)];
        short sTag = (short) (off + 4 + rLen);
        short sLen = sig[(short) (sTag + 1)];
        short sOff = (short) (sTag + 2);
        if (sig[off] != 0x30 || sig[sTag] != 0x02 || sLen < 1 || sLen > 33 || (short) (sOff + sLen) != (short) (off + len)) {
            ISOException.throwIt(ISO7816.SW_UNKNOWN);
        }
        // s as 32 bytes, big-endian
        Util.arrayFillNonAtomic(work, (short) 0, SCALAR_LEN, (byte) 0);
        short skip = (short) (sLen - SCALAR_LEN);
        if (skip > 0) {
            Util.arrayCopyNonAtomic(sig, (short) (sOff + skip), work, (short) 0, SCALAR_LEN);
        } else {
            Util.arrayCopyNonAtomic(sig, sOff, work, (short) (SCALAR_LEN - sLen), sLen);
        }
        if (Util.arrayCompare(work, (short) 0, HALF_N, (short) 0, SCALAR_LEN) <= 0) {
            return len;
        }
        // work = n - work, byte by byte with a borrow
        short borrow = 0;
        for (short i = (short) (SCALAR_LEN - 1); i >= 0; i--) {
            short d = (short) ((short) (N[i] & 0xFF) - (short) (work[i] & 0xFF) - borrow);
            borrow = (short) (d < 0 ? 1 : 0);
            work[i] = (byte) d;
        }
        // minimal encoding: drop leading zeros, then a 00 before a high bit
        short start = 0;
        while (start < (short) (SCALAR_LEN - 1) && work[start] == 0) {
            start++;
        }
        short body = (short) (SCALAR_LEN - start);
        boolean pad = (work[start] & 0x80) != 0;
        short newSLen = (short) (body + (pad ? 1 : 0));
        sig[(short) (sTag + 1)] = (byte) newSLen;
        short at = sOff;
        if (pad) {
            sig[at++] = 0x00;
        }
        Util.arrayCopyNonAtomic(work, start, sig, at, body);
        short newLen = (short) (len - sLen + newSLen);
        sig[(short) (off + 1)] = (byte) (newLen - 2);
        return newLen;
    }

    /**
     * Strict DER ``30 L 02 rl r 02 sl s`` with minimal positive integers, 0 < r < n and
     * 0 < s <= n/2: the one encoding apdu.signature.is_canonical accepts, checked before a
     * signature is verified.
     */
    static boolean canonical(byte[] d, short off, short n) {
        if (n < 8 || n > 72 || d[off] != 0x30 || d[(short) (off + 1)] != (byte) (n - 2)) {
            return false;
        }
        short r = (short) (off + 2);
        short rLen = integer(d, r, (short) (off + n));
        if (rLen < 0 || compare(d, (short) (r + 2), rLen, N) >= 0) {
            return false;
        }
        short s = (short) (r + 2 + rLen);
        short sLen = integer(d, s, (short) (off + n));
        return sLen >= 0 && (short) (s + 2 + sLen) == (short) (off + n) && compare(d, (short) (s + 2), sLen, HALF_N) <= 0;
    }

    /** The length of a minimal, positive, non-zero DER INTEGER of at most 33 bytes at d[at], or -1. */
    private static short integer(byte[] d, short at, short end) {
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
        return len;
    }

    /** An unsigned big-endian integer of up to 33 bytes (33: a leading 00) against a 32-byte one. */
    private static short compare(byte[] d, short v, short len, byte[] bound) {
        if (len == 33) {
            v++;
            len = 32;
        }
        short pad = (short) (SCALAR_LEN - len);
        for (short i = 0; i < SCALAR_LEN; i++) {
            short x = i < pad ? 0 : (short) (d[(short) (v + i - pad)] & 0xFF);
            short y = (short) (bound[i] & 0xFF);
            if (x != y) {
                return (short) (x - y);
            }
        }
        return 0;
    }
}
