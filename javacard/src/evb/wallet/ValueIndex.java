package evb.wallet;

import javacard.framework.ISOException;
import javacard.framework.JCSystem;
import javacard.framework.Util;

/**
 * The index (seed fig. 851) over the data area, as card/index.py keeps it: 128 entries of
 * (id u16, type, flags, offset u16, size u16) in one persistent array, the records in another of
 * the Python card's default data-area size, so card info, allocation and compaction come out the
 * same. An entry with id 0 is free. Listing walks the entries in id order, allocation takes the
 * first gap (by offset) that fits, and compaction slides records down, one per transaction, when
 * only fragmentation stands in the way.
 */
final class ValueIndex {
    static final short CAPACITY = 128;
    static final short ENTRY = 8;
    /** The Python card's default: a 32 KiB EEPROM less its header, journal, wallet header and index. */
    static final short DATA_SIZE = 28656;

    static final short E_ID = 0;
    static final short E_TYPE = 2;
    static final short E_FLAGS = 3;
    static final short E_OFFSET = 4;
    static final short E_SIZE = 6;

    static final byte FLAG_CERTIFICATE = 0x01;
    static final byte FLAG_BACKED_UP = 0x02;
    static final byte FLAG_PENDING = 0x04;
    static final byte FLAG_ROTATED = 0x08;  // moved to a rotation's next key (docs/APDU.md 7.1)

    private static final short SW_NOT_ENOUGH_MEMORY = (short) 0x6A84;

    private static final byte[] FREE = new byte[ENTRY];

    final byte[] entries;
    final byte[] data;

    ValueIndex() {
        entries = new byte[(short) (CAPACITY * ENTRY)];
        data = new byte[DATA_SIZE];
    }

    // --- entries -------------------------------------------------------------------------------

    short id(short slot) {
        return Util.getShort(entries, (short) (slot * ENTRY + E_ID));
    }

    byte type(short slot) {
        return entries[(short) (slot * ENTRY + E_TYPE)];
    }

    byte flags(short slot) {
        return entries[(short) (slot * ENTRY + E_FLAGS)];
    }

    short offset(short slot) {
        return Util.getShort(entries, (short) (slot * ENTRY + E_OFFSET));
    }

    short size(short slot) {
        return Util.getShort(entries, (short) (slot * ENTRY + E_SIZE));
    }

    /** The slot holding value ``id`` (1..65535), or -1. */
    short find(short id) {
        for (short s = 0; s < CAPACITY; s++) {
            if (id(s) == id && id != 0) {
                return s;
            }
        }
        return -1;
    }

    /** The occupied slot with the smallest id above ``after`` (unsigned; 0 for the first), or -1. */
    short nextById(short after) {
        short best = -1;
        for (short s = 0; s < CAPACITY; s++) {
            short id = id(s);
            if (id != 0 && above(id, after) && (best < 0 || above(id(best), id))) {
                best = s;
            }
        }
        return best;
    }

    private static boolean above(short a, short b) {
        return (short) (a ^ (short) 0x8000) > (short) (b ^ (short) 0x8000);
    }

    /** The occupied slot with the smallest offset at or above ``from``, or -1 (entries never overlap). */
    private short nextByOffset(short from) {
        short best = -1;
        for (short s = 0; s < CAPACITY; s++) {
            if (id(s) != 0 && offset(s) >= from && (best < 0 || offset(s) < offset(best))) {
                best = s;
            }
        }
        return best;
    }

    /** Occupied entries; with ``flag`` non-zero, only those carrying it. */
    short count(byte flag) {
        short n = 0;
        for (short s = 0; s < CAPACITY; s++) {
            if (id(s) != 0 && (flag == 0 || (flags(s) & flag) != 0)) {
                n++;
            }
        }
        return n;
    }

    /** Whether any entry carries a flag: a certificate, a backed-up or a pending value. */
    boolean flagged() {
        for (short s = 0; s < CAPACITY; s++) {
            if (id(s) != 0 && flags(s) != 0) {
                return true;
            }
        }
        return false;
    }

    short usedBytes() {
        short n = 0;
        for (short s = 0; s < CAPACITY; s++) {
            if (id(s) != 0) {
                n += size(s);
            }
        }
        return n;
    }

    // --- allocation ----------------------------------------------------------------------------

    private short findGap(short size) {
        short cursor = 0;
        for (short s = nextByOffset(cursor); s >= 0; s = nextByOffset(cursor)) {
            if ((short) (offset(s) - cursor) >= size) {
                return cursor;
            }
            cursor = (short) (offset(s) + size(s));
        }
        return (short) (DATA_SIZE - cursor) >= size ? cursor : (short) -1;
    }

    /**
     * An offset with ``size`` free bytes, compacting first when only fragmentation stands in the
     * way; 6A84 when the index is full or the data area too small. Compaction commits its own
     * moves (outside the caller's transaction): none of them changes what the card holds.
     */
    short reserve(short size) {
        if (count((byte) 0) >= CAPACITY || (short) (DATA_SIZE - usedBytes()) < size) {
            ISOException.throwIt(SW_NOT_ENOUGH_MEMORY);
        }
        short gap = findGap(size);
        if (gap < 0) {
            compact();
            gap = findGap(size);
            if (gap < 0) {
                ISOException.throwIt(SW_NOT_ENOUGH_MEMORY);
            }
        }
        return gap;
    }

    private void compact() {
        short cursor = 0;
        for (short s = nextByOffset(cursor); s >= 0; s = nextByOffset(cursor)) {
            if (offset(s) > cursor) {
                JCSystem.beginTransaction();
                Util.arrayCopy(data, offset(s), data, cursor, size(s));  // as through a copy: ranges may overlap
                Util.setShort(entries, (short) (s * ENTRY + E_OFFSET), cursor);
                JCSystem.commitTransaction();
            }
            cursor = (short) (offset(s) + size(s));
        }
    }

    // --- writing (inside the caller's transaction) ---------------------------------------------

    /** Take the first free slot for a record already written at ``offset``; answers the slot. */
    short add(short id, byte type, byte flags, short offset, short size) {
        for (short s = 0; s < CAPACITY; s++) {
            if (id(s) == 0) {
                short e = (short) (s * ENTRY);
                Util.setShort(entries, (short) (e + E_ID), id);
                entries[(short) (e + E_TYPE)] = type;
                entries[(short) (e + E_FLAGS)] = flags;
                Util.setShort(entries, (short) (e + E_OFFSET), offset);
                Util.setShort(entries, (short) (e + E_SIZE), size);
                return s;
            }
        }
        ISOException.throwIt(SW_NOT_ENOUGH_MEMORY);
        return -1;
    }

    /** Free the slot's entry; answers where its record was, for {@link #erase} after the commit. */
    void remove(short slot) {
        Util.arrayCopy(FREE, (short) 0, entries, (short) (slot * ENTRY), ENTRY);
    }

    /**
     * Erase a freed record's bytes (seed: the area is erased). 3.0.4 has no atomic fill; the
     * bytes are free space once the entry is gone, so a power loss midway leaves only stale free
     * bytes, never a changed value.
     */
    void erase(short offset, short size) {
        Util.arrayFillNonAtomic(data, offset, size, (byte) 0);
    }

    /** Zero data-area bytes inside the caller's transaction (3.0.4 has no atomic fill). */
    void clear(short offset, short size) {
        while (size > 0) {
            short n = size < ENTRY ? size : ENTRY;
            Util.arrayCopy(FREE, (short) 0, data, offset, n);
            offset += n;
            size -= n;
        }
    }

    /** The entry of ``slot`` names other bytes: a swap of value and certificate (same id and slot). */
    void place(short slot, byte type, byte flags, short offset, short size) {
        short e = (short) (slot * ENTRY);
        entries[(short) (e + E_TYPE)] = type;
        entries[(short) (e + E_FLAGS)] = flags;
        Util.setShort(entries, (short) (e + E_OFFSET), offset);
        Util.setShort(entries, (short) (e + E_SIZE), size);
    }

    void setFlags(short slot, byte flags) {
        entries[(short) (slot * ENTRY + E_FLAGS)] = flags;
    }
}
