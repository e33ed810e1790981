package evb.harness;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.util.HashSet;
import java.util.Set;
import javacard.security.AESKey;
import javacard.security.CryptoException;
import javacard.security.DESKey;
import javacard.security.ECKey;
import javacard.security.ECPrivateKey;
import javacard.security.ECPublicKey;
import javacard.security.HMACKey;
import javacard.security.Key;
import javacard.security.KeyBuilder;

/**
 * Keys in the heap image, through the Java Card key interfaces (type, size and each component
 * the key has set): jCardSim's key classes hold BouncyCastle objects no field-by-field copy
 * could bring back. A transient key type keeps no component: a restart is a power-on.
 */
final class Keys {
    private static final Set<Byte> TRANSIENT_TYPES = transientTypes();
    private static final int MAX_COMPONENT = 512;

    private Keys() {
    }

    /** Keys over a prime field (P-256 and the like), AES, HMAC and DES keys. */
    static boolean handles(Object o) {
        if (o instanceof ECKey) {
            byte type = ((Key) o).getType();
            return type == KeyBuilder.TYPE_EC_FP_PRIVATE || type == KeyBuilder.TYPE_EC_FP_PUBLIC
                || type == KeyBuilder.TYPE_EC_FP_PRIVATE_TRANSIENT_RESET
                || type == KeyBuilder.TYPE_EC_FP_PRIVATE_TRANSIENT_DESELECT;
        }
        return o instanceof AESKey || o instanceof HMACKey || o instanceof DESKey;
    }

    private static Set<Byte> transientTypes() {
        Set<Byte> out = new HashSet<>();
        for (Field f : KeyBuilder.class.getFields()) {
            if (Modifier.isStatic(f.getModifiers()) && f.getType() == byte.class && f.getName().contains("TRANSIENT")) {
                out.add((Byte) Fields.get(f, null));
            }
        }
        return out;
    }

    /** Whether writing {@code key} writes EEPROM: not for a key of a transient type. */
    static boolean persistent(Key key) {
        return !TRANSIENT_TYPES.contains(key.getType());
    }

    /** The key's components, for an undo entry. */
    static byte[] snapshot(Key key) {
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
        try (DataOutputStream d = new DataOutputStream(out)) {
            contents(key, d);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
        return out.toByteArray();
    }

    /** The key as {@link #snapshot} saw it: cleared, then each component it had set again. */
    static void restore(Key key, byte[] snapshot) {
        key.clearKey();
        try (DataInputStream d = new DataInputStream(new java.io.ByteArrayInputStream(snapshot))) {
            fill(key, d);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    /** What {@link #allocate} needs: the key's type and size. */
    static void head(Key key, DataOutputStream h) throws IOException {
        h.writeByte(key.getType());
        h.writeShort(key.getSize());
    }

    static Key allocate(DataInputStream d) throws IOException {
        byte type = d.readByte();
        short size = d.readShort();
        return KeyBuilder.buildKey(type, size, false);
    }

    private interface Getter {
        short get(byte[] buf);
    }

    private interface Setter {
        void set(byte[] buf, short length);
    }

    private static void component(Getter g, DataOutputStream d) throws IOException {
        byte[] buf = new byte[MAX_COMPONENT];
        short n;
        try {
            n = g.get(buf);
        } catch (CryptoException e) {
            d.writeShort(-1);  // not set
            return;
        }
        d.writeShort(n);
        d.write(buf, 0, n);
    }

    private static void component(Setter s, DataInputStream d) throws IOException {
        short n = d.readShort();
        if (n < 0) {
            return;
        }
        byte[] buf = new byte[n];
        d.readFully(buf);
        s.set(buf, n);
    }

    static void contents(Key key, DataOutputStream d) throws IOException {
        if (TRANSIENT_TYPES.contains(key.getType())) {
            return;
        }
        if (key instanceof ECKey) {
            ECKey k = (ECKey) key;
            component(b -> k.getField(b, (short) 0), d);
            component(b -> k.getA(b, (short) 0), d);
            component(b -> k.getB(b, (short) 0), d);
            component(b -> k.getG(b, (short) 0), d);
            component(b -> k.getR(b, (short) 0), d);
            component(b -> {
                short cofactor = k.getK();
                b[0] = (byte) (cofactor >> 8);
                b[1] = (byte) cofactor;
                return (short) 2;
            }, d);
            if (key instanceof ECPrivateKey) {
                component(b -> ((ECPrivateKey) key).getS(b, (short) 0), d);
            } else {
                component(b -> ((ECPublicKey) key).getW(b, (short) 0), d);
            }
        } else if (key instanceof AESKey) {
            component(b -> key.isInitialized() ? ((AESKey) key).getKey(b, (short) 0) : uninitialized(), d);
        } else if (key instanceof HMACKey) {
            component(b -> key.isInitialized() ? ((HMACKey) key).getKey(b, (short) 0) : uninitialized(), d);
        } else {
            component(b -> key.isInitialized() ? ((DESKey) key).getKey(b, (short) 0) : uninitialized(), d);
        }
    }

    private static short uninitialized() {
        throw new CryptoException(CryptoException.UNINITIALIZED_KEY);
    }

    static void fill(Key key, DataInputStream d) throws IOException {
        if (TRANSIENT_TYPES.contains(key.getType())) {
            return;
        }
        if (key instanceof ECKey) {
            ECKey k = (ECKey) key;
            component((b, n) -> k.setFieldFP(b, (short) 0, n), d);
            component((b, n) -> k.setA(b, (short) 0, n), d);
            component((b, n) -> k.setB(b, (short) 0, n), d);
            component((b, n) -> k.setG(b, (short) 0, n), d);
            component((b, n) -> k.setR(b, (short) 0, n), d);
            component((b, n) -> k.setK((short) ((b[0] & 0xFF) << 8 | (b[1] & 0xFF))), d);
            if (key instanceof ECPrivateKey) {
                component((b, n) -> ((ECPrivateKey) key).setS(b, (short) 0, n), d);
            } else {
                component((b, n) -> ((ECPublicKey) key).setW(b, (short) 0, n), d);
            }
        } else if (key instanceof AESKey) {
            component((b, n) -> ((AESKey) key).setKey(b, (short) 0), d);
        } else if (key instanceof HMACKey) {
            component((b, n) -> ((HMACKey) key).setKey(b, (short) 0, n), d);
        } else {
            component((b, n) -> ((DESKey) key).setKey(b, (short) 0), d);
        }
    }
}
