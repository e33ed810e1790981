package evb.wallet;

import javacard.framework.APDU;
import javacard.framework.Applet;
import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.JCSystem;
import javacard.framework.Util;

/**
 * What the package's applets share below their commands: install, receiving as the Python card's
 * OS layer does (card/card.py _process: command chaining up to 4096 bytes), and answering as it
 * shapes every applet's answers (card/card.py _shape and _get_response): Ne, 6Cxx, 61xx on both
 * protocols and GET RESPONSE, which jCardSim's runtime does none of. An answer is a source
 * (answer[] in RAM by default; an applet may add its own in {@link #emit}) and a length, read on
 * by GET RESPONSE from where it stopped, so none is copied whole into RAM.
 */
abstract class EvbApplet extends Applet {
    static final byte INS_GET_RESPONSE = (byte) 0xC0;
    static final byte CLA_ISO = (byte) 0x00;
    static final byte CLA_PROPRIETARY = (byte) 0x80;
    static final byte CLA_CHAINING = (byte) 0x10;
    static final short MAX_SHORT = 32767;
    private static final short SW_CHAINING_NOT_SUPPORTED = (short) 0x6884;
    static final short SW_LAST_COMMAND_EXPECTED = (short) 0x6883;
    /** Bytes a command chain may collect, as the Python card's OS (card/card.py MAX_CHAIN). */
    static final short MAX_CHAIN = 4096;

    static final byte SRC_NONE = 0;
    static final byte SRC_RAM = 1;  // answer[0..total)
    // session[]: the answer being sent (its source, how far GET RESPONSE has read, its length);
    // an applet keeps its own session state after these
    static final short S_SOURCE = 0;
    static final short S_POS = 1;
    static final short S_TOTAL = 2;
    // the chain under way (bytes collected, 1 while one is), and where this command's data is
    static final short S_CHAIN = 3;
    static final short S_CHAINING = 4;
    static final short S_BIG = 5;  // 1: in received[0..), a chain's or longer than the APDU buffer
    static final short S_APPLET = 6;  // an applet's own session slots from here

    final byte[] answer;
    final short[] session;
    /**
     * Chains (and data longer than the APDU buffer) collect here, as much of them as the applet
     * keeps: its length is the applet's choice (the wallet keeps a whole chain, the ID card the
     * part any of its commands can take, each refusing longer data by its length alone). EEPROM,
     * because 4 KB is more RAM than many cards have, written without a transaction: nothing
     * refers to it across a power loss (the chain's length is in RAM).
     */
    final byte[] received;
    private final byte[] chainHead;  // INS P1 P2 of the chain under way

    EvbApplet(short answerLen, short sessionLen, short kept) {
        answer = JCSystem.makeTransientByteArray(answerLen, JCSystem.CLEAR_ON_RESET);
        session = JCSystem.makeTransientShortArray(sessionLen, JCSystem.CLEAR_ON_RESET);
        received = new byte[kept];
        chainHead = JCSystem.makeTransientByteArray((short) 3, JCSystem.CLEAR_ON_RESET);
    }

    /** Register after install: GlobalPlatform parameters begin with the instance AID, if any. */
    final void registerFrom(byte[] bArray, short bOffset, byte bLength) {
        byte aidLength = bLength == 0 ? 0 : bArray[bOffset];
        if (aidLength == 0) {
            register();
        } else {
            register(bArray, (short) (bOffset + 1), aidLength);
        }
    }

    // --- receiving: the APDU buffer, or received[] for chains and long data ----------------------

    /**
     * The Python card's OS layer below every applet's command (card/card.py _process): a logical
     * channel 6881, a class other than 00 and 80 (with or without chaining) 6E00, a chain link
     * (CLA | 10) kept, answering -1 (9000, nothing more to do); otherwise this command's data, a
     * chain's last link joined to the links before it, answering its length (at most 32767). Where
     * the data is: {@link #data} and {@link #dataOffset}.
     */
    final short receiveCommand(APDU apdu) {
        byte cla = apdu.getBuffer()[ISO7816.OFFSET_CLA];
        if ((cla & 0x03) != 0) {
            ISOException.throwIt(ISO7816.SW_LOGICAL_CHANNEL_NOT_SUPPORTED);
        }
        byte base = (byte) (cla & ~CLA_CHAINING);
        if (base != CLA_ISO && base != CLA_PROPRIETARY) {
            ISOException.throwIt(ISO7816.SW_CLA_NOT_SUPPORTED);
        }
        if ((cla & CLA_CHAINING) != 0) {
            chainLink(apdu);
            return -1;
        }
        if (session[S_CHAINING] == 0) {
            return receive(apdu, (short) 0);
        }
        short total = append(apdu);
        endChain();
        session[S_BIG] = 1;
        return total;
    }

    final byte[] data(APDU apdu) {
        return session[S_BIG] != 0 ? received : apdu.getBuffer();
    }

    final short dataOffset(APDU apdu) {
        return session[S_BIG] != 0 ? 0 : apdu.getOffsetCdata();
    }

    /** Keep a link of a chain (CLA | 10): the command runs when its unchained last link comes. */
    private void chainLink(APDU apdu) {
        append(apdu);
        Util.arrayCopyNonAtomic(apdu.getBuffer(), ISO7816.OFFSET_INS, chainHead, (short) 0, (short) 3);
        session[S_CHAINING] = 1;
    }

    /** A SELECT is no last link: a chain under way ends with 6883 (card/card.py). */
    final void selectEndsChain() {
        if (session[S_CHAINING] != 0) {
            endChain();
            ISOException.throwIt(SW_LAST_COMMAND_EXPECTED);
        }
    }

    private void endChain() {
        session[S_CHAINING] = 0;
        session[S_CHAIN] = 0;
    }

    /**
     * Add this link's data to the chain, as much as received[] keeps: 6883 for another INS/P1/P2,
     * 6700 past 4096 bytes; answers the chain's length so far.
     */
    private short append(APDU apdu) {
        byte[] buf = apdu.getBuffer();
        if (session[S_CHAINING] != 0 && Util.arrayCompare(buf, ISO7816.OFFSET_INS, chainHead, (short) 0, (short) 3) != 0) {
            endChain();
            ISOException.throwIt(SW_LAST_COMMAND_EXPECTED);
        }
        short at = session[S_CHAIN];
        short lc = receive(apdu, at);
        if (lc > (short) (MAX_CHAIN - at)) {
            endChain();
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        short room = (short) (received.length - at);
        if (session[S_BIG] == 0 && room > 0) {
            Util.arrayCopyNonAtomic(buf, apdu.getOffsetCdata(), received, at, lc < room ? lc : room);
        }
        session[S_CHAIN] = (short) (at + lc);
        return session[S_CHAIN];
    }

    /**
     * Receive the command data; answers Lc (at most 32767). Data that fits the APDU buffer stays
     * there; longer data (a real card's extended APDU) goes to received[at..], as much as is kept,
     * and session[S_BIG] says so: every command that takes data refuses a length beyond 4096 by
     * its Lc alone, as the Python card refuses it by its length.
     */
    private short receive(APDU apdu, short at) {
        byte[] buf = apdu.getBuffer();
        short got = apdu.setIncomingAndReceive();
        short off = apdu.getOffsetCdata();
        short lc = apdu.getIncomingLength();
        session[S_BIG] = 0;
        if (lc >= 0 && lc <= (short) (buf.length - off)) {
            while (got < lc) {
                got += apdu.receiveBytes((short) (off + got));
            }
            return lc;
        }
        session[S_BIG] = 1;
        short total = 0;
        while (got > 0) {
            short room = (short) (received.length - at - total);
            if (room > 0) {
                Util.arrayCopyNonAtomic(buf, off, received, (short) (at + total), got < room ? got : room);
            }
            total = (short) (total + got) < 0 ? MAX_SHORT : (short) (total + got);
            got = apdu.receiveBytes(off);
        }
        return total;
    }

    // --- answering ------------------------------------------------------------------------------

    /**
     * Serve a GET RESPONSE (answers true), or end the wait: any other command does (ISO 7816-4
     * 5.3.4). A refused GET RESPONSE is no new command: the waiting data stays for a corrected one.
     */
    final boolean gettingResponse(APDU apdu) {
        if (!selectingApplet() && apdu.getBuffer()[ISO7816.OFFSET_INS] == INS_GET_RESPONSE) {
            getResponse(apdu);
            return true;
        }
        session[S_SOURCE] = SRC_NONE;
        return false;
    }

    /**
     * Send ``total`` bytes of the answer ``source``: no Le, the status alone on T=1 and 61xx on T=0
     * (where a case-4 command arrives without its Le); what fits Ne sent; an Le too short on a
     * read-only case-2 command with at most 256 bytes, 6Cxx; otherwise Ne bytes and 61xx, the rest
     * waiting for GET RESPONSE.
     */
    final void respond(APDU apdu, byte source, short total, short lc, boolean readOnly) {
        if (total == 0) {
            return;
        }
        short le = apdu.setOutgoing();
        if (le == 0 && (APDU.getProtocol() & 0x0F) == APDU.PROTOCOL_T1) {
            return;
        }
        short ne = le < 0 ? MAX_SHORT : le;
        if (total <= ne) {
            apdu.setOutgoingLength(total);
            emit(apdu, source, (short) 0, total);
            return;
        }
        if (le != 0 && lc == 0 && readOnly && total <= 256) {  // case 2: an Le, no data
            ISOException.throwIt((short) (ISO7816.SW_CORRECT_LENGTH_00 | (total & 0xFF)));
        }
        session[S_SOURCE] = source;
        session[S_TOTAL] = total;
        session[S_POS] = ne;
        if (ne > 0) {
            apdu.setOutgoingLength(ne);
            emit(apdu, source, (short) 0, ne);
        }
        moreWaiting();
    }

    private void moreWaiting() {
        short left = (short) (session[S_TOTAL] - session[S_POS]);
        ISOException.throwIt((short) (ISO7816.SW_BYTES_REMAINING_00 | (left > 255 ? 0 : left)));
    }

    private void getResponse(APDU apdu) {
        byte[] buf = apdu.getBuffer();
        byte cla = buf[ISO7816.OFFSET_CLA];
        if ((cla & 0x03) != 0) {
            ISOException.throwIt(ISO7816.SW_LOGICAL_CHANNEL_NOT_SUPPORTED);
        }
        if ((cla & CLA_CHAINING) != 0) {
            ISOException.throwIt(SW_CHAINING_NOT_SUPPORTED);
        }
        if (cla != CLA_ISO && cla != CLA_PROPRIETARY) {
            ISOException.throwIt(ISO7816.SW_CLA_NOT_SUPPORTED);
        }
        if (Util.getShort(buf, ISO7816.OFFSET_P1) != 0) {
            ISOException.throwIt(ISO7816.SW_INCORRECT_P1P2);
        }
        if (apdu.setIncomingAndReceive() != 0 || apdu.getIncomingLength() != 0) {
            ISOException.throwIt(ISO7816.SW_WRONG_LENGTH);
        }
        byte source = (byte) session[S_SOURCE];
        if (source == SRC_NONE) {
            ISOException.throwIt(ISO7816.SW_CONDITIONS_NOT_SATISFIED);
        }
        short le = apdu.setOutgoing();
        short ne = le == 0 ? (short) 256 : (le < 0 ? MAX_SHORT : le);
        short pos = session[S_POS];
        short left = (short) (session[S_TOTAL] - pos);
        short n = left < ne ? left : ne;
        apdu.setOutgoingLength(n);
        emit(apdu, source, pos, n);
        session[S_POS] = (short) (pos + n);
        if (n < left) {
            moreWaiting();
        }
        session[S_SOURCE] = SRC_NONE;
    }

    /** Send bytes [from, from + count) of an answer: answer[] for SRC_RAM; an applet adds its sources. */
    void emit(APDU apdu, byte source, short from, short count) {
        apdu.sendBytesLong(answer, from, count);
    }

    /**
     * Of ``n`` bytes at src[srcOff..) that stand at ``at`` in a generated answer, send the part
     * inside [from, end) (nothing when ``apdu`` is null: the caller is only measuring).
     */
    static void sendPart(APDU apdu, byte[] src, short srcOff, short at, short n, short from, short end) {
        if (apdu != null && at < end && (short) (at + n) > from) {
            short a = at < from ? (short) (from - at) : 0;
            short b = (short) (at + n) > end ? (short) (end - at) : n;
            apdu.sendBytesLong(src, (short) (srcOff + a), (short) (b - a));
        }
    }
}
