"""
test_smtp_basic.py: messages go in through SMTP (smtplib, swaks and a raw
socket) and come out byte for byte in the right Maildir.

Every test asserts the reply codes and the exact bytes of the delivered
file: "Return-Path: <sender>\\n", the Received header Petrel prepended
(checked by harness.expected_maildir_bytes), then the message as sent with
CRLF turned into LF and dot-stuffing removed.
"""

import os
import pwd
import re

import pytest

from harness import (CLIENT_HELO, Petrel, expected_maildir_bytes,
                     maildir_form, parse_received, queue_id_from_reply,
                     split_delivered)

SENDER = "sender@remote.test"

pytestmark = pytest.mark.timeout(300)


def message(subject="test", body=b"Hello.\r\n", extra=b""):
    return (b"From: <sender@remote.test>\r\n"
            b"To: <alice@example.test>\r\n"
            b"Subject: " + subject.encode() + b"\r\n" + extra +
            b"Message-ID: <" + subject.encode().replace(b" ", b"-") +
            b"@remote.test>\r\n\r\n" + body)


def send_smtplib(p, sender, rcpts, msg, mail_options=(), rcpt_options=()):
    """MAIL, every RCPT, DATA one by one; asserts each reply and returns
    the queue ID."""
    with p.smtp() as s:
        code, _ = s.ehlo()
        assert code == 250
        code, text = s.mail(sender, list(mail_options))
        assert (code, text) == (250, b"2.1.0 Ok")
        for r in rcpts:
            code, text = s.rcpt(r, list(rcpt_options))
            assert (code, text) == (250, b"2.1.5 Ok"), r
        code, text = s.data(msg)
        assert code == 250, text
        assert text.startswith(b"2.0.0 Ok: queued as "), text
        qid = queue_id_from_reply(text)
        code, _ = s.docmd("QUIT")
        assert code == 221
    return qid


def send_raw(p, sender, rcpts, wire_body, mail_params="", ehlo=True):
    """The same over a raw socket; wire_body is sent exactly as given
    (already dot-stuffed, without the final ".\\r\\n")."""
    with p.raw() as c:
        c.read_greeting()
        c.send("%s %s\r\n" % ("EHLO" if ehlo else "HELO", CLIENT_HELO))
        c.expect(250)
        c.send(("MAIL FROM:<%s>%s\r\n" % (sender, mail_params)).encode())
        c.expect(250, "2.1.0")
        for r in rcpts:
            c.send(("RCPT TO:<%s>\r\n" % r).encode())
            c.expect(250, "2.1.5")
        c.send(b"DATA\r\n")
        c.expect(354)
        c.send(wire_body + b".\r\n")
        lines = c.expect(250, "2.0.0")
        qid = queue_id_from_reply(lines)
        c.send(b"QUIT\r\n")
        c.expect(221, "2.0.0")
    return qid


def test_plain_text_smtplib(petrel):
    msg = message("plain", b"Line one.\r\nLine two.\r\n\r\nLast line.\r\n")
    qid = send_smtplib(petrel, SENDER, ["alice@example.test"], msg)
    [f] = petrel.wait_delivered("alice@example.test", 1)
    expected_maildir_bytes(SENDER, msg, f, rcpt="alice@example.test",
                           helo=CLIENT_HELO, queue_id=qid,
                           hostname="mx.example.test")
    assert petrel.maildir_messages("bob@example.test") == []


def test_maildir_file_name_and_owner(petrel):
    msg = message("name")
    send_smtplib(petrel, SENDER, ["alice@example.test"], msg)
    petrel.wait_delivered("alice@example.test", 1)
    [path] = petrel.maildir_files("alice@example.test")
    assert os.path.basename(os.path.dirname(path)) == "new"
    name = os.path.basename(path)
    m = re.match(r"^(\d+)\.M(\d+)P(\d+)Q(\d+)\.([^,/]+),S=(\d+)$", name)
    assert m, name
    assert int(m.group(6)) == os.path.getsize(path)
    st = os.stat(path)
    assert pwd.getpwuid(st.st_uid).pw_name == "petrel"
    for sub in ("tmp", "new", "cur"):
        assert os.path.isdir(os.path.join(
            petrel.maildir_path("alice@example.test"), sub)), sub
    assert os.listdir(os.path.join(
        petrel.maildir_path("alice@example.test"), "tmp")) == []


def test_plain_text_swaks(petrel):
    body = (b"From: <sender@remote.test>\n"
            b"To: <alice@example.test>\n"
            b"Subject: swaks\n\nSent by swaks.\n.dot line\n")
    path = os.path.join(petrel.tmpdir, "swaks.eml")
    with open(path, "wb") as f:
        f.write(body)
    r = petrel.swaks("--from", SENDER, "--to", "alice@example.test",
                     "--data", "@" + path)
    out = r.stdout.decode("utf-8", "replace")
    assert r.returncode == 0, out + r.stderr.decode()
    assert "<-  250 2.0.0 Ok: queued as " in out, out
    qid = queue_id_from_reply(out)
    [f] = petrel.wait_delivered("alice@example.test", 1)
    # swaks turns LF into CRLF, stuffs the dot and ends the data with
    # "\r\n.\r\n" after the last line, so one empty line is added.
    sent = body.replace(b"\n", b"\r\n") + b"\r\n"
    expected_maildir_bytes(SENDER, sent, f, rcpt="alice@example.test",
                           helo=CLIENT_HELO, queue_id=qid)


def test_swaks_8bit_null_sender(petrel):
    body = ("Subject: =?utf-8?q?swaks?=\nMIME-Version: 1.0\n"
            "Content-Type: text/plain; charset=utf-8\n\n"
            "Ünïcödé from swaks: 日本語\n").encode()
    path = os.path.join(petrel.tmpdir, "swaks8.eml")
    with open(path, "wb") as f:
        f.write(body)
    r = petrel.swaks("--from", "<>", "--to", "bob@example.test",
                     "--data", "@" + path)
    out = r.stdout.decode("utf-8", "replace")
    assert r.returncode == 0, out + r.stderr.decode()
    assert " -> MAIL FROM:<>" in out, out
    qid = queue_id_from_reply(out)
    [f] = petrel.wait_delivered("bob@example.test", 1)
    sent = body.replace(b"\n", b"\r\n") + b"\r\n"
    expected_maildir_bytes("", sent, f, rcpt="bob@example.test",
                           queue_id=qid)


def test_swaks_refused_recipient(petrel):
    r = petrel.swaks("--from", SENDER, "--to", "nobody@example.test",
                     "--body", "x")
    out = r.stdout.decode("utf-8", "replace")
    assert r.returncode != 0
    assert "<** 550 5.1.1 <nobody@example.test>: Recipient address " \
        "rejected: User unknown" in out, out
    assert petrel.queue_ids() == []


def test_8bit_utf8_body(petrel):
    body = ("Grüße aus Köln, naïve café, 日本語のテキスト.\r\n"
            "Ünïcödé on the second line: \u00e9\u00e8\u00ea\r\n").encode()
    body += bytes(range(0x80, 0x100)).replace(b"\r", b"") + b"\r\n"
    msg = message("8bit", body, extra=b"MIME-Version: 1.0\r\n"
                  b"Content-Type: text/plain; charset=utf-8\r\n"
                  b"Content-Transfer-Encoding: 8bit\r\n")
    qid = send_smtplib(petrel, SENDER, ["alice@example.test"], msg,
                       mail_options=["BODY=8BITMIME"])
    [f] = petrel.wait_delivered("alice@example.test", 1)
    expected_maildir_bytes(SENDER, msg, f, rcpt="alice@example.test",
                           queue_id=qid)


def test_smtputf8_localpart(make_petrel):
    rcpt = "jörg.müller@example.test"
    sender = "andré@exämple-remote.test"
    p = make_petrel(users={rcpt: "", "alice@example.test": ""})
    with p.smtp() as s:
        code, resp = s.ehlo()
        assert code == 250 and b"SMTPUTF8" in resp.split(b"\n")
    msg = ("From: <%s>\r\nTo: <%s>\r\nSubject: Grüße\r\n\r\n"
           "Hallo Jörg!\r\n" % (sender, rcpt)).encode()
    qid = send_raw(p, sender, [rcpt], msg, mail_params=" SMTPUTF8 "
                   "BODY=8BITMIME")
    [f] = p.wait_delivered(rcpt, 1)
    assert os.path.isdir(os.path.join(p.maildir_root, "example.test",
                                      "jörg.müller", "new"))
    expected_maildir_bytes(sender, msg, f, rcpt=rcpt, queue_id=qid)


def test_smtputf8_with_smtplib(make_petrel):
    rcpt = "zoë@example.test"
    p = make_petrel(users={rcpt: ""})
    msg = ("Subject: ü\r\n\r\nß\r\n").encode()
    with p.smtp() as s:
        s.ehlo()
        s.command_encoding = "utf-8"
        assert s.mail(SENDER, ["SMTPUTF8"]) == (250, b"2.1.0 Ok")
        assert s.rcpt(rcpt) == (250, b"2.1.5 Ok")
        code, text = s.data(msg)
        assert code == 250, text
    [f] = p.wait_delivered(rcpt, 1)
    expected_maildir_bytes(SENDER, msg, f, rcpt=rcpt,
                           queue_id=queue_id_from_reply(text))


DOT_LINES = [b".", b"..", b"...", b".hidden", b"..twice", b"a.b", b" .",
             b"end."]


def test_dot_lines_smtplib(petrel):
    body = b"\r\n".join(DOT_LINES) + b"\r\n"
    msg = message("dots", body)
    qid = send_smtplib(petrel, SENDER, ["alice@example.test"], msg)
    [f] = petrel.wait_delivered("alice@example.test", 1)
    rest = expected_maildir_bytes(SENDER, msg, f, queue_id=qid)
    assert rest.endswith(b"\n.\n..\n...\n.hidden\n..twice\na.b\n .\nend.\n")


def test_dot_lines_raw(petrel):
    """Dot-stuffed on the wire by hand: "..x" arrives as ".x"."""
    msg = message("dots-raw", b"\r\n".join(DOT_LINES) + b"\r\n")
    wire = b"".join((b"." + l if l.startswith(b".") else l) + b"\r\n"
                    for l in msg[:-2].split(b"\r\n"))
    assert b"\r\n...\r\n" in wire and b"\r\n..\r\n" in wire
    qid = send_raw(petrel, SENDER, ["alice@example.test"], wire)
    [f] = petrel.wait_delivered("alice@example.test", 1)
    expected_maildir_bytes(SENDER, msg, f, queue_id=qid)


def test_dot_first_line_of_data(petrel):
    """The dot-stuffed line right after DATA (no CRLF before it on the
    wire except the one ending DATA)."""
    msg = b".first\r\n..second\r\n\r\nbody\r\n"
    wire = b"..first\r\n...second\r\n\r\nbody\r\n"
    qid = send_raw(petrel, SENDER, ["alice@example.test"], wire)
    [f] = petrel.wait_delivered("alice@example.test", 1)
    expected_maildir_bytes(SENDER, msg, f, queue_id=qid)


def test_empty_body(petrel):
    qid = send_raw(petrel, SENDER, ["alice@example.test"], b"")
    [f] = petrel.wait_delivered("alice@example.test", 1)
    rest = expected_maildir_bytes(SENDER, b"", f, queue_id=qid,
                                  rcpt="alice@example.test")
    assert rest == b""


def test_headers_only_no_final_newline_smtplib(petrel):
    """smtplib adds the CRLF the last line lacks; that CRLF is content."""
    msg = b"Subject: no body"
    qid = send_smtplib(petrel, SENDER, ["alice@example.test"], msg)
    [f] = petrel.wait_delivered("alice@example.test", 1)
    expected_maildir_bytes(SENDER, msg + b"\r\n", f, queue_id=qid)


@pytest.mark.slow_under_sanitizer
@pytest.mark.timeout(240)
def test_20mb_message(petrel):
    line = (b"0123456789abcdefghijklmnopqrstuvwxyz" * 28)[:998]
    lines = []
    for i in range(20 * 1024 * 1024 // 1000 + 1):
        lines.append(b"%08d " % i + line[9:])
    msg = message("big", b"\r\n".join(lines) + b"\r\n")
    assert len(msg) > 20 * 1024 * 1024
    qid = send_smtplib(petrel, SENDER, ["alice@example.test"], msg,
                       mail_options=["SIZE=%d" % len(msg)])
    [f] = petrel.wait_delivered("alice@example.test", 1, timeout=120)
    rest = expected_maildir_bytes(SENDER, None, f, queue_id=qid)
    assert len(rest) == len(maildir_form(msg))
    assert rest == maildir_form(msg)


def test_100_recipients(make_petrel):
    users = {"u%d@example.test" % i: "" for i in range(100)}
    p = make_petrel(users=users)
    rcpts = ["u%d@example.test" % i for i in range(100)]
    msg = message("hundred", b"To all of you.\r\n")
    qid = send_smtplib(p, SENDER, rcpts, msg)
    p.wait_queue_empty()
    for r in rcpts:
        msgs = p.maildir_messages(r)
        assert len(msgs) == 1, r
        expected_maildir_bytes(SENDER, msg, msgs[0], rcpt=False,
                               queue_id=qid)


def test_two_recipients_no_for(petrel):
    msg = message("two")
    qid = send_smtplib(petrel, SENDER, ["alice@example.test",
                                        "bob@example.test"], msg)
    [fa] = petrel.wait_delivered("alice@example.test", 1)
    [fb] = petrel.wait_delivered("bob@example.test", 1)
    expected_maildir_bytes(SENDER, msg, fa, rcpt=False, queue_id=qid)
    expected_maildir_bytes(SENDER, msg, fb, rcpt=False, queue_id=qid)
    assert fa == fb


def test_single_recipient_has_for(petrel):
    msg = message("one")
    send_smtplib(petrel, SENDER, ["bob@example.test"], msg)
    [f] = petrel.wait_delivered("bob@example.test", 1)
    _, received, _ = split_delivered(f)
    assert parse_received(received)["for_rcpt"] == "bob@example.test"
    assert b"\tfor <bob@example.test>;" in received or \
        b" for <bob@example.test>;" in received, received


def test_null_sender(petrel):
    msg = message("bounce", b"A bounce.\r\n")
    qid = send_smtplib(petrel, "<>", ["alice@example.test"], msg)
    [f] = petrel.wait_delivered("alice@example.test", 1)
    assert f.startswith(b"Return-Path: <>\n")
    expected_maildir_bytes("", msg, f, queue_id=qid)


def test_null_sender_raw(petrel):
    msg = message("bounce-raw")
    qid = send_raw(petrel, "", ["bob@example.test"], msg)
    [f] = petrel.wait_delivered("bob@example.test", 1)
    expected_maildir_bytes("", msg, f, queue_id=qid)


def test_postmaster_without_domain(petrel):
    msg = message("pm")
    qid = send_raw(petrel, SENDER, ["postmaster"], msg)
    msgs = petrel.wait_delivered("postmaster@example.test", 1)
    expected_maildir_bytes(SENDER, msg, msgs[0], queue_id=qid)
    assert os.path.isdir(os.path.join(petrel.maildir_root, "example.test",
                                      "postmaster", "new"))


@pytest.mark.parametrize("rcpt", ["postmaster@example.test",
                                  "PostMaster@Example.TEST"])
def test_postmaster_not_in_users(petrel, rcpt):
    msg = message("pm2")
    qid = send_raw(petrel, SENDER, [rcpt], msg)
    [f] = petrel.wait_delivered("postmaster@example.test", 1)
    expected_maildir_bytes(SENDER, msg, f, queue_id=qid)


ALIASES = """\
# test aliases
john.doe: alice
team: alice@example.test, bob@example.test
level1: level2
level2: level3
level3: bob
dups: alice, alice@example.test, team, ALICE@example.test
loop1: loop2
loop2: loop1
@other.test: bob@example.test
"""


@pytest.fixture
def aliased(make_petrel):
    return make_petrel(domains=("example.test", "other.test"),
                       aliases=ALIASES)


def test_alias_quoted_localpart(aliased):
    msg = message("quoted")
    qid = send_raw(aliased, SENDER, ['"john.doe"@example.test'], msg)
    [f] = aliased.wait_delivered("alice@example.test", 1)
    expected_maildir_bytes(SENDER, msg, f, queue_id=qid)
    assert aliased.maildir_messages("bob@example.test") == []


def test_alias_unquoted_same_name(aliased):
    msg = message("unquoted")
    send_raw(aliased, SENDER, ["john.doe@example.test"], msg)
    [f] = aliased.wait_delivered("alice@example.test", 1)
    expected_maildir_bytes(SENDER, msg, f)


def test_alias_two_users(aliased):
    msg = message("team")
    qid = send_smtplib(aliased, SENDER, ["team@example.test"], msg)
    [fa] = aliased.wait_delivered("alice@example.test", 1)
    [fb] = aliased.wait_delivered("bob@example.test", 1)
    expected_maildir_bytes(SENDER, msg, fa, queue_id=qid)
    expected_maildir_bytes(SENDER, msg, fb, queue_id=qid)


def test_alias_recursion(aliased):
    msg = message("nested")
    send_smtplib(aliased, SENDER, ["level1@example.test"], msg)
    [f] = aliased.wait_delivered("bob@example.test", 1)
    expected_maildir_bytes(SENDER, msg, f)
    assert aliased.maildir_messages("alice@example.test") == []
    for name in ("level1", "level2", "level3"):
        assert not os.path.exists(aliased.maildir_path(
            name + "@example.test")), name


def test_alias_loop_refused(aliased):
    with aliased.raw() as c:
        c.read_greeting()
        c.ehlo()
        c.send(b"MAIL FROM:<sender@remote.test>\r\n")
        c.expect(250, "2.1.0")
        c.send(b"RCPT TO:<loop1@example.test>\r\n")
        c.expect(550, "5.4.6")   # a loop, not an unknown user
        c.send(b"QUIT\r\n")
        c.expect(221)


def test_catch_all(aliased):
    msgs = [message("catchall1"), message("catchall2")]
    qid1 = send_smtplib(aliased, SENDER, ["anything@other.test"], msgs[0])
    qid2 = send_smtplib(aliased, SENDER, ["Else@OTHER.test"], msgs[1])
    files = aliased.wait_delivered("bob@example.test", 2)
    got = {split_delivered(f)[2]: f for f in files}
    expected_maildir_bytes(SENDER, msgs[0], got[maildir_form(msgs[0])],
                           queue_id=qid1)
    expected_maildir_bytes(SENDER, msgs[1], got[maildir_form(msgs[1])],
                           queue_id=qid2)
    assert aliased.all_maildir_files() == \
        aliased.maildir_files("bob@example.test")


def test_duplicate_targets_delivered_once(aliased):
    """One RCPT whose expansion names alice four times and bob once."""
    msg = message("dups")
    send_smtplib(aliased, SENDER, ["dups@example.test"], msg)
    [fa] = aliased.wait_delivered("alice@example.test", 1)
    [fb] = aliased.wait_delivered("bob@example.test", 1)
    expected_maildir_bytes(SENDER, msg, fa)
    expected_maildir_bytes(SENDER, msg, fb)


def test_duplicate_across_rcpts_delivered_once(aliased):
    """RCPTs of one transaction that reach the same mailbox."""
    msg = message("dups-rcpts")
    send_smtplib(aliased, SENDER, ["dups@example.test", "alice@example.test",
                                   "team@example.test"], msg)
    [fa] = aliased.wait_delivered("alice@example.test", 1)
    [fb] = aliased.wait_delivered("bob@example.test", 1)
    expected_maildir_bytes(SENDER, msg, fa)
    expected_maildir_bytes(SENDER, msg, fb)


def test_duplicate_rcpt_commands_delivered_once(petrel):
    msg = message("dup-rcpt")
    send_smtplib(petrel, SENDER, ["alice@example.test", "ALICE@example.test",
                                  "alice@EXAMPLE.TEST"], msg)
    petrel.wait_delivered("alice@example.test", 1)


def test_uppercase_recipient(petrel):
    msg = message("upper")
    qid = send_smtplib(petrel, SENDER, ["ALICE@EXAMPLE.TEST"], msg)
    [f] = petrel.wait_delivered("alice@example.test", 1)
    expected_maildir_bytes(SENDER, msg, f, queue_id=qid)
    assert sorted(os.listdir(petrel.maildir_root)) == ["example.test"]
    assert sorted(os.listdir(os.path.join(petrel.maildir_root,
                                          "example.test"))) == ["alice"]


def test_queue_id_in_reply_and_received(petrel):
    ids = []
    for i in range(3):
        msg = message("qid%d" % i)
        ids.append(send_raw(petrel, SENDER, ["alice@example.test"], msg))
    assert len(set(ids)) == 3, ids
    files = petrel.wait_delivered("alice@example.test", 3)
    got = sorted(parse_received(split_delivered(f)[1])["id"] for f in files)
    assert got == sorted(ids)


def test_helo_client_received_says_smtp(petrel):
    """After HELO (not EHLO) the message is still accepted."""
    msg = message("helo")
    qid = send_raw(petrel, SENDER, ["alice@example.test"], msg, ehlo=False)
    [f] = petrel.wait_delivered("alice@example.test", 1)
    expected_maildir_bytes(SENDER, msg, f, queue_id=qid, helo=CLIENT_HELO)


def test_rset_then_new_transaction(petrel):
    with petrel.raw() as c:
        c.read_greeting()
        c.ehlo()
        c.send(b"MAIL FROM:<first@remote.test>\r\n")
        c.expect(250, "2.1.0")
        c.send(b"RCPT TO:<bob@example.test>\r\n")
        c.expect(250, "2.1.5")
        c.send(b"RSET\r\n")
        c.expect(250, "2.0.0")
        c.send(b"MAIL FROM:<second@remote.test>\r\n")
        c.expect(250, "2.1.0")
        c.send(b"RCPT TO:<alice@example.test>\r\n")
        c.expect(250, "2.1.5")
        c.send(b"DATA\r\n")
        c.expect(354)
        c.send(b"Subject: after rset\r\n\r\nx\r\n.\r\n")
        c.expect(250, "2.0.0")
    [f] = petrel.wait_delivered("alice@example.test", 1)
    expected_maildir_bytes("second@remote.test",
                           b"Subject: after rset\r\n\r\nx\r\n", f)
    assert petrel.maildir_messages("bob@example.test") == []


def test_two_messages_one_session(petrel):
    with petrel.smtp() as s:
        for i in range(2):
            msg = message("session%d" % i)
            refused = s.sendmail(SENDER, ["alice@example.test"], msg)
            assert refused == {}
    files = petrel.wait_delivered("alice@example.test", 2)
    bodies = sorted(split_delivered(f)[2] for f in files)
    assert bodies == sorted(maildir_form(message("session%d" % i))
                            for i in range(2))


def test_ipv6_listener(tmp_path):
    import socket
    try:
        s = socket.socket(socket.AF_INET6)
        s.bind(("::1", 0))
        port = s.getsockname()[1]
        s.close()
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    with Petrel(listen=["[::1]:%d mx" % port]) as p:
        assert p.host == "::1"
        msg = message("v6")
        send_raw(p, SENDER, ["alice@example.test"], msg)
        [f] = p.wait_delivered("alice@example.test", 1)
        expected_maildir_bytes(SENDER, msg, f)
        assert b"[IPv6:::1]" in split_delivered(f)[1] or \
            b"[::1]" in split_delivered(f)[1]
