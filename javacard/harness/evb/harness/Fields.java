package evb.harness;

import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/** Reflective access to the applet's fields, for the undo log and the heap image. */
final class Fields {
    private static final Map<String, Field> CACHE = new HashMap<>();
    private static ClassLoader loader = Fields.class.getClassLoader();

    private Fields() {
    }

    /** The loader of the classes whose fields the rewritten bytecode names. */
    static void loader(ClassLoader l) {
        loader = l;
        CACHE.clear();
    }

    /** The field {@code name} seen from class {@code owner} (internal name), declared there or above. */
    static Field of(String owner, String name) {
        String key = owner + '.' + name;
        Field f = CACHE.get(key);
        if (f == null) {
            try {
                f = declared(Class.forName(owner.replace('/', '.'), false, loader), name);
            } catch (ClassNotFoundException e) {
                throw new IllegalStateException(e);
            }
            CACHE.put(key, f);
        }
        return f;
    }

    private static Field declared(Class<?> c, String name) {
        for (Class<?> k = c; k != null; k = k.getSuperclass()) {
            try {
                Field f = k.getDeclaredField(name);
                f.setAccessible(true);
                return f;
            } catch (NoSuchFieldException e) {
                continue;
            }
        }
        throw new IllegalStateException("no field " + name + " in " + c.getName());
    }

    /** The instance fields of {@code c} and its superclasses below {@code top}, in a fixed order. */
    static List<Field> instanceFields(Class<?> c, Class<?> top) {
        List<Field> out = new ArrayList<>();
        for (Class<?> k = c; k != null && k != top && k != Object.class; k = k.getSuperclass()) {
            for (Field f : k.getDeclaredFields()) {
                if (!Modifier.isStatic(f.getModifiers())) {
                    f.setAccessible(true);
                    out.add(f);
                }
            }
        }
        return out;
    }

    /** The static fields a running applet may change: not final (constants come from clinit). */
    static List<Field> mutableStatics(Class<?> c) {
        List<Field> out = new ArrayList<>();
        for (Field f : c.getDeclaredFields()) {
            int m = f.getModifiers();
            if (Modifier.isStatic(m) && !Modifier.isFinal(m)) {
                f.setAccessible(true);
                out.add(f);
            }
        }
        return out;
    }

    /** What an undo entry for the field costs in the commit buffer, besides its overhead. */
    static int size(Field f) {
        Class<?> t = f.getType();
        if (t == byte.class || t == boolean.class) {
            return 1;
        }
        if (t == int.class || t == float.class) {
            return 4;
        }
        return 2;  // short, char, a reference
    }

    static void set(Field f, Object target, Object value) {
        try {
            f.set(target, value);
        } catch (IllegalAccessException e) {
            throw new IllegalStateException(e);
        }
    }

    static Object get(Field f, Object target) {
        try {
            return f.get(target);
        } catch (IllegalAccessException e) {
            throw new IllegalStateException(e);
        }
    }
}
