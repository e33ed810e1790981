package evb.harness;

import com.licel.jcardsim.base.Simulator;
import java.io.BufferedReader;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import javacard.framework.AID;

/**
 * The applet in jCardSim behind a line protocol, for the tests' transport (tests/javacard/applet.py).
 *
 * One request a line on stdin, one answer a line on stdout:
 *   hex APDU      -> hex response (data then SW1 SW2)
 *   RESET         -> the card loses power and comes back (RAM cleared, EEPROM kept): "OK"
 *   ATR           -> the simulator's ATR in hex
 *   NEW           -> a new card: every applet deleted, the applet installed afresh: "OK"
 * Usage: Harness APPLET_CLASS AID_HEX. The applet is installed (its install() runs) at start.
 */
public final class Harness {
    private Harness() {
    }

    public static void main(String[] args) throws Exception {
        // the protocol owns stdout; jCardSim's own chatter ("getInstance of ...") goes to stderr
        PrintStream out = new PrintStream(new FileOutputStream(FileDescriptor.out), false, "US-ASCII");
        System.setOut(System.err);
        Simulator simulator = new Simulator();
        byte[] aidBytes = hex(args[1]);
        AID aid = new AID(aidBytes, (short) 0, (byte) aidBytes.length);
        Class<? extends javacard.framework.Applet> applet =
            Class.forName(args[0]).asSubclass(javacard.framework.Applet.class);
        simulator.installApplet(aid, applet);
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.US_ASCII));
        out.println("READY");
        out.flush();
        String line;
        while ((line = in.readLine()) != null) {
            line = line.trim();
            if (line.isEmpty()) {
                continue;
            }
            if (line.equals("RESET")) {
                simulator.reset();
                out.println("OK");
            } else if (line.equals("NEW")) {
                simulator.resetRuntime();
                simulator.installApplet(aid, applet);
                out.println("OK");
            } else if (line.equals("ATR")) {
                out.println(toHex(simulator.getATR()));
            } else {
                out.println(toHex(simulator.transmitCommand(hex(line))));
            }
            out.flush();
        }
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
