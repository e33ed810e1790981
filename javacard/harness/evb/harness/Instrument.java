package evb.harness;

import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.objectweb.asm.ClassReader;
import org.objectweb.asm.ClassVisitor;
import org.objectweb.asm.ClassWriter;
import org.objectweb.asm.MethodVisitor;
import org.objectweb.asm.Opcodes;

/**
 * Loads the applet's classes with every persistent write routed through {@link Memory}: the
 * bytecode is rewritten with ASM as it is loaded, so the CAP's classes stay what the converter
 * verified and the kit's jCardSim stays untouched.
 *
 * Rewritten, in the applet's packages and in {@code javacard.framework.OwnerPIN}:
 * <ul>
 * <li>array stores (bastore, sastore, castore, iastore, aastore) become calls that journal the
 *     old element when the array is persistent;</li>
 * <li>putfield and putstatic are preceded by a call that journals the field's old value, except
 *     a constructor's stores into the object it builds and a class initialiser's into its class
 *     (nothing committed refers to either yet);</li>
 * <li>{@code Util.arrayCopy}, {@code arrayCopyNonAtomic}, {@code arrayFillNonAtomic},
 *     {@code setShort} and the transaction and transient-array calls of {@code JCSystem} go to
 *     {@link Memory}'s versions.</li>
 * </ul>
 * OwnerPIN is jCardSim's own class (its OwnerPINProxy), loaded a second time, rewritten, by this
 * loader: its PIN value, size and the counter reset of update() then join a transaction as the
 * spec says, while check() spends the counter with arrayFillNonAtomic, outside any transaction,
 * as the spec also says. Its validated flag is a transient array, cleared on reset.
 *
 * Not covered: other API objects the applet writes through (keys, crypto outputs into
 * persistent arrays) are not journalled; javacard/README.md says so.
 */
public final class Instrument {
    static final String MEMORY = "evb/harness/Memory";
    static final String OWNER_PIN = "javacard.framework.OwnerPIN";
    private static final Set<String> UTIL = new HashSet<>(
        Arrays.asList("arrayCopy", "arrayCopyNonAtomic", "arrayFillNonAtomic", "setShort"));
    private static final Set<String> JCSYSTEM = new HashSet<>(Arrays.asList(
        "beginTransaction", "abortTransaction", "commitTransaction", "getTransactionDepth",
        "getMaxCommitCapacity", "getUnusedCommitCapacity", "makeTransientBooleanArray",
        "makeTransientByteArray", "makeTransientShortArray", "makeTransientObjectArray", "makeGlobalArray"));

    private Instrument() {
    }

    /** The class loader of the applet's classes: child first for the packages it rewrites. */
    public static final class Loader extends ClassLoader {
        private final List<String> packages;
        private final List<Class<?>> loaded = Collections.synchronizedList(new ArrayList<>());

        /** {@code packages}: the applet's packages, as "evb.wallet.". */
        public Loader(ClassLoader parent, List<String> packages) {
            super(parent);
            this.packages = new ArrayList<>(packages);
        }

        private boolean rewrites(String name) {
            if (name.equals(OWNER_PIN)) {
                return true;
            }
            for (String p : packages) {
                if (name.startsWith(p)) {
                    return true;
                }
            }
            return false;
        }

        /** The applet classes loaded so far (their statics are persistent state too). */
        public List<Class<?>> appletClasses() {
            synchronized (loaded) {
                List<Class<?>> out = new ArrayList<>();
                for (Class<?> c : loaded) {
                    if (!c.getName().equals(OWNER_PIN)) {
                        out.add(c);
                    }
                }
                return out;
            }
        }

        @Override
        protected Class<?> loadClass(String name, boolean resolve) throws ClassNotFoundException {
            if (!rewrites(name)) {
                return super.loadClass(name, resolve);
            }
            synchronized (getClassLoadingLock(name)) {
                Class<?> c = findLoadedClass(name);
                if (c == null) {
                    byte[] original;
                    try (InputStream in = getParent().getResourceAsStream(name.replace('.', '/') + ".class")) {
                        if (in == null) {
                            throw new ClassNotFoundException(name);
                        }
                        original = in.readAllBytes();
                    } catch (IOException e) {
                        throw new ClassNotFoundException(name, e);
                    }
                    byte[] rewritten = rewrite(original);
                    c = defineClass(name, rewritten, 0, rewritten.length);
                    loaded.add(c);
                }
                if (resolve) {
                    resolveClass(c);
                }
                return c;
            }
        }
    }

    /** The class with its persistent writes routed through {@link Memory}. */
    static byte[] rewrite(byte[] original) {
        ClassReader reader = new ClassReader(original);
        ClassWriter writer = new ClassWriter(reader, ClassWriter.COMPUTE_MAXS);
        reader.accept(new ClassVisitor(Opcodes.ASM9, writer) {
            private String self;

            @Override
            public void visit(int version, int access, String name, String signature, String superName,
                              String[] interfaces) {
                self = name;
                super.visit(version, access, name, signature, superName, interfaces);
            }

            @Override
            public MethodVisitor visitMethod(int access, String name, String descriptor, String signature,
                                             String[] exceptions) {
                MethodVisitor mv = super.visitMethod(access, name, descriptor, signature, exceptions);
                return new Writes(mv, self, name);
            }
        }, 0);
        return writer.toByteArray();
    }

    private static final class Writes extends MethodVisitor {
        private final String self;
        private final boolean constructor;
        private final boolean classInit;

        Writes(MethodVisitor mv, String self, String method) {
            super(Opcodes.ASM9, mv);
            this.self = self;
            this.constructor = method.equals("<init>");
            this.classInit = method.equals("<clinit>");
        }

        @Override
        public void visitInsn(int opcode) {
            switch (opcode) {
                case Opcodes.BASTORE:
                    memory("bastore", "(Ljava/lang/Object;II)V");
                    return;
                case Opcodes.SASTORE:
                    memory("sastore", "([SIS)V");
                    return;
                case Opcodes.CASTORE:
                    memory("castore", "([CIC)V");
                    return;
                case Opcodes.IASTORE:
                    memory("iastore", "([III)V");
                    return;
                case Opcodes.AASTORE:
                    memory("aastore", "([Ljava/lang/Object;ILjava/lang/Object;)V");
                    return;
                case Opcodes.LASTORE:
                case Opcodes.FASTORE:
                case Opcodes.DASTORE:
                    throw new IllegalArgumentException(self + ": long, float and double are not Java Card types");
                default:
                    super.visitInsn(opcode);
            }
        }

        private void memory(String name, String descriptor) {
            super.visitMethodInsn(Opcodes.INVOKESTATIC, MEMORY, name, descriptor, false);
        }

        @Override
        public void visitFieldInsn(int opcode, String owner, String name, String descriptor) {
            boolean wide = descriptor.equals("J") || descriptor.equals("D");
            if (opcode == Opcodes.PUTFIELD && !(constructor && owner.equals(self))) {
                if (wide) {
                    throw new IllegalArgumentException(self + ": long and double are not Java Card types");
                }
                // [obj, value] -> [obj, value, obj] -> Memory.field(obj, owner, name) -> [obj, value]
                super.visitInsn(Opcodes.SWAP);
                super.visitInsn(Opcodes.DUP_X1);
                super.visitLdcInsn(owner);
                super.visitLdcInsn(name);
                memory("field", "(Ljava/lang/Object;Ljava/lang/String;Ljava/lang/String;)V");
            } else if (opcode == Opcodes.PUTSTATIC && !(classInit && owner.equals(self))) {
                super.visitLdcInsn(owner);
                super.visitLdcInsn(name);
                memory("staticField", "(Ljava/lang/String;Ljava/lang/String;)V");
            }
            super.visitFieldInsn(opcode, owner, name, descriptor);
        }

        @Override
        public void visitMethodInsn(int opcode, String owner, String name, String descriptor, boolean itf) {
            boolean util = owner.equals("javacard/framework/Util") && UTIL.contains(name);
            boolean system = owner.equals("javacard/framework/JCSystem") && JCSYSTEM.contains(name);
            if (opcode == Opcodes.INVOKESTATIC && (util || system)) {
                super.visitMethodInsn(opcode, MEMORY, name, descriptor, false);
                return;
            }
            super.visitMethodInsn(opcode, owner, name, descriptor, itf);
        }
    }
}
