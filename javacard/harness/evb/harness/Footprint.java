package evb.harness;

import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.util.ArrayDeque;
import java.util.Collections;
import java.util.Deque;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Set;
import javacard.framework.Applet;
import javacard.framework.JCSystem;
import javacard.security.ECPublicKey;
import javacard.security.Key;
import javacard.security.KeyPair;

/**
 * What the applet holds in EEPROM, measured from the heap rather than from its own account, so
 * GET MEMORY MAP's header can be checked against it (tests/javacard/test_values.py): every
 * persistent array and persistent key reachable from the applet instance, each under the field
 * path that first reaches it (breadth first, so the shortest), shared ones once.
 *
 * The applet's own objects are opened field by field; anything else it holds (an OwnerPIN, a
 * key, a KeyPair) is one entry, the sum of what it keeps: an OwnerPIN's value and try counter
 * arrays, a key's material (an EC private key's scalar, a public key's point; the curve's
 * parameters are the runtime's to keep, once per curve or per key). Transient arrays and keys
 * (RAM), crypto engines, object headers and references are the runtime's and count nothing; so
 * do the arrays the package's static finals hold (its constants, part of the CAP).
 */
final class Footprint {
    private Footprint() {
    }

    /** One "path=bytes" a line-word, space-separated: the answer of the harness's FOOTPRINT. */
    static String of(Applet root, List<Class<?>> classes) {
        Set<Object> seen = Collections.newSetFromMap(new IdentityHashMap<>());
        for (Class<?> c : classes) {
            for (Field f : c.getDeclaredFields()) {
                int m = f.getModifiers();
                if (Modifier.isStatic(m) && f.getType().isArray()) {
                    f.setAccessible(true);
                    Object constant = Fields.get(f, null);
                    if (constant != null) {
                        seen.add(constant);
                    }
                }
            }
        }
        String name = root.getClass().getName();
        String pkg = name.substring(0, name.lastIndexOf('.') + 1);
        StringBuilder out = new StringBuilder();
        Deque<Object[]> todo = new ArrayDeque<>();  // (object, its path)
        seen.add(root);
        todo.add(new Object[] {root, ""});
        while (!todo.isEmpty()) {
            Object[] next = todo.poll();
            Object o = next[0];
            for (Field f : Fields.instanceFields(o.getClass(), Applet.class)) {
                Object v = f.getType().isPrimitive() ? null : Fields.get(f, o);
                if (v == null || seen.contains(v)) {
                    continue;
                }
                String path = next[1] + f.getName();
                if (v.getClass().getName().startsWith(pkg)) {
                    seen.add(v);
                    todo.add(new Object[] {v, path + "."});
                    continue;
                }
                int bytes = bytes(v, seen);
                if (bytes > 0) {
                    out.append(out.length() == 0 ? "" : " ").append(path).append('=').append(bytes);
                }
            }
        }
        return out.toString();
    }

    /** The EEPROM bytes of {@code o} and what it holds, not counted before (marked seen). */
    private static int bytes(Object o, Set<Object> seen) {
        if (o == null || !seen.add(o)) {
            return 0;
        }
        if (o.getClass().isArray()) {
            if (Memory.transientEvent(o) != JCSystem.NOT_A_TRANSIENT_OBJECT) {
                return 0;
            }
            if (o instanceof Object[]) {
                int sum = 0;
                for (Object e : (Object[]) o) {
                    sum += bytes(e, seen);
                }
                return sum;
            }
            int element = o instanceof short[] ? 2 : o instanceof int[] ? 4 : 1;
            return java.lang.reflect.Array.getLength(o) * element;
        }
        if (o instanceof KeyPair) {
            return bytes(((KeyPair) o).getPublic(), seen) + bytes(((KeyPair) o).getPrivate(), seen);
        }
        if (o instanceof Key) {
            Key key = (Key) o;
            if (!Keys.persistent(key)) {
                return 0;
            }
            int scalar = (key.getSize() + 7) / 8;
            return o instanceof ECPublicKey ? 1 + 2 * scalar : scalar;  // W uncompressed, or S / the key
        }
        if (o.getClass().getClassLoader() instanceof Instrument.Loader) {  // an OwnerPIN: its arrays
            int sum = 0;
            for (Field f : Fields.instanceFields(o.getClass(), Object.class)) {
                if (!f.getType().isPrimitive()) {
                    sum += bytes(Fields.get(f, o), seen);
                }
            }
            return sum;
        }
        return 0;  // a crypto engine: the runtime's
    }
}
