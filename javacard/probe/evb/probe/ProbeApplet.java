package evb.probe;

import javacard.framework.APDU;
import javacard.framework.Applet;
import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.JCSystem;
import javacard.framework.OwnerPIN;
import javacard.framework.TransactionException;
import javacard.framework.Util;
import javacard.security.AESKey;
import javacard.security.KeyBuilder;
import javacard.security.KeyPair;
import javacard.security.RandomData;
import javacard.security.Signature;

/**
 * A tiny applet for the harness's own tests (tests/javacard/test_harness.py), not for a card:
 * each instruction makes one kind of persistent write, in a transaction or not, and ends that
 * transaction as P1 says; READ answers everything it keeps.
 *
 * Writes (CLA 80): INS 10 Util.arrayCopy of the data into store; 11 the data byte by byte
 * (bastore); 12 arrayCopyNonAtomic; 13 arrayFillNonAtomic with the first data byte; 14 setShort
 * of the first two data bytes at store[0], sastore, putfield, putstatic and aastore; 15 the PIN
 * updated to the data (OwnerPIN.update); 16 the PIN checked against the data (OwnerPIN.check);
 * 17 the data into both transient arrays; 1A the data (16 bytes) as the AES key; 1C as many random bytes into store; 18 two transactions, the data into store[0..) then
 * into store[8..); 19 the data copied P2 times into big (its commit capacity, BUFFER_FULL
 * answered 6403 after an abort); 1B a new EC key pair.
 * INS 21 answers the AES key, the public point, and whether the pair signs and verifies. P2 of 10-17, 1A and 1C: 1 inside a transaction; P1: 0 commit, 1 abort,
 * 2 throw 6F01, 3 return with the transaction open. INS 20 READ.
 */
public final class ProbeApplet extends Applet {
    private static short sCounter;

    private final byte[] store = new byte[16];
    private final short[] shorts = new short[2];
    private final Object[] objects = new Object[1];
    private final byte[] big = new byte[2048];
    private final byte[] onReset;
    private final byte[] onDeselect;
    private final OwnerPIN pin;
    private final AESKey aes;
    private final KeyPair pair;
    private final Signature ecdsa;
    private final RandomData random;
    private short counter;

    private ProbeApplet() {
        onReset = JCSystem.makeTransientByteArray((short) 4, JCSystem.CLEAR_ON_RESET);
        onDeselect = JCSystem.makeTransientByteArray((short) 4, JCSystem.CLEAR_ON_DESELECT);
        pin = new OwnerPIN((byte) 3, (byte) 8);
        pin.update(new byte[] {1, 2, 3, 4}, (short) 0, (byte) 4);
        aes = (AESKey) KeyBuilder.buildKey(KeyBuilder.TYPE_AES, KeyBuilder.LENGTH_AES_128, false);
        pair = new KeyPair(KeyPair.ALG_EC_FP, KeyBuilder.LENGTH_EC_FP_256);
        ecdsa = Signature.getInstance(Signature.ALG_ECDSA_SHA_256, false);
        random = RandomData.getInstance(RandomData.ALG_SECURE_RANDOM);
    }

    public static void install(byte[] bArray, short bOffset, byte bLength) {
        new ProbeApplet().register();
    }

    public void process(APDU apdu) {
        if (selectingApplet()) {
            return;
        }
        byte[] buf = apdu.getBuffer();
        byte ins = buf[ISO7816.OFFSET_INS];
        byte p1 = buf[ISO7816.OFFSET_P1];
        short n = apdu.setIncomingAndReceive();
        short off = apdu.getOffsetCdata();
        if (ins == (byte) 0x20) {
            read(apdu);
            return;
        }
        if (ins == (byte) 0x18) {
            JCSystem.beginTransaction();
            Util.arrayCopy(buf, off, store, (short) 0, n);
            JCSystem.commitTransaction();
            JCSystem.beginTransaction();
            Util.arrayCopy(buf, off, store, (short) 8, n);
            JCSystem.commitTransaction();
            return;
        }
        if (ins == (byte) 0x1B) {
            pair.genKeyPair();
            return;
        }
        if (ins == (byte) 0x21) {
            keys(apdu);
            return;
        }
        if (ins == (byte) 0x19) {
            capacity(buf, off, n, buf[ISO7816.OFFSET_P2]);
            return;
        }
        boolean inTransaction = buf[ISO7816.OFFSET_P2] == 1;
        if (inTransaction) {
            JCSystem.beginTransaction();
        }
        write(ins, buf, off, n);
        if (!inTransaction) {
            return;
        }
        switch (p1) {
            case 0:
                JCSystem.commitTransaction();
                return;
            case 1:
                JCSystem.abortTransaction();
                return;
            case 2:
                ISOException.throwIt((short) 0x6F01);
                return;
            default:
                return;
        }
    }

    private void write(byte ins, byte[] buf, short off, short n) {
        switch (ins) {
            case 0x10:
                Util.arrayCopy(buf, off, store, (short) 0, n);
                return;
            case 0x11:
                for (short i = 0; i < n; i++) {
                    store[i] = buf[(short) (off + i)];
                }
                return;
            case 0x12:
                Util.arrayCopyNonAtomic(buf, off, store, (short) 0, n);
                return;
            case 0x13:
                Util.arrayFillNonAtomic(store, (short) 0, n, buf[off]);
                return;
            case 0x14:
                Util.setShort(store, (short) 0, Util.getShort(buf, off));
                shorts[0] = Util.getShort(buf, off);
                counter++;
                sCounter++;
                if (objects[0] == null) {
                    objects[0] = shorts;
                } else {
                    objects[0] = null;
                }
                return;
            case 0x15:
                pin.update(buf, off, (byte) n);
                return;
            case 0x16:
                if (!pin.check(buf, off, (byte) n)) {
                    ISOException.throwIt((short) (0x63C0 | pin.getTriesRemaining()));
                }
                return;
            case 0x1A:
                aes.setKey(buf, off);
                return;
            case 0x1C:
                random.generateData(store, (short) 0, n);
                return;
            case 0x17:
                Util.arrayCopyNonAtomic(buf, off, onReset, (short) 0, n);
                Util.arrayCopyNonAtomic(buf, off, onDeselect, (short) 0, n);
                return;
            default:
                ISOException.throwIt(ISO7816.SW_INS_NOT_SUPPORTED);
        }
    }

    private void capacity(byte[] buf, short off, short n, byte copies) {
        JCSystem.beginTransaction();
        try {
            for (short i = 0; i < (copies & 0xFF); i++) {
                Util.arrayCopy(buf, off, big, (short) ((i * n) % (big.length - n)), n);
            }
        } catch (TransactionException e) {
            JCSystem.abortTransaction();
            ISOException.throwIt((short) (0x6400 | e.getReason()));
        }
        JCSystem.commitTransaction();
    }

    /** The AES key (16, zeros if unset) | the public point (65) | 1 if a signature by the private key verifies. */
    private void keys(APDU apdu) {
        byte[] buf = apdu.getBuffer();
        Util.arrayFillNonAtomic(buf, (short) 0, (short) 82, (byte) 0);
        if (aes.isInitialized()) {
            aes.getKey(buf, (short) 0);
        }
        if (pair.getPublic().isInitialized()) {
            ((javacard.security.ECPublicKey) pair.getPublic()).getW(buf, (short) 16);
            ecdsa.init(pair.getPrivate(), Signature.MODE_SIGN);
            short n = ecdsa.sign(buf, (short) 0, (short) 16, buf, (short) 100);
            ecdsa.init(pair.getPublic(), Signature.MODE_VERIFY);
            buf[81] = (byte) (ecdsa.verify(buf, (short) 0, (short) 16, buf, (short) 100, n) ? 1 : 0);
        }
        apdu.setOutgoingAndSend((short) 0, (short) 82);
    }

    /** store | counter | sCounter | shorts[0] | objects[0] set | depth | max and unused capacity |
     * onReset | onDeselect | PIN tries | the sum of big's bytes. */
    private void read(APDU apdu) {
        byte[] buf = apdu.getBuffer();
        Util.arrayCopyNonAtomic(store, (short) 0, buf, (short) 0, (short) 16);
        Util.setShort(buf, (short) 16, counter);
        Util.setShort(buf, (short) 18, sCounter);
        Util.setShort(buf, (short) 20, shorts[0]);
        buf[22] = (byte) (objects[0] == null ? 0 : 1);
        buf[23] = JCSystem.getTransactionDepth();
        Util.setShort(buf, (short) 24, JCSystem.getMaxCommitCapacity());
        Util.setShort(buf, (short) 26, JCSystem.getUnusedCommitCapacity());
        Util.arrayCopyNonAtomic(onReset, (short) 0, buf, (short) 28, (short) 4);
        Util.arrayCopyNonAtomic(onDeselect, (short) 0, buf, (short) 32, (short) 4);
        buf[36] = pin.getTriesRemaining();
        short sum = 0;
        for (short i = 0; i < big.length; i++) {
            sum += big[i];
        }
        Util.setShort(buf, (short) 37, sum);
        apdu.setOutgoingAndSend((short) 0, (short) 39);
    }
}
