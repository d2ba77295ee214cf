"""
test_lmtp_dovecot.py: `deliver lmtp` to a real Dovecot (issue 6).

One private Dovecot for the whole file (dovecot.py: `dovecot -F -c` with
its own base_dir, IMAP, POP3 and LMTP on 127.0.0.1, an LMTP unix socket
only the user petrel may use, passwd-file users, mail_uid petrel, the
quota plugin). Each test starts its own Petrel with `deliver lmtp
unix:SOCKET` (or inet:127.0.0.1:PORT) and sends to it on its SMTP port:

- a message comes back byte for byte over IMAP (BODY.PEEK[]) and over
  POP3 (RETR): exactly three header fields Dovecot 2.3 adds on top,

    Return-Path: <SENDER>
    Delivered-To: FINAL-ADDRESS
    Received: from PETREL-HOSTNAME[ ([127.0.0.1]) over TCP]
    \tby DOVECOT-HOST with LMTP
    \tid ID
    \t(envelope-from <SENDER>)
    \tfor <FINAL-ADDRESS>; DATE

  then exactly what Petrel had (its own Received and the message as
  sent, with an 8-bit line, a leading dot and a 2000-octet line); an
  alias (info@) arrives as its final address (alice@);
- quota: bob is over quota with quota_full_tempfail = no: his copy
  bounces quoting Dovecot's "552 5.2.2" while alice's copy of the same
  message is delivered; carol is over quota with quota_full_tempfail =
  yes (her userdb entry sets it): her copy is deferred on "452 4.2.2"
  and stays in the queue while alice's is delivered;
- Dovecot down (its stale socket refuses, then no socket at all):
  deferred; delivered by a retry once Dovecot is back;
- a reload switches `deliver maildir` to `deliver lmtp inet:...`;
- check-config on the target;
- client_timeout_data applies (a fake LMTP server, smtppeer.py, that
  does not answer the final dot): deferred, kept in the queue.
Nothing leaves 127.0.0.1.
"""

import email
import os
import pwd
import re
import signal
import subprocess
import uuid

import pytest

from dovecot import DOVECOT, LMTP_MODULE, POP3_MODULE, Dovecot
from harness import (PETREL_BIN, parse_received, queue_id_from_reply,
                     wait_until, workdir)

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(not all(os.path.exists(p) for p in
                               (DOVECOT, LMTP_MODULE, POP3_MODULE)),
                       reason="Dovecot with LMTP and POP3 is missing "
                       "(scripts/deps.sh installs dovecot-lmtpd and "
                       "dovecot-pop3d)"),
]

QUOTA = "userdb_quota_rule=*:storage=1K"
DOVECOT_USERS = {
    "alice@example.test": None,
    "bob@example.test": QUOTA,
    "carol@example.test": QUOTA + " userdb_quota_full_tempfail=yes",
}
PETREL_USERS = {"alice@example.test": "", "bob@example.test": "",
                "carol@example.test": ""}
ALIASES = "info: alice@example.test\n"

# What Dovecot's LMTP puts in front of the message it stores.
DOVECOT_HEADERS_RE = re.compile(
    rb"\AReturn-Path: <(?P<rp>[^>]*)>\r\n"
    rb"Delivered-To: (?P<dt>[^\r\n]+)\r\n"
    rb"Received: from (?P<from>\S+)(?: \(\[(?P<ip>[^]]*)\]\))?\r\n"
    rb"\tby (?P<by>\S+) with LMTP\r\n"
    rb"\tid (?P<id>\S+)\r\n"
    rb"\t\(envelope-from <(?P<env>[^>]*)>\)\r\n"
    rb"\tfor <(?P<for>[^>]*)>; (?P<date>[^\r\n]+)\r\n")


@pytest.fixture(scope="session")
def dovecot():
    root = workdir()
    mail = os.path.join(root, "mail")
    pw = pwd.getpwnam("petrel")
    os.mkdir(mail, 0o700)
    os.chown(mail, pw.pw_uid, pw.pw_gid)
    dv = Dovecot(mail, DOVECOT_USERS, pop3=True, lmtp=True, quota=True,
                 quota_full_tempfail=False)
    dv.check_config()
    dv.start()
    ok = False
    try:
        yield dv
        ok = True
    finally:
        errors = dv.errors()
        dv.finish(ok and not errors)
        if ok and not errors:
            import shutil
            shutil.rmtree(root, ignore_errors=True)
    assert not errors, errors


@pytest.fixture
def dv(dovecot):
    """The session's Dovecot, running (a test may have stopped it)."""
    if not dovecot.running():
        dovecot.start()
    return dovecot


def lmtp_petrel(make_petrel, dv, target=None, extra="", start=True):
    if target is None:
        target = "unix:%s" % dv.lmtp_socket
    return make_petrel(users=PETREL_USERS, aliases=ALIASES, start=start,
                       extra_conf="deliver lmtp %s\n%s" % (target, extra))


def token():
    return uuid.uuid4().hex[:12]


def message(tok, size_pad=0):
    return (b"From: <sender@remote.test>\r\nTo: <info@example.test>\r\n"
            b"Subject: over LMTP " + tok.encode() + b"\r\n"
            b"MIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
            b"Gr\xc3\xbc\xc3\x9fe,\r\n.leading dot\r\n" +
            b"x" * 2000 + b"\r\n" + b"y" * size_pad + b"\r\nend\r\n")


def send(p, rcpts, msg, sender="sender@remote.test"):
    with p.smtp() as s:
        s.ehlo()
        assert s.mail(sender, ["BODY=8BITMIME"]) == (250, b"2.1.0 Ok")
        for r in rcpts:
            assert s.rcpt(r) == (250, b"2.1.5 Ok")
        code, text = s.data(msg)
        assert code == 250, text
    return queue_id_from_reply(text)


def imap_find(dv, user, needle):
    """Every message of user's INBOX containing needle: [bytes]."""
    m = dv.imap(user)
    try:
        typ, data = m.select("INBOX", readonly=True)
        assert typ == "OK", data
        out = []
        for n in range(1, int(data[0]) + 1):
            typ, d = m.fetch(str(n), "(BODY.PEEK[])")
            assert typ == "OK", d
            if needle in d[0][1]:
                out.append(d[0][1])
        return out
    finally:
        m.logout()


def pop3_find(dv, user, needle):
    p = dv.pop3(user)
    try:
        out = []
        count, _ = p.stat()
        for n in range(1, count + 1):
            resp, lines, octets = p.retr(n)
            assert resp.startswith(b"+OK"), resp
            body = b"".join(l + b"\r\n" for l in lines)
            assert len(body) == octets, (len(body), octets)
            if needle in body:
                out.append(body)
        return out
    finally:
        p.quit()


def split_dovecot(got):
    """(Dovecot's header fields, their parsed values, the rest)."""
    m = DOVECOT_HEADERS_RE.match(got)
    assert m, "not Dovecot's three header fields first: %r" % got[:600]
    return got[:m.end()], m.groupdict(), got[m.end():]


def split_received(rest):
    """Petrel's Received field (LF line ends, for parse_received) and
    what follows it."""
    assert rest.startswith(b"Received: "), rest[:300]
    lines = rest.split(b"\r\n")
    n = 1
    while lines[n][:1] in (b"\t", b" "):
        n += 1
    received = b"\r\n".join(lines[:n]) + b"\r\n"
    return received, rest[len(received):]


def mail_files(dv, user):
    local, _, dom = user.partition("@")
    base = os.path.join(dv.mail_root, dom, local)
    out = []
    for sub in ("new", "cur"):
        d = os.path.join(base, sub)
        if os.path.isdir(d):
            out.extend(os.path.join(d, f) for f in os.listdir(d))
    return out


def wait_status(p, qid, rcpt, status, start=0):
    """A recipient's result line (docs/logging.md, delivery: rcpt): the
    groups are the relay, the mailbox and the reply."""
    return p.wait_log(r"delivery: rcpt queue=%s to=<%s> relay=(\S+) "
                      r"mailbox=(\S+) .*status=%s \((.*)\)$" %
                      (re.escape(qid), re.escape(rcpt), status),
                      timeout=60, start=start)


def test_lmtp_byte_exact_imap_pop3(make_petrel, dv):
    p = lmtp_petrel(make_petrel, dv)
    tok = token()
    msg = message(tok)
    qid = send(p, ["info@example.test"], msg)
    m = wait_status(p, qid, "alice@example.test", "sent")
    # relay: the socket; no Maildir of Petrel's (mailbox=-).
    assert m.group(1) == dv.lmtp_socket, m.group(0)
    assert m.group(2) == "-", m.group(0)
    assert m.group(3).startswith("250 2.0.0 <alice@example.test> "), \
        m.group(0)
    p.wait_queue_empty()
    assert p.all_maildir_files() == []

    [got] = imap_find(dv, "alice@example.test", tok.encode())
    [popped] = pop3_find(dv, "alice@example.test", tok.encode())
    assert popped == got

    head, f, rest = split_dovecot(got)
    # What Dovecot added: exactly these three fields.
    assert f["rp"] == b"sender@remote.test"
    assert f["dt"] == b"alice@example.test"	# the final address
    assert f["for"] == b"alice@example.test"
    assert f["env"] == b"sender@remote.test"
    assert f["from"] == p.hostname.encode()	# our LHLO name
    assert f["ip"] is None			# a unix socket: no address
    received, sent = split_received(rest)
    r = parse_received(received.replace(b"\r\n", b"\n"))
    assert r["id"] == qid and r["host"] == p.hostname, r
    assert r["for_rcpt"] in (None, "info@example.test"), r
    # The message exactly as sent (CRLF, the 8-bit line, the dot, the
    # 2000-octet line).
    assert sent == msg
    assert got == head + received + msg

    # The mail belongs to Dovecot's mail_uid (petrel here, as Petrel's
    # own Maildirs: a switch between maildir and lmtp keeps one owner).
    files = mail_files(dv, "alice@example.test")
    assert files
    for fn in files:
        assert os.stat(fn).st_uid == dv.mail_user.pw_uid, fn


def test_lmtp_quota_full_bounces_552(make_petrel, dv):
    p = lmtp_petrel(make_petrel, dv)
    tok = token()
    msg = message(tok, size_pad=4096)	# over bob's 1 KiB
    qid = send(p, ["alice@example.test", "bob@example.test"], msg,
               sender="alice@example.test")
    # One LMTP transaction, one reply per recipient.
    ok = wait_status(p, qid, "alice@example.test", "sent")
    bad = wait_status(p, qid, "bob@example.test", "bounced")
    assert ok.group(3).startswith("250 2.0.0 <alice@example.test>"), \
        ok.group(0)
    assert bad.group(3) == ("552 5.2.2 <bob@example.test> Quota exceeded "
                            "(mailbox for user is full)"), bad.group(0)
    tx = p.wait_log(r"remote: transaction queue=%s relay=%s tls=\"none\" "
                    r"accepted=1/2 " % (re.escape(qid),
                                        re.escape(dv.lmtp_socket)))
    assert tx
    # The bounce goes to alice, over LMTP too.
    rep = p.wait_log(r"delivery: report queue=%s report_queue=(\S+) "
                     r"report=failure to=<alice@example\.test>"
                     % re.escape(qid), timeout=60)
    wait_status(p, rep.group(1), "alice@example.test", "sent")
    p.wait_queue_empty()
    assert mail_files(dv, "bob@example.test") == []

    found = imap_find(dv, "alice@example.test", tok.encode())
    [orig] = [m for m in found if b"multipart/report" not in m]
    [dsn] = [m for m in found if b"multipart/report" in m]
    assert orig.endswith(msg)
    report = email.message_from_bytes(dsn)
    parts = [x for x in report.walk()
             if x.get_content_type() == "message/delivery-status"]
    assert len(parts) == 1, report
    # Unfolded (RFC 5322 2.2.3): long fields are folded.
    text = re.sub(rb"\r?\n(?=[ \t])", b"", parts[0].as_bytes())
    assert b"Final-Recipient: rfc822; bob@example.test" in text, text
    assert b"Action: failed" in text, text
    assert b"Status: 5.2.2" in text, text
    assert (b"Diagnostic-Code: smtp; 552 5.2.2 <bob@example.test> Quota "
            b"exceeded (mailbox for user is full)") in text, text
    assert b"alice@example.test" not in text.split(b"Final-Recipient")[1]


def test_lmtp_quota_full_tempfail_defers_452(make_petrel, dv):
    p = lmtp_petrel(make_petrel, dv)
    tok = token()
    msg = message(tok, size_pad=4096)	# over carol's 1 KiB
    qid = send(p, ["alice@example.test", "carol@example.test"], msg)
    ok = wait_status(p, qid, "alice@example.test", "sent")
    later = wait_status(p, qid, "carol@example.test", "deferred")
    assert ok.group(3).startswith("250 2.0.0 <alice@example.test>")
    assert later.group(3) == ("452 4.2.2 <carol@example.test> Quota "
                              "exceeded (mailbox for user is full)"), \
        later.group(0)
    # The queue keeps the message for carol (alice's copy recorded as
    # delivered: the file is updated, not removed).
    p.wait_log(r"remote: transaction queue=%s relay=%s tls=\"none\" "
               r"accepted=1/2 " % (re.escape(qid), re.escape(dv.lmtp_socket)))
    assert p.queue_ids() == [qid]
    path = os.path.join(p.spool, "queue", qid)
    wait_until(lambda: b"452 4.2.2 <carol@example.test>" in
               open(path, "rb").read(), what="carol's reply in the queue "
               "file")
    assert not [l for l in p.log_lines if "report=failure" in l]
    assert len(imap_find(dv, "alice@example.test", tok.encode())) == 1
    assert mail_files(dv, "carol@example.test") == []


def test_lmtp_dovecot_down_then_back(make_petrel, dv):
    p = lmtp_petrel(make_petrel, dv,
                    extra="retry_initial 1s\nretry_max 2s\n")
    dv.stop()
    # Dovecot stopped leaves its socket: nobody listens on it.
    assert os.path.exists(dv.lmtp_socket)
    tok = token()
    msg = message(tok)
    qid = send(p, ["alice@example.test"], msg)
    m = wait_status(p, qid, "alice@example.test", "deferred")
    assert m.group(1) == "lmtp:unix:%s" % dv.lmtp_socket, m.group(0)
    assert m.group(3).startswith("451 4.4.1 "), m.group(0)
    assert "Connection refused" in m.group(3), m.group(0)
    assert p.queue_ids() == [qid]
    # No socket at all (as after a reboot, /run being empty).
    mark = p.log_mark()
    os.unlink(dv.lmtp_socket)
    m = p.wait_log(r"delivery: rcpt queue=%s to=<alice@example.test> .*"
                   r"status=deferred \(451 4\.4\.1 .*No such file or "
                   r"directory" % re.escape(qid), timeout=60, start=mark)
    assert dv.lmtp_socket in m.group(0)
    assert p.queue_ids() == [qid]
    for fn in mail_files(dv, "alice@example.test"):
        with open(fn, "rb") as f:
            assert tok.encode() not in f.read(), fn
    # Dovecot is back: the next retry delivers.
    mark = p.log_mark()
    dv.start()
    wait_status(p, qid, "alice@example.test", "sent", start=mark)
    p.wait_queue_empty()
    [got] = imap_find(dv, "alice@example.test", tok.encode())
    assert got.endswith(msg)


def test_lmtp_reload_switches_maildir_to_lmtp_inet(make_petrel, dv):
    p = make_petrel(users=PETREL_USERS, aliases=ALIASES)
    tok = token()
    msg = message(tok)
    qid1 = send(p, ["alice@example.test"], msg)
    m = wait_status(p, qid1, "alice@example.test", "sent")
    assert m.group(1) == "local", m.group(0)
    p.wait_delivered("alice@example.test", 1)

    p.extra_conf = "deliver lmtp inet:127.0.0.1:%d\n" % dv.lmtp_port
    p.write_conf()
    mark = p.log_mark()
    p.signal(signal.SIGHUP)
    p.wait_log(r"config: reloaded", start=mark)
    qid2 = send(p, ["alice@example.test"], msg)
    m = wait_status(p, qid2, "alice@example.test", "sent", start=mark)
    assert m.group(1) == "127.0.0.1[127.0.0.1]:%d" % dv.lmtp_port, \
        m.group(0)
    p.wait_queue_empty()
    # The first copy in Petrel's Maildir, the second in Dovecot's.
    assert len(p.maildir_files("alice@example.test")) == 1
    [got] = imap_find(dv, "alice@example.test", tok.encode())
    _, f, rest = split_dovecot(got)
    assert f["ip"] == b"127.0.0.1", f	# over TCP Dovecot names the peer
    received, sent = split_received(rest)
    assert parse_received(received.replace(b"\r\n", b"\n"))["id"] == qid2
    assert sent == msg


def check_config(p):
    return subprocess.run([PETREL_BIN, "check-config", "-c", p.conf_path],
                          capture_output=True, timeout=60)


def test_lmtp_check_config(make_petrel, dv):
    p = lmtp_petrel(make_petrel, dv, start=False)
    r = check_config(p)
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode() == ("%s: configuration is valid (command "
                                 "line)\n" % p.conf_path)
    assert r.stderr == b""

    absent = os.path.join(p.tmpdir, "no-such-lmtp")
    p.extra_conf = "deliver lmtp unix:%s\n" % absent
    p.write_conf()
    r = check_config(p)
    assert r.returncode == 0, r.stderr
    assert r.stderr.decode() == (
        "%s: warning: deliver lmtp unix:%s: No such file or directory (is "
        "the LMTP server running? mail waits in the queue until it is)\n"
        % (p.conf_path, absent))

    p.extra_conf = "deliver lmtp unix:%s\n" % p.conf_path
    p.write_conf()
    r = check_config(p)
    assert r.returncode == 1
    assert r.stdout == b""
    assert r.stderr.decode() == ("%s: deliver lmtp unix:%s: not a socket\n"
                                 % (p.conf_path, p.conf_path))

    p.extra_conf = "deliver lmtp 127.0.0.1:24\n"
    p.write_conf()
    r = check_config(p)
    assert r.returncode == 1
    assert ("deliver: bad LMTP target \"127.0.0.1:24\": expected "
            "unix:/PATH or inet:HOST:PORT") in r.stderr.decode()


def test_lmtp_timeout_defers(make_petrel):
    """The client's timeouts apply: an LMTP server that does not answer
    the final dot within client_timeout_data defers the recipient, and
    the queue keeps the message (a fake LMTP server: Dovecot always
    answers)."""
    from smtppeer import SMTPPeer

    d = workdir()
    sock = os.path.join(d, "lmtp")
    with SMTPPeer(lmtp=True, unix_path=sock,
                  delay_reply={"data": 30}) as peer:
        p = make_petrel(users=PETREL_USERS, aliases=ALIASES,
                        extra_conf="deliver lmtp unix:%s\n"
                        "client_timeout_data 1s\n" % sock)
        msg = b"Subject: slow\r\n\r\nhello\r\n"
        qid = send(p, ["info@example.test"], msg)
        m = wait_status(p, qid, "alice@example.test", "deferred")
        assert m.group(1) == sock, m.group(0)
        assert m.group(3).startswith("451 4.4.2 conversation with "), \
            m.group(0)
        assert "timed out while sending end of data" in m.group(3), \
            m.group(0)
        assert p.queue_ids() == [qid]
        # What the server was sent: LHLO, then the final address.
        cmds = [c for _, c in peer.commands]
        assert cmds[0].startswith("LHLO mx.example.test"), cmds
        assert "RCPT TO:<alice@example.test>" in cmds, cmds
        [a] = peer.attempts
        assert a.content.endswith(b"\r\n" + msg), a.content
        peer.assert_clean()
    import shutil
    shutil.rmtree(d, ignore_errors=True)
