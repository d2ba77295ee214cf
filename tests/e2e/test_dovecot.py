"""
test_dovecot.py: Petrel's Maildir is what Dovecot reads. Petrel delivers,
a private Dovecot (dovecot.py: its own base_dir, state_dir and port, IMAP
only, no TLS) serves the same Maildir, and imaplib fetches the message:
the bytes must be exactly Return-Path, Received and the message as sent,
with the CRLF line ends IMAP uses. The S= size in the file name must be right, or
Dovecot reports a broken message.
"""

import os
import time

import pytest

from dovecot import DOVECOT, Dovecot
from harness import expected_maildir_bytes, queue_id_from_reply, \
    split_delivered

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(not os.path.exists(DOVECOT),
                       reason="%s is missing (scripts/deps.sh installs "
                       "dovecot-imapd)" % DOVECOT),
]


def send(p, msg, sender="sender@remote.test"):
    with p.smtp() as s:
        s.ehlo()
        assert s.mail(sender, ["BODY=8BITMIME"]) == (250, b"2.1.0 Ok")
        assert s.rcpt("alice@example.test") == (250, b"2.1.5 Ok")
        code, text = s.data(msg)
        assert code == 250, text
    return queue_id_from_reply(text)


def fetch(m, n):
    typ, data = m.fetch(str(n), "(RFC822.SIZE BODY.PEEK[])")
    assert typ == "OK", data
    head, body = data[0]
    size = int(head.split(b"RFC822.SIZE ")[1].split()[0].rstrip(b")"))
    return size, body


def test_dovecot_reads_petrel_maildir(petrel):
    msg1 = (b"From: <sender@remote.test>\r\nTo: <alice@example.test>\r\n"
            b"Subject: for dovecot\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
            b"Gr\xc3\xbc\xc3\x9fe,\r\n.leading dot\r\n\r\nend\r\n")
    msg2 = b"Subject: second\r\n\r\nwhile dovecot runs\r\n"
    q1 = send(petrel, msg1)
    [f1] = petrel.wait_delivered("alice@example.test", 1)
    expected_maildir_bytes("sender@remote.test", msg1, f1, queue_id=q1)

    dv = Dovecot(petrel.maildir_root, ["alice@example.test"])
    ok = False
    try:
        dv.check_config()
        dv.start()
        m = dv.imap()
        try:
            typ, data = m.select("INBOX")
            assert (typ, data) == ("OK", [b"1"]), data
            size, got = fetch(m, 1)
            want = f1.replace(b"\n", b"\r\n")
            assert got == want
            assert size == len(want)
            rp, received, rest = split_delivered(f1)
            assert got == (rp.replace(b"\n", b"\r\n") +
                           received.replace(b"\n", b"\r\n") + msg1)

            # A message delivered while Dovecot has the mailbox open.
            q2 = send(petrel, msg2, sender="second@remote.test")
            files = petrel.wait_delivered("alice@example.test", 2)
            [f2] = [f for f in files if f != f1]
            expected_maildir_bytes("second@remote.test", msg2, f2,
                                   queue_id=q2)
            deadline = time.monotonic() + 20
            while True:
                typ, data = m.noop()
                typ, data = m.select("INBOX", readonly=True)
                if data == [b"2"]:
                    break
                assert time.monotonic() < deadline, data
                time.sleep(0.1)
            size, got = fetch(m, 2)
            assert got == f2.replace(b"\n", b"\r\n")
            assert size == len(got)
            m.close()
        finally:
            m.logout()
        errors = [l for l in dv.log if "Error:" in l or "Panic:" in l or
                  "Fatal:" in l]
        assert not errors, errors
        ok = True
    finally:
        dv.stop()
        if not ok:
            print("---- dovecot log ----\n" + "\n".join(dv.log))
        else:
            import shutil
            shutil.rmtree(dv.dir, ignore_errors=True)
