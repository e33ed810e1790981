package evb.wallet;

import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.JCSystem;
import javacard.framework.Util;
import javacard.security.AESKey;
import javacard.security.ECPrivateKey;
import javacard.security.ECPublicKey;
import javacard.security.HMACKey;
import javacard.security.KeyAgreement;
import javacard.security.KeyBuilder;
import javacard.security.KeyPair;
import javacard.security.MessageDigest;
import javacard.security.RandomData;
import javacard.security.Signature;
import javacardx.crypto.Cipher;

/**
 * Sealing bytes to a key on the card, byte for byte as apdu/seal.py (read its docstring first):
 * ECDH P-256 (x only), HKDF-SHA256 on HMAC-SHA256, AES-256-CBC with ISO/IEC 9797-1 padding
 * method 2, encrypt-then-MAC with a 16-byte tag. Public-key blobs are E (65) | IV | C | T;
 * symmetric ones S (16) | IV | C | T. A blob that fails its tag or its padding answers 6A80.
 *
 * One instance per applet, made at install: the keys it loads are transient (cleared on
 * deselect), its working bytes are RAM.
 */
final class Seal {
    static final short E_LEN = 65;
    /** The x-only header of the card's deterministic E2 ciphertexts: 02 | x(r·G). */
    static final short X_ONLY_LEN = 33;
    static final short IV_LEN = 16;
    static final short TAG_LEN = 16;
    static final short SALT_LEN = 16;
    static final short KEY_LEN = 32;
    static final short BLOCK = 16;
    /** The longest plaintext sealed or opened: what fits an APDU with its header. */
    static final short MAX_PLAINTEXT = 1024;

    private static final short HMAC_BLOCK = 64;
    /** EEPROM the seal keeps (GET MEMORY MAP): the ephemeral pair; its other keys are RAM. */
    static final short PERSISTENT_BYTES = P256.PAIR_BYTES;
    private static final byte[] INFO = {'E', 'V', 'B', '-', 'S', 'E', 'A', 'L', '-', '1'};

    private final KeyAgreement ecdh;
    private final Signature hmac;
    private final HMACKey hmacKey;
    private final Cipher aes;
    private final AESKey aesKey;
    private final MessageDigest sha256;
    private final KeyPair ephemeral;
    private final RandomData rng;
    // work: [0..32) the shared secret or key, [32..64) PRK, [64..128) k_enc | k_mac, [128..160) HMAC out
    private final byte[] work;

    Seal() {
        ecdh = KeyAgreement.getInstance(KeyAgreement.ALG_EC_SVDP_DH_PLAIN, false);
        hmac = Signature.getInstance(Signature.ALG_HMAC_SHA_256, false);
        hmacKey = (HMACKey) KeyBuilder.buildKey(KeyBuilder.TYPE_HMAC_TRANSIENT_DESELECT,
                                                KeyBuilder.LENGTH_HMAC_SHA_256_BLOCK_64, false);
        aes = Cipher.getInstance(Cipher.ALG_AES_BLOCK_128_CBC_NOPAD, false);
        aesKey = (AESKey) KeyBuilder.buildKey(KeyBuilder.TYPE_AES_TRANSIENT_DESELECT, KeyBuilder.LENGTH_AES_256, false);
        sha256 = MessageDigest.getInstance(MessageDigest.ALG_SHA_256, false);
        ephemeral = P256.generate();
        rng = RandomData.getInstance(RandomData.ALG_SECURE_RANDOM);
        work = JCSystem.makeTransientByteArray((short) 160, JCSystem.CLEAR_ON_DESELECT);
    }

    // --- the scheme ------------------------------------------------------------------------------

    /** Seal in[inOff..+inLen) to the P-256 key at recipient[rOff..+65) into out[outOff..); answers
     * the blob's length. A new ephemeral pair each time (genKeyPair: the card cannot derive one). */
    short seal(byte[] recipient, short rOff, byte[] in, short inOff, short inLen,
               byte[] ctx, short ctxOff, short ctxLen, byte[] out, short outOff) {
        ephemeral.genKeyPair();
        ((ECPublicKey) ephemeral.getPublic()).getW(out, outOff);
        ecdh.init((ECPrivateKey) ephemeral.getPrivate());
        agree(recipient, rOff);
        return close(out, outOff, E_LEN, in, inOff, inLen, ctx, ctxOff, ctxLen, true);
    }

    /**
     * Seal with the ephemeral scalar ``r`` already in ``eph`` and the IV already at
     * out[outOff + 33..+16) (the card's deterministic E2 ciphertext, docs/APDU.md 7): the header is
     * 02 | x(r·G), from ECDH with the generator, the secret x(r·Q). Answers the blob's length.
     */
    short sealXOnly(ECPrivateKey eph, byte[] recipient, short rOff, byte[] in, short inOff, short inLen,
                    byte[] ctx, short ctxOff, short ctxLen, byte[] out, short outOff) {
        ecdh.init(eph);
        out[outOff] = 0x02;
        ecdh.generateSecret(P256.G, (short) 0, E_LEN, work, (short) 0);
        Util.arrayCopyNonAtomic(work, (short) 0, out, (short) (outOff + 1), KEY_LEN);
        agree(recipient, rOff);
        return close(out, outOff, X_ONLY_LEN, in, inOff, inLen, ctx, ctxOff, ctxLen, false);
    }

    /**
     * Open an x-only blob as its maker does (apdu.seal.open_x_only_by_ephemeral): the header must
     * be 02 | x(r·G) for the ``r`` in ``eph``, the secret is x(r·Q). 6A80 otherwise.
     */
    short openXOnly(ECPrivateKey eph, byte[] recipient, short rOff, byte[] blob, short off, short len,
                    byte[] ctx, short ctxOff, short ctxLen, byte[] out, short outOff) {
        if (len < (short) (X_ONLY_LEN + IV_LEN + BLOCK + TAG_LEN)) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        ecdh.init(eph);
        ecdh.generateSecret(P256.G, (short) 0, E_LEN, work, (short) 0);
        if (blob[off] != 0x02 || Util.arrayCompare(work, (short) 0, blob, (short) (off + 1), KEY_LEN) != 0) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        agree(recipient, rOff);
        return unclose(blob, off, X_ONLY_LEN, len, ctx, ctxOff, ctxLen, out, outOff);
    }

    /** Open blob[off..+len) with ``key``; the plaintext goes to out[outOff..), its length answered. */
    short open(ECPrivateKey key, byte[] blob, short off, short len,
               byte[] ctx, short ctxOff, short ctxLen, byte[] out, short outOff) {
        return openWith(key, blob, off, E_LEN, blob, off, len, ctx, ctxOff, ctxLen, out, outOff);
    }

    /** ECDH(key, peer) as the secret, then the blob whose header is hLen bytes long. */
    private short openWith(ECPrivateKey key, byte[] peer, short peerOff, short hLen, byte[] blob, short off, short len,
                           byte[] ctx, short ctxOff, short ctxLen, byte[] out, short outOff) {
        if (len < (short) (hLen + IV_LEN + BLOCK + TAG_LEN)) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        ecdh.init(key);
        agree(peer, peerOff);
        return unclose(blob, off, hLen, len, ctx, ctxOff, ctxLen, out, outOff);
    }

    /** Seal under a 32-byte AES key (symmetric mode, claim 10) with a random salt. */
    short sealSymmetric(byte[] key, short keyOff, byte[] in, short inOff, short inLen,
                        byte[] ctx, short ctxOff, short ctxLen, byte[] out, short outOff) {
        rng.generateData(out, outOff, SALT_LEN);
        Util.arrayCopyNonAtomic(key, keyOff, work, (short) 0, KEY_LEN);
        return close(out, outOff, SALT_LEN, in, inOff, inLen, ctx, ctxOff, ctxLen, true);
    }

    /** Seal under a 32-byte AES key with the salt and IV already at out[outOff..+32) (E2, symmetric). */
    short sealSymmetricGiven(byte[] key, short keyOff, byte[] in, short inOff, short inLen,
                             byte[] ctx, short ctxOff, short ctxLen, byte[] out, short outOff) {
        Util.arrayCopyNonAtomic(key, keyOff, work, (short) 0, KEY_LEN);
        return close(out, outOff, SALT_LEN, in, inOff, inLen, ctx, ctxOff, ctxLen, false);
    }

    /**
     * Open a blob sealed with the symmetric mode (S | IV | C | T) under ECDH(key, peer)'s x
     * (static-static: only the holder of the peer's scalar made it): what the key manager seals
     * for this card, apdu.seal.open_symmetric of ecdh(transport, key manager), for E6's assisted
     * restore and REPLACE KEY; the plaintext to out[outOff..), 6A80 as {@link #openSymmetric}.
     */
    short openAgreed(ECPrivateKey key, byte[] peer, short peerOff, byte[] blob, short off, short len,
                     byte[] ctx, short ctxOff, short ctxLen, byte[] out, short outOff) {
        return openWith(key, peer, peerOff, SALT_LEN, blob, off, len, ctx, ctxOff, ctxLen, out, outOff);
    }

    // --- HMAC-SHA256 for the key store's derivations (E2 IV and ephemeral, the E4 coefficient) ----

    void hmacBegin(byte[] key, short off, short len) {
        hmacKey.setKey(key, off, len);
        hmac.init(hmacKey, Signature.MODE_SIGN);
    }

    void hmacUpdate(byte[] d, short off, short len) {
        hmac.update(d, off, len);
    }

    short hmacFinish(byte[] d, short off, short len, byte[] out, short outOff) {
        return hmac.sign(d, off, len, out, outOff);
    }

    short openSymmetric(byte[] key, short keyOff, byte[] blob, short off, short len,
                        byte[] ctx, short ctxOff, short ctxLen, byte[] out, short outOff) {
        if (len < (short) (SALT_LEN + IV_LEN + BLOCK + TAG_LEN)) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        Util.arrayCopyNonAtomic(key, keyOff, work, (short) 0, KEY_LEN);
        return unclose(blob, off, SALT_LEN, len, ctx, ctxOff, ctxLen, out, outOff);
    }

    // --- steps -----------------------------------------------------------------------------------

    /** work[0..32) = ECDH x with the peer point at peer[off..+65); a point off the curve: 6A80. */
    private void agree(byte[] peer, short off) {
        if (peer[off] != 0x04) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        try {
            ecdh.generateSecret(peer, off, E_LEN, work, (short) 0);
        } catch (RuntimeException e) { // CryptoException on a card; jCardSim's BouncyCastle throws its own
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
    }

    /** With the secret in work[0..32) and the header at out[outOff..+hLen): IV, C, T after it. */
    private short close(byte[] out, short outOff, short hLen, byte[] in, short inOff, short inLen,
                        byte[] ctx, short ctxOff, short ctxLen, boolean randomIv) {
        if (inLen > MAX_PLAINTEXT) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        hkdf(out, outOff, hLen, ctx, ctxOff, ctxLen);
        short iv = (short) (outOff + hLen);
        if (randomIv) {
            rng.generateData(out, iv, IV_LEN);
        }
        short body = (short) (iv + IV_LEN);
        Util.arrayCopyNonAtomic(in, inOff, out, body, inLen);
        short padded = pad(out, body, inLen);
        aesKey.setKey(work, (short) 64);
        aes.init(aesKey, Cipher.MODE_ENCRYPT, out, iv, IV_LEN);
        aes.doFinal(out, body, padded, out, body);
        short tag = (short) (body + padded);
        mac(out, outOff, (short) (tag - outOff));
        Util.arrayCopyNonAtomic(work, (short) 128, out, tag, TAG_LEN);
        return (short) (tag + TAG_LEN - outOff);
    }

    private short unclose(byte[] blob, short off, short hLen, short len,
                          byte[] ctx, short ctxOff, short ctxLen, byte[] out, short outOff) {
        short bodyLen = (short) (len - hLen - IV_LEN - TAG_LEN);
        if (bodyLen < BLOCK || (short) (bodyLen % BLOCK) != 0 || bodyLen > (short) (MAX_PLAINTEXT + BLOCK)) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        hkdf(blob, off, hLen, ctx, ctxOff, ctxLen);
        short tag = (short) (off + len - TAG_LEN);
        mac(blob, off, (short) (len - TAG_LEN));
        if (Util.arrayCompare(work, (short) 128, blob, tag, TAG_LEN) != 0) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        short iv = (short) (off + hLen);
        aesKey.setKey(work, (short) 64);
        aes.init(aesKey, Cipher.MODE_DECRYPT, blob, iv, IV_LEN);
        aes.doFinal(blob, (short) (iv + IV_LEN), bodyLen, out, outOff);
        return unpad(out, outOff, bodyLen);
    }

    /**
     * HKDF-SHA256 (RFC 5869) of the secret in work[0..32) with salt = the header, info = INFO |
     * context, 64 bytes: k_enc | k_mac to work[64..128). HMAC hashes a key longer than its
     * block first (a 65-byte E), as the JDK and pyca/cryptography do.
     */
    private void hkdf(byte[] salt, short saltOff, short saltLen, byte[] ctx, short ctxOff, short ctxLen) {
        if (saltLen > HMAC_BLOCK) {
            sha256.reset();
            sha256.doFinal(salt, saltOff, saltLen, work, (short) 32);
            hmacKey.setKey(work, (short) 32, (short) 32);
        } else {
            hmacKey.setKey(salt, saltOff, saltLen);
        }
        hmac.init(hmacKey, Signature.MODE_SIGN);
        hmac.sign(work, (short) 0, KEY_LEN, work, (short) 32); // PRK
        hmacKey.setKey(work, (short) 32, (short) 32);
        for (byte i = 1; i <= 2; i++) {
            hmac.init(hmacKey, Signature.MODE_SIGN);
            if (i == 2) {
                hmac.update(work, (short) 64, (short) 32); // T(1)
            }
            hmac.update(INFO, (short) 0, (short) INFO.length);
            hmac.update(ctx, ctxOff, ctxLen);
            work[(short) 128] = i;
            hmac.sign(work, (short) 128, (short) 1, work, (short) (32 + 32 * i));
        }
    }

    /** work[128..160) = HMAC-SHA256(k_mac, data[off..+len)). */
    private void mac(byte[] data, short off, short len) {
        hmacKey.setKey(work, (short) 96, (short) 32);
        hmac.init(hmacKey, Signature.MODE_SIGN);
        hmac.sign(data, off, len, work, (short) 128);
    }

    /** ISO/IEC 9797-1 method 2 in place after buf[off..+len): answers the padded length. */
    private static short pad(byte[] buf, short off, short len) {
        short padded = (short) ((short) (len / BLOCK + 1) * BLOCK);
        buf[(short) (off + len)] = (byte) 0x80;
        Util.arrayFillNonAtomic(buf, (short) (off + len + 1), (short) (padded - len - 1), (byte) 0);
        return padded;
    }

    private static short unpad(byte[] buf, short off, short len) {
        short i = (short) (len - 1);
        while (i >= 0 && buf[(short) (off + i)] == 0 && (short) (len - i) <= BLOCK) {
            i--;
        }
        if (i < 0 || buf[(short) (off + i)] != (byte) 0x80 || (short) (len - i) > BLOCK) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        return i;
    }
}
