package evb.wallet;

import javacard.framework.APDU;
import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.JCSystem;
import javacard.framework.Util;

/**
 * The backup-trigger manager 109 (seed E9, docs/APDU.md 6, card/triggers.py): the settings TLV in
 * a fixed area, PUT TRIGGERS taking only what apdu.triggers.TriggerSettings.from_bytes takes (the
 * one canonical encoding, checked field by field in its order), and the condition evaluated on the
 * card against every live value with the date the host gives. A stored condition is at most 4 deep,
 * so the walk recurses at most 4 times.
 */
final class Triggers {
    /** Answer sources the wallet hands to {@link #emit}: the settings, SELECT FOR BACKUP's pairs. */
    static final byte SRC_SETTINGS = 5;
    static final byte SRC_SELECTED = 6;

    private static final short MAX_SETTINGS = 250;
    /** The settings area's size: a u16 length, then the TLV. */
    static final short AREA = 2 + MAX_SETTINGS;
    private static final byte S_VERSION = (byte) 0xC0;
    private static final byte S_CONDITION = (byte) 0xE0;
    private static final byte S_PERIOD = (byte) 0xC1;
    private static final byte S_POLICY = (byte) 0xC2;
    private static final byte S_LAST_RUN = (byte) 0xC3;
    private static final byte S_BOTH_BELOW = (byte) 0xC4;
    private static final short LAST_RUN_LEN = 6;  // C3 04 yyyymmdd

    private static final byte L_TYPE = (byte) 0x80;
    private static final byte L_NAME = (byte) 0x81;
    private static final byte L_MIN_SIZE = (byte) 0x82;
    private static final byte L_SHARE_OF_FREE = (byte) 0x83;
    private static final byte L_UNUSABLE_WITHIN = (byte) 0x84;
    private static final byte L_HELD_OVER = (byte) 0x85;
    private static final byte C_ALL = (byte) 0xA0;
    private static final byte C_ANY = (byte) 0xA1;
    private static final byte C_NOT = (byte) 0xA2;
    private static final short MAX_DEPTH = 4;
    private static final short MAX_CHILDREN = 8;
    private static final short MAX_NAME = 32;
    private static final short MAX_TYPES = 8;

    /** apdu.triggers.FACTORY_SETTINGS: unusable-within=30, every 30 days, ask. */
    private static final byte[] FACTORY = {
        S_VERSION, 1, 1, S_CONDITION, 4, L_UNUSABLE_WITHIN, 2, 0, 30, S_PERIOD, 2, 0, 30, S_POLICY, 1, 2
    };

    /** The settings area (EEPROM): u16 length, then the TLV. */
    private final byte[] area;
    private final ValueIndex index;
    /** RAM: today for SELECT FOR BACKUP (GET RESPONSE regenerates the pairs), products, a kept field. */
    private final byte[] ram;
    private static final short R_TODAY = 0;
    private static final short R_LEFT = 4;    // size * 100, 3 bytes
    private static final short R_RIGHT = 7;   // free * percent, 3 bytes
    private static final short R_KEPT = 10;   // a field kept across a rewrite: C3 or C4, at most 6 bytes
    private final short[] tmp;

    Triggers(ValueIndex index) {
        this.index = index;
        area = new byte[AREA];
        Util.setShort(area, (short) 0, (short) FACTORY.length);
        Util.arrayCopyNonAtomic(FACTORY, (short) 0, area, (short) 2, (short) FACTORY.length);
        ram = JCSystem.makeTransientByteArray((short) 16, JCSystem.CLEAR_ON_RESET);
        tmp = JCSystem.makeTransientShortArray((short) 2, JCSystem.CLEAR_ON_RESET);
    }

    private static void wrongData() {
        ISOException.throwIt(ISO7816.SW_WRONG_DATA);
    }

    /** GET TRIGGERS: the settings' length; {@link #emit} sends them. */
    short length() {
        return Util.getShort(area, (short) 0);
    }

    // --- the settings ----------------------------------------------------------------------------

    /**
     * Check settings at d[off..off+n) as TriggerSettings.from_bytes does, in its canonical order
     * C0 E0? C1 C2 C3? C4?: anything else is 6A80. Answers the offset where C3 stands or would
     * stand (after C2).
     */
    private short checkSettings(byte[] d, short off, short n) {
        if (n > MAX_SETTINGS) {
            wrongData();
        }
        short end = (short) (off + n);
        short pos = field(d, off, end, S_VERSION, (short) 1);
        if (pos < 0 || d[(short) (pos - 1)] != 1) {
            wrongData();
        }
        if (pos < end && d[pos] == S_CONDITION) {
            short len = Records.length(d, (short) (pos + 1), end, tmp);
            short at = tmp[0];
            if (checkNode(d, at, (short) (at + len), (short) 1) != (short) (at + len)) {
                wrongData();  // exactly one node
            }
            pos = (short) (at + len);
        }
        pos = field(d, pos, end, S_PERIOD, (short) 2);
        if (pos < 0) {
            wrongData();
        }
        pos = field(d, pos, end, S_POLICY, (short) 1);
        if (pos < 0 || d[(short) (pos - 1)] < 0 || d[(short) (pos - 1)] > 2) {
            wrongData();
        }
        short lastRun = pos;
        short next = field(d, pos, end, S_LAST_RUN, (short) 4);
        if (next >= 0) {
            if (!Records.isDate(d, (short) (next - 4))) {
                wrongData();
            }
            pos = next;
        }
        next = field(d, pos, end, S_BOTH_BELOW, (short) 1);
        if (next >= 0) {
            byte percent = d[(short) (next - 1)];
            if (percent < 1 || percent > 99) {
                wrongData();
            }
            pos = next;
        }
        if (pos != end) {
            wrongData();
        }
        return lastRun;
    }

    /** The offset after a field with this one-byte tag and exactly ``len`` bytes at d[pos], -1 if
     * another tag stands there (or none); 6A80 for this tag with another length. */
    private short field(byte[] d, short pos, short end, byte tag, short len) {
        if (pos >= end || d[pos] != tag) {
            return -1;
        }
        if (Records.length(d, (short) (pos + 1), end, tmp) != len) {
            wrongData();
        }
        return (short) (tmp[0] + len);
    }

    /**
     * Check one condition node at d[pos] (apdu.triggers.decode_condition: known tags, the limits,
     * depth at most 4); answers the offset after it.
     */
    private short checkNode(byte[] d, short pos, short end, short depth) {
        if (depth > MAX_DEPTH || pos >= end) {
            wrongData();
        }
        byte tag = d[pos];
        short len = Records.length(d, (short) (pos + 1), end, tmp);
        short at = tmp[0];
        short after = (short) (at + len);
        switch (tag) {
            case L_TYPE:
                if (len < 1 || len > MAX_TYPES) {
                    wrongData();
                }
                for (short i = at; i < after; i++) {
                    byte t = d[i];
                    if (!((t >= 1 && t <= 4) || t == 0x7F)) {
                        wrongData();
                    }
                }
                return after;
            case L_NAME:
                if (len < 1 || len > MAX_NAME || !Records.utf8(d, at, len)) {
                    wrongData();
                }
                return after;
            case L_MIN_SIZE:
            case L_UNUSABLE_WITHIN:
            case L_HELD_OVER:
                if (len != 2) {
                    wrongData();
                }
                return after;
            case L_SHARE_OF_FREE:
                if (len != 1 || d[at] == 0) {
                    wrongData();
                }
                return after;
            case C_NOT:
            case C_ALL:
            case C_ANY:
                short children = 0;
                for (short p = at; p < after; children++) {
                    p = checkNode(d, p, after, (short) (depth + 1));
                }
                if (tag == C_NOT ? children != 1 : (children < 2 || children > MAX_CHILDREN)) {
                    wrongData();
                }
                return after;
            default:
                wrongData();
                return -1;
        }
    }

    /** PUT TRIGGERS: condition, period and policy replaced, the last run kept; one transaction. */
    void put(byte[] d, short off, short lc) {
        short at = checkSettings(d, off, lc);
        short end = (short) (off + lc);
        if (at < end && d[at] == S_LAST_RUN) {
            wrongData();  // the card records the last run itself
        }
        short old = lastRun();
        short kept = old < 0 ? 0 : LAST_RUN_LEN;
        short total = (short) (lc + kept);
        if (total > MAX_SETTINGS) {
            wrongData();  // with the last run it would not fit (TriggerSettings.__bytes__)
        }
        if (kept > 0) {
            Util.arrayCopyNonAtomic(area, old, ram, R_KEPT, LAST_RUN_LEN);
        }
        short head = (short) (at - off);
        JCSystem.beginTransaction();
        Util.arrayCopy(d, off, area, (short) 2, head);
        if (kept > 0) {
            Util.arrayCopy(ram, R_KEPT, area, (short) (2 + head), LAST_RUN_LEN);
        }
        Util.arrayCopy(d, at, area, (short) (2 + head + kept), (short) (end - at));
        Util.setShort(area, (short) 0, total);
        JCSystem.commitTransaction();
    }

    /** Where the stored C3 stands, or -1; tmp[1] is where it would stand (after C2). */
    private short lastRun() {
        short at = checkSettings(area, (short) 2, length());
        tmp[1] = at;
        return at < (short) (2 + length()) && area[at] == S_LAST_RUN ? at : (short) -1;
    }

    /** RECORD RUN: the last run set to the given day, the rest as stored; one transaction. */
    void recordRun(byte[] d, short off, short lc) {
        checkDate(d, off, lc);
        short old = lastRun();
        short at = tmp[1];
        short end = (short) (2 + length());
        short tailFrom = old < 0 ? at : (short) (at + LAST_RUN_LEN);
        short tail = (short) (end - tailFrom);  // C4, if any: at most 3 bytes
        short total = (short) (at - 2 + LAST_RUN_LEN + tail);
        if (total > MAX_SETTINGS) {
            wrongData();
        }
        Util.arrayCopyNonAtomic(area, tailFrom, ram, R_KEPT, tail);
        JCSystem.beginTransaction();
        area[at] = S_LAST_RUN;
        area[(short) (at + 1)] = 4;
        Util.arrayCopy(d, off, area, (short) (at + 2), (short) 4);
        Util.arrayCopy(ram, R_KEPT, area, (short) (at + LAST_RUN_LEN), tail);
        Util.setShort(area, (short) 0, total);
        JCSystem.commitTransaction();
    }

    private static void checkDate(byte[] d, short off, short lc) {
        if (lc != 4 || !Records.isDate(d, off)) {
            wrongData();
        }
    }

    // --- SELECT FOR BACKUP -------------------------------------------------------------------------

    /** Note today and answer the length of the pairs the stored condition selects. */
    short select(byte[] d, short off, short lc) {
        checkDate(d, off, lc);
        Util.arrayCopyNonAtomic(d, off, ram, R_TODAY, (short) 4);
        return selected(null, (short) 0, (short) 0);
    }

    /** Send bytes [from, from + count) of an answer of ours. */
    void emit(APDU apdu, byte source, short from, short count) {
        if (source == SRC_SETTINGS) {
            apdu.sendBytesLong(area, (short) (2 + from), count);
        } else {
            selected(apdu, from, count);
        }
    }

    /**
     * Walk the live values (not certificates, not pending) in id order, sending the id and size
     * of each the condition selects within [from, from + count) when ``apdu`` is given; answers
     * the whole length. No condition stored: nothing selected.
     */
    private short selected(APDU apdu, short from, short count) {
        short cond = condition();
        if (cond < 0) {
            return 0;
        }
        short free = (short) (ValueIndex.DATA_SIZE - index.usedBytes());
        short total = 0;
        short end = (short) (from + count);
        for (short s = index.nextById((short) 0); s >= 0; s = index.nextById(index.id(s))) {
            if ((index.flags(s) & (ValueIndex.FLAG_CERTIFICATE | ValueIndex.FLAG_PENDING)) != 0
                    || !matches(cond, s, free)) {
                continue;
            }
            Util.setShort(ram, R_LEFT, index.id(s));
            Util.setShort(ram, (short) (R_LEFT + 2), index.size(s));
            EvbApplet.sendPart(apdu, ram, R_LEFT, total, (short) 4, from, end);
            total += 4;
        }
        return total;
    }

    /** The offset of the stored condition's node, or -1 when there is none. */
    private short condition() {
        short pos = (short) (2 + 3);  // after C0 01 01
        if (area[pos] != S_CONDITION) {
            return -1;
        }
        Records.length(area, (short) (pos + 1), (short) (2 + length()), tmp);
        return tmp[0];
    }

    /** card/triggers.py _matches over the stored node at area[node] for the value in ``slot``. */
    private boolean matches(short node, short slot, short free) {
        byte tag = area[node];
        short len = Records.length(area, (short) (node + 1), (short) (2 + length()), tmp);
        short v = tmp[0];
        short end = (short) (v + len);
        short rec = index.offset(slot);
        short size = index.size(slot);
        byte[] data = index.data;
        switch (tag) {
            case C_ALL:
            case C_ANY:
                for (short p = v; p < end; p = next(p)) {
                    if (matches(p, slot, free) != (tag == C_ALL)) {
                        return tag != C_ALL;
                    }
                }
                return tag == C_ALL;
            case C_NOT:
                return !matches(v, slot, free);
            case L_TYPE:
                for (short i = v; i < end; i++) {
                    if (area[i] == index.type(slot)) {
                        return true;
                    }
                }
                return false;
            case L_NAME:
                short name = Records.locate(data, rec, size, Records.TAG_NAME, tmp);
                short nameLen = tmp[1];
                for (short i = 0; name >= 0 && (short) (i + len) <= nameLen; i++) {
                    if (Util.arrayCompare(data, (short) (name + i), area, v, len) == 0) {
                        return true;
                    }
                }
                return false;
            case L_MIN_SIZE:
                return Records.compare(ram, sizeBytes(size), area, v, (short) 2) >= 0;
            case L_SHARE_OF_FREE:
                // size * 100 >= free * percent, in 3-byte products (no int)
                times(size, (byte) 100, R_LEFT);
                times(free, area[v], R_RIGHT);
                return Records.compare(ram, R_LEFT, ram, R_RIGHT, (short) 3) >= 0;
            case L_UNUSABLE_WITHIN:
                short days = Util.getShort(area, v);
                short to = Records.locate(data, rec, size, Records.TAG_VALID_TO, tmp);
                if (to >= 0 && Records.compare(data, to, ram, R_TODAY, (short) 4) < 0) {
                    return true;  // expired
                }
                short from = Records.locate(data, rec, size, Records.TAG_VALID_FROM, tmp);
                // valid only from a day after today + days
                return from >= 0 && Records.compare(data, from, ram, R_TODAY, (short) 4) > 0
                        && !Records.within(ram, R_TODAY, data, from, days);
            case L_HELD_OVER:
                short acquired = Records.locate(data, rec, size, Records.TAG_ACQUIRED_AT, tmp);
                // today - acquired > days: today lies after [acquired, acquired + days]
                return acquired >= 0 && Records.compare(ram, R_TODAY, data, acquired, (short) 4) > 0
                        && !Records.within(data, acquired, ram, R_TODAY, Util.getShort(area, v));
            default:
                return false;  // PUT TRIGGERS admits only the nodes above
        }
    }

    /** The offset after the stored node at area[p]. */
    private short next(short p) {
        short len = Records.length(area, (short) (p + 1), (short) (2 + length()), tmp);
        return (short) (tmp[0] + len);
    }

    /** The size as 2 bytes in ram[R_RIGHT..] (free for it while MIN_SIZE compares); answers where. */
    private short sizeBytes(short size) {
        Util.setShort(ram, R_RIGHT, size);
        return R_RIGHT;
    }

    /** ram[at..at+3) = a (u16) * b (u8), byte by byte: each partial product is 16 bits. */
    private void times(short a, byte b, short at) {
        short m = (short) (b & 0xFF);
        short low = (short) ((short) (a & 0xFF) * m);
        short high = (short) ((short) ((a >> 8) & 0xFF) * m);
        short mid = (short) (((low >> 8) & 0xFF) + (high & 0xFF));
        ram[(short) (at + 2)] = (byte) low;
        ram[(short) (at + 1)] = (byte) mid;
        ram[at] = (byte) (((high >> 8) & 0xFF) + ((mid >> 8) & 0xFF));
    }
}
