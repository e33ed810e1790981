package evb.wallet;

/** The PIN block both applets take (apdu/wallet.py parse_pin_block): 4-8 ASCII digits, FF padding to 8. */
final class Pin {
    static final byte BLOCK_LEN = 8;
    private static final byte MIN = 4;
    private static final byte PAD = (byte) 0xFF;

    private Pin() {
    }

    /** The number of digits of the PIN block at buf[off], or -1 when it is not one. */
    static short digits(byte[] buf, short off) {
        short n = BLOCK_LEN;
        while (n > 0 && buf[(short) (off + n - 1)] == PAD) {
            n--;
        }
        return n >= MIN && allDigits(buf, off, n) ? n : (short) -1;
    }

    static boolean allDigits(byte[] buf, short off, short n) {
        for (short i = 0; i < n; i++) {
            byte b = buf[(short) (off + i)];
            if (b < (byte) 0x30 || b > (byte) 0x39) {
                return false;
            }
        }
        return true;
    }
}
