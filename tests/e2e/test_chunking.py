"""
test_chunking.py: CHUNKING and BINARYMIME inbound (RFC 3030).

A BDAT chunk is exactly the announced number of octets: nothing in it ends
the message or is unstuffed, and nothing in it is ever read as a command,
even when the chunk is refused (the octets are read and discarded first;
RFC 3030 2). Each case checks the replies in order and ends with a NOOP
that must get 250, so a session that lost its place in the stream fails.

Cases: one chunk with LAST (delivered byte for byte after the Received
header); several chunks pipelined in one send, with a CRLF split across
two chunks; BDAT 0 LAST alone and after other chunks; chunk sizes that
cross max_message_size (552, octets discarded, later pipelined chunks
discarded too until RSET, a new message works); BDAT before MAIL and
before RCPT (503, octets discarded); DATA, RCPT and MAIL after BDAT (503);
BODY=BINARYMIME with DATA (503); BINARYMIME content with every byte value,
bare CR/LF, NUL and a long line stored exactly as sent (read back from the
queue file while delivery is blocked) and delivered; "\\r\\n.\\r\\n" and
dot lines inside a chunk; the bare LF policy of DATA for 7BIT/8BITMIME
chunks (reject, normalize); hop counting; a BDAT whose size cannot be
parsed (501, connection closed); a 3 MB message in pipelined chunks (the
spool backpressure path); timeout_data bounding a whole BDAT message, the
waits between chunks included (421).
"""

import os
import time

import pytest

from harness import (expected_maildir_bytes, maildir_form,
                     queue_id_from_reply, wait_until)
from queuefile import block_maildir, records

pytestmark = pytest.mark.timeout(300)

SENDER = "sender@remote.test"
ALICE = "alice@example.test"


def bdat(data, last=False):
    """One BDAT command with its chunk."""
    return b"BDAT %d%s\r\n" % (len(data), b" LAST" if last else b"") + data


def start(c, body=None, rcpts=(ALICE,)):
    c.read_greeting()
    lines = c.ehlo()
    assert "CHUNKING" in lines and "BINARYMIME" in lines, lines
    param = "" if body is None else " BODY=" + body
    c.send("MAIL FROM:<%s>%s\r\n" % (SENDER, param))
    c.expect(250, "2.1.0")
    for r in rcpts:
        c.send("RCPT TO:<%s>\r\n" % r)
        c.expect(250, "2.1.5")


def expect_octets(c, n):
    lines = c.expect(250, "2.0.0")
    assert lines == ["2.0.0 %d octets received" % n], lines


def expect_queued(c):
    lines = c.expect(250, "2.0.0")
    return queue_id_from_reply(lines)


def in_sync(c):
    c.send(b"NOOP\r\n")
    c.expect(250, "2.0.0")


def delivered_one(p, sent, qid, rcpt=ALICE):
    [f] = p.wait_delivered(rcpt, 1)
    return expected_maildir_bytes(SENDER, sent, f, rcpt=rcpt,
                                  queue_id=qid)


# ---- queue files (docs/queue-format.md) ----

REC_CONTENT = 0x10


def queue_content(path):
    return b"".join(pl for t, pl in records(path) if t == REC_CONTENT)


# ---- the cases ----

def test_single_chunk_last(petrel):
    msg = (b"From: <sender@remote.test>\r\nTo: <alice@example.test>\r\n"
           b"Subject: one chunk\r\n\r\nHello by BDAT.\r\n")
    with petrel.raw() as c:
        start(c)
        c.send(bdat(msg, last=True))
        qid = expect_queued(c)
        in_sync(c)
        c.send(b"QUIT\r\n")
        c.expect(221)
    delivered_one(petrel, msg, qid)


def test_pipelined_chunks_one_send(petrel):
    """MAIL, RCPT, four chunks and QUIT in one write. The first chunk ends
    in CR and the next starts with LF: one CRLF, not a bare CR and a bare
    LF (bare_lf reject would refuse those)."""
    parts = [b"Subject: pipelined\r", b"\n\r\nfirst part, ",
             b"second part\r\n", b"last part\r\n"]
    wire = (b"MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\n" % (SENDER.encode(),
                                                     ALICE.encode()) +
            b"".join(bdat(x) for x in parts[:-1]) +
            bdat(parts[-1], last=True) + b"QUIT\r\n")
    with petrel.raw() as c:
        c.read_greeting()
        c.ehlo()
        c.send(wire)
        c.expect(250, "2.1.0")
        c.expect(250, "2.1.5")
        for x in parts[:-1]:
            expect_octets(c, len(x))
        qid = expect_queued(c)
        c.expect(221)
        c.wait_closed()
    delivered_one(petrel, b"".join(parts), qid)


def test_bdat_zero_last(petrel):
    head = b"Subject: zero\r\n\r\nbody\r\n"
    with petrel.raw() as c:
        # chunks, then an empty last one
        start(c)
        c.send(bdat(head) + bdat(b"", last=True))
        expect_octets(c, len(head))
        qid1 = expect_queued(c)
        # a message of nothing but BDAT 0 LAST
        c.send(b"MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nBDAT 0 LAST\r\n" % (
            SENDER.encode(), ALICE.encode()))
        c.expect(250, "2.1.0")
        c.expect(250, "2.1.5")
        qid2 = expect_queued(c)
        in_sync(c)
    msgs = petrel.wait_delivered(ALICE, 2)
    files = petrel.maildir_files(ALICE)
    assert len(files) == 2
    got = {}
    for f in files:
        with open(f, "rb") as fh:
            data = fh.read()
        rest = expected_maildir_bytes(SENDER, None, data, rcpt=ALICE)
        got[rest] = data
    assert set(got) == {maildir_form(head), b""}, sorted(got)
    expected_maildir_bytes(SENDER, head, got[maildir_form(head)],
                           queue_id=qid1)
    expected_maildir_bytes(SENDER, b"", got[b""], queue_id=qid2)
    assert len(msgs) == 2


def test_chunks_crossing_max_message_size(make_petrel):
    """max_message_size 1000: 600 + 600 is refused before the second
    chunk is read; its octets (which look like commands) are discarded,
    and so is a chunk pipelined behind it; RSET, then a message of 900
    octets goes through."""
    p = make_petrel(extra_conf="max_message_size 1000")
    first = b"Subject: big\r\n\r\n" + b"a" * 582 + b"\r\n"
    assert len(first) == 600
    tricky = b"QUIT\r\n" * 100          # 600 octets of "commands"
    pipelined = b"RSET\r\n" * 10
    with p.raw() as c:
        start(c)
        c.send(bdat(first))
        expect_octets(c, 600)
        c.send(bdat(tricky) + bdat(pipelined, last=True))
        c.expect(552, "5.3.4")
        lines = c.expect(503, "5.5.1")
        assert "discarded" in lines[0], lines
        in_sync(c)
        c.send(b"RSET\r\n")
        c.expect(250, "2.0.0")
        # the first chunk alone over the limit: refused, in sync
        c.send("MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\n" % (SENDER, ALICE))
        c.expect(250, "2.1.0")
        c.expect(250, "2.1.5")
        c.send(bdat(b"x" * 1001, last=True))
        c.expect(552, "5.3.4")
        in_sync(c)
        # a message that fits
        ok = b"Subject: fits\r\n\r\n" + b"b" * 881 + b"\r\n"
        assert len(ok) == 900
        c.send("MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\n" % (SENDER, ALICE))
        c.expect(250, "2.1.0")
        c.expect(250, "2.1.5")
        c.send(bdat(ok[:500]) + bdat(ok[500:], last=True))
        expect_octets(c, 500)
        qid = expect_queued(c)
        in_sync(c)
    delivered_one(p, ok, qid)
    wait_until(lambda: p.queue_ids("incoming") == [],
               what="aborted spool files removed")


def test_bdat_before_mail_and_rcpt(petrel):
    """Refused for sequence, the chunk is still read: its octets are
    commands that must not run (RSET would answer 250, QUIT would close).
    Before EHLO nothing is offered and nothing may be pipelined: a BDAT
    with its octets is the synchronization error (554, closed); an empty
    one gets 503."""
    octets = b"RSET\r\nQUIT\r\n"
    with petrel.raw() as c:
        c.read_greeting()
        c.send(bdat(octets, last=True))
        c.expect(554, "5.5.0")
        c.wait_closed()
    with petrel.raw() as c:
        c.read_greeting()
        c.send(b"BDAT 0 LAST\r\n")
        lines = c.expect(503, "5.5.1")
        assert lines == ["5.5.1 Error: send HELO/EHLO first"], lines
        c.ehlo()
        c.send(bdat(octets))
        lines = c.expect(503, "5.5.1")
        assert lines == ["5.5.1 Error: need MAIL command"], lines
        in_sync(c)
        c.send("MAIL FROM:<%s>\r\n" % SENDER)
        c.expect(250, "2.1.0")
        c.send(bdat(octets, last=True))
        lines = c.expect(503, "5.5.1")
        assert lines == ["5.5.1 Error: need RCPT command"], lines
        in_sync(c)
        c.send("RCPT TO:<%s>\r\n" % ALICE)
        c.expect(250, "2.1.5")
        msg = b"Subject: after\r\n\r\nok\r\n"
        c.send(bdat(msg, last=True))
        qid = expect_queued(c)
        in_sync(c)
    delivered_one(petrel, msg, qid)


def test_data_rcpt_mail_after_bdat(petrel):
    part1 = b"Subject: mixed\r\n\r\n"
    part2 = b"still one message\r\n"
    with petrel.raw() as c:
        start(c)
        c.send(bdat(part1))
        expect_octets(c, len(part1))
        c.send(b"DATA\r\n")
        lines = c.expect(503, "5.5.1")
        assert lines == ["5.5.1 Error: DATA after BDAT"], lines
        c.send("RCPT TO:<bob@example.test>\r\n")
        lines = c.expect(503, "5.5.1")
        assert lines == ["5.5.1 Error: RCPT after BDAT"], lines
        c.send("MAIL FROM:<%s>\r\n" % SENDER)
        c.expect(503, "5.5.1")
        c.send(bdat(part2, last=True))
        qid = expect_queued(c)
        in_sync(c)
    delivered_one(petrel, part1 + part2, qid)
    assert petrel.maildir_files("bob@example.test") == []


def test_binarymime_with_data_refused(petrel):
    with petrel.raw() as c:
        start(c, body="BINARYMIME")
        c.send(b"DATA\r\n")
        lines = c.expect(503, "5.5.1")
        assert lines == ["5.5.1 Error: BODY=BINARYMIME requires BDAT"], \
            lines
        # the transaction is intact: BDAT delivers it
        msg = b"Subject: bin\r\n\r\n\x00\x01\x02\r\n"
        c.send(bdat(msg, last=True))
        qid = expect_queued(c)
        in_sync(c)
    delivered_one(petrel, msg, qid)


def binary_body():
    every = bytes(range(256)) * 4
    return (b"MIME-Version: 1.0\r\nContent-Type: application/octet-stream"
            b"\r\nContent-Transfer-Encoding: binary\r\nSubject: bin\r\n"
            b"\r\n" + every + b"\nbare LF\rbare CR\r\r\n\x00NUL\r\n"
            b".\r\n..dots\r\n\r\n.\r\n" + b"L" * 5000 + b"\r\n" + every +
            b"\r")


def test_binarymime_stored_exactly(make_petrel):
    """BINARYMIME content is not checked or normalized: with the defaults
    (bare_lf reject) and max_line_length 1000 it is accepted, and the
    queue file holds the Received header and then exactly the octets
    sent. Delivery is blocked while the file is read; then the obstacle
    goes and a restart (start-up recovery) delivers it."""
    p = make_petrel(extra_conf="max_line_length 1000")
    body = binary_body()
    blocker = block_maildir(p, ALICE)
    cuts = [0, 300, 301, 1500, len(body)]
    with p.raw() as c:
        start(c, body="BINARYMIME")
        wire = b""
        for i in range(len(cuts) - 1):
            wire += bdat(body[cuts[i]:cuts[i + 1]],
                         last=(i == len(cuts) - 2))
        c.send(wire)
        for i in range(len(cuts) - 2):
            expect_octets(c, cuts[i + 1] - cuts[i])
        qid = expect_queued(c)
        in_sync(c)
    path = os.path.join(p.spool, "queue", qid)
    content = queue_content(path)
    assert content.startswith(b"Received: from "), content[:200]
    # The Received header ends with the date and CRLF; the message
    # follows, unchanged.
    idx = content.index(b"\r\n", content.index(b"\tfor <")) + 2
    assert content[idx:] == body, "queued content differs from what was sent"
    os.unlink(blocker)
    p.restart()
    [f] = p.wait_delivered(ALICE, 1)
    # Maildir delivery writes LF for CRLF (docs/architecture.md); every
    # other octet, bare CR and LF and NUL included, is as sent.
    expected_maildir_bytes(SENDER, body, f, queue_id=qid)


def test_dot_crlf_inside_chunk_is_content(petrel):
    msg = (b"Subject: dots\r\n\r\nline\r\n.\r\nMAIL FROM:<evil@x.test>\r\n"
           b"RCPT TO:<bob@example.test>\r\n..two dots\r\n.\r\n")
    with petrel.raw() as c:
        start(c, body="8BITMIME")
        c.send(bdat(msg, last=True))
        qid = expect_queued(c)
        in_sync(c)
    delivered_one(petrel, msg, qid)
    assert petrel.maildir_files("bob@example.test") == []


def test_bare_lf_policy_reject(petrel):
    """7BIT/8BITMIME chunks follow DATA's bare_lf policy: with reject,
    the chunk holding a bare LF is refused, chunks pipelined behind it are
    discarded, and nothing is queued."""
    with petrel.raw() as c:
        start(c, body="8BITMIME")
        c.send(bdat(b"Subject: lf\r\n\r\nbare\nLF\r\n") +
               bdat(b"more\r\n", last=True))
        c.expect(550, "5.6.0")
        c.expect(503, "5.5.1")
        in_sync(c)
        start_again = "MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\n" % (SENDER, ALICE)
        c.send(start_again)
        c.expect(250, "2.1.0")
        c.expect(250, "2.1.5")
        c.send(bdat(b"Subject: nul\r\n\r\n\x00\r\n", last=True))
        c.expect(550, "5.6.0")
        in_sync(c)
        c.send(start_again)
        c.expect(250, "2.1.0")
        c.expect(250, "2.1.5")
        c.send(bdat(b"Subject: cr\r\n\r\nends in a bare CR\r", last=True))
        c.expect(550, "5.6.0")
        in_sync(c)
    assert petrel.queue_ids() == []
    assert petrel.all_maildir_files() == []


def test_bare_lf_policy_normalize(make_petrel):
    p = make_petrel(extra_conf="bare_lf normalize")
    first = b"Subject: lf\r\n\r\nbare\nLF and dot\n.\n"
    with p.raw() as c:
        start(c)
        c.send(bdat(first) + bdat(b"bare CR\r", last=True))
        expect_octets(c, len(first))
        qid = expect_queued(c)
        in_sync(c)
    delivered_one(p, b"Subject: lf\r\n\r\nbare\r\nLF and dot\r\n.\r\n"
                  b"bare CR\r\n", qid)


def test_hops_counted_in_chunks(make_petrel):
    p = make_petrel(extra_conf="max_hops 2")
    hops = b"Received: from a\r\nReceived: from b\r\n"
    with p.raw() as c:
        start(c)
        c.send(bdat(hops) + bdat(b"Received: from c\r\n\r\nloop\r\n",
                                 last=True))
        expect_octets(c, len(hops))
        c.expect(554, "5.4.6")
        in_sync(c)
    assert p.queue_ids() == []


@pytest.mark.parametrize("line", [b"BDAT", b"BDAT x", b"BDAT -1",
                                  b"BDAT 10 NOW",
                                  b"BDAT 99999999999999999999 LAST"])
def test_unparsable_bdat_closes(petrel, line):
    """Where the chunk ends is unknown: 501, then the connection closes
    instead of reading octets as commands."""
    with petrel.raw() as c:
        start(c)
        c.send(line + b"\r\nRSET\r\n")
        lines = c.expect(501, "5.5.4")
        assert lines == ["5.5.4 Syntax: BDAT count [LAST]"], lines
        assert c.wait_closed() == b""
    assert petrel.queue_ids() == []


def test_large_message_pipelined_chunks(petrel):
    """3 MB in 64 KiB to 1 MiB chunks, all in one send: the spool's
    backpressure pauses reading in the middle of chunks."""
    line = b"0123456789abcdefghijklmnopqrstuvwxyz" * 2 + b"\r\n"
    body = b"Subject: large\r\n\r\n" + line * (3 * 1024 * 1024 // len(line))
    sizes = [65536, 1024 * 1024, 1]
    wire, off, n = b"", 0, 0
    while off < len(body):
        k = min(sizes[n % len(sizes)], len(body) - off)
        wire += bdat(body[off:off + k], last=(off + k == len(body)))
        off += k
        n += 1
    with petrel.raw(timeout=60) as c:
        start(c)
        c.send(wire)
        for _ in range(n - 1):
            c.expect(250, "2.0.0")
        qid = expect_queued(c)
        in_sync(c)
    delivered_one(petrel, body, qid)


@pytest.mark.parametrize("pace", [None, 0.4])
def test_timeout_data_bounds_chunked_message(make_petrel, pace):
    """timeout_data runs from the first chunk and bounds the whole
    message (docs/configuration.md), the waits between chunks included:
    a client that stops after one chunk (pace None), or sends small
    chunks well within timeout_command, gets 421 once it is spent."""
    p = make_petrel(extra_conf="timeout_data 2s\ntimeout_command 60s")
    with p.raw(timeout=20) as c:
        start(c)
        t0 = time.monotonic()
        c.send(bdat(b"Subject: slow\r\n\r\n"))
        code, lines = c.reply()
        while pace is not None and code == 250:
            assert lines[0].endswith("octets received"), lines
            assert time.monotonic() - t0 < 8, \
                "chunks still accepted long after timeout_data"
            time.sleep(pace)    # the client's pace, not a wait
            try:
                c.send(bdat(b"more\r\n"))
            except (BrokenPipeError, ConnectionResetError):
                break       # closed after its 421, which is still unread
            code, lines = c.reply()
        if code == 250:
            code, lines = c.reply()
        assert code == 421 and lines[-1].startswith("4.4.2"), (code, lines)
        elapsed = time.monotonic() - t0
        assert elapsed < 5, elapsed
        c.wait_closed()
    assert p.queue_ids() == []
    assert p.queue_ids("incoming") == []
