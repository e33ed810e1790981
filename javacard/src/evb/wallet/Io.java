package evb.wallet;

import javacard.framework.APDU;
import javacard.framework.ISO7816;
import javacard.framework.ISOException;

/** Response shaping shared by the package's applets, as the Python card does it (card/card.py). */
final class Io {
    private Io() {
    }

    /**
     * Answer buf[0..length) on T=1's terms: no Le, the status alone; an Le too short, 6Cxx with
     * the exact length (only read-only case-2 commands come here with one).
     */
    static void send(APDU apdu, short length) {
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
}
