package evb.wallet;

import javacard.framework.APDU;
import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.JCSystem;
import javacard.framework.OwnerPIN;
import javacard.framework.Util;
import javacard.security.ECPrivateKey;
import javacard.security.ECPublicKey;
import javacard.security.KeyPair;
import javacard.security.Signature;

/**
 * The ID card (seed E5; docs/APDU.md 7.2, card/idcard.py): a key pair made at install, a document
 * the issuer writes once (PUT DATA, after reading the key with GET DATA 0083), and a signature
 * over a key manager's challenge, behind an optional PIN. Answers byte for byte as the Python
 * ID card; the PIN is an OwnerPIN over the PIN block itself (the Python card keeps a hash).
 */
public final class IdCardApplet extends EvbApplet {
    private static final byte INS_VERIFY = (byte) 0x20;
    private static final byte INS_INTERNAL_AUTHENTICATE = (byte) 0x88;
    private static final byte INS_GET_DATA = (byte) 0xCA;
    private static final byte INS_PUT_DATA = (byte) 0xDA;
    private static final byte P2_PIN = (byte) 0x81;
    private static final byte P1_VERIFY_RESET = (byte) 0xFF;

    private static final byte TAG_HOLDER = (byte) 0x80;
    private static final byte TAG_NUMBER = (byte) 0x81;
    private static final byte TAG_EXPIRY = (byte) 0x82;
    private static final byte TAG_KEY = (byte) 0x83;
    private static final byte TAG_PIN_FLAG = (byte) 0x84;
    private static final byte TAG_SIGNATURE = (byte) 0x9E;
    private static final byte TAG_PIN_BLOCK = (byte) 0xC1;
    private static final byte[] DOCUMENT_TAGS = {TAG_HOLDER, TAG_NUMBER, TAG_EXPIRY, TAG_KEY, TAG_PIN_FLAG, TAG_SIGNATURE};
    private static final byte[] MIN_LEN = {1, 1, 4, 65, 1, 1};
    private static final byte[] MAX_LEN = {64, 20, 4, 65, 1, 72};

    private static final byte PIN_BLOCK_LEN = Pin.BLOCK_LEN;
    private static final byte PIN_MAX_TRIES = 3;
    private static final short AUDIENCE_LEN = 32;
    private static final short CHALLENGE_MIN = 16;
    private static final short CHALLENGE_MAX = 64;
    private static final short DOCUMENT_MAX = 255;
    private static final byte SRC_DOCUMENT = 2;  // the answer is document[] (EEPROM)

    /**
     * Bytes of a chain kept: every command that can succeed fits, and each refuses longer data by
     * its length alone (PUT DATA 6A80, VERIFY 6A80 or 6700, INTERNAL AUTHENTICATE 6700, GET DATA
     * reads none), so the rest of a 4096-byte chain is counted, not kept.
     */
    private static final short CHAIN_KEPT = 256;

    private static final short SW_AUTH_BLOCKED = (short) 0x6983;
    private static final short SW_REFERENCE_NOT_FOUND = (short) 0x6A88;
    private static final short SW_VERIFY_FAILED = (short) 0x63C0;

    /** apdu/context.py's Purpose.ID_LOGIN label, then its 00 separator. */
    private static final byte[] ID_LOGIN = {
        'E', 'V', 'B', '-', 'I', 'D', '-', 'L', 'O', 'G', 'I', 'N', '-', '2', 0x00
    };

    // persistent (EEPROM)
    private final KeyPair pair;
    private final byte[] document;
    private final short[] documentLen; // 0 while blank
    private final byte[] hasPin;
    private final OwnerPIN pin;
    private final Signature ecdsa;

    // session (RAM)
    private final byte[] work;
    private final short[] fields; // offsets of the six document fields' values, then their lengths

    private IdCardApplet() {
        super((short) (2 + P256.POINT_LEN + 8), S_APPLET, CHAIN_KEPT);  // the key TLV, a signature (72)
        pair = P256.generate();
        document = new byte[DOCUMENT_MAX];
        documentLen = new short[1];
        hasPin = new byte[1];
        pin = new OwnerPIN(PIN_MAX_TRIES, PIN_BLOCK_LEN);
        ecdsa = Signature.getInstance(Signature.ALG_ECDSA_SHA_256, false);
        work = JCSystem.makeTransientByteArray((short) 160, JCSystem.CLEAR_ON_DESELECT);
        fields = JCSystem.makeTransientShortArray((short) 12, JCSystem.CLEAR_ON_DESELECT);
    }

    public static void install(byte[] bArray, short bOffset, byte bLength) {
        new IdCardApplet().registerFrom(bArray, bOffset, bLength);
    }

    public boolean select() {
        pin.reset();
        return true;
    }

    public void deselect() {
        pin.reset();
    }

    public void process(APDU apdu) {
        if (gettingResponse(apdu)) {
            return;
        }
        if (selectingApplet()) {
            selectEndsChain();
            return;
        }
        // the Python card's OS first (receiveCommand: logical channels, the classes it knows,
        // chains); then the ID card's own class, 00
        short len = receiveCommand(apdu);
        if (len < 0) {
            return;  // 9000: a chain link, kept
        }
        byte[] buf = apdu.getBuffer();
        byte[] d = data(apdu);
        short off = dataOffset(apdu);
        if (buf[ISO7816.OFFSET_CLA] != CLA_ISO) {
            ISOException.throwIt(ISO7816.SW_CLA_NOT_SUPPORTED);
        }
        byte ins = buf[ISO7816.OFFSET_INS];
        if (ins == INS_GET_DATA) {
            getData(apdu, buf, len);
        } else if (ins == INS_PUT_DATA) {
            issue(buf, d, off, len);
        } else if (ins == INS_VERIFY || ins == INS_INTERNAL_AUTHENTICATE) {
            if (documentLen[0] == 0) {
                ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED); // blank: nothing to prove yet
            }
            if (ins == INS_VERIFY) {
                verify(buf, d, off, len);
            } else {
                authenticate(apdu, d, off, len);
            }
        } else {
            ISOException.throwIt(ISO7816.SW_INS_NOT_SUPPORTED);
        }
    }

    private void getData(APDU apdu, byte[] buf, short lc) {
        byte p1 = buf[ISO7816.OFFSET_P1];
        byte p2 = buf[ISO7816.OFFSET_P2];
        if (p1 == 0 && p2 == TAG_KEY) {
            answer[0] = TAG_KEY;
            answer[1] = (byte) P256.POINT_LEN;
            ((ECPublicKey) pair.getPublic()).getW(answer, (short) 2);
            respond(apdu, SRC_RAM, (short) (2 + P256.POINT_LEN), lc, true);
            return;
        }
        if (p1 != 0 || p2 != 0) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        short len = documentLen[0];
        if (len == 0) {
            ISOException.throwIt(SW_REFERENCE_NOT_FOUND);
        }
        respond(apdu, SRC_DOCUMENT, len, lc, true);
    }

    /** PUT DATA: the signed document, once, naming this card's key, with the PIN it promises. */
    private void issue(byte[] head, byte[] buf, short start, short len) {
        if (head[ISO7816.OFFSET_P1] != 0 || head[ISO7816.OFFSET_P2] != 0) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        if (documentLen[0] != 0) {
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
        }
        if (len > DOCUMENT_MAX) {  // longer than any issue (a chain's data beyond what is kept)
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        short off = start;
        short end = (short) (off + len);
        for (short i = 0; i < (short) DOCUMENT_TAGS.length; i++) {
            off = field(buf, off, end, DOCUMENT_TAGS[i], MIN_LEN[i], MAX_LEN[i], i);
        }
        short docEnd = off;
        short number = fields[1];
        for (short i = 0; i < fields[7]; i++) {
            byte c = buf[(short) (number + i)];
            if (c < 0x20 || c > 0x7E) {
                ISOException.throwIt(ISO7816.SW_WRONG_DATA);
            }
        }
        checkDate(buf, fields[2]);
        ((ECPublicKey) pair.getPublic()).getW(work, (short) 0);
        if (Util.arrayCompare(buf, fields[3], work, (short) 0, P256.POINT_LEN) != 0) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        byte flag = buf[fields[4]];
        if (flag != 0 && flag != 1) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        short block = -1;
        if (off < end) {
            off = field(buf, off, end, TAG_PIN_BLOCK, PIN_BLOCK_LEN, PIN_BLOCK_LEN, (short) 0);
            block = (short) (off - PIN_BLOCK_LEN);
        }
        if (off != end || (flag == 1) != (block >= 0) || (block >= 0 && Pin.digits(buf, block) < 0)) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        short docLen = (short) (docEnd - start);
        JCSystem.beginTransaction();
        if (block >= 0) {
            pin.update(buf, block, PIN_BLOCK_LEN);
            hasPin[0] = 1;
        }
        Util.arrayCopy(buf, start, document, (short) 0, docLen);
        documentLen[0] = docLen;
        JCSystem.commitTransaction();
    }

    /** One TLV with a one-byte tag and a short-form length in [min, max]; its value's offset and
     * length go to fields[slot] and fields[6 + slot]. Answers the offset after it. */
    private short field(byte[] buf, short off, short end, byte tag, byte min, byte max, short slot) {
        if ((short) (off + 2) > end || buf[off] != tag) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        short len = buf[(short) (off + 1)];
        if (len < min || len > max || (short) (off + 2 + len) > end) { // a long form reads as negative
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        fields[slot] = (short) (off + 2);
        fields[(short) (6 + slot)] = len;
        return (short) (off + 2 + len);
    }

    /** A BCD date YYYYMMDD that is on the calendar (year 0001 on, as Python's date). */
    private static void checkDate(byte[] buf, short off) {
        for (short i = 0; i < 4; i++) {
            byte b = buf[(short) (off + i)];
            if ((short) ((b >> 4) & 0x0F) > 9 || (short) (b & 0x0F) > 9) {
                ISOException.throwIt(ISO7816.SW_WRONG_DATA);
            }
        }
        short year = (short) (bcd(buf[off]) * 100 + bcd(buf[(short) (off + 1)]));
        short month = bcd(buf[(short) (off + 2)]);
        short day = bcd(buf[(short) (off + 3)]);
        boolean leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
        short days = (short) (month == 2 ? (leap ? 29 : 28) : (month == 4 || month == 6 || month == 9 || month == 11) ? 30 : 31);
        if (year < 1 || month < 1 || month > 12 || day < 1 || day > days) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
    }

    private static short bcd(byte b) {
        return (short) (((b >> 4) & 0x0F) * 10 + (b & 0x0F));
    }

    /** VERIFY as card/pin.py: status without data, FF forgets, a block spends a try first. */
    private void verify(byte[] buf, byte[] d, short off, short len) {
        if (hasPin[0] == 0) {
            return; // no PIN on this document: nothing to verify
        }
        byte p1 = buf[ISO7816.OFFSET_P1];
        if ((p1 != 0 && p1 != P1_VERIFY_RESET) || buf[ISO7816.OFFSET_P2] != P2_PIN) {
            pin.reset();
            ISOException.throwIt(p1 == 0 || p1 == P1_VERIFY_RESET ? SW_REFERENCE_NOT_FOUND : ISO7816.SW_INCORRECT_P1P2);
        }
        if (p1 == P1_VERIFY_RESET) {
            pin.reset();
            if (len != 0) {
                ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
            }
            return;
        }
        byte tries = pin.getTriesRemaining();
        if (len == 0) {
            if (tries == 0) {
                ISOException.throwIt(SW_AUTH_BLOCKED);
            }
            if (!pin.isValidated()) {
                ISOException.throwIt((short) (SW_VERIFY_FAILED | tries));
            }
            return;
        }
        if (len != PIN_BLOCK_LEN || Pin.digits(d, off) < 0) {
            pin.reset();
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        if (tries == 0) {
            pin.reset();
            ISOException.throwIt(SW_AUTH_BLOCKED);
        }
        if (!pin.check(d, off, PIN_BLOCK_LEN)) {
            byte left = pin.getTriesRemaining();
            ISOException.throwIt(left > 0 ? (short) (SW_VERIFY_FAILED | left) : SW_AUTH_BLOCKED);
        }
    }

    /** The ECDSA signature (low s) over the ID-LOGIN context of the number and the challenge. */
    private void authenticate(APDU apdu, byte[] d, short off, short len) {
        if (hasPin[0] != 0 && !pin.isValidated()) {
            ISOException.throwIt(ISO7816.SW_SECURITY_STATUS_NOT_SATISFIED);
        }
        short challenge = (short) (len - AUDIENCE_LEN);
        if (challenge < CHALLENGE_MIN || challenge > CHALLENGE_MAX) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        // the number: the document's second field, found again in EEPROM
        short numberOff = (short) (2 + document[1] + 2);
        short numberLen = document[(short) (numberOff - 1)];
        short at = Util.arrayCopyNonAtomic(ID_LOGIN, (short) 0, work, (short) 0, (short) ID_LOGIN.length);
        at = Util.arrayCopyNonAtomic(d, off, work, at, AUDIENCE_LEN);
        work[at++] = (byte) numberLen;
        at = Util.arrayCopyNonAtomic(document, numberOff, work, at, numberLen);
        ecdsa.init((ECPrivateKey) pair.getPrivate(), Signature.MODE_SIGN);
        ecdsa.update(work, (short) 0, at);
        short sigLen = ecdsa.sign(d, (short) (off + AUDIENCE_LEN), challenge, answer, (short) 0);
        respond(apdu, SRC_RAM, P256.lowS(answer, (short) 0, sigLen, work), len, true);
    }

    void emit(APDU apdu, byte source, short from, short count) {
        if (source == SRC_DOCUMENT) {
            apdu.sendBytesLong(document, from, count);
        } else {
            super.emit(apdu, source, from, count);
        }
    }
}
