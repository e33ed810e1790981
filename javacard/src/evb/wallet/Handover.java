package evb.wallet;

import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.JCSystem;
import javacard.framework.Util;
import javacard.security.Signature;

/**
 * Handovers from a lost card (docs/APDU.md 5.3, card/backup.py _import_certificate): the import
 * counter, and IMPORT CERTIFICATE's checks in the Python card's order, then the certificate record
 * titled from the certificate's digest. The wallet adds the entry, in the transaction that also
 * moves the counter on ({@link #count}), so each handover is taken once.
 *
 *     A1 { 81 sequence (4), 82 certificate, 9E vault signature }
 */
final class Handover {
    private static final byte TAG_HANDOVER = (byte) 0xA1;
    private static final byte TAG_SEQUENCE = (byte) 0x81;
    private static final byte TAG_CERTIFICATE = (byte) 0x82;
    private static final byte TAG_SIGNATURE = (byte) 0x9E;
    private static final short SW_VERIFICATION_FAILED = (short) 0x6300;
    private static final short SW_REFERENCE_NOT_USABLE = (short) 0x6984;

    /** apdu/context.py's Purpose.HANDOVER label. */
    private static final byte[] HANDOVER = {
        'E', 'V', 'B', '-', 'H', 'A', 'N', 'D', 'O', 'V', 'E', 'R', '-', '2'
    };
    /** An imported certificate whose digest shows no name is listed as "certificate Y". */
    private static final byte[] UNNAMED = {'c', 'e', 'r', 't', 'i', 'f', 'i', 'c', 'a', 't', 'e', ' '};
    private static final byte TYPE_OTHER = 0x7F;
    /** The longest digest a title can come from (one of each field, each at its limit). */
    private static final short MAX_DIGEST = 153;

    /** The sequence number the next handover must carry (EEPROM). */
    final byte[] counter;

    private final Records records;
    private final Ecc ecc;
    private final byte[] cardId;
    private final byte[] vaultKey;
    private final byte[] building;
    // where the handover's fields are in the command data (RAM)
    private final short[] at;
    private static final short A_SEQUENCE = 0;
    private static final short A_SEQUENCE_LEN = 1;
    private static final short A_CERT = 2;
    private static final short A_CERT_LEN = 3;
    private static final short A_SIGNATURE = 4;
    private static final short A_SIGNATURE_LEN = 5;
    private final short[] tmp;

    Handover(Records records, Ecc ecc, byte[] cardId, byte[] vaultKey, byte[] building) {
        counter = new byte[4];
        this.records = records;
        this.ecc = ecc;
        this.cardId = cardId;
        this.vaultKey = vaultKey;
        this.building = building;
        at = JCSystem.makeTransientShortArray((short) 6, JCSystem.CLEAR_ON_RESET);
        tmp = JCSystem.makeTransientShortArray((short) 2, JCSystem.CLEAR_ON_RESET);
    }

    private static void wrongData() {
        ISOException.throwIt(ISO7816.SW_WRONG_DATA);
    }

    /**
     * Parse the handover at d[off..off+n) (apdu.backup.Handover.from_bytes: the three fields in
     * order, a 4-byte sequence, one encoding); answers the certificate's offset, its length in
     * {@link #certificateLength}.
     */
    short envelope(byte[] d, short off, short n) {
        short end = (short) (off + n);
        if (n < 2 || d[off] != TAG_HANDOVER || (short) (Records.length(d, (short) (off + 1), end, tmp) + tmp[0]) != end) {
            wrongData();
        }
        short pos = field(d, tmp[0], end, TAG_SEQUENCE, A_SEQUENCE);
        if (at[A_SEQUENCE_LEN] != 4) {
            wrongData();
        }
        pos = field(d, pos, end, TAG_CERTIFICATE, A_CERT);
        if (field(d, pos, end, TAG_SIGNATURE, A_SIGNATURE) != end) {
            wrongData();
        }
        return at[A_CERT];
    }

    short certificateLength() {
        return at[A_CERT_LEN];
    }

    /** One field with this tag at d[pos]: its value's offset to at[slot], its length after it. */
    private short field(byte[] d, short pos, short end, byte tag, short slot) {
        if (pos >= end || d[pos] != tag) {
            wrongData();
        }
        short len = Records.length(d, (short) (pos + 1), end, tmp);
        at[slot] = tmp[0];
        at[(short) (slot + 1)] = len;
        return (short) (tmp[0] + len);
    }

    /**
     * The checks after the encodings, in card/backup.py's order: a vault key pinned (6984), the
     * next sequence number (6985), another card's certificate (6A80), both vault signatures
     * (6300); then the title from the digest (6A80, as STORE VALUE checks a record). Answers the
     * certificate record's size (6700 over 1024 bytes); {@link #write} puts it in place.
     */
    short check(byte[] d, short[] cert) {
        if (vaultKey[0] != 0x04) {
            ISOException.throwIt(SW_REFERENCE_NOT_USABLE);
        }
        if (Util.arrayCompare(d, at[A_SEQUENCE], counter, (short) 0, (short) 4) != 0) {
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);  // taken already, or one is missing
        }
        if (Util.arrayCompare(d, cert[WalletApplet.C_CARD_ID], cardId, (short) 0, (short) cardId.length) == 0) {
            wrongData();  // a card's own certificates come by backup only
        }
        Signature v = ecc.startVerify(vaultKey, (short) 0, HANDOVER, ecc.identity, (short) 0, Ecc.POINT_LEN);
        v.update(cardId, (short) 0, (short) cardId.length);
        v.update(d, at[A_SEQUENCE], (short) 4);
        boolean handedOver = ecc.finishVerify(d, at[A_CERT], at[A_CERT_LEN], d, at[A_SIGNATURE], at[A_SIGNATURE_LEN]);
        v = ecc.startVerify(vaultKey, (short) 0, WalletApplet.CERTIFICATE, d, cert[WalletApplet.C_CARD_ID],
                            (short) cardId.length);
        if (!handedOver || !ecc.finishVerify(d, at[A_CERT], cert[WalletApplet.C_SIGNED_LEN],
                                             d, cert[WalletApplet.C_SIGNATURE], cert[WalletApplet.C_SIGNATURE_LEN])) {
            ISOException.throwIt(SW_VERIFICATION_FAILED);
        }
        short n = title(d, cert[WalletApplet.C_DIGEST], cert[WalletApplet.C_DIGEST_LEN], cert[WalletApplet.C_COUNTER]);
        records.check(building, (short) 0, n, tmp);
        short certLen = at[A_CERT_LEN];
        short size = (short) (records.size(building, true) + 1 + Records.lengthFieldSize(certLen) + certLen);
        if (size > Records.MAX_RECORD || size < 0) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        return size;
    }

    /**
     * What the imported certificate is listed by, as card/backup.py _title_of: the digest's fields
     * (only those a vault may certify: a certificate with others could never restore), type OTHER
     * and the name "certificate Y" where the digest shows none, put together in building[] for
     * {@link Records#check}; answers their length.
     */
    private short title(byte[] d, short digest, short n, short counterAt) {
        if (n > MAX_DIGEST) {
            wrongData();
        }
        boolean typed = false;
        boolean named = false;
        short end = (short) (digest + n);
        for (short pos = digest; pos < end;) {
            byte tag = d[pos];
            if (!WalletApplet.digestTag(tag)) {
                wrongData();
            }
            typed |= tag == Records.TAG_TYPE;
            named |= tag == Records.TAG_NAME;
            pos = (short) (Records.length(d, (short) (pos + 1), end, tmp) + tmp[0]);
        }
        short pos = Util.arrayCopyNonAtomic(d, digest, building, (short) 0, n);
        if (!typed) {
            building[pos++] = Records.TAG_TYPE;
            building[pos++] = 1;
            building[pos++] = TYPE_OTHER;
        }
        if (!named) {
            building[pos++] = Records.TAG_NAME;
            short len = pos++;
            pos = Util.arrayCopyNonAtomic(UNNAMED, (short) 0, building, pos, (short) UNNAMED.length);
            pos = decimal(d, counterAt, pos);
            building[len] = (byte) (pos - len - 1);
        }
        return pos;
    }

    /** The u32 at d[off] in decimal ASCII at building[pos], by long division by 10 (no int); answers the end. */
    private short decimal(byte[] d, short off, short pos) {
        byte[] q = building;
        short work = (short) (pos + 12);  // the quotient, beyond where the 10 digits go
        Util.arrayCopyNonAtomic(d, off, q, work, (short) 4);
        short digits = 0;
        do {
            short rem = 0;
            boolean zero = true;
            for (short i = 0; i < 4; i++) {
                short cur = (short) ((rem << 8) | (q[(short) (work + i)] & 0xFF));
                q[(short) (work + i)] = (byte) (cur / 10);
                rem = (short) (cur % 10);
                zero &= q[(short) (work + i)] == 0;
            }
            building[(short) (pos + digits)] = (byte) ('0' + rem);
            digits++;
            if (zero) {
                break;
            }
        } while (true);
        for (short i = pos, j = (short) (pos + digits - 1); i < j; i++, j--) {  // most significant first
            byte b = building[i];
            building[i] = building[j];
            building[j] = b;
        }
        return (short) (pos + digits);
    }

    /** The certificate record (the title, then 8E and the certificate) at data[off]: free space, no transaction. */
    byte write(byte[] d, byte[] data, short off) {
        short pos = records.write(building, data, off, true);
        data[pos++] = Records.TAG_CERTIFICATE;
        pos = Records.writeLength(data, pos, at[A_CERT_LEN]);
        Util.arrayCopyNonAtomic(d, at[A_CERT], data, pos, at[A_CERT_LEN]);
        return records.type(building);
    }

    /** The counter moved on, inside the wallet's transaction that adds the entry. */
    void count() {
        for (short i = 3; i >= 0; i--) {
            counter[i]++;
            if (counter[i] != 0) {
                return;
            }
        }
    }
}
