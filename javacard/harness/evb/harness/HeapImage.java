package evb.harness;

import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.lang.reflect.Array;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.zip.CRC32;
import javacard.framework.Applet;
import javacard.framework.JCSystem;
import javacard.security.Key;
import javacard.security.KeyAgreement;
import javacard.security.KeyPair;
import javacard.security.PrivateKey;
import javacard.security.PublicKey;
import javacard.security.MessageDigest;
import javacard.security.RandomData;
import javacard.security.Signature;
import javacardx.crypto.Cipher;

/**
 * The applet's persistent heap as a file: the card's EEPROM across restarts of the JVM.
 *
 * What is saved is everything reachable from the applet instance and from its classes' statics:
 * its own objects and OwnerPINs field by field, persistent arrays with their contents, transient
 * arrays by length and clear event only (a restart is a power-on: RAM comes back zeroed), and
 * the crypto engines (MessageDigest, RandomData, Signature, Cipher, KeyAgreement) by algorithm,
 * made afresh, uninitialised, on load (the applet inits them before each use; one that kept an
 * engine initialised across a power cycle would not work after a restart here), keys by their
 * components ({@link Keys}), a KeyPair from its two keys. Anything else reachable refuses to be
 * saved, by name, rather than coming back wrong: extend {@link #kindOf} first.
 *
 * Written crash-safe as the Python card's journal is: two slot files ({@code FILE} and
 * {@code FILE.1}), each image a generation number and a CRC32 over it, written over the slot
 * not holding the newest, then one fdatasync (the commit point; a folder fsync the first time a
 * slot file is made). Load takes the newest slot whose CRC holds, so a JVM killed (or a machine
 * crashed) mid-write leaves the previous image. The harness saves before it answers each command
 * that wrote: the card is then as it was before the command, whose answer nobody received.
 */
final class HeapImage {
    private static final int MAGIC = 0x45564248;  // "EVBH"
    private static final int VERSION = 2;
    private static final int HEAD = 24;  // magic, version, generation (8), length, CRC32

    private static final byte K_OBJECT = 1;
    private static final byte K_BYTES = 2;
    private static final byte K_BOOLEANS = 3;
    private static final byte K_SHORTS = 4;
    private static final byte K_INTS = 5;
    private static final byte K_OBJECTS = 6;
    private static final byte K_DIGEST = 7;
    private static final byte K_RANDOM = 8;
    private static final byte K_SIGNATURE = 9;
    private static final byte K_CIPHER = 10;
    private static final byte K_AGREEMENT = 11;
    private static final byte K_STATIC_ARRAY = 12;  // an array a static final field holds: kept in place
    private static final byte K_KEY = 13;
    private static final byte K_KEYPAIR = 14;  // after its two keys: made from them

    private HeapImage() {
    }

    // --- saving -------------------------------------------------------------------------------

    static void save(Path file, Applet root, List<Class<?>> classes) throws IOException {
        byte[] body = encode(root, classes);
        CRC32 crc = new CRC32();
        crc.update(body);
        Path[] slots = slots(file);
        long[] generations = {generation(slots[0]), generation(slots[1])};
        int target = generations[0] <= generations[1] ? 0 : 1;  // the slot not holding the newest
        long next = Math.max(generations[0], generations[1]) + 1;
        boolean created = !Files.exists(slots[target]);
        if (created) {
            Files.createDirectories(slots[target].toAbsolutePath().getParent());
        }
        ByteBuffer all = ByteBuffer.allocate(HEAD + body.length).putInt(MAGIC).putInt(VERSION).putLong(next)
            .putInt(body.length).putInt((int) crc.getValue()).put(body);
        all.flip();
        try (FileChannel ch = FileChannel.open(slots[target], StandardOpenOption.WRITE, StandardOpenOption.CREATE)) {
            while (all.hasRemaining()) {
                ch.write(all, all.position());
            }
            ch.force(false);  // the commit point: this slot's CRC now holds, with the newest generation
        }
        if (created) {  // a new name survives a crash once its folder is synced
            try (FileChannel dir = FileChannel.open(slots[target].toAbsolutePath().getParent(),
                                                    StandardOpenOption.READ)) {
                dir.force(true);
            }
        }
    }

    /** The two slot files of an image: {@code file} and {@code file.1}. */
    private static Path[] slots(Path file) {
        return new Path[] {file, file.resolveSibling(file.getFileName() + ".1")};
    }

    /** The generation of a slot holding a whole image, 0 for a missing, foreign or torn one. */
    private static long generation(Path slot) throws IOException {
        if (!Files.isRegularFile(slot)) {
            return 0;
        }
        byte[] raw = Files.readAllBytes(slot);
        return body(raw) == null ? 0 : ByteBuffer.wrap(raw).getLong(8);
    }

    /** The image body in a slot's bytes, or null when they are foreign or torn. */
    private static byte[] body(byte[] raw) {
        ByteBuffer head = ByteBuffer.wrap(raw);
        if (raw.length < HEAD || head.getInt() != MAGIC || head.getInt() != VERSION) {
            return null;
        }
        head.getLong();
        int length = head.getInt();
        int crcWant = head.getInt();
        if (length < 0 || length > raw.length - HEAD) {
            return null;
        }
        CRC32 crc = new CRC32();
        crc.update(raw, HEAD, length);
        return (int) crc.getValue() == crcWant ? java.util.Arrays.copyOfRange(raw, HEAD, HEAD + length) : null;
    }

    private static byte[] encode(Applet root, List<Class<?>> classes) throws IOException {
        Map<Object, Integer> ids = new IdentityHashMap<>();
        List<Object> objects = new ArrayList<>();
        Deque<Object> todo = new ArrayDeque<>();
        ByteArrayOutputStream heads = new ByteArrayOutputStream();
        DataOutputStream h = new DataOutputStream(heads);
        // statics first: an array a static final holds is bound to that field, kept on load
        List<Field> statics = new ArrayList<>();
        for (Class<?> c : classes) {
            for (Field f : c.getDeclaredFields()) {
                int m = f.getModifiers();
                boolean finalArray = Modifier.isFinal(m) && f.getType().isArray();
                if (Modifier.isStatic(m) && (!Modifier.isFinal(m) || finalArray)) {
                    f.setAccessible(true);
                    statics.add(f);
                    Object value = Fields.get(f, null);
                    if (finalArray && value != null && !ids.containsKey(value)) {
                        ids.put(value, objects.size());
                        objects.add(value);
                        h.writeByte(K_STATIC_ARRAY);
                        h.writeUTF(c.getName());
                        h.writeUTF(f.getName());
                        todo.add(value);
                    }
                }
            }
        }
        ids.put(root, objects.size());
        objects.add(root);
        h.writeByte(K_OBJECT);
        h.writeUTF(root.getClass().getName());
        todo.add(root);
        for (Field f : statics) {
            if (!f.getType().isPrimitive()) {
                enqueue(Fields.get(f, null), ids, objects, todo, h);
            }
        }
        while (!todo.isEmpty()) {
            Object o = todo.poll();
            if (o instanceof Object[] && Memory.transientEvent(o) == JCSystem.NOT_A_TRANSIENT_OBJECT) {
                for (Object e : (Object[]) o) {
                    enqueue(e, ids, objects, todo, h);
                }
            } else if (isApplet(o)) {
                for (Field f : Fields.instanceFields(o.getClass(), Applet.class)) {
                    if (!f.getType().isPrimitive()) {
                        enqueue(Fields.get(f, o), ids, objects, todo, h);
                    }
                }
            }
        }
        h.flush();
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        DataOutputStream d = new DataOutputStream(out);
        d.writeInt(objects.size());
        d.write(heads.toByteArray());
        for (Object o : objects) {
            contents(o, ids, d);
        }
        d.writeInt(statics.size());
        for (Field f : statics) {
            d.writeUTF(f.getDeclaringClass().getName());
            d.writeUTF(f.getName());
            value(f.getType(), Fields.get(f, null), ids, d);
        }
        d.flush();
        return out.toByteArray();
    }

    /** Whether {@code o} is the applet's own (or an OwnerPIN): saved field by field. */
    private static boolean isApplet(Object o) {
        return o.getClass().getClassLoader() instanceof Instrument.Loader;
    }

    private static byte kindOf(Object o) {
        if (o instanceof byte[]) {
            return K_BYTES;
        }
        if (o instanceof boolean[]) {
            return K_BOOLEANS;
        }
        if (o instanceof short[]) {
            return K_SHORTS;
        }
        if (o instanceof int[]) {
            return K_INTS;
        }
        if (o instanceof Object[]) {
            return K_OBJECTS;
        }
        if (isApplet(o)) {
            return K_OBJECT;
        }
        if (o instanceof MessageDigest) {
            return K_DIGEST;
        }
        if (o instanceof RandomData) {
            return K_RANDOM;
        }
        if (o instanceof Signature) {
            return K_SIGNATURE;
        }
        if (o instanceof Cipher) {
            return K_CIPHER;
        }
        if (o instanceof KeyAgreement) {
            return K_AGREEMENT;
        }
        if (Keys.handles(o)) {
            return K_KEY;
        }
        if (o instanceof KeyPair) {
            return K_KEYPAIR;
        }
        throw new IllegalStateException("the heap image cannot hold a " + o.getClass().getName()
            + " (javacard/harness/evb/harness/HeapImage.java: add it to kindOf)");
    }

    private static void enqueue(Object o, Map<Object, Integer> ids, List<Object> objects, Deque<Object> todo,
                                DataOutputStream h) throws IOException {
        if (o == null || ids.containsKey(o)) {
            return;
        }
        byte kind = kindOf(o);
        if (kind == K_KEYPAIR) {
            enqueue(((KeyPair) o).getPublic(), ids, objects, todo, h);
            enqueue(((KeyPair) o).getPrivate(), ids, objects, todo, h);
        }
        ids.put(o, objects.size());
        objects.add(o);
        todo.add(o);
        h.writeByte(kind);
        switch (kind) {
            case K_OBJECT:
                h.writeUTF(o.getClass().getName());
                break;
            case K_DIGEST:
                h.writeByte(((MessageDigest) o).getAlgorithm());
                break;
            case K_RANDOM:
                h.writeByte(((RandomData) o).getAlgorithm());
                break;
            case K_SIGNATURE:
                h.writeByte(((Signature) o).getAlgorithm());
                break;
            case K_CIPHER:
                h.writeByte(((Cipher) o).getAlgorithm());
                break;
            case K_AGREEMENT:
                h.writeByte(((KeyAgreement) o).getAlgorithm());
                break;
            case K_KEY:
                Keys.head((Key) o, h);
                break;
            case K_KEYPAIR:
                h.writeInt(ref(((KeyPair) o).getPublic(), ids));
                h.writeInt(ref(((KeyPair) o).getPrivate(), ids));
                break;
            default:
                h.writeInt(Array.getLength(o));
                h.writeByte(Memory.transientEvent(o));
                if (kind == K_OBJECTS) {
                    h.writeUTF(o.getClass().getComponentType().getName());
                }
        }
    }

    private static int ref(Object o, Map<Object, Integer> ids) {
        return o == null ? -1 : ids.get(o);
    }

    private static void contents(Object o, Map<Object, Integer> ids, DataOutputStream d) throws IOException {
        if (Keys.handles(o)) {
            Keys.contents((Key) o, d);
            return;
        }
        if (isApplet(o)) {
            List<Field> fields = Fields.instanceFields(o.getClass(), Applet.class);
            d.writeShort(fields.size());
            for (Field f : fields) {
                d.writeUTF(f.getName());
                value(f.getType(), Fields.get(f, o), ids, d);
            }
            return;
        }
        if (!o.getClass().isArray() || Memory.transientEvent(o) != JCSystem.NOT_A_TRANSIENT_OBJECT) {
            return;  // an engine, made afresh; or RAM, zero at power-on
        }
        int n = Array.getLength(o);
        for (int i = 0; i < n; i++) {
            value(o.getClass().getComponentType(), Array.get(o, i), ids, d);
        }
    }

    private static void value(Class<?> type, Object v, Map<Object, Integer> ids, DataOutputStream d)
            throws IOException {
        if (type == byte.class) {
            d.writeByte((Byte) v);
        } else if (type == boolean.class) {
            d.writeBoolean((Boolean) v);
        } else if (type == short.class) {
            d.writeShort((Short) v);
        } else if (type == char.class) {
            d.writeChar((Character) v);
        } else if (type == int.class) {
            d.writeInt((Integer) v);
        } else if (type.isPrimitive()) {
            throw new IllegalStateException("not a Java Card type: " + type);
        } else {
            d.writeInt(ref(v, ids));
        }
    }

    // --- loading --------------------------------------------------------------------------------

    /** Whether {@code file} (either slot) holds a heap image (false: a new card is installed). */
    static boolean exists(Path file) {
        Path[] slots = slots(file);
        return Files.isRegularFile(slots[0]) || Files.isRegularFile(slots[1]);
    }

    /** Put the image's state into {@code root}, the applet just installed, and its classes' statics. */
    static void load(Path file, Applet root, ClassLoader loader) throws IOException {
        Path[] slots = slots(file);
        long[] generations = {generation(slots[0]), generation(slots[1])};
        if (generations[0] == 0 && generations[1] == 0) {
            throw new IOException(file + ": no slot holds a whole heap image (a checksum fails, or not ours)");
        }
        byte[] body = body(Files.readAllBytes(slots[generations[0] > generations[1] ? 0 : 1]));
        DataInputStream d = new DataInputStream(new java.io.ByteArrayInputStream(body));
        try {
            decode(d, root, loader);
        } catch (ReflectiveOperationException | RuntimeException e) {
            throw new IOException(file + ": a heap image of another version of the applet (" + e + ")", e);
        }
    }

    private static void decode(DataInputStream d, Applet root, ClassLoader loader)
            throws IOException, ReflectiveOperationException {
        int count = d.readInt();
        Object[] objects = new Object[count];
        boolean rootSeen = false;
        for (int id = 0; id < count; id++) {
            byte kind = d.readByte();
            switch (kind) {
                case K_STATIC_ARRAY: {
                    Field f = Fields.of(d.readUTF().replace('.', '/'), d.readUTF());
                    objects[id] = f.get(null);
                    break;
                }
                case K_OBJECT: {
                    Class<?> c = Class.forName(d.readUTF(), false, loader);
                    if (!rootSeen) {
                        if (c != root.getClass()) {
                            throw new IOException("the image holds a " + c.getName());
                        }
                        objects[id] = root;
                        rootSeen = true;
                    } else {
                        objects[id] = Unsafe.allocate(c);
                    }
                    break;
                }
                case K_DIGEST:
                    objects[id] = MessageDigest.getInstance(d.readByte(), false);
                    break;
                case K_RANDOM:
                    objects[id] = RandomData.getInstance(d.readByte());
                    break;
                case K_SIGNATURE:
                    objects[id] = Signature.getInstance(d.readByte(), false);
                    break;
                case K_CIPHER:
                    objects[id] = Cipher.getInstance(d.readByte(), false);
                    break;
                case K_AGREEMENT:
                    objects[id] = KeyAgreement.getInstance(d.readByte(), false);
                    break;
                case K_KEY:
                    objects[id] = Keys.allocate(d);
                    break;
                case K_KEYPAIR: {
                    int pub = d.readInt();
                    int priv = d.readInt();
                    objects[id] = new KeyPair(pub < 0 ? null : (PublicKey) objects[pub],
                                              priv < 0 ? null : (PrivateKey) objects[priv]);
                    break;
                }
                default:
                    objects[id] = array(kind, d, loader);
            }
        }
        for (Object o : objects) {
            fill(o, objects, d);
        }
        int statics = d.readInt();
        for (int i = 0; i < statics; i++) {
            Field f = Fields.of(d.readUTF().replace('.', '/'), d.readUTF());
            Object v = read(f.getType(), objects, d);
            if (!Modifier.isFinal(f.getModifiers())) {
                f.set(null, v);
            }
        }
    }

    private static Object array(byte kind, DataInputStream d, ClassLoader loader) throws IOException,
            ClassNotFoundException {
        short n = (short) d.readInt();
        byte event = d.readByte();
        Class<?> component = kind == K_OBJECTS ? Class.forName(d.readUTF(), false, loader) : null;
        if (event != JCSystem.NOT_A_TRANSIENT_OBJECT) {
            switch (kind) {
                case K_BYTES:
                    return Memory.makeTransientByteArray(n, event);
                case K_BOOLEANS:
                    return Memory.makeTransientBooleanArray(n, event);
                case K_SHORTS:
                    return Memory.makeTransientShortArray(n, event);
                case K_OBJECTS:
                    return Memory.makeTransientObjectArray(n, event);
                default:
                    throw new IOException("a transient array of kind " + kind);
            }
        }
        switch (kind) {
            case K_BYTES:
                return new byte[n];
            case K_BOOLEANS:
                return new boolean[n];
            case K_SHORTS:
                return new short[n];
            case K_INTS:
                return new int[n];
            case K_OBJECTS:
                return Array.newInstance(component, n);
            default:
                throw new IOException("an object of kind " + kind);
        }
    }

    private static void fill(Object o, Object[] objects, DataInputStream d) throws IOException,
            ReflectiveOperationException {
        if (Keys.handles(o)) {
            Keys.fill((Key) o, d);
            return;
        }
        if (o.getClass().getClassLoader() instanceof Instrument.Loader) {
            Map<String, Field> byName = new java.util.HashMap<>();
            for (Field f : Fields.instanceFields(o.getClass(), Applet.class)) {
                byName.put(f.getName(), f);
            }
            int n = d.readShort();
            if (n != byName.size()) {
                throw new IOException(o.getClass().getName() + " has " + byName.size() + " fields, the image " + n);
            }
            for (int i = 0; i < n; i++) {
                Field f = byName.get(d.readUTF());
                if (f == null) {
                    throw new IOException(o.getClass().getName() + ": a field the image names is gone");
                }
                f.set(o, read(f.getType(), objects, d));
            }
            return;
        }
        if (!o.getClass().isArray() || Memory.transientEvent(o) != JCSystem.NOT_A_TRANSIENT_OBJECT) {
            return;
        }
        int n = Array.getLength(o);
        Class<?> component = o.getClass().getComponentType();
        for (int i = 0; i < n; i++) {
            Array.set(o, i, read(component, objects, d));
        }
    }

    private static Object read(Class<?> type, Object[] objects, DataInputStream d) throws IOException {
        if (type == byte.class) {
            return d.readByte();
        } else if (type == boolean.class) {
            return d.readBoolean();
        } else if (type == short.class) {
            return d.readShort();
        } else if (type == char.class) {
            return d.readChar();
        } else if (type == int.class) {
            return d.readInt();
        }
        int id = d.readInt();
        return id < 0 ? null : objects[id];
    }

    /** Objects made without running a constructor, as a deserialiser must. */
    private static final class Unsafe {
        private static final sun.misc.Unsafe U;

        static {
            try {
                Field f = sun.misc.Unsafe.class.getDeclaredField("theUnsafe");
                f.setAccessible(true);
                U = (sun.misc.Unsafe) f.get(null);
            } catch (ReflectiveOperationException e) {
                throw new ExceptionInInitializerError(e);
            }
        }

        static Object allocate(Class<?> c) throws InstantiationException {
            return U.allocateInstance(c);
        }
    }
}
