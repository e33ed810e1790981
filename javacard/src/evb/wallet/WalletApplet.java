package evb.wallet;

import javacard.framework.APDU;
import javacard.framework.Applet;
import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.JCSystem;
import javacard.framework.OwnerPIN;
import javacard.framework.Util;
import javacard.security.MessageDigest;
import javacard.security.RandomData;

/**
 * The wallet applet (docs/APDU.md), first slice: SELECT and its FCI, GET CARD INFO, PERSONALIZE,
 * VERIFY, CHANGE REFERENCE DATA and RESET RETRY COUNTER, answering byte for byte as the Python card
 * (card/wallet.py, card/pin.py). Every other instruction answers 6D00 until it is implemented here;
 * javacard/README.md lists what is and what is not.
 *
 * The PIN and the unblocking code are OwnerPINs over SHA-256(card id | digits) (and card id | "PUK" |
 * digits): the card never keeps the digits, and OwnerPIN spends its try counter before it compares.
 */
public final class WalletApplet extends Applet {
    private static final byte CLA_ISO = (byte) 0x00;
    private static final byte CLA_PROPRIETARY = (byte) 0x80;

    private static final byte INS_PERSONALIZE = (byte) 0x02;
    private static final byte INS_GET_CARD_INFO = (byte) 0x10;
    private static final byte INS_VERIFY = (byte) 0x20;
    private static final byte INS_CHANGE_REFERENCE_DATA = (byte) 0x24;
    private static final byte INS_RESET_RETRY_COUNTER = (byte) 0x2C;
    private static final byte INS_SELECT = (byte) 0xA4;

    private static final byte P2_PIN = (byte) 0x81;
    private static final byte P1_VERIFY_RESET = (byte) 0xFF;

    private static final byte LIFE_PERSONALIZATION = 1;
    private static final byte LIFE_OPERATIONAL = 2;

    private static final byte PIN_BLOCK_LEN = 8;
    private static final byte PUK_LEN = 8;
    private static final byte PIN_MIN = 4;
    private static final byte PIN_PAD = (byte) 0xFF;
    private static final byte PIN_MAX_TRIES = 3;
    private static final byte PUK_MAX_TRIES = 10;
    private static final byte HASH_LEN = 32;
    private static final byte CARD_ID_LEN = 8;
    private static final byte CARD_INFO_LEN = 29;

    /** The Python card's default geometry (32 KiB EEPROM, a 1024-byte header, 128 index entries). */
    private static final short INDEX_CAPACITY = 128;
    private static final short DATA_SIZE = 28656;

    private static final short SW_CLA_NOT_SUPPORTED = ISO7816.SW_CLA_NOT_SUPPORTED;
    private static final short SW_CHAINING_NOT_SUPPORTED = (short) 0x6884;
    private static final short SW_AUTH_BLOCKED = (short) 0x6983;
    private static final short SW_REFERENCE_NOT_FOUND = (short) 0x6A88;
    private static final short SW_VERIFY_FAILED = (short) 0x63C0;

    private static final byte[] AID_WALLET = {
        (byte) 0xF0, (byte) 0x45, (byte) 0x56, (byte) 0x42, (byte) 0x57, (byte) 0x4C, (byte) 0x01, (byte) 0x01
    };
    private static final byte[] PUK_SALT = {(byte) 'P', (byte) 'U', (byte) 'K'};

    // persistent (EEPROM)
    private final byte[] cardId;
    private final byte[] lifeCycle;
    private final OwnerPIN pin;
    private final OwnerPIN puk;
    private final MessageDigest sha256;

    // session (RAM, cleared on deselect and power loss)
    private final boolean[] verified;
    private final byte[] scratch;

    private WalletApplet() {
        cardId = new byte[CARD_ID_LEN];
        RandomData.getInstance(RandomData.ALG_SECURE_RANDOM).generateData(cardId, (short) 0, CARD_ID_LEN);
        lifeCycle = new byte[] {LIFE_PERSONALIZATION};
        pin = new OwnerPIN(PIN_MAX_TRIES, HASH_LEN);
        puk = new OwnerPIN(PUK_MAX_TRIES, HASH_LEN);
        sha256 = MessageDigest.getInstance(MessageDigest.ALG_SHA_256, false);
        verified = JCSystem.makeTransientBooleanArray((short) 1, JCSystem.CLEAR_ON_DESELECT);
        scratch = JCSystem.makeTransientByteArray((short) 64, JCSystem.CLEAR_ON_DESELECT);
    }

    public static void install(byte[] bArray, short bOffset, byte bLength) {
        // GlobalPlatform install parameters begin with the instance AID; a bare install has none
        WalletApplet applet = new WalletApplet();
        byte aidLength = bLength == 0 ? 0 : bArray[bOffset];
        if (aidLength == 0) {
            applet.register();
        } else {
            applet.register(bArray, (short) (bOffset + 1), aidLength);
        }
    }

    public boolean select() {
        verified[0] = false;
        return true;
    }

    public void deselect() {
        verified[0] = false;
    }

    public void process(APDU apdu) {
        byte[] buf = apdu.getBuffer();
        if (selectingApplet()) {
            // the runtime selects on any P2; the Python card refuses all but 00 and 0C (then the
            // applet stays selected here, with the PIN status reset by select(): javacard/README.md)
            if (buf[ISO7816.OFFSET_P2] == (byte) 0x0C) {
                return;
            }
            if (buf[ISO7816.OFFSET_P2] != 0) {
                ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
            }
            fci(apdu);
            return;
        }
        byte cla = buf[ISO7816.OFFSET_CLA];
        byte ins = buf[ISO7816.OFFSET_INS];
        if ((cla & 0x03) != 0) {
            ISOException.throwIt(ISO7816.SW_LOGICAL_CHANNEL_NOT_SUPPORTED);
        }
        if ((cla & 0x0C) != 0 || (cla & 0x60) != 0) {
            ISOException.throwIt(SW_CLA_NOT_SUPPORTED);
        }
        if ((cla & 0x10) != 0) {
            ISOException.throwIt(SW_CHAINING_NOT_SUPPORTED);  // not yet: javacard/README.md
        }
        if (cla != CLA_ISO && cla != CLA_PROPRIETARY) {
            ISOException.throwIt(SW_CLA_NOT_SUPPORTED);
        }
        if (ins == INS_SELECT && cla == CLA_ISO) {
            // a SELECT the runtime did not take: bad P1-P2, or an AID of no applet
            if (buf[ISO7816.OFFSET_P1] != (byte) 0x04
                    || (buf[ISO7816.OFFSET_P2] != 0 && buf[ISO7816.OFFSET_P2] != (byte) 0x0C)) {
                ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
            }
            ISOException.throwIt(ISO7816.SW_FILE_NOT_FOUND);
        }
        byte expected = classOf(ins);
        if (expected == 0x01) {
            ISOException.throwIt(ISO7816.SW_INS_NOT_SUPPORTED);
        }
        if (cla != expected) {
            ISOException.throwIt(SW_CLA_NOT_SUPPORTED);
        }
        boolean noP1P2 = ins == INS_PERSONALIZE || ins == INS_GET_CARD_INFO;
        if (noP1P2 && (buf[ISO7816.OFFSET_P1] != 0 || buf[ISO7816.OFFSET_P2] != 0)) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        boolean personalizing = lifeCycle[0] == LIFE_PERSONALIZATION;
        if (personalizing && ins != INS_PERSONALIZE && ins != INS_GET_CARD_INFO) {
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
        }
        if (!personalizing && ins == INS_PERSONALIZE) {
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
        }
        short lc = apdu.setIncomingAndReceive();
        short off = apdu.getOffsetCdata();
        switch (ins) {
            case INS_PERSONALIZE:
                personalize(buf, off, lc);
                return;
            case INS_GET_CARD_INFO:
                cardInfo(apdu, lc);
                return;
            case INS_VERIFY:
                verify(buf, off, lc);
                return;
            case INS_CHANGE_REFERENCE_DATA:
                changePin(buf, off, lc);
                return;
            case INS_RESET_RETRY_COUNTER:
                resetRetryCounter(buf, off, lc);
                return;
            default:
                ISOException.throwIt(ISO7816.SW_INS_NOT_SUPPORTED);
        }
    }

    /** The class an implemented instruction takes, or 01 for one not (yet) implemented. */
    private static byte classOf(byte ins) {
        switch (ins) {
            case INS_PERSONALIZE:
            case INS_GET_CARD_INFO:
                return CLA_PROPRIETARY;
            case INS_VERIFY:
            case INS_CHANGE_REFERENCE_DATA:
            case INS_RESET_RETRY_COUNTER:
                return CLA_ISO;
            default:
                return 0x01;
        }
    }

    private void fci(APDU apdu) {
        byte[] buf = apdu.getBuffer();
        buf[0] = (byte) 0x6F;
        buf[1] = (byte) (AID_WALLET.length + 2);
        buf[2] = (byte) 0x84;
        buf[3] = (byte) AID_WALLET.length;
        Util.arrayCopyNonAtomic(AID_WALLET, (short) 0, buf, (short) 4, (short) AID_WALLET.length);
        send(apdu, (short) (AID_WALLET.length + 4));
    }

    private void cardInfo(APDU apdu, short lc) {
        if (lc != 0) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        byte[] buf = apdu.getBuffer();
        boolean personalizing = lifeCycle[0] == LIFE_PERSONALIZATION;
        Util.arrayFillNonAtomic(buf, (short) 0, CARD_INFO_LEN, (byte) 0);
        buf[0] = 1;  // version 1.0
        buf[2] = lifeCycle[0];
        Util.arrayCopyNonAtomic(cardId, (short) 0, buf, (short) 3, CARD_ID_LEN);
        Util.setShort(buf, (short) 13, DATA_SIZE);  // total bytes of the data area (4: high half 0)
        Util.setShort(buf, (short) 17, DATA_SIZE);  // free: no values stored yet in this slice
        Util.setShort(buf, (short) 19, INDEX_CAPACITY);
        buf[27] = personalizing ? 0 : pin.getTriesRemaining();
        buf[28] = PIN_MAX_TRIES;
        send(apdu, CARD_INFO_LEN);
    }

    /**
     * Answer buf[0..length) as the Python card shapes it on T=1: no Le, the status alone; an Le too
     * short, 6Cxx with the exact length (only read-only case-2 commands come here with one).
     */
    private static void send(APDU apdu, short length) {
        short le = apdu.setOutgoing();
        if (le == 0) {
            return;
        }
        if (le < length) {
            ISOException.throwIt((short) (ISO7816.SW_CORRECT_LENGTH_00 | length));
        }
        apdu.setOutgoingLength(length);
        apdu.sendBytes((short) 0, length);
    }

    // --- PIN ---------------------------------------------------------------------------------

    /** The digits' length in a PIN block (4-8 ASCII digits padded with FF), or 6A80. */
    private static short pinDigits(byte[] buf, short off) {
        short n = PIN_BLOCK_LEN;
        while (n > 0 && buf[(short) (off + n - 1)] == PIN_PAD) {
            n--;
        }
        if (n < PIN_MIN) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        checkDigits(buf, off, n);
        return n;
    }

    private static void checkDigits(byte[] buf, short off, short n) {
        for (short i = 0; i < n; i++) {
            byte b = buf[(short) (off + i)];
            if (b < (byte) 0x30 || b > (byte) 0x39) {
                ISOException.throwIt(ISO7816.SW_WRONG_DATA);
            }
        }
    }

    /** SHA-256(card id | salt | digits) into scratch[0..32). */
    private void hash(byte[] salt, byte[] buf, short off, short n) {
        sha256.reset();
        sha256.update(cardId, (short) 0, CARD_ID_LEN);
        if (salt != null) {
            sha256.update(salt, (short) 0, (short) salt.length);
        }
        sha256.doFinal(buf, off, n, scratch, (short) 0);
    }

    /**
     * Compare a code with its counter spent first (OwnerPIN.check does), answering 63Cx or 6983 on a
     * wrong one; a blocked code is refused without a try.
     */
    private void check(OwnerPIN code, byte[] salt, byte[] buf, short off, short n) {
        if (code.getTriesRemaining() == 0) {
            ISOException.throwIt(SW_AUTH_BLOCKED);
        }
        hash(salt, buf, off, n);
        if (!code.check(scratch, (short) 0, HASH_LEN)) {
            byte left = code.getTriesRemaining();
            ISOException.throwIt(left == 0 ? SW_AUTH_BLOCKED : (short) (SW_VERIFY_FAILED | left));
        }
    }

    private void personalize(byte[] buf, short off, short lc) {
        if (lc != (short) (PIN_BLOCK_LEN + PUK_LEN)) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        short pinLen = pinDigits(buf, off);
        checkDigits(buf, (short) (off + PIN_BLOCK_LEN), PUK_LEN);
        JCSystem.beginTransaction();
        hash(null, buf, off, pinLen);
        pin.update(scratch, (short) 0, HASH_LEN);
        hash(PUK_SALT, buf, (short) (off + PIN_BLOCK_LEN), PUK_LEN);
        puk.update(scratch, (short) 0, HASH_LEN);
        lifeCycle[0] = LIFE_OPERATIONAL;
        JCSystem.commitTransaction();
    }

    private static void checkReference(byte[] buf, boolean resetAllowed) {
        byte p1 = buf[ISO7816.OFFSET_P1];
        boolean p1Known = p1 == 0 || (resetAllowed && p1 == P1_VERIFY_RESET);
        if (!p1Known) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        if (buf[ISO7816.OFFSET_P2] != P2_PIN) {
            ISOException.throwIt(SW_REFERENCE_NOT_FOUND);
        }
    }

    private void verify(byte[] buf, short off, short lc) {
        checkReference(buf, true);
        if (buf[ISO7816.OFFSET_P1] == P1_VERIFY_RESET) {
            if (lc != 0) {
                ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
            }
            verified[0] = false;
            return;
        }
        if (lc == 0) {
            byte tries = pin.getTriesRemaining();
            if (tries == 0) {
                ISOException.throwIt(SW_AUTH_BLOCKED);
            }
            if (!verified[0]) {
                ISOException.throwIt((short) (SW_VERIFY_FAILED | tries));
            }
            return;
        }
        if (lc != PIN_BLOCK_LEN) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        short n = pinDigits(buf, off);  // malformed: 6A80, and the status stays as it was
        verified[0] = false;
        check(pin, null, buf, off, n);
        verified[0] = true;
    }

    private void changePin(byte[] buf, short off, short lc) {
        checkReference(buf, false);
        if (lc != (short) (2 * PIN_BLOCK_LEN)) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        short newLen = pinDigits(buf, (short) (off + PIN_BLOCK_LEN));
        short oldLen = pinDigits(buf, off);
        verified[0] = false;
        check(pin, null, buf, off, oldLen);
        hash(null, buf, (short) (off + PIN_BLOCK_LEN), newLen);
        pin.update(scratch, (short) 0, HASH_LEN);  // its own transaction; the counter is full already
        verified[0] = true;
    }

    private void resetRetryCounter(byte[] buf, short off, short lc) {
        checkReference(buf, false);
        if (lc != (short) (PUK_LEN + PIN_BLOCK_LEN)) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        short newLen = pinDigits(buf, (short) (off + PUK_LEN));
        checkDigits(buf, off, PUK_LEN);  // malformed: 6A80 before a try is spent
        verified[0] = false;
        check(puk, PUK_SALT, buf, off, PUK_LEN);
        hash(null, buf, (short) (off + PUK_LEN), newLen);
        pin.update(scratch, (short) 0, HASH_LEN);  // and its counter back to three
    }
}
