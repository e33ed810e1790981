package evb.harness;

import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import javacard.framework.APDU;
import javacard.framework.JCSystem;
import javacard.framework.TransactionException;
import javacard.security.Key;
import javacard.security.KeyPair;

/**
 * The card's persistent memory as the instrumented applet sees it (see {@link Instrument}): what
 * jCardSim lacks, transactions that roll back, a commit buffer of finite size and a power cut at
 * a chosen write.
 *
 * Every store the applet (and OwnerPIN) makes to a persistent array or field comes here before
 * it happens. A store to a transient array (JCSystem.makeTransient*, the APDU buffer) passes
 * through untouched: RAM is never journalled and never counted. A persistent store is counted
 * (the power-cut hook counts these), and inside a transaction its old value goes to an undo log
 * first, charged against the commit capacity. Why undo rather than redo: the applet reads its
 * own writes inside a transaction, and with an undo log the heap simply is the logical view.
 *
 * One store, one setShort, one arrayCopy is one write, atomic as the Java Card spec makes it;
 * a non-atomic copy or fill is one write too, but a cut there lands its first half, as a real
 * card's page programming may (the spec leaves its contents undefined). The non-atomic variants
 * are never journalled, even inside a transaction (the spec: they do not use the transaction
 * facility), so an abort leaves what they wrote.
 *
 * A power cut (the armed write) throws {@link PowerLoss}; from then on every persistent write
 * throws it again, so an applet that catches Throwable still changes nothing, until the harness
 * has rolled the open transaction back ({@link #powerOn}), which is what a card's power-on
 * recovery does. Single-threaded, as a card is: the harness serves one command at a time.
 */
public final class Memory {
    /** Bytes a journal entry costs besides the data it saves (address, length): a card's overhead. */
    static final int ENTRY_OVERHEAD = 4;
    static final short DEFAULT_CAPACITY = 4096;

    /** The power went while the applet was writing: nothing may be written until power-on. */
    public static final class PowerLoss extends Error {
        private static final long serialVersionUID = 1L;

        PowerLoss(long write) {
            super("power cut at persistent write " + write, null, false, false);
        }
    }

    private interface Undo {
        void undo();
    }

    private static final Map<Object, Byte> TRANSIENT = new IdentityHashMap<>();
    private static final List<Undo> LOG = new ArrayList<>();
    private static short capacity = Integer.getInteger("evb.harness.commitCapacity", DEFAULT_CAPACITY).shortValue();
    private static int used;
    private static boolean inTransaction;
    private static long writes;
    private static long cutAt = -1;
    private static boolean torn;
    private static byte[][] apduBuffers = new byte[0][];

    private Memory() {
    }

    // --- the harness's side -----------------------------------------------------------------

    /** The APDU buffers (RAM) of the runtime, which the applet writes as it answers. */
    static void apduBuffers(byte[]... buffers) {
        apduBuffers = buffers.clone();
    }

    /** Persistent writes since the JVM started: the host diffs it around a command. */
    static long writes() {
        return writes;
    }

    /** Cut the power after {@code n} more persistent writes (the next one is torn); -1 disarms. */
    static void cutAfter(long n) {
        cutAt = n < 0 ? -1 : writes + n;
    }

    static boolean torn() {
        return torn;
    }

    static boolean inTransaction() {
        return inTransaction;
    }

    /** The runtime aborts a transaction left open by process(), returned from or thrown out of. */
    static void endOfCommand() {
        if (inTransaction) {
            rollBack();
        }
    }

    /** Power back: the card's recovery rolls back what the cut left uncommitted. */
    static void powerOn() {
        rollBack();
        torn = false;
        cutAt = -1;
    }

    /** A new card: no transaction, a fresh counter of nothing; the transient registry forgotten. */
    static void newCard() {
        LOG.clear();
        used = 0;
        inTransaction = false;
        torn = false;
        cutAt = -1;
        TRANSIENT.clear();
    }

    static void setCapacity(short bytes) {
        capacity = bytes;
    }

    /** The clear event of a transient array, or NOT_A_TRANSIENT_OBJECT. */
    static byte transientEvent(Object array) {
        Byte event = TRANSIENT.get(array);
        return event == null ? JCSystem.NOT_A_TRANSIENT_OBJECT : event;
    }

    static void registerTransient(Object array, byte event) {
        TRANSIENT.put(array, event);
    }

    // --- the core -------------------------------------------------------------------------------

    static boolean persistent(Object array) {
        if (TRANSIENT.containsKey(array)) {
            return false;
        }
        for (byte[] buffer : apduBuffers) {
            if (array == buffer) {
                return false;
            }
        }
        return true;
    }

    /**
     * One atomic persistent write about to land: refused whole when the commit buffer cannot take
     * its old value, cut before it lands when the hook says so, else counted and (in a transaction)
     * its undo saved.
     */
    private static void store(int bytes, Undo undo) {
        int cost = bytes + ENTRY_OVERHEAD;
        if (inTransaction && used + cost > capacity) {
            TransactionException.throwIt(TransactionException.BUFFER_FULL);
        }
        write();
        if (inTransaction) {
            used += cost;
            LOG.add(undo);
        }
    }

    /** Count one persistent write, or cut the power before it lands. */
    private static void write() {
        if (torn) {
            throw new PowerLoss(writes);
        }
        if (cutAt >= 0 && writes >= cutAt) {
            torn = true;
            throw new PowerLoss(writes);
        }
        writes++;
    }

    /** Whether the armed cut falls on this write (a non-atomic one lands half first). */
    private static boolean cutsHere() {
        return !torn && cutAt >= 0 && writes >= cutAt;
    }

    private static void rollBack() {
        for (int i = LOG.size() - 1; i >= 0; i--) {
            LOG.get(i).undo();
        }
        LOG.clear();
        used = 0;
        inTransaction = false;
    }

    // --- JCSystem ---------------------------------------------------------------------------

    public static void beginTransaction() {
        if (inTransaction) {
            TransactionException.throwIt(TransactionException.IN_PROGRESS);
        }
        inTransaction = true;
        used = 0;
    }

    public static void abortTransaction() {
        if (!inTransaction) {
            TransactionException.throwIt(TransactionException.NOT_IN_PROGRESS);
        }
        rollBack();
    }

    /** The commit point: the undo log is dropped in one step, which a cut cannot split. */
    public static void commitTransaction() {
        if (!inTransaction) {
            TransactionException.throwIt(TransactionException.NOT_IN_PROGRESS);
        }
        if (torn) {
            throw new PowerLoss(writes);
        }
        LOG.clear();
        used = 0;
        inTransaction = false;
    }

    public static byte getTransactionDepth() {
        return (byte) (inTransaction ? 1 : 0);
    }

    public static short getMaxCommitCapacity() {
        return capacity;
    }

    public static short getUnusedCommitCapacity() {
        return (short) (capacity - used);
    }

    public static boolean[] makeTransientBooleanArray(short length, byte event) {
        boolean[] a = JCSystem.makeTransientBooleanArray(length, event);
        TRANSIENT.put(a, event);
        return a;
    }

    public static byte[] makeTransientByteArray(short length, byte event) {
        byte[] a = JCSystem.makeTransientByteArray(length, event);
        TRANSIENT.put(a, event);
        return a;
    }

    public static short[] makeTransientShortArray(short length, byte event) {
        short[] a = JCSystem.makeTransientShortArray(length, event);
        TRANSIENT.put(a, event);
        return a;
    }

    public static Object[] makeTransientObjectArray(short length, byte event) {
        Object[] a = JCSystem.makeTransientObjectArray(length, event);
        TRANSIENT.put(a, event);
        return a;
    }

    public static Object makeGlobalArray(byte type, short length) {
        Object a = JCSystem.makeGlobalArray(type, length);
        TRANSIENT.put(a, JCSystem.CLEAR_ON_RESET);
        return a;
    }

    // --- array element stores (bastore, sastore, castore, iastore, aastore) -------------------

    public static void bastore(Object array, int index, int value) {
        if (array instanceof boolean[]) {
            boolean[] a = (boolean[]) array;
            boolean old = a[index];
            if (persistent(a)) {
                store(1, () -> a[index] = old);
            }
            a[index] = (value & 1) != 0;
            return;
        }
        byte[] a = (byte[]) array;
        byte old = a[index];
        if (persistent(a)) {
            store(1, () -> a[index] = old);
        }
        a[index] = (byte) value;
    }

    public static void sastore(short[] a, int index, short value) {
        short old = a[index];
        if (persistent(a)) {
            store(2, () -> a[index] = old);
        }
        a[index] = value;
    }

    public static void castore(char[] a, int index, char value) {
        char old = a[index];
        if (persistent(a)) {
            store(2, () -> a[index] = old);
        }
        a[index] = value;
    }

    public static void iastore(int[] a, int index, int value) {
        int old = a[index];
        if (persistent(a)) {
            store(4, () -> a[index] = old);
        }
        a[index] = value;
    }

    public static void aastore(Object[] a, int index, Object value) {
        Object old = a[index];
        if (persistent(a)) {
            store(2, () -> a[index] = old);
        }
        a[index] = value;
    }

    // --- field stores (putfield, putstatic): called just before the store itself ------------------

    /** The old value of {@code owner.name} in {@code target} (null for a static field) is saved. */
    public static void field(Object target, String owner, String name) {
        java.lang.reflect.Field f = Fields.of(owner, name);
        Object old;
        try {
            old = f.get(target);
        } catch (IllegalAccessException e) {
            throw new IllegalStateException(e);
        }
        store(Fields.size(f), () -> Fields.set(f, target, old));
    }

    public static void staticField(String owner, String name) {
        field(null, owner, name);
    }

    // --- API objects that hold persistent state: keys (Instrument routes their setters here) ---

    /**
     * A key about to be set, cleared or generated (a KeyPair's two): one persistent write, and in
     * a transaction the keys' components saved first, so that an abort or a cut puts them back.
     */
    public static void apiWrite(Object target) {
        Key[] keys = target instanceof KeyPair
            ? new Key[] {((KeyPair) target).getPublic(), ((KeyPair) target).getPrivate()}
            : new Key[] {(Key) target};
        List<Key> saved = new ArrayList<>();
        List<byte[]> snapshots = new ArrayList<>();
        int bytes = 0;
        for (Key key : keys) {
            if (key != null && Keys.handles(key) && Keys.persistent(key)) {
                byte[] snapshot = inTransaction ? Keys.snapshot(key) : new byte[0];
                saved.add(key);
                snapshots.add(snapshot);
                bytes += snapshot.length;
            }
        }
        if (saved.isEmpty()) {
            return;  // a transient key: RAM
        }
        store(bytes, () -> {
            for (int i = 0; i < saved.size(); i++) {
                Keys.restore(saved.get(i), snapshots.get(i));
            }
        });
    }

    /**
     * A crypto call about to write its output into {@code array}: into persistent memory, one
     * write (a cut falls before it), not journalled (see {@link Instrument}).
     */
    public static void apiOutput(Object array) {
        if (array != null && persistent(array)) {
            write();
        }
    }

    // --- Util -----------------------------------------------------------------------------------

    /** Atomic, in a transaction or not: all of it or nothing, one write. */
    public static short arrayCopy(byte[] src, short srcOff, byte[] dest, short destOff, short length) {
        checkRange(src, srcOff, length);
        checkRange(dest, destOff, length);
        if (persistent(dest)) {
            byte[] old = java.util.Arrays.copyOfRange(dest, destOff, destOff + length);
            store(length, () -> System.arraycopy(old, 0, dest, destOff, old.length));
        }
        System.arraycopy(src, srcOff, dest, destOff, length);
        return (short) (destOff + length);
    }

    public static short arrayCopyNonAtomic(byte[] src, short srcOff, byte[] dest, short destOff, short length) {
        checkRange(src, srcOff, length);
        checkRange(dest, destOff, length);
        if (persistent(dest) && length > 0) {
            if (cutsHere()) {
                System.arraycopy(src, srcOff, dest, destOff, length / 2);
            }
            write();
        }
        System.arraycopy(src, srcOff, dest, destOff, length);
        return (short) (destOff + length);
    }

    public static short arrayFillNonAtomic(byte[] bArray, short bOff, short bLen, byte bValue) {
        checkRange(bArray, bOff, bLen);
        if (persistent(bArray) && bLen > 0) {
            if (cutsHere()) {
                java.util.Arrays.fill(bArray, bOff, bOff + bLen / 2, bValue);
            }
            write();
        }
        java.util.Arrays.fill(bArray, bOff, bOff + bLen, bValue);
        return (short) (bOff + bLen);
    }

    /** Atomic: both bytes or neither. */
    public static short setShort(byte[] bArray, short bOff, short sValue) {
        checkRange(bArray, bOff, (short) 2);
        if (persistent(bArray)) {
            byte hi = bArray[bOff];
            byte lo = bArray[bOff + 1];
            store(2, () -> {
                bArray[bOff] = hi;
                bArray[bOff + 1] = lo;
            });
        }
        bArray[bOff] = (byte) (sValue >> 8);
        bArray[bOff + 1] = (byte) sValue;
        return (short) (bOff + 2);
    }

    private static void checkRange(byte[] a, short off, short length) {
        if (a == null) {
            throw new NullPointerException();
        }
        if (off < 0 || length < 0 || off + length > a.length) {
            throw new ArrayIndexOutOfBoundsException();
        }
    }
}
