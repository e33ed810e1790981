package evb.wallet;

import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.JCSystem;
import javacard.framework.Util;

/**
 * The value record (docs/APDU.md 3.4) as STORE VALUE takes it: the checks the Python card makes
 * (apdu/records.py ValueRecord.from_bytes and body()) and its canonical re-encoding, so both cards
 * store the same bytes: fixed tag order, defaults written out (quantity 1, face value and balance
 * 0, currency JPY), empty texts and a zero total left out, dates checked against the calendar.
 *
 * A record is parsed once into a table of (offset, length) per tag 80..90; the canonical size is
 * known before a byte is written, so the record goes straight into the free data area.
 */
final class Records {
    static final byte TAG_FIRST = (byte) 0x80;
    static final byte TAG_ID = (byte) 0x80;
    static final byte TAG_TYPE = (byte) 0x81;
    static final byte TAG_ISSUER = (byte) 0x82;
    static final byte TAG_NAME = (byte) 0x83;
    static final byte TAG_QUANTITY = (byte) 0x84;
    static final byte TAG_FACE_VALUE = (byte) 0x85;
    static final byte TAG_BALANCE = (byte) 0x86;
    static final byte TAG_VALID_FROM = (byte) 0x87;
    static final byte TAG_VALID_TO = (byte) 0x88;
    static final byte TAG_PLACE = (byte) 0x89;
    static final byte TAG_ACQUIRED_AT = (byte) 0x8A;
    static final byte TAG_CURRENCY = (byte) 0x8B;
    static final byte TAG_PAYLOAD = (byte) 0x8C;
    static final byte TAG_FLAGS = (byte) 0x8D;
    static final byte TAG_CERTIFICATE = (byte) 0x8E;
    static final byte TAG_TOTAL = (byte) 0x8F;
    static final byte TAG_REMARKS = (byte) 0x90;
    private static final short TAG_COUNT = 17;

    static final short MAX_TEXT = 64;
    static final short MAX_PAYLOAD = 512;
    /** A stored record is at most this long (MAX_RECORD); a STORE VALUE longer than this cannot be one. */
    static final short MAX_RECORD = 1024;

    /** The canonical order of a stored value's tags (ValueRecord.body()). */
    private static final byte[] ORDER = {
        TAG_TYPE, TAG_NAME, TAG_ISSUER, TAG_QUANTITY, TAG_FACE_VALUE, TAG_BALANCE, TAG_CURRENCY,
        TAG_VALID_FROM, TAG_VALID_TO, TAG_PLACE, TAG_ACQUIRED_AT, TAG_TOTAL, TAG_REMARKS, TAG_PAYLOAD
    };
    private static final byte[] ONE = {0, 0, 0, 1};
    private static final byte[] ZERO = {0, 0, 0, 0};
    private static final byte[] JPY = {(byte) 'J', (byte) 'P', (byte) 'Y'};
    private static final byte[] DAYS_IN_MONTH = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

    /** Per tag 80..90: the value's offset in the parsed data, or -1 when absent; and its length. */
    private final short[] at;
    private final short[] len;

    Records() {
        at = JCSystem.makeTransientShortArray(TAG_COUNT, JCSystem.CLEAR_ON_RESET);
        len = JCSystem.makeTransientShortArray(TAG_COUNT, JCSystem.CLEAR_ON_RESET);
    }

    private static void wrongData() {
        ISOException.throwIt(ISO7816.SW_WRONG_DATA);
    }

    // --- TLV -------------------------------------------------------------------------------------

    /**
     * The length field at d[pos] in its minimal BER form (short, 81 xx, 82 xxxx), as apdu/tlv.py
     * reads it; the position after it is returned through out[0]. 6A80 for any other form.
     */
    static short length(byte[] d, short pos, short end, short[] out) {
        if (pos >= end) {
            wrongData();
        }
        short first = (short) (d[pos] & 0xFF);
        short n = 0;
        if (first < 0x80) {
            n = first;
            pos++;
        } else if (first == 0x81 && (short) (pos + 1) < end) {
            n = (short) (d[(short) (pos + 1)] & 0xFF);
            if (n < 0x80) {
                wrongData();
            }
            pos += 2;
        } else if (first == 0x82 && (short) (pos + 2) < end) {
            n = Util.getShort(d, (short) (pos + 1));
            if (n >= 0 && n <= 0xFF) {
                wrongData();
            }
            pos += 3;
        } else {
            wrongData();
        }
        if (n < 0 || n > (short) (end - pos)) {
            wrongData();  // past the end (or over 32767: longer than any APDU data we take)
        }
        out[0] = pos;
        return n;
    }

    /** The offset of the first value with a one-byte tag in a stored record, or -1; its length in out[1]. */
    static short locate(byte[] d, short off, short size, byte tag, short[] out) {
        short end = (short) (off + size);
        short pos = off;
        while (pos < end) {
            byte found = d[pos];
            short n = length(d, (short) (pos + 1), end, out);
            if (found == tag) {
                out[1] = n;
                return out[0];
            }
            pos = (short) (out[0] + n);
        }
        return -1;
    }

    private static short slot(byte tag) {
        return (short) ((tag & 0xFF) - 0x80);
    }

    // --- STORE VALUE: check, then re-encode -----------------------------------------------------

    /**
     * Parse and check a record as sent (6A80 for anything the Python card refuses), keeping its
     * fields in the table; answers the length of its canonical encoding. ``tmp`` is two shorts.
     */
    short check(byte[] d, short off, short n, short[] tmp) {
        for (short i = 0; i < TAG_COUNT; i++) {
            at[i] = -1;
            len[i] = 0;
        }
        short end = (short) (off + n);
        short pos = off;
        while (pos < end) {
            byte tag = d[pos];
            // one byte, 80..90: a multi-byte tag (low bits 1F) or any other is no tag of a record
            if ((short) (tag & 0xFF) < 0x80 || (short) (tag & 0xFF) > 0x90) {
                wrongData();
            }
            short vlen = length(d, (short) (pos + 1), end, tmp);
            short s = slot(tag);
            if (at[s] >= 0) {
                wrongData();  // each tag at most once
            }
            at[s] = tmp[0];
            len[s] = vlen;
            pos = (short) (tmp[0] + vlen);
        }
        // the card assigns the id, owns the flags, takes certificates only from the vault
        if (has(TAG_ID) || has(TAG_FLAGS) || has(TAG_CERTIFICATE)) {
            wrongData();
        }
        if (!has(TAG_TYPE) || len[slot(TAG_TYPE)] != 1 || !knownType(d[at[slot(TAG_TYPE)]])) {
            wrongData();
        }
        if (!has(TAG_NAME) || len[slot(TAG_NAME)] == 0) {
            wrongData();  // a value needs a name
        }
        checkText(d, TAG_NAME);
        checkText(d, TAG_ISSUER);
        checkText(d, TAG_PLACE);
        checkText(d, TAG_REMARKS);
        checkNumber(TAG_QUANTITY);
        checkNumber(TAG_FACE_VALUE);
        checkNumber(TAG_BALANCE);
        checkNumber(TAG_TOTAL);
        if (has(TAG_CURRENCY)) {
            short c = at[slot(TAG_CURRENCY)];
            if (len[slot(TAG_CURRENCY)] != 3 || d[c] < 0 || d[(short) (c + 1)] < 0 || d[(short) (c + 2)] < 0) {
                wrongData();  // 3 ASCII bytes
            }
        }
        checkDate(d, TAG_VALID_FROM, (short) 4);
        checkDate(d, TAG_VALID_TO, (short) 4);
        checkDate(d, TAG_ACQUIRED_AT, (short) 7);
        if (has(TAG_VALID_FROM) && has(TAG_VALID_TO)
                && compare(d, at[slot(TAG_VALID_FROM)], d, at[slot(TAG_VALID_TO)], (short) 4) > 0) {
            wrongData();  // valid-from after valid-to
        }
        if (len[slot(TAG_PAYLOAD)] > MAX_PAYLOAD) {
            wrongData();
        }
        return size(d, false);
    }

    /**
     * The length of the checked record's canonical encoding; with ``title``, of its title only
     * (what a certificate record keeps: type, name, issuer, validity, place, the defaults for the
     * rest, as apdu.backup.certificate_record), before the 8E its caller appends.
     */
    short size(byte[] d, boolean title) {
        short size = 0;
        for (short i = 0; i < (short) ORDER.length; i++) {
            short vlen = canonicalLength(d, ORDER[i], title);
            if (vlen >= 0) {
                size += (short) (1 + lengthFieldSize(vlen) + vlen);
            }
        }
        return size;
    }

    /** Write the checked record's canonical encoding (or its title) at dest[destOff]; answers where it ends. */
    short write(byte[] d, byte[] dest, short destOff, boolean title) {
        short pos = destOff;
        for (short i = 0; i < (short) ORDER.length; i++) {
            byte tag = ORDER[i];
            short vlen = canonicalLength(d, tag, title);
            if (vlen < 0) {
                continue;
            }
            dest[pos++] = tag;
            pos = writeLength(dest, pos, vlen);
            Util.arrayCopyNonAtomic(source(d, tag, title), offsetOf(tag, title), dest, pos, vlen);
            pos += vlen;
        }
        return pos;
    }

    /** Whether d[off..off+n), checked, is already in the canonical encoding (a value the card stored). */
    boolean canonical(byte[] d, short off, short n) {
        short pos = off;
        short end = (short) (off + n);
        for (short i = 0; i < (short) ORDER.length; i++) {
            byte tag = ORDER[i];
            short vlen = canonicalLength(d, tag, false);
            if (vlen < 0) {
                continue;
            }
            // the tag, a minimal length, then the value at the very place it was parsed from
            short next = (short) (pos + 1 + lengthFieldSize(vlen));
            if (next > end || d[pos] != tag || !has(tag) || at[slot(tag)] != next) {
                return false;
            }
            pos = (short) (next + vlen);
        }
        return pos == end;
    }

    byte type(byte[] d) {
        return d[at[slot(TAG_TYPE)]];
    }

    private byte[] source(byte[] d, byte tag, boolean title) {
        return has(tag) && !(title && isDefaulted(tag)) ? d : defaultOf(tag);
    }

    private short offsetOf(byte tag, boolean title) {
        return has(tag) && !(title && isDefaulted(tag)) ? at[slot(tag)] : 0;
    }

    private static boolean isDefaulted(byte tag) {
        return tag == TAG_QUANTITY || tag == TAG_FACE_VALUE || tag == TAG_BALANCE || tag == TAG_CURRENCY;
    }

    private boolean has(byte tag) {
        return at[slot(tag)] >= 0;
    }

    /** The value's length in the canonical record (or title), or -1 when it leaves the tag out. */
    private short canonicalLength(byte[] d, byte tag, boolean title) {
        short s = slot(tag);
        if (title && (tag == TAG_ACQUIRED_AT || tag == TAG_TOTAL || tag == TAG_REMARKS || tag == TAG_PAYLOAD)) {
            return -1;
        }
        switch (tag) {
            case TAG_QUANTITY:
            case TAG_FACE_VALUE:
            case TAG_BALANCE:
                return 4;  // always written, the default when absent
            case TAG_CURRENCY:
                return 3;
            case TAG_TOTAL:
                // written only when not zero
                return has(tag) && compare(d, at[s], ZERO, (short) 0, (short) 4) != 0 ? (short) 4 : (short) -1;
            default:
                // texts and the payload: left out when empty; dates and type when present
                return len[s] > 0 ? len[s] : (short) -1;
        }
    }

    private static byte[] defaultOf(byte tag) {
        if (tag == TAG_QUANTITY) {
            return ONE;
        }
        return tag == TAG_CURRENCY ? JPY : ZERO;
    }

    static short lengthFieldSize(short n) {
        if (n < 0x80) {
            return 1;
        }
        return n <= 0xFF ? (short) 2 : (short) 3;
    }

    static short writeLength(byte[] dest, short pos, short n) {
        if (n >= 0x80) {
            if (n <= 0xFF) {
                dest[pos++] = (byte) 0x81;
            } else {
                dest[pos++] = (byte) 0x82;
                dest[pos++] = (byte) (n >> 8);
            }
        }
        dest[pos++] = (byte) n;
        return pos;
    }

    private static boolean knownType(byte t) {
        return (t >= 1 && t <= 4) || t == 0x7F;
    }

    private void checkNumber(byte tag) {
        if (has(tag) && len[slot(tag)] != 4) {
            wrongData();
        }
    }

    private void checkText(byte[] d, byte tag) {
        if (!has(tag)) {
            return;
        }
        if (len[slot(tag)] > MAX_TEXT || !utf8(d, at[slot(tag)], len[slot(tag)])) {
            wrongData();
        }
    }

    /** A date (4 bytes) or date-time (7) in BCD: a calendar date, hours below 24, minutes and seconds below 60. */
    private void checkDate(byte[] d, byte tag, short size) {
        if (!has(tag)) {
            return;
        }
        short p = at[slot(tag)];
        if (len[slot(tag)] != size || !isDate(d, p)) {
            wrongData();
        }
        if (size == 7 && (bcd(d[(short) (p + 4)]) > 23 || bcd(d[(short) (p + 5)]) > 59 || bcd(d[(short) (p + 6)]) > 59)) {
            wrongData();
        }
    }

    // --- dates ---------------------------------------------------------------------------------

    /** Two BCD digits as a number, or 100 when either nibble is no digit. */
    static short bcd(byte b) {
        short hi = (short) ((b >> 4) & 0x0F);
        short lo = (short) (b & 0x0F);
        if (hi > 9 || lo > 9) {
            return 100;
        }
        return (short) (hi * 10 + lo);
    }

    static short year(byte[] d, short p) {
        return (short) (bcd(d[p]) * 100 + bcd(d[(short) (p + 1)]));
    }

    static boolean leap(short y) {
        return (short) (y % 4) == 0 && ((short) (y % 100) != 0 || (short) (y % 400) == 0);
    }

    static short daysInMonth(short y, short m) {
        return (m == 2 && leap(y)) ? 29 : DAYS_IN_MONTH[(short) (m - 1)];
    }

    /** A BCD YYYYMMDD at d[p] that names a day of the calendar (year 1..9999, as Python's date). */
    static boolean isDate(byte[] d, short p) {
        if (bcd(d[p]) > 99 || bcd(d[(short) (p + 1)]) > 99) {
            return false;
        }
        short y = year(d, p);
        short m = bcd(d[(short) (p + 2)]);
        short day = bcd(d[(short) (p + 3)]);
        return y >= 1 && m >= 1 && m <= 12 && day >= 1 && day <= daysInMonth(y, m);
    }

    /** Day of the year, 1..366, of a checked BCD date. */
    private static short dayOfYear(byte[] d, short p) {
        short y = year(d, p);
        short m = bcd(d[(short) (p + 2)]);
        short n = bcd(d[(short) (p + 3)]);
        for (short i = 1; i < m; i++) {
            n += daysInMonth(y, i);
        }
        return n;
    }

    private static boolean unsignedLess(short a, short b) {
        return (short) (a ^ (short) 0x8000) < (short) (b ^ (short) 0x8000);
    }

    /**
     * Whether checked BCD date ``to`` lies in [today, today + days], days an unsigned 16-bit count.
     * Counted year by year against what is left of ``days``, so no sum exceeds 16 bits.
     */
    static boolean within(byte[] d, short today, byte[] e, short to, short days) {
        if (compare(e, to, d, today, (short) 4) < 0) {
            return false;
        }
        short y = year(d, today);
        short last = year(e, to);
        if (y == last) {
            return !unsignedLess(days, (short) (dayOfYear(e, to) - dayOfYear(d, today)));
        }
        short first = (short) ((leap(y) ? 366 : 365) - dayOfYear(d, today) + dayOfYear(e, to));
        if (unsignedLess(days, first)) {
            return false;
        }
        short left = (short) (days - first);
        for (y++; y < last; y++) {
            short length = leap(y) ? (short) 366 : (short) 365;
            if (unsignedLess(left, length)) {
                return false;
            }
            left -= length;
        }
        return true;
    }

    /** Compare n bytes as unsigned numbers: negative, zero or positive. */
    static short compare(byte[] a, short aOff, byte[] b, short bOff, short n) {
        for (short i = 0; i < n; i++) {
            short x = (short) (a[(short) (aOff + i)] & 0xFF);
            short y = (short) (b[(short) (bOff + i)] & 0xFF);
            if (x != y) {
                return (short) (x - y);
            }
        }
        return 0;
    }

    // --- UTF-8 ---------------------------------------------------------------------------------

    /** Well-formed UTF-8 as Python's strict decoder takes it: no overlong forms, no surrogates, at most U+10FFFF. */
    static boolean utf8(byte[] d, short off, short n) {
        short end = (short) (off + n);
        short p = off;
        while (p < end) {
            short b = (short) (d[p] & 0xFF);
            short more;
            short lo = 0x80;
            short hi = 0xBF;
            if (b < 0x80) {
                p++;
                continue;
            } else if (b >= 0xC2 && b <= 0xDF) {
                more = 1;
            } else if (b >= 0xE0 && b <= 0xEF) {
                more = 2;
                if (b == 0xE0) {
                    lo = 0xA0;
                } else if (b == 0xED) {
                    hi = 0x9F;
                }
            } else if (b >= 0xF0 && b <= 0xF4) {
                more = 3;
                if (b == 0xF0) {
                    lo = 0x90;
                } else if (b == 0xF4) {
                    hi = 0x8F;
                }
            } else {
                return false;
            }
            if ((short) (end - p - 1) < more) {
                return false;
            }
            for (short i = 1; i <= more; i++) {
                short c = (short) (d[(short) (p + i)] & 0xFF);
                if (c < lo || c > hi) {
                    return false;
                }
                lo = 0x80;
                hi = 0xBF;
            }
            p += (short) (more + 1);
        }
        return true;
    }
}
