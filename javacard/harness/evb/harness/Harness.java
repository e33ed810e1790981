package evb.harness;

import com.licel.jcardsim.base.Simulator;
import com.licel.jcardsim.base.SimulatorRuntime;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.lang.reflect.Field;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Arrays;
import javacard.framework.AID;
import javacard.framework.APDU;
import javacard.framework.Applet;

/**
 * The applet in jCardSim behind a line protocol, for card/javacard.py.
 *
 * One request a line on stdin, one answer a line on stdout:
 *   hex APDU      -> hex response (data then SW1 SW2); "TORN" when the armed power cut fell in it
 *                    (the card is then off: "MUTE" to every APDU until RESET); 6700 for bytes that
 *                    are no command APDU (an empty one cannot be sent: blank lines are skipped)
 *   RESET         -> the card loses power and comes back (RAM cleared, EEPROM kept): "OK"
 *   ATR           -> the simulator's ATR in hex
 *   NEW           -> a new card: every applet deleted, the applet installed afresh: "OK"
 *   PROTOCOL T=x  -> the protocol a PPS chose (T=0 or T=1; the applet shapes answers by it): "OK"
 *   CUT n         -> cut the power after n more persistent writes (the next one is torn); CUT -1
 *                    disarms: "OK"
 *   WRITES        -> the persistent writes since the JVM started, in decimal
 *   CAPACITY n    -> the commit buffer holds n bytes from now on (tests): "OK"
 *   SAVE path     -> the persistent heap into path, a snapshot (tests): "OK"
 *   LOAD path     -> the card becomes the one path holds, power cycled (tests): "OK"
 *   FOOTPRINT     -> what the applet holds in EEPROM, "path=bytes" space-separated ({@link Footprint})
 * Usage: Harness APPLET_CLASS AID_HEX [HEAP_FILE]. The applet's classes are loaded through
 * {@link Instrument} (transactions that roll back, the power-cut hook: {@link Memory}). With a
 * heap file the card's EEPROM lives there ({@link HeapImage}): loaded at start when it exists,
 * saved before the answer of each command that wrote, so a restarted harness is the same card.
 */
public final class Harness {
    private final Simulator simulator = new Simulator();
    private final AID aid;
    private final String appletClass;
    private Class<? extends Applet> applet;
    private Instrument.Loader loader;
    private final Path heap;
    private long savedAt = -1;
    private boolean powered = true;

    private Harness(String appletClass, byte[] aidBytes, Path heap) throws ClassNotFoundException,
            ReflectiveOperationException {
        this.appletClass = appletClass;
        aid = new AID(aidBytes, (short) 0, (byte) aidBytes.length);
        this.heap = heap;
        loadClasses();
        SimulatorRuntime runtime = runtime();
        widenShortBuffer(runtime);
        Memory.apduBuffers(buffer(runtime, "shortAPDU"), buffer(runtime, "extendedAPDU"));
    }

    public static void main(String[] args) throws Exception {
        // stdout is the protocol's: jCardSim's notices (it prints some) go to stderr
        PrintStream out = new PrintStream(new java.io.FileOutputStream(java.io.FileDescriptor.out), false, "US-ASCII");
        System.setOut(System.err);
        Harness h = new Harness(args[0], hex(args[1]), args.length > 2 ? Paths.get(args[2]) : null);
        h.start();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.US_ASCII));
        out.println("READY");
        out.flush();
        String line;
        while ((line = in.readLine()) != null) {
            line = line.trim();
            if (!line.isEmpty()) {
                out.println(h.answer(line));
                out.flush();
            }
        }
    }

    private String answer(String line) throws IOException, ReflectiveOperationException {
        String[] words = line.split(" ");
        switch (words[0]) {
            case "RESET":
                simulator.reset();
                powered = true;
                return "OK";
            case "NEW":
                newCard();
                return "OK";
            case "ATR":
                return toHex(simulator.getATR());
            case "PROTOCOL":
                simulator.changeProtocol(words[1]);
                return "OK";
            case "CUT":
                Memory.cutAfter(Long.parseLong(words[1]));
                return "OK";
            case "WRITES":
                return Long.toString(Memory.writes());
            case "CAPACITY":
                Memory.setCapacity(Short.parseShort(words[1]));
                return "OK";
            case "SAVE":
                HeapImage.save(Paths.get(line.substring(5)), installed(), loader.appletClasses());
                return "OK";
            case "FOOTPRINT":
                return Footprint.of(installed(), loader.appletClasses());
            case "LOAD":
                Memory.powerOn();
                simulator.reset();
                powered = true;
                HeapImage.load(Paths.get(line.substring(5)), installed(), loader);
                savedAt = -1;
                save();
                return "OK";
            default:
                return command(hex(line));
        }
    }

    /** One APDU, with what the runtime does around it that jCardSim does not. */
    private String command(byte[] apdu) throws IOException, ReflectiveOperationException {
        if (!powered) {
            return "MUTE";
        }
        if (!wellFormed(apdu)) {
            // jCardSim throws out of transmitCommand for these (the JVM would end); the card's OS
            // answers 6700 before any applet runs, and the chain or the answer waiting ends
            endWaitAndChain();
            return "6700";
        }
        byte[] response = simulator.transmitCommand(apdu);
        Memory.endOfCommand();  // a transaction process() left open is aborted
        if (Memory.torn()) {
            // the recovery a card runs at its next power-on, done now so the image holds its result
            Memory.powerOn();
            simulator.reset();
            powered = false;
            save();
            return "TORN";
        }
        save();
        return toHex(response);
    }

    /**
     * Whether the bytes are a command APDU of one of ISO 7816-3's cases, short or extended, as
     * apdu/command.py's CommandApdu.from_bytes parses them (card/card.py answers 6700 otherwise):
     * a header, then nothing, Le, Lc and exactly Lc bytes, or those and Le; an extended Lc is
     * never 0.
     */
    static boolean wellFormed(byte[] apdu) {
        int n = apdu.length - 4;
        if (n < 0) {
            return false;
        }
        if (n <= 1) {
            return true;
        }
        int lc = apdu[4] & 0xFF;
        if (lc != 0) {
            return n == 1 + lc || n == 2 + lc;
        }
        if (n == 3) {
            return true;  // an extended Le alone
        }
        int extended = n > 3 ? (apdu[5] & 0xFF) << 8 | (apdu[6] & 0xFF) : 0;
        return extended != 0 && (n == 3 + extended || n == 5 + extended);
    }

    /**
     * What card/card.py does to the OS layer's state for a malformed APDU, done to the applet's:
     * the answer waiting for GET RESPONSE and a chain under way both end (docs/APDU.md 1). Both
     * live in EvbApplet's session[] (RAM), which holds nothing else that outlives a command.
     */
    private void endWaitAndChain() throws ReflectiveOperationException {
        for (Field f : Fields.instanceFields(installed().getClass(), Applet.class)) {
            if (f.getName().equals("session") && f.getType() == short[].class) {
                Arrays.fill((short[]) Fields.get(f, installed()), (short) 0);
            }
        }
    }

    private void start() throws IOException, ReflectiveOperationException {
        simulator.installApplet(aid, applet);
        if (heap != null && HeapImage.exists(heap)) {
            HeapImage.load(heap, installed(), loader);
            savedAt = Memory.writes();
        } else {
            save();
        }
    }

    /** The applet's classes, rewritten, in a loader of their own: a new card has new statics. */
    private void loadClasses() throws ClassNotFoundException {
        String pkg = appletClass.substring(0, appletClass.lastIndexOf('.') + 1);
        loader = new Instrument.Loader(Harness.class.getClassLoader(), Arrays.asList(pkg));
        Fields.loader(loader);
        applet = Class.forName(appletClass, true, loader).asSubclass(Applet.class);
    }

    private void newCard() throws IOException, ReflectiveOperationException {
        Memory.newCard();
        simulator.resetRuntime();
        loadClasses();
        simulator.installApplet(aid, applet);
        powered = true;
        savedAt = -1;
        save();
    }

    /** The heap to its file, when a write happened since it was last saved. */
    private void save() throws IOException, ReflectiveOperationException {
        if (heap == null || savedAt == Memory.writes()) {
            return;
        }
        HeapImage.save(heap, installed(), loader.appletClasses());
        savedAt = Memory.writes();
    }

    private SimulatorRuntime runtime() throws ReflectiveOperationException {
        Field f = Simulator.class.getDeclaredField("runtime");
        f.setAccessible(true);
        return (SimulatorRuntime) f.get(simulator);
    }

    private Applet installed() throws ReflectiveOperationException {
        return runtime().lookupApplet(aid).getApplet();
    }

    /**
     * jCardSim copies a whole short command into a 260-byte buffer, Le included, so a case-4
     * command with 255 data bytes (261 bytes) overflows it and the runtime answers 6F00 before the
     * applet sees it. A card keeps the header and the data (260 bytes) and reads Le apart; one
     * byte more here, which no applet reads, lets such a command through as on a card.
     */
    private static void widenShortBuffer(SimulatorRuntime runtime) throws ReflectiveOperationException {
        Field a = SimulatorRuntime.class.getDeclaredField("shortAPDU");
        a.setAccessible(true);
        Object apdu = a.get(runtime);
        Field b = apdu.getClass().getDeclaredField("buffer");
        b.setAccessible(true);
        b.set(apdu, new byte[261]);
    }

    private static byte[] buffer(SimulatorRuntime runtime, String name) throws ReflectiveOperationException {
        Field f = SimulatorRuntime.class.getDeclaredField(name);
        f.setAccessible(true);
        return ((APDU) f.get(runtime)).getBuffer();
    }

    private static byte[] hex(String s) {
        byte[] out = new byte[s.length() / 2];
        for (int i = 0; i < out.length; i++) {
            out[i] = (byte) Integer.parseInt(s.substring(2 * i, 2 * i + 2), 16);
        }
        return out;
    }

    private static String toHex(byte[] b) {
        StringBuilder sb = new StringBuilder();
        for (byte x : b) {
            sb.append(String.format("%02X", x & 0xFF));
        }
        return sb.toString();
    }
}
