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
 * Keys: a call of a key's set* or clearKey, or of KeyPair.genKeyPair, goes through a bridge
 * method added to the calling class, which reports the key to {@link Memory#apiWrite} first
 * (one write; in a transaction its components are saved for the undo).
 *
 * Crypto outputs (a digest, a signature, a cipher's output, random bytes, a key's component)
 * go through such a bridge too, which reports the output array to {@link Memory#apiOutput}:
 * into a persistent array that is one write, never journalled (the spec does not promise that
 * the API's writes join a transaction: the pessimistic reading, so that an applet relying on it
 * fails here rather than on a card).
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

    /** The API types whose set*, clearKey and genKeyPair calls write a key ({@link Memory#apiWrite}). */
    private static final Set<String> KEY_TYPES = new HashSet<>(Arrays.asList(
        "javacard/security/Key", "javacard/security/SecretKey", "javacard/security/PrivateKey",
        "javacard/security/PublicKey", "javacard/security/AESKey", "javacard/security/DESKey",
        "javacard/security/HMACKey", "javacard/security/ECKey", "javacard/security/ECPrivateKey",
        "javacard/security/ECPublicKey", "javacard/security/KeyPair"));

    private Instrument() {
    }

    private static final Set<String> OUTPUT_AFTER_INPUT = new HashSet<>(
        Arrays.asList("doFinal", "update", "sign", "signPreComputedHash", "generateSecret"));

    private static boolean writesKey(String owner, String name) {
        return KEY_TYPES.contains(owner)
            && (name.startsWith("set") || name.equals("clearKey") || name.equals("genKeyPair"));
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
            private final java.util.Map<String, String[]> bridges = new java.util.LinkedHashMap<>();

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
                return new Writes(mv, self, name, bridges);
            }

            @Override
            public void visitEnd() {
                for (String[] b : bridges.values()) {
                    bridge(cv, b[4], b);
                }
                super.visitEnd();
            }
        }, 0);
        return writer.toByteArray();
    }

    /**
     * {@code static R name(Owner target, args...)}: {@link Memory#apiWrite} on the target, then
     * the API call itself. A call on an interface's receiver cannot be reached under its
     * arguments on the stack, so the call site calls this instead.
     */
    private static void bridge(ClassVisitor cv, String name, String[] call) {
        int opcode = Integer.parseInt(call[0]);
        String owner = call[1];
        String method = call[2];
        org.objectweb.asm.Type type = org.objectweb.asm.Type.getMethodType(call[3]);
        String descriptor = bridgeDescriptor(owner, call[3]);
        MethodVisitor mv = cv.visitMethod(Opcodes.ACC_PRIVATE | Opcodes.ACC_STATIC | Opcodes.ACC_SYNTHETIC,
                                          name, descriptor, null, null);
        mv.visitCode();
        int output = Integer.parseInt(call[5]);
        org.objectweb.asm.Type[] args = type.getArgumentTypes();
        if (output < 0) {
            mv.visitVarInsn(Opcodes.ALOAD, 0);
            mv.visitMethodInsn(Opcodes.INVOKESTATIC, MEMORY, "apiWrite", "(Ljava/lang/Object;)V", false);
        } else {
            mv.visitVarInsn(Opcodes.ALOAD, slotOf(args, output));
            mv.visitMethodInsn(Opcodes.INVOKESTATIC, MEMORY, "apiOutput", "(Ljava/lang/Object;)V", false);
        }
        mv.visitVarInsn(Opcodes.ALOAD, 0);
        for (int i = 0; i < args.length; i++) {
            mv.visitVarInsn(args[i].getOpcode(Opcodes.ILOAD), slotOf(args, i));
        }
        mv.visitMethodInsn(opcode, owner, method, call[3], opcode == Opcodes.INVOKEINTERFACE);
        mv.visitInsn(type.getReturnType().getOpcode(Opcodes.IRETURN));
        mv.visitMaxs(0, 0);
        mv.visitEnd();
    }

    /** The local slot of argument {@code i} of a bridge (slot 0 holds the target). */
    private static int slotOf(org.objectweb.asm.Type[] args, int i) {
        int slot = 1;
        for (int k = 0; k < i; k++) {
            slot += args[k].getSize();
        }
        return slot;
    }

    /**
     * The argument a crypto call writes its output into (the last byte array of a digest's,
     * cipher's, signature's or key agreement's doFinal, update, sign or generateSecret with an
     * input array before it; the array of generateData, nextBytes and a key's get*), or -1.
     */
    private static int outputArgument(String owner, String name, String descriptor) {
        if (!owner.startsWith("javacard/security/") && !owner.startsWith("javacardx/crypto/")) {
            return -1;
        }
        org.objectweb.asm.Type[] args = org.objectweb.asm.Type.getArgumentTypes(descriptor);
        int arrays = 0;
        int last = -1;
        for (int i = 0; i < args.length; i++) {
            if (args[i].getDescriptor().equals("[B")) {
                arrays++;
                last = i;
            }
        }
        boolean single = name.equals("generateData") || name.equals("nextBytes") || name.startsWith("get");
        boolean inThenOut = OUTPUT_AFTER_INPUT.contains(name) && arrays >= 2;
        return single || inThenOut ? last : -1;
    }

    private static String bridgeDescriptor(String owner, String descriptor) {
        return "(L" + owner + ";" + descriptor.substring(1);
    }

    private static final class Writes extends MethodVisitor {
        private final String self;
        private final boolean constructor;
        private final boolean classInit;
        private final java.util.Map<String, String[]> bridges;

        Writes(MethodVisitor mv, String self, String method, java.util.Map<String, String[]> bridges) {
            super(Opcodes.ASM9, mv);
            this.self = self;
            this.bridges = bridges;
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
            boolean instance = opcode == Opcodes.INVOKEINTERFACE || opcode == Opcodes.INVOKEVIRTUAL;
            int output = instance ? outputArgument(owner, name, descriptor) : -1;
            if (instance && (writesKey(owner, name) || output >= 0)) {
                String call = opcode + " " + owner + "." + name + descriptor;
                String bridge = bridges.computeIfAbsent(call, c -> new String[] {
                    Integer.toString(opcode), owner, name, descriptor, "evb$apiWrite$" + bridges.size(),
                    Integer.toString(output)})[4];
                super.visitMethodInsn(Opcodes.INVOKESTATIC, self, bridge, bridgeDescriptor(owner, descriptor),
                                      false);
                return;
            }
            super.visitMethodInsn(opcode, owner, name, descriptor, itf);
        }
    }
}
