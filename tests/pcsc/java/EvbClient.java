// A javax.smartcardio client for the evb wallet card, as a Java terminal program would be written:
// the JDK's own T=0/T=1 handling (Le stripped from case-4 commands on T=0, 61xx fetched with GET
// RESPONSE under the command's CLA, 6Cxx re-issued) is what is under test.
//
//   java -Dsun.security.smartcardio.library=/usr/lib/x86_64-linux-gnu/libpcsclite.so.1 \
//        EvbClient READER T=0|T=1 PIN PUK VAULT_PUBLIC_KEY_HEX
//
// Prints "ok <step>" per step; the first failed check prints "FAIL <step>: …" and exits 1.

import java.io.ByteArrayOutputStream;
import java.util.Arrays;
import java.util.HexFormat;
import javax.smartcardio.Card;
import javax.smartcardio.CardChannel;
import javax.smartcardio.CardException;
import javax.smartcardio.CardTerminal;
import javax.smartcardio.CommandAPDU;
import javax.smartcardio.ResponseAPDU;
import javax.smartcardio.TerminalFactory;

public final class EvbClient {
    static final HexFormat HEX = HexFormat.of().withUpperCase();
    static final byte[] AID = HEX.parseHex("F0455642574C0101");
    static final int OK = 0x9000;

    static final class Failed extends Exception {
        Failed(String message) { super(message); }
    }

    private final CardChannel channel;
    private final boolean t0;

    EvbClient(CardChannel channel, boolean t0) {
        this.channel = channel;
        this.t0 = t0;
    }

    /** Send one command; check its status word; answer its data. */
    byte[] expect(String step, CommandAPDU command, int sw) throws CardException, Failed {
        ResponseAPDU r = channel.transmit(command);
        if (r.getSW() != sw) {
            throw new Failed(String.format("%s: %s answered %04X, expected %04X", step,
                    HEX.formatHex(command.getBytes()), r.getSW(), sw));
        }
        System.out.println("ok " + step);
        return r.getData();
    }

    static void check(String step, boolean condition, String what) throws Failed {
        if (!condition) throw new Failed(step + ": " + what);
    }

    static byte[] pinBlock(String pin) {
        byte[] block = new byte[8];
        Arrays.fill(block, (byte) 0xFF);
        byte[] digits = pin.getBytes();
        System.arraycopy(digits, 0, block, 0, digits.length);
        return block;
    }

    static byte[] concat(byte[]... parts) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (byte[] p : parts) out.writeBytes(p);
        return out.toByteArray();
    }

    /** A value record (docs/APDU.md 3.4): type, name, balance, payload. */
    static byte[] record(int type, String name, int balance, int payloadSize) {
        byte[] nameBytes = name.getBytes();
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.writeBytes(new byte[] {(byte) 0x81, 1, (byte) type});
        out.writeBytes(new byte[] {(byte) 0x83, (byte) nameBytes.length});
        out.writeBytes(nameBytes);
        out.writeBytes(new byte[] {(byte) 0x86, 4, 0, 0, (byte) (balance >> 8), (byte) balance});
        if (payloadSize > 0) {
            out.writeBytes(new byte[] {(byte) 0x8C, (byte) 0x82, (byte) (payloadSize >> 8), (byte) payloadSize});
            byte[] payload = new byte[payloadSize];
            for (int i = 0; i < payloadSize; i++) payload[i] = (byte) i;
            out.writeBytes(payload);
        }
        return out.toByteArray();
    }

    void run(String pin, String puk, byte[] vaultKey) throws CardException, Failed {
        // SELECT, case 4: on T=0 the JDK strips Le, the card answers 610C, the JDK fetches the FCI
        byte[] fci = expect("select-case-4", new CommandAPDU(0x00, 0xA4, 0x04, 0x00, AID, 256), OK);
        check("select-case-4", fci.length == 12 && fci[0] == 0x6F && Arrays.equals(Arrays.copyOfRange(fci, 4, 12), AID),
                "FCI " + HEX.formatHex(fci));
        // SELECT, case 3: the data only where ISO asks for it (T=0: 61xx, T=1: no Le means none)
        byte[] bare = expect("select-case-3", new CommandAPDU(0x00, 0xA4, 0x04, 0x00, AID), OK);
        check("select-case-3", bare.length == (t0 ? 12 : 0), "answered " + bare.length + " bytes");

        // GET CARD INFO, case 2; with a wrong Le the card answers 6C1D and the JDK re-issues
        byte[] info = expect("card-info-case-2", new CommandAPDU(0x80, 0x10, 0, 0, 0x1D), OK);
        check("card-info-case-2", info.length == 29 && info[2] == 2, "info " + HEX.formatHex(info));
        byte[] again = expect("card-info-6cxx", new CommandAPDU(0x80, 0x10, 0, 0, 5), OK);
        check("card-info-6cxx", Arrays.equals(again, info), "re-issued answer differs");
        expect("card-info-bad-p1p2", new CommandAPDU(0x80, 0x10, 1, 0, 0x1D), 0x6A86);

        // identity and attestation, case 2
        byte[] identity = expect("get-identity", new CommandAPDU(0x80, 0x30, 0, 0, 256), OK);
        check("get-identity", identity.length == 73 && identity[8] == 0x04, "identity length " + identity.length);
        check("get-identity", Arrays.equals(Arrays.copyOfRange(identity, 0, 8), Arrays.copyOfRange(info, 3, 11)),
                "card id differs from GET CARD INFO's");
        expect("get-attestation", new CommandAPDU(0x80, 0x3A, 0, 0, 256), OK);

        // VERIFY: case 1 (status), case 3 (the PIN)
        expect("verify-status", new CommandAPDU(0x00, 0x20, 0x00, 0x81), 0x63C3);
        expect("verify", new CommandAPDU(0x00, 0x20, 0x00, 0x81, pinBlock(pin)), OK);
        expect("verify-status-verified", new CommandAPDU(0x00, 0x20, 0x00, 0x81), OK);

        // STORE VALUE, case 4 under CLA 80: on T=0 the data comes back through 6102 and GET
        // RESPONSE under CLA 80 (the JDK's choice), which the card accepts
        byte[] id = expect("store-case-4", new CommandAPDU(0x80, 0x16, 0, 0, record(2, "Java prepaid", 800, 0), 2), OK);
        check("store-case-4", id.length == 2, "id " + HEX.formatHex(id));
        // a record over 255 bytes: command chaining (CLA 90, then 80) with short APDUs
        byte[] big = record(4, "Java voucher", 0, 400);
        expect("store-chained-link", new CommandAPDU(0x90, 0x16, 0, 0, Arrays.copyOfRange(big, 0, 200)), OK);
        byte[] bigId = expect("store-chained-last",
                new CommandAPDU(0x80, 0x16, 0, 0, Arrays.copyOfRange(big, 200, big.length), 2), OK);

        // LIST VALUES, case 4 (a filter: prepaid only)
        byte[] filter = {1, 2, 0, 0, 0, 0, 0, 0};
        byte[] listing = expect("list-case-4", new CommandAPDU(0x80, 0x12, 0, 0, filter, 256), OK);
        check("list-case-4", listing.length > 2 && listing[0] == id[0] && listing[1] == id[1],
                "listing " + HEX.formatHex(listing));

        // READ VALUE, case 2; the voucher's record is longer than 256 bytes: 61xx on either protocol
        byte[] read = expect("read-case-2", new CommandAPDU(0x80, 0x14, id[0] & 0xFF, id[1] & 0xFF, 256), OK);
        check("read-case-2", read[0] == (byte) 0x80 && read[2] == id[0] && read[3] == id[1], "read " + HEX.formatHex(read));
        byte[] long_ = expect("read-over-256-get-response",
                new CommandAPDU(0x80, 0x14, bigId[0] & 0xFF, bigId[1] & 0xFF, 256), OK);
        check("read-over-256-get-response", long_.length > 400, "read " + long_.length + " bytes");

        // MODIFY VALUE, case 4: spend 300 of 800
        byte[] left = expect("modify-case-4", new CommandAPDU(0x80, 0x18, id[0] & 0xFF, id[1] & 0xFF,
                new byte[] {1, 0, 0, 1, 0x2C}, 4), OK);
        check("modify-case-4", Arrays.equals(left, new byte[] {0, 0, 1, (byte) 0xF4}), "left " + HEX.formatHex(left));

        // INTERNAL AUTHENTICATE, case 4 under CLA 00, for the vault whose key the card pins (case 3)
        expect("put-vault-key", new CommandAPDU(0x80, 0x32, 0, 0, vaultKey), OK);
        byte[] challenge = new byte[16];
        Arrays.fill(challenge, (byte) 0x5A);
        byte[] signature = expect("internal-authenticate-case-4", new CommandAPDU(0x00, 0x88, 0x01, 0x00, challenge, 256), OK);
        check("internal-authenticate-case-4", signature.length >= 8 && signature[0] == 0x30, "signature "
                + HEX.formatHex(signature));

        // GET RESPONSE with nothing waiting; unknown INS and CLA
        expect("get-response-nothing-waiting", new CommandAPDU(0x80, 0xC0, 0, 0, 256), 0x6985);
        expect("unknown-ins", new CommandAPDU(0x80, 0xF0, 0, 0), 0x6D00);
        expect("unknown-cla", new CommandAPDU(0xA0, 0x10, 0, 0, 0x1D), 0x6E00);

        // DELETE VALUE, case 1
        expect("delete-case-1", new CommandAPDU(0x80, 0x1A, bigId[0] & 0xFF, bigId[1] & 0xFF), OK);
        expect("delete-gone", new CommandAPDU(0x80, 0x1A, bigId[0] & 0xFF, bigId[1] & 0xFF), 0x6A83);

        // log out (VERIFY P1 FF): the PIN is needed again
        expect("log-out", new CommandAPDU(0x00, 0x20, 0xFF, 0x81), OK);
        expect("delete-after-log-out", new CommandAPDU(0x80, 0x1A, id[0] & 0xFF, id[1] & 0xFF), 0x6982);

        // GET MEMORY MAP, case 2, no PIN: memory size, five areas, the one entry left (the prepaid value)
        byte[] map = expect("memory-map-case-2", new CommandAPDU(0x80, 0x1C, 0, 0, 256), OK);
        check("memory-map-case-2", map.length == 7 + 5 * 9 + 10 && map[map.length - 8] == id[0]
                && map[map.length - 7] == id[1], "map " + HEX.formatHex(map));

        // CHANGE REFERENCE DATA, then RESET RETRY COUNTER with the unblocking code back to the PIN
        expect("change-pin", new CommandAPDU(0x00, 0x24, 0x00, 0x81, concat(pinBlock(pin), pinBlock("97531"))), OK);
        expect("wrong-pin", new CommandAPDU(0x00, 0x20, 0x00, 0x81, pinBlock(pin)), 0x63C2);
        expect("reset-retry-counter", new CommandAPDU(0x00, 0x2C, 0x00, 0x81, concat(puk.getBytes(), pinBlock(pin))), OK);
        expect("verify-status-after-unblock", new CommandAPDU(0x00, 0x20, 0x00, 0x81), 0x63C3);
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 5) {
            System.err.println("usage: EvbClient READER T=0|T=1 PIN PUK VAULT_PUBLIC_KEY_HEX");
            System.exit(2);
        }
        CardTerminal terminal = TerminalFactory.getDefault().terminals().getTerminal(args[0]);
        if (terminal == null) {
            System.out.println("FAIL connect: no reader " + args[0]);
            System.exit(1);
        }
        Card card = terminal.connect(args[1]);
        try {
            String protocol = card.getProtocol();
            if (!protocol.equals(args[1])) {
                System.out.println("FAIL connect: asked for " + args[1] + ", got " + protocol);
                System.exit(1);
            }
            System.out.println("ok connect " + protocol);
            new EvbClient(card.getBasicChannel(), protocol.equals("T=0")).run(args[2], args[3], HEX.parseHex(args[4]));
        } catch (Failed failed) {
            System.out.println("FAIL " + failed.getMessage());
            System.exit(1);
        } finally {
            card.disconnect(false);  // leave the card powered, as a good PC/SC citizen does
        }
        System.out.println("done");
    }
}
