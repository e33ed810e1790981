package evb.wallet;

import javacard.framework.APDU;
import javacard.framework.Applet;
import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.JCSystem;
import javacard.framework.Util;
import javacard.security.ECPrivateKey;
import javacard.security.KeyBuilder;

/**
 * A test applet (never in the CAP): the package's {@link Seal} behind four instructions, so the
 * tests check it against apdu/seal.py byte for byte before any command of the card relies on it.
 * Data: key (32 scalar or AES key; 65 point for SEAL) | context length (1) | context | input.
 * INS 01 OPEN, 02 SEAL, 03 OPEN SYMMETRIC, 04 SEAL SYMMETRIC; answers the output.
 */
public final class SealProbe extends Applet {
    private final Seal seal = new Seal();
    private final ECPrivateKey key;
    private final byte[] in = JCSystem.makeTransientByteArray((short) 1400, JCSystem.CLEAR_ON_DESELECT);
    private final byte[] out = JCSystem.makeTransientByteArray((short) 1400, JCSystem.CLEAR_ON_DESELECT);

    private SealProbe() {
        key = (ECPrivateKey) KeyBuilder.buildKey(KeyBuilder.TYPE_EC_FP_PRIVATE, KeyBuilder.LENGTH_EC_FP_256, false);
        P256.setCurve(key);
    }

    public static void install(byte[] bArray, short bOffset, byte bLength) {
        new SealProbe().register();
    }

    public void process(APDU apdu) {
        if (selectingApplet()) {
            return;
        }
        byte[] buf = apdu.getBuffer();
        byte ins = buf[ISO7816.OFFSET_INS];
        short len = apdu.setIncomingAndReceive();
        Util.arrayCopyNonAtomic(buf, ISO7816.OFFSET_CDATA, in, (short) 0, len);
        short keyLen = ins == 0x02 ? Seal.E_LEN : Seal.KEY_LEN;
        short ctxLen = (short) (in[keyLen] & 0xFF);
        short ctx = (short) (keyLen + 1);
        short data = (short) (ctx + ctxLen);
        short dataLen = (short) (len - data);
        short n;
        if (ins == 0x01) {
            key.setS(in, (short) 0, Seal.KEY_LEN);
            n = seal.open(key, in, data, dataLen, in, ctx, ctxLen, out, (short) 0);
        } else if (ins == 0x02) {
            n = seal.seal(in, (short) 0, in, data, dataLen, in, ctx, ctxLen, out, (short) 0);
        } else if (ins == 0x03) {
            n = seal.openSymmetric(in, (short) 0, in, data, dataLen, in, ctx, ctxLen, out, (short) 0);
        } else if (ins == 0x04) {
            n = seal.sealSymmetric(in, (short) 0, in, data, dataLen, in, ctx, ctxLen, out, (short) 0);
        } else {
            ISOException.throwIt(ISO7816.SW_INS_NOT_SUPPORTED);
            return;
        }
        Util.arrayCopyNonAtomic(out, (short) 0, buf, (short) 0, n);
        apdu.setOutgoingAndSend((short) 0, n);
    }
}
