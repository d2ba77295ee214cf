"""
test_dsn_params.py: the DSN extension inbound (RFC 3461).

EHLO lists DSN (and CHUNKING, BINARYMIME). MAIL takes RET and ENVID, RCPT
takes NOTIFY and ORCPT; the values reach the queue file unchanged (the
MAIL and RCPT records of docs/queue-format.md, read while delivery is
blocked) and the message is then delivered. Bad values get 501 5.5.4
naming the parameter, leave the transaction as it was, and keep the
session in sync: NOTIFY=NEVER with another value, repeated keywords,
unknown values, missing values, an ORCPT without addr-type or address,
xtext that is malformed or decodes to a control character (a CR LF would
become a header line in a bounce), an ENVID over 100 characters.
"""

import os
import struct

import pytest

from harness import queue_id_from_reply, wait_until
from queuefile import block_maildir, records

pytestmark = pytest.mark.timeout(300)

SENDER = "sender@remote.test"
ALICE = "alice@example.test"
BOB = "bob@example.test"
MSG = b"Subject: dsn\r\n\r\nbody\r\n"

# docs/queue-format.md
REC_MAIL = 0x20
REC_RCPT = 0x30
ABSENT = 0xFFFFFFFF
RET = {0: None, 1: "FULL", 2: "HDRS"}
NOTIFY_BITS = [(0x01, "NEVER"), (0x02, "SUCCESS"), (0x04, "FAILURE"),
               (0x08, "DELAY")]


class Cursor:
    def __init__(self, payload):
        self.p = payload
        self.off = 0

    def take(self, fmt):
        n = struct.calcsize(fmt)
        assert self.off + n <= len(self.p), "payload cut short"
        (v,) = struct.unpack(fmt, self.p[self.off:self.off + n])
        self.off += n
        return v

    def str(self):
        n = self.take(">I")
        if n == ABSENT:
            return None
        v = self.p[self.off:self.off + n]
        assert len(v) == n, "string cut short"
        self.off += n
        return v.decode("utf-8")


def queue_envelope(path):
    """(mail, [rcpt]) from a queue file: the MAIL record's fields and each
    RCPT record's, as dicts. Only the leading fields the format documents
    are read, so records that grow at the end still parse."""
    mail, rcpts = None, []
    for typ, payload in records(path):
        c = Cursor(payload)
        if typ == REC_MAIL:
            mail = {"body": c.take(">i"), "size": c.take(">Q"),
                    "smtputf8": c.take(">I"), "ret": RET[c.take(">i")],
                    "sender": c.str(), "envid": c.str(), "auth": c.str()}
        elif typ == REC_RCPT:
            d = {"index": c.take(">I"), "kind": c.take(">I")}
            bits = c.take(">I")
            d["notify"] = ",".join(name for b, name in NOTIFY_BITS
                                   if bits & b) or None
            d["orig"] = c.str()
            d["addr"] = c.str()
            d["mailbox"] = c.str()
            d["orcpt"] = c.str()
            rcpts.append(d)
    assert mail is not None, "no MAIL record in %s" % path
    return mail, rcpts


def test_ehlo_lists_dsn_and_chunking(petrel):
    with petrel.raw() as c:
        c.read_greeting()
        lines = c.ehlo()
        for kw in ("DSN", "CHUNKING", "BINARYMIME", "8BITMIME",
                   "PIPELINING"):
            assert kw in lines[1:], (kw, lines)
        # HELO offers nothing
        c.send("HELO client.example.test\r\n")
        lines = c.expect(250)
        assert lines == ["mx.example.test"], lines
    with petrel.smtp() as s:
        s.ehlo()
        assert s.has_extn("dsn") and s.has_extn("chunking") and \
            s.has_extn("binarymime"), s.esmtp_features


def test_dsn_values_reach_the_queue_file(petrel):
    """Raw client: every parameter as written, hex escapes included; the
    queue file keeps ENVID and ORCPT as received (xtext), RET and NOTIFY
    as values. Recipients without parameters have none."""
    blockers = [block_maildir(petrel, a) for a in (ALICE, BOB)]
    with petrel.raw() as c:
        c.read_greeting()
        c.ehlo()
        for line in (
                "MAIL FROM:<%s> RET=HDRS ENVID=QQ314159+2Bx BODY=8BITMIME"
                % SENDER,
                "RCPT TO:<%s> NOTIFY=SUCCESS,FAILURE "
                "ORCPT=rfc822;Alice+2Bx@example.test" % ALICE,
                "RCPT TO:<%s> notify=never" % BOB):
            c.send(line + "\r\n")
            c.expect(250)
        c.send(b"DATA\r\n")
        c.expect(354)
        c.send(MSG + b".\r\n")
        qid = queue_id_from_reply(c.expect(250, "2.0.0"))
        c.send(b"QUIT\r\n")
        c.expect(221)
    mail, rcpts = queue_envelope(os.path.join(petrel.spool, "queue", qid))
    assert (mail["sender"], mail["ret"], mail["envid"], mail["body"]) == \
        (SENDER, "HDRS", "QQ314159+2Bx", 2), mail
    assert [(r["orig"], r["addr"], r["notify"], r["orcpt"])
            for r in rcpts] == [
        (ALICE, ALICE, "SUCCESS,FAILURE", "rfc822;Alice+2Bx@example.test"),
        (BOB, BOB, "NEVER", None)], rcpts
    for b in blockers:
        os.unlink(b)
    petrel.restart()
    # Not wait_delivered(): NOTIFY=SUCCESS queues a report to the remote
    # sender, which stays in the queue.
    for rcpt in (ALICE, BOB):
        wait_until(lambda: len(petrel.maildir_files(rcpt)) == 1,
                   what="the message in %s's Maildir" % rcpt)


def test_dsn_values_with_smtplib_and_absent(petrel):
    """smtplib's mail_options/rcpt_options: RET=FULL, an ENVID, NOTIFY
    with DELAY, a utf-8 ORCPT; a second message without any DSN parameter
    has RET and ENVID absent and NOTIFY 0."""
    blocker = block_maildir(petrel, ALICE)
    with petrel.smtp() as s:
        s.ehlo()
        refused = s.sendmail(SENDER, [ALICE], MSG,
                             mail_options=["RET=FULL", "ENVID=<id@x.test>"],
                             rcpt_options=["NOTIFY=DELAY,FAILURE",
                                           "ORCPT=utf-8;al\\x{E9}@x.test"])
        assert refused == {}
        s.sendmail(SENDER, [ALICE], MSG)
    ids = petrel.queue_ids()
    assert len(ids) == 2, ids
    got = [queue_envelope(os.path.join(petrel.spool, "queue", i))
           for i in ids]
    (m1, r1), (m2, r2) = got       # queue IDs sort in creation order
    assert (m1["ret"], m1["envid"]) == ("FULL", "<id@x.test>"), m1
    assert [(r["notify"], r["orcpt"]) for r in r1] == [
        ("FAILURE,DELAY", "utf-8;al\\x{E9}@x.test")], r1
    assert (m2["ret"], m2["envid"]) == (None, None), m2
    assert [(r["notify"], r["orcpt"]) for r in r2] == [(None, None)], r2
    os.unlink(blocker)
    petrel.restart()
    petrel.wait_delivered(ALICE, 2)


BAD_MAIL = [
    ("RET=NONE", "RET"),
    ("RET", "RET"),
    ("RET=", "RET"),
    ("RET=FULL RET=HDRS", "RET"),
    ("RET=FULL RET=FULL", "RET"),
    ("ENVID=", "ENVID"),
    ("ENVID", "ENVID"),
    ("ENVID=" + "e" * 101, "ENVID"),
    ("ENVID=a+2b", "ENVID"),
    ("ENVID=a+0D+0AX-Injected:+20yes", "ENVID"),
    ("ENVID=a+00", "ENVID"),
    ("ENVID=x ENVID=y", "ENVID"),
]

BAD_RCPT = [
    ("NOTIFY=NEVER,SUCCESS", "NOTIFY"),
    ("NOTIFY=FAILURE,NEVER", "NOTIFY"),
    ("NOTIFY=SUCCESS,SUCCESS", "NOTIFY"),
    ("NOTIFY=SOMETIMES", "NOTIFY"),
    ("NOTIFY=", "NOTIFY"),
    ("NOTIFY", "NOTIFY"),
    ("NOTIFY=SUCCESS,", "NOTIFY"),
    ("NOTIFY=NEVER NOTIFY=NEVER", "NOTIFY"),
    ("ORCPT=rfc822", "ORCPT"),
    ("ORCPT=rfc822;", "ORCPT"),
    ("ORCPT=;a@b.test", "ORCPT"),
    ("ORCPT=rfc822;a+zz@b.test", "ORCPT"),
    ("ORCPT=rfc822;a+0D+0AX-Injected:+20yes", "ORCPT"),
    ("ORCPT=utf-8;a\\x{A}@b.test", "ORCPT"),
    ("ORCPT=rfc822;" + "o" * 494, "ORCPT"),
    ("ORCPT=rfc822;a@b ORCPT=rfc822;c@d", "ORCPT"),
]


def test_bad_dsn_values_refused(make_petrel):
    """501 5.5.4 "Bad parameter value: KEYWORD" for each; a refused MAIL
    leaves no transaction, a refused RCPT leaves the transaction and adds
    no recipient, and the session stays in sync throughout (max_errors is
    raised so that one session can take every case)."""
    petrel = make_petrel(extra_conf="max_errors 1000")
    with petrel.raw() as c:
        c.read_greeting()
        c.ehlo()
        for params, kw in BAD_MAIL:
            c.send("MAIL FROM:<%s> %s\r\n" % (SENDER, params))
            lines = c.expect(501, "5.5.4")
            assert lines == ["5.5.4 Bad parameter value: %s" % kw], \
                (params, lines)
            # no transaction was started
            c.send("RCPT TO:<%s>\r\n" % ALICE)
            c.expect(503, "5.5.1")
        c.send("MAIL FROM:<%s> RET=HDRS\r\n" % SENDER)
        c.expect(250, "2.1.0")
        for params, kw in BAD_RCPT:
            c.send("RCPT TO:<%s> %s\r\n" % (BOB, params))
            lines = c.expect(501, "5.5.4")
            assert lines == ["5.5.4 Bad parameter value: %s" % kw], \
                (params, lines)
        c.send("RCPT TO:<%s> NOTIFY=FAILURE ORCPT=rfc822;%s\r\n"
               % (ALICE, ALICE))
        c.expect(250, "2.1.5")
        c.send(b"DATA\r\n")
        c.expect(354)
        c.send(MSG + b".\r\n")
        c.expect(250, "2.0.0")
    petrel.wait_delivered(ALICE, 1)
    assert petrel.maildir_files(BOB) == []
