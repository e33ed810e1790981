package evb.wallet;

import javacard.framework.JCSystem;
import javacard.security.ECPrivateKey;
import javacard.security.ECPublicKey;
import javacard.security.KeyBuilder;
import javacard.security.KeyPair;
import javacard.security.MessageDigest;
import javacard.security.Signature;

/**
 * The wallet's ECDSA P-256 with SHA-256 (the curve and the canonical form in {@link P256}): the
 * identity key pair generated at install; signatures leave through {@link #finishSign}, low-s; a
 * signature to verify must already be canonical ({@link P256#canonical}), as every verifier of the
 * system requires, so a rewritten (r, n - s) is refused before the maths.
 *
 * Every message is ``label || 00 || SHA-256(audience) || fields`` (apdu/context.py): {@link #begin}
 * feeds the first three, the caller the fields.
 */
final class Ecc {
    static final short POINT_LEN = P256.POINT_LEN;
    static final short MAX_SIGNATURE = 72;

    /** Kept whole: its public half stays allocated on a card, which collects no garbage. */
    private final KeyPair pair;
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
        pair = P256.generate();
        identity = new byte[POINT_LEN];
        ((ECPublicKey) pair.getPublic()).getW(identity, (short) 0);
        peer = (ECPublicKey) KeyBuilder.buildKey(KeyBuilder.TYPE_EC_FP_PUBLIC, KeyBuilder.LENGTH_EC_FP_256, false);
        P256.setCurve(peer);
        signer = Signature.getInstance(Signature.ALG_ECDSA_SHA_256, false);
        verifier = Signature.getInstance(Signature.ALG_ECDSA_SHA_256, false);
        work = JCSystem.makeTransientByteArray((short) 32, JCSystem.CLEAR_ON_RESET);
    }

    /** EEPROM of the identity (GET MEMORY MAP): the key pair, its point read out, the peer key. */
    short persistentBytes() {
        return (short) (P256.PAIR_BYTES + identity.length + P256.PUBLIC_KEY_BYTES);
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
        signer.init((ECPrivateKey) pair.getPrivate(), Signature.MODE_SIGN);
        begin(signer, label, aud, audOff, audLen);
        return signer;
    }

    /**
     * Sign the message's last field, leaving the canonical signature at out[outOff]; answers its
     * length. The runtime's DER is re-encoded with s replaced by n - s when s > n/2.
     */
    short finishSign(byte[] d, short off, short n, byte[] out, short outOff) {
        short len = signer.sign(d, off, n, out, outOff);
        return P256.lowS(out, outOff, len, work);
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
        if (!P256.canonical(sig, sigOff, sigLen)) {
            return false;
        }
        try {
            return verifier.verify(d, off, n, sig, sigOff, sigLen);
        } catch (RuntimeException e) {
            return false;
        }
    }
}
