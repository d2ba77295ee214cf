"""
test_pipelining.py: RFC 2920 PIPELINING. Commands sent in one write get
their replies in order, one each; a message and the next transaction may
follow each other in one write; a client that pipelines without having
sent EHLO gets 554 5.5.0 and is disconnected.
"""

import pytest

from harness import (CLIENT_HELO, expected_maildir_bytes, queue_id_from_reply,
                     split_delivered)

pytestmark = pytest.mark.timeout(120)


def replies(c, n):
    return [c.reply() for _ in range(n)]


def codes(rs):
    return [(code, lines[-1].split(" ", 1)[0] if code != 354 else None)
            for code, lines in rs]


def test_mail_rcpts_data_in_one_send(petrel):
    with petrel.raw() as c:
        c.read_greeting()
        c.ehlo()
        c.send(b"MAIL FROM:<sender@remote.test>\r\n"
               b"RCPT TO:<alice@example.test>\r\n"
               b"RCPT TO:<nobody@example.test>\r\n"
               b"RCPT TO:<elsewhere@remote.test>\r\n"
               b"RCPT TO:<bob@example.test>\r\n"
               b"DATA\r\n")
        rs = replies(c, 6)
        assert codes(rs) == [(250, "2.1.0"), (250, "2.1.5"), (550, "5.1.1"),
                             (550, "5.7.1"), (250, "2.1.5"), (354, None)], rs
        assert "<nobody@example.test>" in rs[2][1][0]
        assert "<elsewhere@remote.test>" in rs[3][1][0]
        msg = b"Subject: pipelined\r\n\r\nbody\r\n"
        c.send(msg + b".\r\nQUIT\r\n")
        code, lines = c.reply()
        assert code == 250 and lines[0].startswith("2.0.0 Ok: queued as "), \
            lines
        qid = queue_id_from_reply(lines)
        c.expect(221, "2.0.0")
        c.wait_closed()
    [fa] = petrel.wait_delivered("alice@example.test", 1)
    [fb] = petrel.wait_delivered("bob@example.test", 1)
    for f in (fa, fb):
        expected_maildir_bytes("sender@remote.test", msg, f, rcpt=False,
                               queue_id=qid)


def test_two_transactions_back_to_back(petrel):
    m1 = b"Subject: first\r\n\r\none\r\n"
    m2 = b"Subject: second\r\n\r\ntwo\r\n.dot\r\n"
    with petrel.raw() as c:
        c.read_greeting()
        c.ehlo()
        c.send(b"MAIL FROM:<one@remote.test>\r\n"
               b"RCPT TO:<alice@example.test>\r\n"
               b"DATA\r\n")
        assert codes(replies(c, 3)) == [(250, "2.1.0"), (250, "2.1.5"),
                                        (354, None)]
        # The end of the first message and the whole second transaction
        # up to DATA in one write.
        c.send(m1 + b".\r\n"
               b"MAIL FROM:<two@remote.test>\r\n"
               b"RCPT TO:<alice@example.test>\r\n"
               b"RCPT TO:<bob@example.test>\r\n"
               b"DATA\r\n")
        rs = replies(c, 5)
        assert codes(rs) == [(250, "2.0.0"), (250, "2.1.0"), (250, "2.1.5"),
                             (250, "2.1.5"), (354, None)], rs
        id1 = queue_id_from_reply(rs[0][1])
        c.send(m2.replace(b"\r\n.dot", b"\r\n..dot") + b".\r\nRSET\r\n"
               b"NOOP\r\nQUIT\r\n")
        rs = replies(c, 4)
        assert codes(rs) == [(250, "2.0.0"), (250, "2.0.0"), (250, "2.0.0"),
                             (221, "2.0.0")], rs
        id2 = queue_id_from_reply(rs[0][1])
        c.wait_closed()
    assert id1 != id2
    files = petrel.wait_delivered("alice@example.test", 2)
    got = {}
    for f in files:
        rest = split_delivered(f)[2]
        got[rest] = f
    assert set(got) == {m1.replace(b"\r\n", b"\n"),
                        m2.replace(b"\r\n", b"\n")}
    expected_maildir_bytes("one@remote.test", m1,
                           got[m1.replace(b"\r\n", b"\n")],
                           rcpt="alice@example.test", queue_id=id1)
    expected_maildir_bytes("two@remote.test", m2,
                           got[m2.replace(b"\r\n", b"\n")], rcpt=False,
                           queue_id=id2)
    [fb] = petrel.wait_delivered("bob@example.test", 1)
    expected_maildir_bytes("two@remote.test", m2, fb, queue_id=id2)


def test_many_commands_in_one_send(make_petrel):
    users = {"u%d@example.test" % i: "" for i in range(100)}
    p = make_petrel(users=users)
    with p.raw() as c:
        c.read_greeting()
        c.ehlo()
        batch = b"RSET\r\nNOOP\r\nMAIL FROM:<s@remote.test>\r\n"
        batch += b"".join(b"RCPT TO:<u%d@example.test>\r\n" % i
                          for i in range(100))
        batch += b"RCPT TO:<x@example.test>\r\nFOO\r\nDATA\r\n"
        c.send(batch)
        rs = replies(c, 106)
        want = [(250, "2.0.0"), (250, "2.0.0"), (250, "2.1.0")]
        want += [(250, "2.1.5")] * 100
        want += [(550, "5.1.1"), (500, "5.5.2"), (354, None)]
        assert codes(rs) == want
        msg = b"Subject: hundred\r\n\r\nx\r\n"
        c.send(msg + b".\r\n")
        c.expect(250, "2.0.0")
    p.wait_queue_empty()
    for i in range(100):
        [f] = p.maildir_messages("u%d@example.test" % i)
        expected_maildir_bytes("s@remote.test", msg, f, rcpt=False)


def test_errors_pipelined_stay_in_order(petrel):
    with petrel.raw() as c:
        c.read_greeting()
        c.ehlo()
        c.send(b"RCPT TO:<alice@example.test>\r\n"
               b"DATA\r\n"
               b"MAIL FROM:<bad\r\n"
               b"MAIL FROM:<s@remote.test> FOO=1\r\n"
               b"MAIL FROM:<s@remote.test>\r\n"
               b"MAIL FROM:<s@remote.test>\r\n"
               b"DATA\r\n"
               b"VRFY bob\r\n"
               b"NOOP\r\n")
        rs = replies(c, 9)
        assert codes(rs) == [(503, "5.5.1"), (503, "5.5.1"), (501, "5.1.7"),
                             (555, "5.5.4"), (250, "2.1.0"), (503, "5.5.1"),
                             (503, "5.5.1"), (252, "2.0.0"), (250, "2.0.0")]
    assert petrel.queue_ids() == []


def test_pipelining_after_helo_rejected(petrel):
    with petrel.raw() as c:
        c.read_greeting()
        c.send("HELO %s\r\n" % CLIENT_HELO)
        c.expect(250)
        c.send(b"MAIL FROM:<sender@remote.test>\r\n"
               b"RCPT TO:<alice@example.test>\r\n"
               b"DATA\r\n")
        lines = c.expect(554, "5.5.0")
        assert lines == ["5.5.0 Error: SMTP protocol synchronization"]
        rest = c.wait_closed()
        assert rest == b"", rest
    assert petrel.queue_ids() == []
    assert petrel.all_maildir_files() == []
    # The next client is served normally.
    with petrel.raw() as c:
        c.read_greeting()
        c.send("HELO %s\r\n" % CLIENT_HELO)
        c.expect(250)
        c.send(b"MAIL FROM:<sender@remote.test>\r\n")
        c.expect(250, "2.1.0")


def test_helo_without_pipelining_one_at_a_time(petrel):
    """After HELO, commands sent one at a time are fine."""
    with petrel.raw() as c:
        c.read_greeting()
        c.send("HELO %s\r\n" % CLIENT_HELO)
        c.expect(250)
        for line, code in ((b"MAIL FROM:<s@remote.test>", 250),
                           (b"RCPT TO:<alice@example.test>", 250),
                           (b"DATA", 354)):
            c.send(line + b"\r\n")
            c.expect(code)
        c.send(b"Subject: helo\r\n\r\nx\r\n.\r\n")
        c.expect(250, "2.0.0")
    petrel.wait_delivered("alice@example.test", 1)
