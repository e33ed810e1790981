package evb.wallet;

import javacard.framework.APDU;
import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.JCSystem;
import javacard.framework.OwnerPIN;
import javacard.framework.Util;
import javacard.security.MessageDigest;
import javacard.security.RandomData;
import javacardx.apdu.ExtendedLength;

/**
 * The wallet applet (docs/APDU.md), answering byte for byte as the Python card (card/card.py,
 * card/wallet.py, card/index.py, card/pin.py): SELECT and its FCI, GET CARD INFO, the PIN commands,
 * the value index and STORE / LIST / READ / MODIFY / DELETE VALUE, command chaining, extended
 * length, and 61xx / 6Cxx / GET RESPONSE. Every other instruction answers 6D00 until it is
 * implemented here; javacard/README.md lists what is and what is not.
 *
 * The PIN and the unblocking code are OwnerPINs over SHA-256(card id | digits) (and card id | "PUK" |
 * digits): the card never keeps the digits, and OwnerPIN spends its try counter before it compares.
 *
 * What a card OS would do below the applet in the Python card (chaining, response chaining) is done
 * here, because jCardSim's runtime does none of it: data arrives in the APDU buffer or, for chains
 * and data longer than the buffer, in a 4096-byte receive buffer; an answer is a source (bytes in
 * RAM, a record behind a RAM head, or the listing) that GET RESPONSE reads on from where it stopped,
 * so no answer is ever copied whole into RAM.
 */
public final class WalletApplet extends EvbApplet implements ExtendedLength {
    private static final byte INS_PERSONALIZE = (byte) 0x02;
    private static final byte INS_GET_CARD_INFO = (byte) 0x10;
    private static final byte INS_LIST_VALUES = (byte) 0x12;
    private static final byte INS_READ_VALUE = (byte) 0x14;
    private static final byte INS_STORE_VALUE = (byte) 0x16;
    private static final byte INS_MODIFY_VALUE = (byte) 0x18;
    private static final byte INS_DELETE_VALUE = (byte) 0x1A;
    private static final byte INS_GET_MEMORY_MAP = (byte) 0x1C;
    private static final byte INS_GET_IDENTITY = (byte) 0x30;
    private static final byte INS_PUT_VAULT_KEY = (byte) 0x32;
    private static final byte INS_PUT_ATTESTATION = (byte) 0x36;
    private static final byte INS_GET_ATTESTATION = (byte) 0x3A;
    private static final byte INS_PUT_KEYMGR_KEY = (byte) 0x64;
    private static final byte INS_BEGIN_BACKUP = (byte) 0x40;
    private static final byte INS_COMMIT_BACKUP = (byte) 0x42;
    private static final byte INS_CANCEL_PENDING = (byte) 0x44;
    private static final byte INS_BEGIN_RESTORE = (byte) 0x46;
    private static final byte INS_COMMIT_RESTORE = (byte) 0x48;
    private static final byte INS_SIGN_RECEIPT = (byte) 0x4A;
    private static final byte INS_GET_IMPORT_COUNTER = (byte) 0x34;
    private static final byte INS_IMPORT_CERTIFICATE = (byte) 0x4E;
    private static final byte INS_COMMIT_ASSISTED_RESTORE = (byte) 0x38;
    private static final byte INS_GET_TRIGGERS = (byte) 0x50;
    private static final byte INS_PUT_TRIGGERS = (byte) 0x52;
    private static final byte INS_SELECT_FOR_BACKUP = (byte) 0x54;
    private static final byte INS_RECORD_RUN = (byte) 0x56;
    private static final byte INS_BEGIN_ENCRYPTED_BACKUP = (byte) 0x4C;
    private static final byte INS_GENERATE_KEY = (byte) 0x60;
    private static final byte INS_GET_KEY_INFO = (byte) 0x62;
    private static final byte INS_EXPORT_KEY = (byte) 0x66;
    private static final byte INS_NEW_TRANSPORT_KEY = (byte) 0x68;
    private static final byte INS_IMPORT_KEY = (byte) 0x6A;
    private static final byte INS_SPLIT_KEY = (byte) 0x6C;
    private static final byte INS_IMPORT_SHARE = (byte) 0x6E;
    private static final byte INS_BEGIN_ROTATION = (byte) 0x70;
    private static final byte INS_REENCRYPT = (byte) 0x72;
    private static final byte INS_SWAP_CERTIFICATE = (byte) 0x74;
    private static final byte INS_COMMIT_ROTATION = (byte) 0x76;
    private static final byte INS_REPLACE_KEY = (byte) 0x78;
    private static final byte INS_SUCCEED_CERTIFICATE = (byte) 0x7A;
    private static final byte INS_INTERNAL_AUTHENTICATE = (byte) 0x88;
    private static final byte INS_VERIFY = (byte) 0x20;
    private static final byte INS_CHANGE_REFERENCE_DATA = (byte) 0x24;
    private static final byte INS_RESET_RETRY_COUNTER = (byte) 0x2C;
    private static final byte INS_SELECT = (byte) 0xA4;

    private static final byte P2_PIN = (byte) 0x81;
    private static final byte P1_VERIFY_RESET = (byte) 0xFF;

    private static final byte LIFE_PERSONALIZATION = 1;
    private static final byte LIFE_OPERATIONAL = 2;

    private static final byte PIN_BLOCK_LEN = Pin.BLOCK_LEN;
    private static final byte PUK_LEN = 8;
    private static final byte PIN_MAX_TRIES = 3;
    private static final byte PUK_MAX_TRIES = 10;
    private static final byte HASH_LEN = 32;
    private static final byte CARD_ID_LEN = 8;
    private static final byte CARD_INFO_LEN = 29;

    private static final byte FILTER_BY_TYPE = 0x01;
    private static final byte FILTER_CERTIFICATES = 0x02;
    private static final byte FILTER_EXPIRING = 0x04;
    private static final short FILTER_LEN = 8;
    private static final byte OP_SPEND = 1;
    private static final byte OP_USE = 2;
    private static final short LIST_HEAD = 11;  // id, type, flags, size, valid-to, name length

    private static final short SW_CLA_NOT_SUPPORTED = ISO7816.SW_CLA_NOT_SUPPORTED;
    private static final short SW_AUTH_BLOCKED = (short) 0x6983;
    private static final short SW_RECORD_NOT_FOUND = ISO7816.SW_RECORD_NOT_FOUND;
    private static final short SW_NOT_ENOUGH_MEMORY = (short) 0x6A84;
    private static final short SW_REFERENCE_NOT_FOUND = (short) 0x6A88;
    private static final short SW_VERIFY_FAILED = (short) 0x63C0;

    private static final byte[] AID_WALLET = {
        (byte) 0xF0, (byte) 0x45, (byte) 0x56, (byte) 0x42, (byte) 0x57, (byte) 0x4C, (byte) 0x01, (byte) 0x01
    };
    private static final byte[] PUK_SALT = {(byte) 'P', (byte) 'U', (byte) 'K'};

    // signature contexts (apdu/context.py): the label, then 00 and the audience's hash
    private static final byte[] VAULT_SESSION = {
        'E', 'V', 'B', '-', 'V', 'A', 'U', 'L', 'T', '-', 'S', 'E', 'S', 'S', 'I', 'O', 'N', '-', '2'
    };
    private static final byte[] KEYMGR_CARD = {
        'E', 'V', 'B', '-', 'K', 'E', 'Y', 'M', 'G', 'R', '-', 'C', 'A', 'R', 'D', '-', '2'
    };
    private static final byte[] CARD_ATTESTATION = {
        'E', 'V', 'B', '-', 'C', 'A', 'R', 'D', '-', 'A', 'T', 'T', 'E', 'S', 'T', 'A', 'T', 'I', 'O', 'N', '-', '1'
    };
    static final byte[] CERTIFICATE = {
        'E', 'V', 'B', '-', 'C', 'E', 'R', 'T', 'I', 'F', 'I', 'C', 'A', 'T', 'E', '-', '2'
    };
    private static final byte[] SUCCESSION = {
        'E', 'V', 'B', '-', 'S', 'U', 'C', 'C', 'E', 'S', 'S', 'I', 'O', 'N', '-', '1'
    };
    private static final byte[] RECEIPT = {'E', 'V', 'B', '-', 'R', 'E', 'C', 'E', 'I', 'P', 'T', '-', '2'};
    private static final byte[] RELYING_PARTIES = {
        'E', 'V', 'B', ' ', 'r', 'e', 'l', 'y', 'i', 'n', 'g', ' ', 'p', 'a', 'r', 't', 'i', 'e', 's'
    };
    private static final byte AUDIENCE_VAULT = 1;
    private static final byte AUDIENCE_KEY_MANAGER = 2;
    private static final short CHALLENGE_MIN = 16;
    private static final short CHALLENGE_MAX = 64;
    private static final short SW_VERIFICATION_FAILED = (short) 0x6300;
    private static final short SW_REFERENCE_NOT_USABLE = (short) 0x6984;

    // the answer's sources beside SRC_RAM (EvbApplet), and the wallet's session state
    private static final byte SRC_DATA = 2;    // answer[0..head) then data-area bytes from S_AT
    private static final byte SRC_LIST = 3;    // the listing under the filter in filter[]
    private static final byte SRC_MAP = 4;     // answer[0..MAP_HEAD) then the entries, regenerated
    private static final byte SRC_KEYS = 7;    // (5, 6: Triggers) the key store's out[] from S_AT
    private static final short RECORD_HEAD = 7;  // 80 02 id 8D 01 flags
    private static final short S_AT = S_APPLET;
    private static final short S_HEAD = S_APPLET + 1;
    private static final short SESSION = S_APPLET + 2;

    // persistent (EEPROM)
    private final byte[] cardId;
    private final byte[] state;  // life cycle (1), next value id (2)
    private static final short ST_LIFE = 0;
    private static final short ST_NEXT_ID = 1;
    private final OwnerPIN pin;
    private final OwnerPIN puk;
    private final MessageDigest sha256;
    private final ValueIndex index;
    private final Records records;
    private final Ecc ecc;
    private final Triggers triggers;
    private final Handover handover;
    private final KeyStore keys;
    /** The servers' keys, pinned: an uncompressed point, or zeros while none is. */
    private final byte[] vaultKey;
    private final byte[] keymgrKey;
    /** The issuer's attestation: signature length (0: none), issuer key (65), signature. */
    private final byte[] attestation;
    /**
     * Where a certificate record is put together from the value's title and the certificate before
     * it replaces the value in one transaction (EEPROM: it is as long as a record).
     */
    private final byte[] building;

    // session (RAM, cleared on reset; the PIN status also on deselect)
    private final boolean[] verified;
    private final byte[] scratch;
    private final byte[] filter;
    private final short[] tmp;
    private final short[] certFields;
    private final short[] newCert;

    private WalletApplet() {
        super((short) 160, SESSION, MAX_CHAIN);  // received[] keeps a whole chain
        cardId = new byte[CARD_ID_LEN];
        RandomData.getInstance(RandomData.ALG_SECURE_RANDOM).generateData(cardId, (short) 0, CARD_ID_LEN);
        state = new byte[] {LIFE_PERSONALIZATION, 0, 1};
        pin = new OwnerPIN(PIN_MAX_TRIES, HASH_LEN);
        puk = new OwnerPIN(PUK_MAX_TRIES, HASH_LEN);
        sha256 = MessageDigest.getInstance(MessageDigest.ALG_SHA_256, false);
        index = new ValueIndex();
        records = new Records();
        ecc = new Ecc(sha256);
        triggers = new Triggers(index);
        vaultKey = new byte[Ecc.POINT_LEN];
        keymgrKey = new byte[Ecc.POINT_LEN];
        keys = new KeyStore(cardId, vaultKey, keymgrKey, ecc, sha256);
        attestation = new byte[(short) (1 + Ecc.POINT_LEN + Ecc.MAX_SIGNATURE)];
        building = new byte[Records.MAX_RECORD];
        handover = new Handover(records, ecc, cardId, vaultKey, building);
        verified = JCSystem.makeTransientBooleanArray((short) 1, JCSystem.CLEAR_ON_DESELECT);
        scratch = JCSystem.makeTransientByteArray((short) 96, JCSystem.CLEAR_ON_RESET);
        filter = JCSystem.makeTransientByteArray(FILTER_LEN, JCSystem.CLEAR_ON_RESET);
        tmp = JCSystem.makeTransientShortArray((short) 2, JCSystem.CLEAR_ON_RESET);
        certFields = JCSystem.makeTransientShortArray((short) 9, JCSystem.CLEAR_ON_RESET);
        newCert = JCSystem.makeTransientShortArray((short) 9, JCSystem.CLEAR_ON_RESET);
    }

    public static void install(byte[] bArray, short bOffset, byte bLength) {
        new WalletApplet().registerFrom(bArray, bOffset, bLength);
    }

    public boolean select() {
        verified[0] = false;
        return true;
    }

    public void deselect() {
        verified[0] = false;
    }

    private boolean personalizing() {
        return state[ST_LIFE] == LIFE_PERSONALIZATION;
    }

    public void process(APDU apdu) {
        byte[] buf = apdu.getBuffer();
        byte cla = buf[ISO7816.OFFSET_CLA];
        byte ins = buf[ISO7816.OFFSET_INS];
        if (gettingResponse(apdu)) {
            return;
        }
        if (selectingApplet()) {
            selectEndsChain();
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
        short lc = receiveCommand(apdu);
        if (lc < 0) {
            return;  // 9000: a chain link, kept
        }
        byte[] d = data(apdu);
        short off = dataOffset(apdu);
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
        checkP1P2(buf, ins);
        boolean personalizing = personalizing();
        boolean early = ins == INS_PERSONALIZE || ins == INS_GET_CARD_INFO || ins == INS_GET_IDENTITY
                || ins == INS_PUT_ATTESTATION || ins == INS_GET_ATTESTATION;
        if (personalizing && !early) {
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
        }
        if (!personalizing && (ins == INS_PERSONALIZE || ins == INS_PUT_ATTESTATION)) {
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
        }
        switch (ins) {
            case INS_PERSONALIZE:
                personalize(d, off, lc);
                return;
            case INS_GET_CARD_INFO:
                cardInfo(apdu, lc);
                return;
            case INS_LIST_VALUES:
                list(apdu, d, off, lc);
                return;
            case INS_READ_VALUE:
                read(apdu, lc);
                return;
            case INS_STORE_VALUE:
                store(apdu, d, off, lc);
                return;
            case INS_MODIFY_VALUE:
                modify(apdu, d, off, lc);
                return;
            case INS_DELETE_VALUE:
                delete(apdu, lc);
                return;
            case INS_GET_MEMORY_MAP:
                memoryMap(apdu, lc);
                return;
            case INS_GET_IDENTITY:
                getIdentity(apdu, lc);
                return;
            case INS_PUT_ATTESTATION:
                putAttestation(d, off, lc);
                return;
            case INS_GET_ATTESTATION:
                getAttestation(apdu, lc);
                return;
            case INS_PUT_VAULT_KEY:
                pinServerKey(vaultKey, true, d, off, lc);
                return;
            case INS_PUT_KEYMGR_KEY:
                pinServerKey(keymgrKey, false, d, off, lc);
                return;
            case INS_INTERNAL_AUTHENTICATE:
                authenticate(apdu, d, off, lc);
                return;
            case INS_BEGIN_BACKUP:
            case INS_BEGIN_RESTORE:
                begin(apdu, ins == INS_BEGIN_RESTORE, lc);
                return;
            case INS_COMMIT_BACKUP:
                commitBackup(apdu, d, off, lc);
                return;
            case INS_CANCEL_PENDING:
                cancelPending(apdu, lc);
                return;
            case INS_COMMIT_RESTORE:
                commitRestore(apdu, d, off, lc);
                return;
            case INS_COMMIT_ASSISTED_RESTORE:
                commitAssisted(apdu, d, off, lc);
                return;
            case INS_SIGN_RECEIPT:
                signReceipt(apdu, d, off, lc);
                return;
            case INS_GET_TRIGGERS:
            case INS_PUT_TRIGGERS:
            case INS_SELECT_FOR_BACKUP:
            case INS_RECORD_RUN:
                trigger(apdu, ins, d, off, lc);
                return;
            case INS_GET_IMPORT_COUNTER:
            case INS_IMPORT_CERTIFICATE:
                imported(apdu, ins, d, off, lc);
                return;
            case INS_BEGIN_ENCRYPTED_BACKUP:
                beginEncrypted(apdu, d, off, lc);
                return;
            case INS_GENERATE_KEY:
            case INS_GET_KEY_INFO:
            case INS_EXPORT_KEY:
            case INS_NEW_TRANSPORT_KEY:
            case INS_IMPORT_KEY:
            case INS_SPLIT_KEY:
            case INS_IMPORT_SHARE:
                keyCommand(apdu, ins, d, off, lc);
                return;
            case INS_BEGIN_ROTATION:
                beginRotation(apdu, lc);
                return;
            case INS_REENCRYPT:
                reencrypt(apdu, d, off, lc);
                return;
            case INS_SWAP_CERTIFICATE:
                swapCertificate(apdu, d, off, lc);
                return;
            case INS_COMMIT_ROTATION:
                commitRotation(apdu, lc);
                return;
            case INS_REPLACE_KEY:
                replaceKey(apdu, d, off, lc);
                return;
            case INS_SUCCEED_CERTIFICATE:
                succeedCertificate(apdu, d, off, lc);
                return;
            case INS_VERIFY:
                verify(buf, d, off, lc);
                return;
            case INS_CHANGE_REFERENCE_DATA:
                changePin(buf, d, off, lc);
                return;
            case INS_RESET_RETRY_COUNTER:
                resetRetryCounter(buf, d, off, lc);
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
            case INS_LIST_VALUES:
            case INS_READ_VALUE:
            case INS_STORE_VALUE:
            case INS_MODIFY_VALUE:
            case INS_DELETE_VALUE:
            case INS_GET_MEMORY_MAP:
            case INS_GET_IDENTITY:
            case INS_PUT_VAULT_KEY:
            case INS_PUT_ATTESTATION:
            case INS_GET_ATTESTATION:
            case INS_PUT_KEYMGR_KEY:
            case INS_BEGIN_BACKUP:
            case INS_COMMIT_BACKUP:
            case INS_CANCEL_PENDING:
            case INS_BEGIN_RESTORE:
            case INS_COMMIT_RESTORE:
            case INS_SIGN_RECEIPT:
            case INS_GET_TRIGGERS:
            case INS_PUT_TRIGGERS:
            case INS_SELECT_FOR_BACKUP:
            case INS_RECORD_RUN:
            case INS_GET_IMPORT_COUNTER:
            case INS_IMPORT_CERTIFICATE:
            case INS_COMMIT_ASSISTED_RESTORE:
            case INS_BEGIN_ENCRYPTED_BACKUP:
            case INS_GENERATE_KEY:
            case INS_GET_KEY_INFO:
            case INS_EXPORT_KEY:
            case INS_NEW_TRANSPORT_KEY:
            case INS_IMPORT_KEY:
            case INS_SPLIT_KEY:
            case INS_IMPORT_SHARE:
            case INS_BEGIN_ROTATION:
            case INS_REENCRYPT:
            case INS_SWAP_CERTIFICATE:
            case INS_COMMIT_ROTATION:
            case INS_REPLACE_KEY:
            case INS_SUCCEED_CERTIFICATE:
                return CLA_PROPRIETARY;
            case INS_INTERNAL_AUTHENTICATE:
            case INS_VERIFY:
            case INS_CHANGE_REFERENCE_DATA:
            case INS_RESET_RETRY_COUNTER:
                return CLA_ISO;
            default:
                return 0x01;
        }
    }

    /** P1-P2 come first (6A86): commands that take none, and those that take a value id (not 0000). */
    private static void checkP1P2(byte[] buf, byte ins) {
        short p1p2 = Util.getShort(buf, ISO7816.OFFSET_P1);
        switch (ins) {
            case INS_PERSONALIZE:
            case INS_GET_CARD_INFO:
            case INS_LIST_VALUES:
            case INS_STORE_VALUE:
            case INS_GET_MEMORY_MAP:
            case INS_GET_IDENTITY:
            case INS_PUT_VAULT_KEY:
            case INS_PUT_ATTESTATION:
            case INS_GET_ATTESTATION:
            case INS_PUT_KEYMGR_KEY:
            case INS_SIGN_RECEIPT:
            case INS_GET_TRIGGERS:
            case INS_PUT_TRIGGERS:
            case INS_SELECT_FOR_BACKUP:
            case INS_RECORD_RUN:
            case INS_GET_IMPORT_COUNTER:
            case INS_IMPORT_CERTIFICATE:
            case INS_NEW_TRANSPORT_KEY:
            case INS_BEGIN_ROTATION:
            case INS_COMMIT_ROTATION:
                if (p1p2 != 0) {
                    ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
                }
                return;
            case INS_READ_VALUE:
            case INS_MODIFY_VALUE:
            case INS_DELETE_VALUE:
            case INS_BEGIN_BACKUP:
            case INS_COMMIT_BACKUP:
            case INS_CANCEL_PENDING:
            case INS_BEGIN_RESTORE:
            case INS_COMMIT_RESTORE:
            case INS_COMMIT_ASSISTED_RESTORE:
            case INS_BEGIN_ENCRYPTED_BACKUP:
            case INS_REENCRYPT:
            case INS_SWAP_CERTIFICATE:
            case INS_SUCCEED_CERTIFICATE:
                if (p1p2 == 0) {
                    ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
                }
                return;
            default:
                return;
        }
    }

    // --- answering: Ne, 6Cxx, 61xx and GET RESPONSE --------------------------------------------

    /**
     * Answer ``total`` bytes: answer[0..head) then the data area from ``at`` (a record, or a
     * certificate inside one); GET RESPONSE reads on from the same place, nothing changing between.
     */
    private void respondData(APDU apdu, short head, short at, short total, short lc, boolean readOnly) {
        session[S_HEAD] = head;
        session[S_AT] = at;
        respond(apdu, SRC_DATA, total, lc, readOnly);
    }

    /** Send bytes [from, from + count) of an answer: RAM, a record behind a RAM head, the listing, the map. */
    void emit(APDU apdu, byte source, short from, short count) {
        if (source == Triggers.SRC_SETTINGS || source == Triggers.SRC_SELECTED) {
            triggers.emit(apdu, source, from, count);
            return;
        }
        if (source == SRC_LIST) {
            listing(apdu, from, count);
            return;
        }
        if (source == SRC_MAP) {
            mapEntries(apdu, from, count);
            return;
        }
        if (source == SRC_KEYS) {
            apdu.sendBytesLong(keys.out, (short) (session[S_AT] + from), count);
            return;
        }
        short head = source == SRC_DATA ? session[S_HEAD] : (short) (from + count);
        if (from < head) {
            short n = (short) (head - from) < count ? (short) (head - from) : count;
            apdu.sendBytesLong(answer, from, n);
            from += n;
            count -= n;
        }
        if (count > 0) {
            apdu.sendBytesLong(index.data, (short) (session[S_AT] + from - head), count);
        }
    }

    private void fci(APDU apdu) {
        answer[0] = (byte) 0x6F;
        answer[1] = (byte) (AID_WALLET.length + 2);
        answer[2] = (byte) 0x84;
        answer[3] = (byte) AID_WALLET.length;
        Util.arrayCopyNonAtomic(AID_WALLET, (short) 0, answer, (short) 4, (short) AID_WALLET.length);
        short lc = apdu.setIncomingAndReceive();
        respond(apdu, SRC_RAM, (short) (AID_WALLET.length + 4), lc, true);
    }

    private void cardInfo(APDU apdu, short lc) {
        if (lc != 0) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        Util.arrayFillNonAtomic(answer, (short) 0, CARD_INFO_LEN, (byte) 0);
        answer[0] = 1;  // version 1.0
        answer[2] = state[ST_LIFE];
        Util.arrayCopyNonAtomic(cardId, (short) 0, answer, (short) 3, CARD_ID_LEN);
        short used = index.count((byte) 0);
        short certificates = index.count(ValueIndex.FLAG_CERTIFICATE);
        Util.setShort(answer, (short) 13, ValueIndex.DATA_SIZE);  // total bytes of the data area (4)
        Util.setShort(answer, (short) 17, (short) (ValueIndex.DATA_SIZE - index.usedBytes()));  // free (4)
        Util.setShort(answer, (short) 19, ValueIndex.CAPACITY);
        Util.setShort(answer, (short) 21, used);
        Util.setShort(answer, (short) 23, (short) (used - certificates));
        Util.setShort(answer, (short) 25, certificates);
        answer[27] = personalizing() ? 0 : pin.getTriesRemaining();
        answer[28] = PIN_MAX_TRIES;
        respond(apdu, SRC_RAM, CARD_INFO_LEN, lc, true);
    }

    // --- values ----------------------------------------------------------------------------------

    private void requirePin() {
        if (pin.getTriesRemaining() == 0) {
            ISOException.throwIt(SW_AUTH_BLOCKED);
        }
        if (!verified[0]) {
            ISOException.throwIt(ISO7816.SW_SECURITY_STATUS_NOT_SATISFIED);
        }
    }

    /** The slot of the value P1-P2 names, or 6A83. */
    private short entry(APDU apdu) {
        short slot = index.find(Util.getShort(apdu.getBuffer(), ISO7816.OFFSET_P1));
        if (slot < 0) {
            ISOException.throwIt(SW_RECORD_NOT_FOUND);
        }
        return slot;
    }

    private void list(APDU apdu, byte[] d, short off, short lc) {
        if (lc != 0 && lc != FILTER_LEN) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        if (lc == 0) {
            Util.arrayFillNonAtomic(filter, (short) 0, FILTER_LEN, (byte) 0);
        } else {
            Util.arrayCopyNonAtomic(d, off, filter, (short) 0, FILTER_LEN);
        }
        byte flags = filter[0];
        if ((flags & ~(FILTER_BY_TYPE | FILTER_CERTIFICATES | FILTER_EXPIRING)) != 0) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        byte t = filter[1];
        if ((flags & FILTER_BY_TYPE) != 0 && !((t >= 1 && t <= 4) || t == 0x7F)) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        if ((flags & FILTER_EXPIRING) != 0 && !Records.isDate(filter, (short) 2)) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        respond(apdu, SRC_LIST, listing(null, (short) 0, (short) 0), lc, true);
    }

    /**
     * Walk the listing under filter[] in id order, sending its bytes [from, from + count) when
     * ``apdu`` is given; answers its whole length. Each entry is built in scratch from the index
     * and the record's title (name 83, valid-to 88).
     */
    private short listing(APDU apdu, short from, short count) {
        byte flags = filter[0];
        short total = 0;
        short end = (short) (from + count);
        for (short s = index.nextById((short) 0); s >= 0; s = index.nextById(index.id(s))) {
            if ((flags & FILTER_BY_TYPE) != 0 && index.type(s) != filter[1]) {
                continue;
            }
            if ((flags & FILTER_CERTIFICATES) != 0 && (index.flags(s) & ValueIndex.FLAG_CERTIFICATE) == 0) {
                continue;
            }
            short rec = index.offset(s);
            short size = index.size(s);
            short to = Records.locate(index.data, rec, size, Records.TAG_VALID_TO, tmp);
            if ((flags & FILTER_EXPIRING) != 0
                    && (to < 0 || !Records.within(filter, (short) 2, index.data, to, Util.getShort(filter, (short) 6)))) {
                continue;
            }
            Util.setShort(scratch, (short) 0, index.id(s));
            scratch[2] = index.type(s);
            scratch[3] = index.flags(s);
            Util.setShort(scratch, (short) 4, size);
            if (to < 0) {
                Util.arrayFillNonAtomic(scratch, (short) 6, (short) 4, (byte) 0);
            } else {
                Util.arrayCopyNonAtomic(index.data, to, scratch, (short) 6, (short) 4);
            }
            short name = Records.locate(index.data, rec, size, Records.TAG_NAME, tmp);
            short nameLen = name < 0 ? 0 : tmp[1];
            scratch[10] = (byte) nameLen;
            if (nameLen > 0) {
                Util.arrayCopyNonAtomic(index.data, name, scratch, LIST_HEAD, nameLen);
            }
            short n = (short) (LIST_HEAD + nameLen);
            sendPart(apdu, scratch, (short) 0, total, n, from, end);
            total += n;
        }
        return total;
    }

    // --- GET MEMORY MAP (docs/APDU.md 3.10) ------------------------------------------------------

    private static final byte AREA_APPLET_HEADER = 3;
    private static final byte AREA_INDEX = 4;
    private static final byte AREA_DATA = 5;
    private static final short MAP_HEAD = (short) (4 + 1 + 3 * 9 + 2);
    private static final short MAP_ENTRY = 10;

    /** An OwnerPIN's EEPROM: the hash it compares (PIN or unblocking code) and its try counter. */
    private static final short PIN_BYTES = HASH_LEN + 1;

    /**
     * The applet's persistent memory laid end to end: its header (card id, life cycle and next
     * id, the PIN and the unblocking code, the pinned server keys, the attestation, the certificate
     * being built, the receive buffer, the identity key pair with its point and the peer key, the
     * trigger settings, the import counter, the key store's: KeyStore.persistentBytes), the index,
     * the data area; no journal (the runtime's). tests/javacard/test_values.py holds the header to
     * what the harness finds in the applet's heap, array by array and key by key.
     * The head is built in RAM, the entries are read from the index as they go out. The sums pass
     * 32767: written as unsigned 16-bit values (the high halves of the 4-byte fields 0), which
     * they are, all under 65536.
     */
    private void memoryMap(APDU apdu, short lc) {
        if (lc != 0) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        short header = (short) (cardId.length + state.length + PIN_BYTES + PIN_BYTES + vaultKey.length
                + keymgrKey.length + attestation.length + building.length + received.length + ecc.persistentBytes()
                + Triggers.AREA + handover.counter.length + keys.persistentBytes());
        short indexLen = (short) (ValueIndex.CAPACITY * ValueIndex.ENTRY);
        Util.arrayFillNonAtomic(answer, (short) 0, MAP_HEAD, (byte) 0);
        Util.setShort(answer, (short) 2, (short) (header + indexLen + ValueIndex.DATA_SIZE));
        answer[4] = 3;
        area(AREA_APPLET_HEADER, (short) 0, header, (short) 5);
        area(AREA_INDEX, header, indexLen, (short) 14);
        area(AREA_DATA, (short) (header + indexLen), ValueIndex.DATA_SIZE, (short) 23);
        short used = index.count((byte) 0);
        Util.setShort(answer, (short) 32, used);
        respond(apdu, SRC_MAP, (short) (MAP_HEAD + used * MAP_ENTRY), lc, true);
    }

    private void area(byte kind, short start, short length, short at) {
        answer[at] = kind;
        Util.setShort(answer, (short) (at + 3), start);  // 4-byte fields: the high halves stay 0
        Util.setShort(answer, (short) (at + 7), length);
    }

    /** Bytes [from, from + count) of the map: its head from RAM, then each occupied slot's entry. */
    private void mapEntries(APDU apdu, short from, short count) {
        short end = (short) (from + count);
        sendPart(apdu, answer, (short) 0, (short) 0, MAP_HEAD, from, end);
        short at = MAP_HEAD;
        for (short s = 0; s < ValueIndex.CAPACITY && at < end; s++) {
            if (index.id(s) == 0) {
                continue;
            }
            Util.setShort(scratch, (short) 0, s);
            Util.arrayCopyNonAtomic(index.entries, (short) (s * ValueIndex.ENTRY), scratch, (short) 2, ValueIndex.ENTRY);
            sendPart(apdu, scratch, (short) 0, at, MAP_ENTRY, from, end);
            at += MAP_ENTRY;
        }
    }

    private void read(APDU apdu, short lc) {
        if (lc != 0) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        short slot = entry(apdu);
        answer[0] = Records.TAG_ID;
        answer[1] = 2;
        Util.setShort(answer, (short) 2, index.id(slot));
        answer[4] = Records.TAG_FLAGS;
        answer[5] = 1;
        answer[6] = index.flags(slot);
        respondData(apdu, RECORD_HEAD, index.offset(slot), (short) (RECORD_HEAD + index.size(slot)), lc, true);
    }

    private void store(APDU apdu, byte[] d, short off, short lc) {
        requirePin();
        if (lc > MAX_CHAIN) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);  // no record is this long
        }
        short size = records.check(d, off, lc, tmp);
        short id = newId();
        short at = index.reserve(size);
        // into free space, which nothing refers to until the entry is written: no transaction needed
        records.write(d, index.data, at, false);
        addEntry(apdu, id, records.type(d), (byte) 0, at, size, lc, false);
    }

    /** The id the next value gets; 6A84 when 65535 values were stored over the card's life. */
    private short newId() {
        short id = Util.getShort(state, ST_NEXT_ID);
        if (id == 0) {
            ISOException.throwIt(SW_NOT_ENOUGH_MEMORY);
        }
        return id;
    }

    /**
     * The entry of a record already in free space and the next id, in one transaction (with the
     * import counter moved on for a handover); answers the id.
     */
    private void addEntry(APDU apdu, short id, byte type, byte flags, short at, short size, short lc, boolean imported) {
        JCSystem.beginTransaction();
        index.add(id, type, flags, at, size);
        Util.setShort(state, ST_NEXT_ID, (short) (id + 1));
        if (imported) {
            handover.count();
        }
        JCSystem.commitTransaction();
        Util.setShort(answer, (short) 0, id);
        respond(apdu, SRC_RAM, (short) 2, lc, false);
    }

    // --- handovers from a lost card (docs/APDU.md 5.3) ---------------------------------------------

    private void imported(APDU apdu, byte ins, byte[] d, short off, short lc) {
        if (ins == INS_GET_IMPORT_COUNTER) {
            if (lc != 0) {
                ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
            }
            Util.arrayCopyNonAtomic(handover.counter, (short) 0, answer, (short) 0, (short) 4);
            respond(apdu, SRC_RAM, (short) 4, lc, true);
            return;
        }
        requirePin();
        if (lc > MAX_CHAIN) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);  // no handover is this long
        }
        short c = handover.envelope(d, off, lc);
        certificate(d, c, handover.certificateLength(), certFields);
        short size = handover.check(d, certFields);
        short id = newId();
        short at = index.reserve(size);
        byte type = handover.write(d, index.data, at);
        addEntry(apdu, id, type, ValueIndex.FLAG_CERTIFICATE, at, size, lc, true);
    }

    private void modify(APDU apdu, byte[] d, short off, short lc) {
        requirePin();
        short slot = entry(apdu);
        byte flags = index.flags(slot);
        if ((flags & (ValueIndex.FLAG_CERTIFICATE | ValueIndex.FLAG_PENDING)) != 0) {
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);  // only live value can be spent
        }
        if (lc != 5 || (d[off] != OP_SPEND && d[off] != OP_USE)
                || Util.getShort(d, (short) (off + 1)) == 0 && Util.getShort(d, (short) (off + 3)) == 0) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);  // op 01/02, an amount of at least 1
        }
        byte tag = d[off] == OP_SPEND ? Records.TAG_BALANCE : Records.TAG_QUANTITY;
        short at = Records.locate(index.data, index.offset(slot), index.size(slot), tag, tmp);
        if (at < 0 || tmp[1] != 4 || Records.compare(d, (short) (off + 1), index.data, at, (short) 4) > 0) {
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);  // no such field, or not that much
        }
        // what is left, byte by byte from the low end with a borrow (no int on the card)
        short borrow = 0;
        for (short i = 3; i >= 0; i--) {
            short v = (short) ((index.data[(short) (at + i)] & 0xFF) - (d[(short) (off + 1 + i)] & 0xFF) - borrow);
            borrow = v < 0 ? (short) 1 : (short) 0;
            answer[i] = (byte) v;
        }
        JCSystem.beginTransaction();
        Util.arrayCopy(answer, (short) 0, index.data, at, (short) 4);
        if ((flags & ValueIndex.FLAG_BACKED_UP) != 0) {
            index.setFlags(slot, (byte) (flags & ~ValueIndex.FLAG_BACKED_UP));  // the vault's copy no longer matches
        }
        JCSystem.commitTransaction();
        respond(apdu, SRC_RAM, (short) 4, lc, false);
    }

    private void delete(APDU apdu, short lc) {
        requirePin();
        if (lc != 0) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        short slot = entry(apdu);
        if ((index.flags(slot) & ValueIndex.FLAG_PENDING) != 0) {
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);  // finish or cancel the swap first
        }
        short at = index.offset(slot);
        short size = index.size(slot);
        JCSystem.beginTransaction();
        index.remove(slot);
        JCSystem.commitTransaction();
        index.erase(at, size);
    }

    // --- identity, attestation and the servers' keys (docs/APDU.md 4) --------------------------

    private void getIdentity(APDU apdu, short lc) {
        if (lc != 0) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        Util.arrayCopyNonAtomic(cardId, (short) 0, answer, (short) 0, CARD_ID_LEN);
        Util.arrayCopyNonAtomic(ecc.identity, (short) 0, answer, CARD_ID_LEN, Ecc.POINT_LEN);
        respond(apdu, SRC_RAM, (short) (CARD_ID_LEN + Ecc.POINT_LEN), lc, true);
    }

    /**
     * The issuer's key and its signature over this card's identity, taken once while the card is
     * being personalized; checked, so a card never carries an attestation of another card's key.
     */
    private void putAttestation(byte[] d, short off, short lc) {
        if (lc <= Ecc.POINT_LEN || lc > (short) (Ecc.POINT_LEN + Ecc.MAX_SIGNATURE) || d[off] != 0x04) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        if (attestation[0] != 0) {
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);  // attested once, for the card's life
        }
        short sig = (short) (off + Ecc.POINT_LEN);
        short sigLen = (short) (lc - Ecc.POINT_LEN);
        javacard.security.Signature v =
            ecc.startVerify(d, off, CARD_ATTESTATION, RELYING_PARTIES, (short) 0, (short) RELYING_PARTIES.length);
        if (v != null) {
            v.update(cardId, (short) 0, CARD_ID_LEN);
        }
        if (v == null || !ecc.finishVerify(ecc.identity, (short) 0, Ecc.POINT_LEN, d, sig, sigLen)) {
            ISOException.throwIt(SW_VERIFICATION_FAILED);
        }
        JCSystem.beginTransaction();
        attestation[0] = (byte) sigLen;
        Util.arrayCopy(d, off, attestation, (short) 1, lc);
        JCSystem.commitTransaction();
    }

    private void getAttestation(APDU apdu, short lc) {
        if (lc != 0) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        if (attestation[0] == 0) {
            ISOException.throwIt(SW_REFERENCE_NOT_FOUND);  // a card no issuer vouched for
        }
        short n = (short) (Ecc.POINT_LEN + attestation[0]);
        Util.arrayCopyNonAtomic(attestation, (short) 1, answer, (short) 0, n);
        respond(apdu, SRC_RAM, n, lc, true);
    }

    /**
     * PUT VAULT KEY and PUT KEY MANAGER KEY: pinned on first use; the same key again is 9000. The
     * vault's may change while no entry carries a flag (certificates, backed-up or pending values
     * would become unverifiable); the key manager's never (a terminal could swap in its own).
     */
    private void pinServerKey(byte[] pinned, boolean vault, byte[] d, short off, short lc) {
        requirePin();
        if (!ecc.validPoint(d, off, lc)) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        if (Util.arrayCompare(pinned, (short) 0, d, off, Ecc.POINT_LEN) == 0) {
            return;
        }
        if (pinned[0] == 0x04 && (!vault || index.flagged())) {
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
        }
        JCSystem.beginTransaction();
        Util.arrayCopy(d, off, pinned, (short) 0, Ecc.POINT_LEN);
        JCSystem.commitTransaction();
    }

    /**
     * INTERNAL AUTHENTICATE: the challenge signed for the kind of server P1 names, over the key the
     * card pinned for it (never one the host sends), bound to the card id.
     */
    private void authenticate(APDU apdu, byte[] d, short off, short lc) {
        requirePin();
        byte[] buf = apdu.getBuffer();
        byte audience = buf[ISO7816.OFFSET_P1];
        if ((audience != AUDIENCE_VAULT && audience != AUDIENCE_KEY_MANAGER) || buf[ISO7816.OFFSET_P2] != 0) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        if (lc < CHALLENGE_MIN || lc > CHALLENGE_MAX) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        byte[] server = audience == AUDIENCE_VAULT ? vaultKey : keymgrKey;
        if (server[0] != 0x04) {
            ISOException.throwIt(SW_REFERENCE_NOT_USABLE);  // pin the server's key first
        }
        javacard.security.Signature s = ecc.startSign(audience == AUDIENCE_VAULT ? VAULT_SESSION : KEYMGR_CARD,
                                                      server, (short) 0, Ecc.POINT_LEN);
        s.update(cardId, (short) 0, CARD_ID_LEN);
        short n = ecc.finishSign(d, off, lc, answer, (short) 0);
        respond(apdu, SRC_RAM, n, lc, true);
    }

    // --- backup and restore: the two-phase swap (docs/APDU.md 5, plain mode) -------------------

    private static final byte CERT_VERSION = (byte) 0x80;
    private static final byte CERT_CARD_ID = (byte) 0x81;
    private static final byte CERT_COUNTER = (byte) 0x82;
    private static final byte CERT_HASH = (byte) 0x83;
    private static final byte CERT_MODE = (byte) 0x84;
    private static final byte CERT_DIGEST = (byte) 0xA5;
    private static final byte CERT_SIGNATURE = (byte) 0x9E;
    private static final byte[] CERT_TAGS = {
        CERT_VERSION, CERT_CARD_ID, CERT_COUNTER, CERT_HASH, CERT_MODE, CERT_DIGEST, CERT_SIGNATURE
    };
    private static final byte[] CERT_LENGTHS = {1, CARD_ID_LEN, 4, HASH_LEN, 1, -1, -1};
    private static final byte MODE_PLAIN = 0;
    private static final byte MODE_ENCRYPTED = 1;
    /** Record tags a vault may put in a digest (apdu.certificate.DigestField). */
    static final byte[] DIGEST_TAGS = {
        Records.TAG_TYPE, Records.TAG_NAME, Records.TAG_QUANTITY, Records.TAG_VALID_FROM, Records.TAG_VALID_TO,
        Records.TAG_PLACE
    };
    // where certificate() found each field: offsets in cert[], the digest's and signature's lengths
    static final short C_CARD_ID = 0;
    static final short C_COUNTER = 1;
    static final short C_HASH = 2;
    static final short C_MODE = 3;
    static final short C_DIGEST = 4;
    static final short C_DIGEST_LEN = 5;
    static final short C_SIGNATURE = 6;
    static final short C_SIGNATURE_LEN = 7;
    static final short C_SIGNED_LEN = 8;

    /**
     * Parse a certificate in its one encoding (apdu.certificate.Certificate.from_bytes): the seven
     * tags in order, each once, minimal lengths, version 01, mode 00/01, nothing after; 6A80
     * otherwise. Field offsets go to cert[].
     */
    private void certificate(byte[] d, short off, short n, short[] cert) {
        short end = (short) (off + n);
        short pos = off;
        for (short i = 0; i < (short) CERT_TAGS.length; i++) {
            if (pos >= end || d[pos] != CERT_TAGS[i]) {
                ISOException.throwIt(ISO7816.SW_WRONG_DATA);
            }
            if (i == 6) {
                cert[C_SIGNED_LEN] = (short) (pos - off);
            }
            short len = Records.length(d, (short) (pos + 1), end, tmp);
            short v = tmp[0];
            if (CERT_LENGTHS[i] >= 0 && len != CERT_LENGTHS[i]) {
                ISOException.throwIt(ISO7816.SW_WRONG_DATA);
            }
            switch (i) {
                case 0:
                    if (d[v] != 1) {
                        ISOException.throwIt(ISO7816.SW_WRONG_DATA);  // version 1 only
                    }
                    break;
                case 4:
                    if (d[v] != MODE_PLAIN && d[v] != MODE_ENCRYPTED) {
                        ISOException.throwIt(ISO7816.SW_WRONG_DATA);
                    }
                    cert[C_MODE] = v;
                    break;
                case 5:
                    cert[C_DIGEST] = v;
                    cert[C_DIGEST_LEN] = len;
                    break;
                case 6:
                    if (len > Ecc.MAX_SIGNATURE) {
                        ISOException.throwIt(ISO7816.SW_WRONG_DATA);
                    }
                    cert[C_SIGNATURE] = v;
                    cert[C_SIGNATURE_LEN] = len;
                    break;
                default:
                    cert[(short) (i - 1)] = v;  // card id, counter, hash
            }
            pos = (short) (v + len);
        }
        if (pos != end) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
    }

    /**
     * Every field of the digest (dg) is in the value (val) with the same bytes, each once and of
     * the tags a vault may choose (apdu.certificate.digest_matches); the value is a stored or a
     * checked record.
     */
    private boolean digestMatches(byte[] dg, short digest, short n, byte[] val, short value, short size) {
        short end = (short) (digest + n);
        short seen = 0;
        for (short pos = digest; pos < end;) {
            byte tag = dg[pos];
            short bit = 0;
            for (short i = 0; i < (short) DIGEST_TAGS.length; i++) {
                if (DIGEST_TAGS[i] == tag) {
                    bit = (short) (1 << i);
                }
            }
            if (bit == 0 || (seen & bit) != 0) {
                return false;
            }
            seen |= bit;
            short len = Records.length(dg, (short) (pos + 1), end, tmp);
            short v = tmp[0];
            short at = Records.locate(val, value, size, tag, tmp);
            if (at < 0 || tmp[1] != len || Util.arrayCompare(dg, v, val, at, len) != 0) {
                return false;
            }
            pos = (short) (v + len);
        }
        return true;
    }

    /** Whether a vault may put this record tag in a digest. */
    static boolean digestTag(byte tag) {
        for (short i = 0; i < (short) DIGEST_TAGS.length; i++) {
            if (DIGEST_TAGS[i] == tag) {
                return true;
            }
        }
        return false;
    }

    /** SHA-256 of data-area bytes compared with 32 bytes at d[x]. */
    private boolean hashIs(short at, short size, byte[] d, short x) {
        sha256.reset();
        sha256.doFinal(index.data, at, size, scratch, (short) 0);
        return Util.arrayCompare(scratch, (short) 0, d, x, HASH_LEN) == 0;
    }

    /**
     * Seed step 1-4 (card/backup.py _check_certificate): a vault key pinned (6984), the certificate
     * names this card and its digest fits the value (6A80), X = SHA-256(value) for a plain one, of
     * its E2 ciphertext under the key for an encrypted one (6A80 without a key), the vault signed (6300).
     */
    private void checkCertificate(byte[] d, short off, short[] cert, short value, short size) {
        if (vaultKey[0] != 0x04) {
            ISOException.throwIt(SW_REFERENCE_NOT_USABLE);
        }
        if (Util.arrayCompare(d, cert[C_CARD_ID], cardId, (short) 0, CARD_ID_LEN) != 0
                || !digestMatches(d, cert[C_DIGEST], cert[C_DIGEST_LEN], index.data, value, size)) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        boolean plain = d[cert[C_MODE]] == MODE_PLAIN;
        if (plain ? !hashIs(value, size, d, cert[C_HASH])
                  : keys.mode() == KeyStore.MODE_NONE || !keys.cipherHashIs(index.data, value, size, d, cert[C_HASH])) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);  // X of the value, or of its E2 ciphertext
        }
        javacard.security.Signature v = ecc.startVerify(vaultKey, (short) 0, CERTIFICATE, cardId, (short) 0, CARD_ID_LEN);
        if (v == null || !ecc.finishVerify(d, off, cert[C_SIGNED_LEN], d, cert[C_SIGNATURE], cert[C_SIGNATURE_LEN])) {
            ISOException.throwIt(SW_VERIFICATION_FAILED);
        }
    }

    /** The offset of the certificate (8E) in a certificate record, its length in tmp[1]. */
    private short certificateOf(short slot) {
        return Records.locate(index.data, index.offset(slot), index.size(slot), Records.TAG_CERTIFICATE, tmp);
    }

    private void setFlags(short slot, byte flags) {
        if (index.flags(slot) != flags) {
            JCSystem.beginTransaction();
            index.setFlags(slot, flags);
            JCSystem.commitTransaction();
        }
    }

    /**
     * BEGIN BACKUP (a value: its stored bytes) and BEGIN RESTORE (a certificate record: the
     * certificate): the entry is marked pending and the bytes answered; again, the same bytes.
     */
    private void begin(APDU apdu, boolean restore, short lc) {
        requirePin();
        if (lc != 0) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        short slot = entry(apdu);
        byte flags = index.flags(slot);
        if (((flags & ValueIndex.FLAG_CERTIFICATE) != 0) != restore) {
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
        }
        boolean already = (flags & ValueIndex.FLAG_PENDING) != 0;
        setFlags(slot, (byte) (flags | ValueIndex.FLAG_PENDING));
        if (restore) {
            short at = certificateOf(slot);
            respondData(apdu, (short) 0, at, tmp[1], lc, already);
        } else {
            respondData(apdu, (short) 0, index.offset(slot), index.size(slot), lc, already);
        }
    }

    private void cancelPending(APDU apdu, short lc) {
        requirePin();
        if (lc != 0) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        short slot = entry(apdu);
        setFlags(slot, (byte) (index.flags(slot) & ~ValueIndex.FLAG_PENDING));
    }

    /**
     * COMMIT BACKUP: option (01 keep the value, flagged backed up; 00 replace it by the
     * certificate record) and the certificate, checked, then the swap in one transaction. A retry
     * of a done commit answers 9000 (card/backup.py _commit_backup, step for step).
     */
    private void commitBackup(APDU apdu, byte[] d, short off, short lc) {
        requirePin();
        if (lc == 0) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        byte option = d[off];
        if ((option & ~1) != 0) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        short c = (short) (off + 1);
        short cLen = (short) (lc - 1);
        short[] cert = certFields;
        certificate(d, c, cLen, cert);
        short slot = entry(apdu);
        byte flags = index.flags(slot);
        if ((flags & ValueIndex.FLAG_CERTIFICATE) != 0) {
            short at = certificateOf(slot);
            if (tmp[1] == cLen && Util.arrayCompare(index.data, at, d, c, cLen) == 0) {
                return;  // a retry after the swap: done already
            }
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
        }
        boolean keep = option == 1;
        boolean pending = (flags & ValueIndex.FLAG_PENDING) != 0;
        if (keep && (flags & ValueIndex.FLAG_BACKED_UP) != 0 && !pending) {
            checkCertificate(d, c, cert, index.offset(slot), index.size(slot));  // a retry of a keeping commit
            return;
        }
        if (!pending) {
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
        }
        checkCertificate(d, c, cert, index.offset(slot), index.size(slot));
        if (keep) {
            setFlags(slot, (byte) ((flags & ~ValueIndex.FLAG_PENDING) | ValueIndex.FLAG_BACKED_UP));
            return;
        }
        // the value's title and the certificate, put together first, then swapped in
        records.check(index.data, index.offset(slot), index.size(slot), tmp);
        short titleLen = records.size(index.data, true);
        short size = (short) (titleLen + 1 + Records.lengthFieldSize(cLen) + cLen);
        if (size > Records.MAX_RECORD || size < 0) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        short pos = records.write(index.data, building, (short) 0, true);
        building[pos++] = Records.TAG_CERTIFICATE;
        pos = Records.writeLength(building, pos, cLen);
        Util.arrayCopyNonAtomic(d, c, building, pos, cLen);
        replace(slot, building, (short) 0, size, index.type(slot), ValueIndex.FLAG_CERTIFICATE);
    }

    /**
     * Put new bytes in place of a record under the same id and slot, in one transaction: where it
     * is when they fit, else in a gap beside it (6A84 if none, after compaction).
     */
    private void replace(short slot, byte[] src, short srcOff, short size, byte type, byte flags) {
        if (size > Records.MAX_RECORD) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        short to = index.offset(slot);
        if (size > index.size(slot)) {
            to = index.reserve(size);  // compaction may move the record itself: read its place after
        }
        short old = index.offset(slot);
        short oldSize = index.size(slot);
        JCSystem.beginTransaction();
        index.clear(old, oldSize);
        Util.arrayCopy(src, srcOff, index.data, to, size);
        index.place(slot, type, flags, to, size);
        JCSystem.commitTransaction();
    }

    /**
     * COMMIT RESTORE: the value the vault returned, in the card's own encoding, checked against
     * the certificate (digest, X) and swapped in; a retry of a done one answers 9000.
     */
    private void commitRestore(APDU apdu, byte[] d, short off, short lc) {
        requirePin();
        if (lc == 0 || lc > Records.MAX_RECORD) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        short slot = entry(apdu);
        byte flags = index.flags(slot);
        if ((flags & ValueIndex.FLAG_CERTIFICATE) == 0) {
            if (flags == 0 && index.size(slot) == lc
                    && Util.arrayCompare(index.data, index.offset(slot), d, off, lc) == 0) {
                return;  // a retry after the swap: done already
            }
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
        }
        short[] cert = certFields;
        short at = certificateOf(slot);
        certificate(index.data, at, tmp[1], cert);
        boolean plain = index.data[cert[C_MODE]] == MODE_PLAIN;
        if (!plain) {  // E2 step 2-4: the registered value checked against the certificate, then opened
            lc = keys.openRegistered(d, off, lc, index.data, cert[C_CARD_ID], cert[C_HASH], cert[C_DIGEST],
                                     cert[C_DIGEST_LEN]);
            d = keys.out;
            off = 0;
        }
        finishRestore(slot, cert, d, off, lc);
    }

    /**
     * The value the vault (or the key manager) returned, checked against the certificate found
     * in cert[] (the digest; X for a plain one) and swapped in, in one transaction.
     */
    private void finishRestore(short slot, short[] cert, byte[] d, short off, short lc) {
        boolean plain = index.data[cert[C_MODE]] == MODE_PLAIN;
        records.check(d, off, lc, tmp);
        if (!records.canonical(d, off, lc)) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);  // only a value in the card's own encoding
        }
        // the digest's fields must be in the value: compare against the value as sent
        if (!digestMatches(index.data, cert[C_DIGEST], cert[C_DIGEST_LEN], d, off, lc)) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        sha256.reset();
        sha256.doFinal(d, off, lc, scratch, (short) 0);
        if (plain && Util.arrayCompare(scratch, (short) 0, index.data, cert[C_HASH], HASH_LEN) != 0) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);  // seed step 2-4: the value certified
        }
        replace(slot, d, off, lc, records.type(d), (byte) 0);
    }

    /** apdu/keys.py's ASSISTED_CONTEXT: an E6 value bound to the card and the certificate. */
    private static final byte[] ASSISTED = {'E', 'V', 'B', '-', 'E', '6', '-', '1'};
    /** The longest sealed value opened: a record's worth of padded ciphertext (card/backup.py MAX_ASSISTED). */
    private static final short MAX_ASSISTED = (short) (Seal.SALT_LEN + Seal.IV_LEN + Records.MAX_RECORD + Seal.BLOCK
                                                       + Seal.TAG_LEN);

    /**
     * COMMIT ASSISTED RESTORE (seed E6): the value the key manager opened with the escrowed key and
     * sealed to this card, under ECDH(transport key, pinned key manager key) with the context
     * "EVB-E6-1" | card id | SHA-256(certificate); then checked as COMMIT RESTORE checks a value.
     * The card never needs the decryption key. A retry after the swap answers 9000.
     */
    private void commitAssisted(APDU apdu, byte[] d, short off, short lc) {
        requirePin();
        if (lc == 0) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        short slot = entry(apdu);
        byte flags = index.flags(slot);
        if ((flags & ValueIndex.FLAG_CERTIFICATE) == 0) {
            if (flags == 0) {
                return;  // a retry after the swap: done already
            }
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
        }
        short[] cert = certFields;
        short at = certificateOf(slot);
        short certLen = tmp[1];
        certificate(index.data, at, certLen, cert);
        if (lc > MAX_ASSISTED) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);  // it would open to more than a record: not opened
        }
        short ctx = Util.arrayCopyNonAtomic(ASSISTED, (short) 0, scratch, (short) 0, (short) ASSISTED.length);
        ctx = Util.arrayCopyNonAtomic(cardId, (short) 0, scratch, ctx, CARD_ID_LEN);
        sha256.reset();
        ctx += sha256.doFinal(index.data, at, certLen, scratch, ctx);
        short n = keys.openAssisted(d, off, lc, scratch, (short) 0, ctx, keys.out, (short) 0);
        if (n > Records.MAX_RECORD) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        finishRestore(slot, cert, keys.out, (short) 0, n);
    }

    /**
     * SIGN RECEIPT: counter (4) and X (32). Signed only when no certificate on the card carries
     * that counter and X (their TLVs, 38 bytes, found in a certificate record) and no pending or
     * kept value, or its E2 ciphertext under the key, hashes to X; answers the import counter and the
     * signature.
     */
    private void signReceipt(APDU apdu, byte[] d, short off, short lc) {
        requirePin();
        if (lc != (short) (4 + HASH_LEN)) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        scratch[0] = CERT_COUNTER;
        scratch[1] = 4;
        Util.arrayCopyNonAtomic(d, off, scratch, (short) 2, (short) 4);
        scratch[6] = CERT_HASH;
        scratch[7] = HASH_LEN;
        Util.arrayCopyNonAtomic(d, (short) (off + 4), scratch, (short) 8, HASH_LEN);
        short named = (short) (8 + HASH_LEN);
        for (short s = 0; s < ValueIndex.CAPACITY; s++) {
            if (index.id(s) == 0) {
                continue;
            }
            byte flags = index.flags(s);
            short at = index.offset(s);
            short size = index.size(s);
            if ((flags & ValueIndex.FLAG_CERTIFICATE) != 0) {
                for (short i = 0; (short) (i + named) <= size; i++) {
                    if (Util.arrayCompare(index.data, (short) (at + i), scratch, (short) 0, named) == 0) {
                        ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
                    }
                }
            } else if ((flags & (ValueIndex.FLAG_PENDING | ValueIndex.FLAG_BACKED_UP)) != 0
                    && (hashIs(at, size, d, (short) (off + 4)) || keys.mode() != KeyStore.MODE_NONE
                        && keys.cipherHashIs(index.data, at, size, d, (short) (off + 4)))) {
                ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
            }
        }
        if (vaultKey[0] != 0x04) {
            ISOException.throwIt(SW_REFERENCE_NOT_USABLE);
        }
        Util.arrayCopyNonAtomic(handover.counter, (short) 0, answer, (short) 0, (short) 4);
        javacard.security.Signature s = ecc.startSign(RECEIPT, vaultKey, (short) 0, Ecc.POINT_LEN);
        s.update(cardId, (short) 0, CARD_ID_LEN);
        s.update(d, off, (short) (4 + HASH_LEN));
        short n = ecc.finishSign(answer, (short) 0, (short) 4, answer, (short) 4);
        respond(apdu, SRC_RAM, (short) (4 + n), lc, true);
    }

    // --- the backup-trigger manager (docs/APDU.md 6) ----------------------------------------------

    private void trigger(APDU apdu, byte ins, byte[] d, short off, short lc) {
        switch (ins) {
            case INS_GET_TRIGGERS:
                if (lc != 0) {
                    ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
                }
                respond(apdu, Triggers.SRC_SETTINGS, triggers.length(), lc, true);
                return;
            case INS_SELECT_FOR_BACKUP:
                respond(apdu, Triggers.SRC_SELECTED, triggers.select(d, off, lc), lc, true);
                return;
            case INS_PUT_TRIGGERS:
                requirePin();
                triggers.put(d, off, lc);
                return;
            default:
                requirePin();
                triggers.recordRun(d, off, lc);
        }
    }

    // --- the key store (docs/APDU.md 7: KeyStore) and the encrypted backup (5.2, seed E2) --------

    /** The key store's commands: all but GET KEY INFO need the PIN; the long answers are in its out[]. */
    private void keyCommand(APDU apdu, byte ins, byte[] d, short off, short lc) {
        if (ins != INS_GET_KEY_INFO) {
            requirePin();
        }
        byte[] buf = apdu.getBuffer();
        byte p1 = buf[ISO7816.OFFSET_P1];
        byte p2 = buf[ISO7816.OFFSET_P2];
        short n;
        switch (ins) {
            case INS_GENERATE_KEY:
                n = keys.generate(p1, p2, lc, answer);
                break;
            case INS_GET_KEY_INFO:
                n = keys.info(p1, p2, lc, answer);
                break;
            case INS_EXPORT_KEY:
            case INS_SPLIT_KEY:
                n = ins == INS_EXPORT_KEY ? keys.export(p1, p2, lc) : keys.split(p1, p2, lc);
                session[S_AT] = keys.answerAt();
                respond(apdu, SRC_KEYS, n, lc, true);
                return;
            case INS_NEW_TRANSPORT_KEY:
                n = keys.newTransport(lc, answer);
                break;
            case INS_IMPORT_KEY:
                n = keys.importKey(p1, d, off, lc, answer);
                break;
            default:
                n = keys.importShare(p1, p2, d, off, lc, answer);
        }
        respond(apdu, SRC_RAM, n, lc, ins == INS_GET_KEY_INFO);
    }

    /**
     * BEGIN ENCRYPTED BACKUP (card/backup.py _begin_encrypted_backup): like BEGIN BACKUP, but answers
     * the registered value the key store builds: a key and no rotation (6985), known digest tags (6A80), a value
     * (6985 for a certificate), a pinned vault key (6984), in that order.
     */
    private void beginEncrypted(APDU apdu, byte[] d, short off, short lc) {
        requirePin();
        if (keys.mode() == KeyStore.MODE_NONE || keys.rotating()) {
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);  // no key, or a rotation under way
        }
        short mask = KeyStore.digestMask(d, off, lc);
        short slot = entry(apdu);
        byte flags = index.flags(slot);
        if ((flags & ValueIndex.FLAG_CERTIFICATE) != 0) {
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
        }
        if (vaultKey[0] != 0x04) {
            ISOException.throwIt(SW_REFERENCE_NOT_USABLE);  // the audience of the signature
        }
        setFlags(slot, (byte) (flags | ValueIndex.FLAG_PENDING));
        short n = keys.registered(keys.current(), mask, null, (short) 0, (short) 0, index.data, index.offset(slot),
                                  index.size(slot));
        session[S_AT] = keys.answerAt();
        respond(apdu, SRC_KEYS, n, lc, (flags & ValueIndex.FLAG_PENDING) != 0);
    }

    // --- rotation (docs/APDU.md 7.1, card/rotation.py) ----------------------------------------

    private boolean anyPending() {
        for (short s = 0; s < ValueIndex.CAPACITY; s++) {
            if (index.id(s) != 0 && (index.flags(s) & ValueIndex.FLAG_PENDING) != 0) {
                return true;
            }
        }
        return false;
    }

    /** BEGIN ROTATION: a key and nothing pending (6985); the next key made once, its info answered. */
    private void beginRotation(APDU apdu, short lc) {
        requirePin();
        if (lc != 0) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        if (keys.mode() == KeyStore.MODE_NONE || anyPending()) {
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
        }
        boolean already = keys.rotating();
        respond(apdu, SRC_RAM, keys.beginRotation(answer), lc, already);
    }

    /**
     * The slot of an encrypted certificate P1-P2 names, not pending (6A83, 6985), its certificate
     * parsed into certFields.
     */
    private short encryptedCertificate(APDU apdu) {
        short slot = entry(apdu);
        byte flags = index.flags(slot);
        if ((flags & ValueIndex.FLAG_CERTIFICATE) == 0 || (flags & ValueIndex.FLAG_PENDING) != 0) {
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
        }
        short at = certificateOf(slot);
        certificate(index.data, at, tmp[1], certFields);
        if (index.data[certFields[C_MODE]] != MODE_ENCRYPTED) {
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
        }
        return slot;
    }

    private void requireRotation() {
        if (!keys.rotating()) {
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);  // no rotation under way
        }
    }

    /** REENCRYPT: the vault's registered value of an encrypted certificate, sealed again under the next key. */
    private void reencrypt(APDU apdu, byte[] d, short off, short lc) {
        requirePin();
        requireRotation();
        encryptedCertificate(apdu);
        short[] c = certFields;
        short n = keys.reencrypt(d, off, lc, index.data, c[C_CARD_ID], c[C_HASH], c[C_DIGEST], c[C_DIGEST_LEN]);
        session[S_AT] = keys.answerAt();
        respond(apdu, SRC_KEYS, n, lc, true);
    }

    /**
     * Where SWAP CERTIFICATE's registered value (A0) starts in d[off..+lc): every byte BER-TLV as
     * apdu.tlv decodes it (tags of 1-3 bytes, minimal lengths), the items before the first A0 of
     * the certificate's tags; 6A80 otherwise (apdu.rotation.split_swap).
     */
    private static short splitSwap(byte[] d, short off, short lc, short[] tmp) {
        short end = (short) (off + lc);
        short found = -1;
        for (short pos = off; pos < end;) {
            byte tag = d[pos];
            boolean high = (tag & 0x1F) == 0x1F;
            short n = 1;
            if (high) {  // a high tag number: more bytes while b8 is set, three at most, minimal
                boolean more = true;
                while (more) {
                    if ((short) (pos + n) >= end || n >= 3) {
                        ISOException.throwIt(ISO7816.SW_WRONG_DATA);
                    }
                    more = (d[(short) (pos + n)] & 0x80) != 0;
                    n++;
                }
                if (d[(short) (pos + 1)] == (byte) 0x80 || (n == 2 && d[(short) (pos + 1)] < 0x1F)) {
                    ISOException.throwIt(ISO7816.SW_WRONG_DATA);
                }
            }
            short len = Records.length(d, (short) (pos + n), end, tmp);
            if (found < 0) {
                if (!high && tag == (byte) 0xA0) {
                    found = pos;
                } else if (high || !isCertTag(tag)) {
                    ISOException.throwIt(ISO7816.SW_WRONG_DATA);  // a certificate, then a registered value
                }
            }
            pos = (short) (tmp[0] + len);
        }
        if (found < 0) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        return found;
    }

    private static boolean isCertTag(byte tag) {
        for (short i = 0; i < (short) CERT_TAGS.length; i++) {
            if (CERT_TAGS[i] == tag) {
                return true;
            }
        }
        return false;
    }

    /**
     * SWAP CERTIFICATE (card/rotation.py _swap_certificate): the vault's certificate of the
     * re-encrypted value and that registered value. Checked as the Python card checks, in its
     * order; the certificate record rewritten with the new certificate and flagged ROTATED in one
     * transaction; again with the same certificate, 9000.
     */
    private void swapCertificate(APDU apdu, byte[] d, short off, short lc) {
        requirePin();
        requireRotation();
        short reg = splitSwap(d, off, lc, tmp);
        short newLen = (short) (reg - off);
        short slot = encryptedCertificate(apdu);
        short at = certificateOf(slot);
        short curLen = tmp[1];
        if ((index.flags(slot) & ValueIndex.FLAG_ROTATED) != 0) {
            if (curLen == newLen && Util.arrayCompare(index.data, at, d, off, newLen) == 0) {
                return;  // a retry after the swap: done already
            }
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
        }
        short[] old = certFields;
        short[] nw = newCert;
        certificate(d, off, newLen, nw);
        short regLen = (short) (lc - newLen);
        keys.parseRegistered(d, reg, regLen);
        javacard.security.Signature v = ecc.startVerify(vaultKey, (short) 0, CERTIFICATE, d, nw[C_CARD_ID], CARD_ID_LEN);
        if (v == null || !ecc.finishVerify(d, off, nw[C_SIGNED_LEN], d, nw[C_SIGNATURE], nw[C_SIGNATURE_LEN])) {
            ISOException.throwIt(SW_VERIFICATION_FAILED);
        }
        if (Util.arrayCompare(d, nw[C_CARD_ID], cardId, (short) 0, CARD_ID_LEN) != 0 || d[nw[C_MODE]] != MODE_ENCRYPTED
                || nw[C_DIGEST_LEN] != old[C_DIGEST_LEN]
                || Util.arrayCompare(d, nw[C_DIGEST], index.data, old[C_DIGEST], old[C_DIGEST_LEN]) != 0) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        short n = keys.swapped(d, reg, regLen, d, nw[C_HASH], index.data, old[C_CARD_ID], old[C_HASH], old[C_DIGEST],
                               old[C_DIGEST_LEN]);
        if (!digestMatches(d, nw[C_DIGEST], nw[C_DIGEST_LEN], keys.out, KeyStore.OPENED, n)) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        rewriteCertificate(slot, at, curLen, d, off, newLen, (byte) (ValueIndex.FLAG_CERTIFICATE | ValueIndex.FLAG_ROTATED));
    }

    /**
     * A certificate record with its certificate (at index.data[at..+curLen)) replaced by
     * d[off..+newLen), in one transaction: the record as it is up to its certificate (8E, last),
     * then the new certificate (apdu.backup.certificate_record of the record's title).
     */
    private void rewriteCertificate(short slot, short at, short curLen, byte[] d, short off, short newLen, byte flags) {
        short head = (short) (at - 1 - Records.lengthFieldSize(curLen) - index.offset(slot));
        short size = (short) (head + 1 + Records.lengthFieldSize(newLen) + newLen);
        if (size > Records.MAX_RECORD || size < 0) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        Util.arrayCopyNonAtomic(index.data, index.offset(slot), building, (short) 0, head);
        building[head] = Records.TAG_CERTIFICATE;
        short pos = Records.writeLength(building, (short) (head + 1), newLen);
        Util.arrayCopyNonAtomic(d, off, building, pos, newLen);
        replace(slot, building, (short) 0, size, index.type(slot), flags);
    }

    /**
     * COMMIT ROTATION: with no encrypted certificate left unmoved (6985), the next key becomes the
     * key and the ROTATED and BACKED UP flags are cleared, in one transaction; again, or with no
     * rotation under way, the key's info.
     */
    private void commitRotation(APDU apdu, short lc) {
        requirePin();
        if (lc != 0) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        if (!keys.rotating()) {
            respond(apdu, SRC_RAM, keys.info(answer), lc, true);
            return;
        }
        for (short s = 0; s < ValueIndex.CAPACITY; s++) {
            byte flags = index.flags(s);
            if (index.id(s) != 0 && (flags & ValueIndex.FLAG_CERTIFICATE) != 0 && (flags & ValueIndex.FLAG_ROTATED) == 0) {
                short at = certificateOf(s);
                certificate(index.data, at, tmp[1], certFields);
                if (index.data[certFields[C_MODE]] == MODE_ENCRYPTED) {
                    ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);  // a value still under the old key
                }
            }
        }
        byte moved = (byte) (ValueIndex.FLAG_ROTATED | ValueIndex.FLAG_BACKED_UP);
        JCSystem.beginTransaction();
        keys.promoteNext();
        for (short s = 0; s < ValueIndex.CAPACITY; s++) {
            byte flags = index.flags(s);
            if (index.id(s) != 0 && (flags & moved) != 0) {
                index.setFlags(s, (byte) (flags & ~moved));
            }
        }
        JCSystem.commitTransaction();
        respond(apdu, SRC_RAM, keys.info(answer), lc, false);
    }

    // --- re-keying by the key manager (docs/APDU.md 7.2, card/rekey.py) ------------------------

    /**
     * SUCCEED CERTIFICATE: ``82`` an encrypted certificate's successor, ``9E`` the vault's
     * signature (SUCCESSION, to this card's identity key) over the old and the new signed parts.
     * Checked in card/rekey.py's order; the certificate rewritten, flags CERTIFICATE alone, in one
     * transaction; again with the same certificate, 9000.
     */
    private void succeedCertificate(APDU apdu, byte[] d, short off, short lc) {
        requirePin();
        short end = (short) (off + lc);
        // 82 certificate, 9E signature, nothing else, minimal lengths (apdu.rekey.Succession)
        if (lc == 0 || d[off] != (byte) 0x82) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        short newLen = Records.length(d, (short) (off + 1), end, tmp);
        short cert = tmp[0];
        short sigTag = (short) (cert + newLen);
        if (sigTag >= end || d[sigTag] != (byte) 0x9E) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        short sigLen = Records.length(d, (short) (sigTag + 1), end, tmp);
        short sig = tmp[0];
        if ((short) (sig + sigLen) != end) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        short slot = entry(apdu);
        byte flags = index.flags(slot);
        if ((flags & ValueIndex.FLAG_CERTIFICATE) == 0 || (flags & ValueIndex.FLAG_PENDING) != 0) {
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
        }
        short at = certificateOf(slot);
        short curLen = tmp[1];
        if (curLen == newLen && Util.arrayCompare(index.data, at, d, cert, newLen) == 0) {
            return;  // a retry after the swap: done already
        }
        short[] old = certFields;
        short[] nw = newCert;
        certificate(index.data, at, curLen, old);
        certificate(d, cert, newLen, nw);
        if (vaultKey[0] != 0x04) {
            ISOException.throwIt(SW_REFERENCE_NOT_USABLE);
        }
        if (index.data[old[C_MODE]] != MODE_ENCRYPTED || d[nw[C_MODE]] != MODE_ENCRYPTED
                || Util.arrayCompare(d, nw[C_CARD_ID], cardId, (short) 0, CARD_ID_LEN) != 0
                || nw[C_DIGEST_LEN] != old[C_DIGEST_LEN]
                || Util.arrayCompare(d, nw[C_DIGEST], index.data, old[C_DIGEST], old[C_DIGEST_LEN]) != 0) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        javacard.security.Signature v = ecc.startVerify(vaultKey, (short) 0, CERTIFICATE, d, nw[C_CARD_ID], CARD_ID_LEN);
        boolean good = v != null && ecc.finishVerify(d, cert, nw[C_SIGNED_LEN], d, nw[C_SIGNATURE], nw[C_SIGNATURE_LEN]);
        if (good) {
            // the succession's last fields: SHA-256 of the old and of the new signed part
            sha256.reset();
            sha256.doFinal(index.data, at, old[C_SIGNED_LEN], scratch, (short) 0);
            sha256.reset();
            sha256.doFinal(d, cert, nw[C_SIGNED_LEN], scratch, HASH_LEN);
            v = ecc.startVerify(vaultKey, (short) 0, SUCCESSION, ecc.identity, (short) 0, Ecc.POINT_LEN);
            v.update(cardId, (short) 0, CARD_ID_LEN);
            good = ecc.finishVerify(scratch, (short) 0, (short) (2 * HASH_LEN), d, sig, sigLen);
        }
        if (!good) {
            ISOException.throwIt(SW_VERIFICATION_FAILED);
        }
        rewriteCertificate(slot, at, curLen, d, cert, newLen, ValueIndex.FLAG_CERTIFICATE);
    }

    /**
     * REPLACE KEY, P1 = mode: the key the pinned key manager sealed for this card and mode in
     * place of the key (or of none); the transport key and the shares erased and the BACKED UP
     * marks dropped (kept copies were registered under the old key), in one transaction.
     */
    private void replaceKey(APDU apdu, byte[] d, short off, short lc) {
        requirePin();
        byte[] buf = apdu.getBuffer();
        byte mode = KeyStore.replaceMode(buf[ISO7816.OFFSET_P1]);
        if (buf[ISO7816.OFFSET_P2] != 0) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        if (keys.rotating() || anyPending()) {
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);  // a card-side rotation, backup or restore
        }
        keys.openReplacement(mode, d, off, lc);
        JCSystem.beginTransaction();
        keys.putReplaced(mode);
        for (short s = 0; s < ValueIndex.CAPACITY; s++) {
            byte flags = index.flags(s);
            if (index.id(s) != 0 && (flags & ValueIndex.FLAG_BACKED_UP) != 0) {
                index.setFlags(s, (byte) (flags & ~ValueIndex.FLAG_BACKED_UP));
            }
        }
        JCSystem.commitTransaction();
        respond(apdu, SRC_RAM, keys.info(answer), lc, false);
    }

    // --- PIN ---------------------------------------------------------------------------------

    /** The digits' length in a PIN block (4-8 ASCII digits padded with FF), or 6A80. */
    private static short pinDigits(byte[] buf, short off) {
        short n = Pin.digits(buf, off);
        if (n < 0) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
        }
        return n;
    }

    private static void checkDigits(byte[] buf, short off, short n) {
        if (!Pin.allDigits(buf, off, n)) {
            ISOException.throwIt(ISO7816.SW_WRONG_DATA);
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
        state[ST_LIFE] = LIFE_OPERATIONAL;
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

    private void verify(byte[] buf, byte[] d, short off, short lc) {
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
        short n = pinDigits(d, off);  // malformed: 6A80, and the status stays as it was
        verified[0] = false;
        check(pin, null, d, off, n);
        verified[0] = true;
    }

    private void changePin(byte[] buf, byte[] d, short off, short lc) {
        checkReference(buf, false);
        if (lc != (short) (2 * PIN_BLOCK_LEN)) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        short newLen = pinDigits(d, (short) (off + PIN_BLOCK_LEN));
        short oldLen = pinDigits(d, off);
        verified[0] = false;
        check(pin, null, d, off, oldLen);
        hash(null, d, (short) (off + PIN_BLOCK_LEN), newLen);
        pin.update(scratch, (short) 0, HASH_LEN);  // its own transaction; the counter is full already
        verified[0] = true;
    }

    private void resetRetryCounter(byte[] buf, byte[] d, short off, short lc) {
        checkReference(buf, false);
        if (lc != (short) (PUK_LEN + PIN_BLOCK_LEN)) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        short newLen = pinDigits(d, (short) (off + PUK_LEN));
        checkDigits(d, off, PUK_LEN);  // malformed: 6A80 before a try is spent
        verified[0] = false;
        check(puk, PUK_SALT, d, off, PUK_LEN);
        hash(null, d, (short) (off + PUK_LEN), newLen);
        pin.update(scratch, (short) 0, HASH_LEN);  // and its counter back to three
    }
}
