"""
test_smtppeer.py: self-test of smtppeer.py, the fake SMTP/LMTP server the
outbound-delivery tests deliver to. Only Python's smtplib and raw sockets
talk to it here (no Petrel), so a fault found here is the peer's own.

Covered: the multi-line EHLO reply; a transaction pipelined in one write;
the RFC 2920 checks that flag a client pipelining without PIPELINING or
after a must-end-group command; per-recipient refusals; fail_first at every
stage; close_in_data / close_after_dot; BDAT framing (a chunk holding
CRLF.CRLF and command text is read as octets); STARTTLS (a verified
handshake, state reset, plaintext injected behind STARTTLS discarded);
tls_garbage; LMTP with one reply per recipient over a Unix socket (DATA and
BDAT); 421 and 554 greetings; hang_greeting; delay_reply; DROP; SIZE;
alloc_addr giving distinct usable addresses; raw versus data
(dot-stuffing); the content checks; and every fake end-of-data sequence
from the shared SMTP-smuggling list, none of which may end the data.
"""

import os
import smtplib
import socket
import ssl
import time

import pytest

import smtppeer
from harness import smuggling_variants
from smtppeer import DROP, SMTPPeer, alloc_addr, release_addr

pytestmark = pytest.mark.timeout(120)

FROM = "sender@client.test"


class Wire:
    """A byte-exact client: what the test sends is what goes on the wire."""

    def __init__(self, peer, timeout=10, source=None):
        if peer.unix_path:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(peer.unix_path)
        else:
            self.sock = socket.create_connection(
                (peer.addr, peer.port), timeout,
                source_address=(source, 0) if source else None)
        self.sock.settimeout(timeout)
        self.buf = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed by the peer (pending %r)"
                                      % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def reply(self):
        """(code, [text of each line], raw bytes of the reply)"""
        texts, raw = [], b""
        while True:
            line = self._line()
            raw += line + b"\r\n"
            assert len(line) >= 3 and line[:3].isdigit(), line
            texts.append(line[4:].decode())
            if len(line) == 3 or line[3:4] == b" ":
                return int(line[:3]), texts, raw
            assert line[3:4] == b"-", line

    def expect(self, code):
        c, texts, raw = self.reply()
        assert c == code, "expected %d, got %r" % (code, raw)
        return texts

    def cmd(self, line, code):
        self.send(line + "\r\n")
        return self.expect(code)

    def hello(self, verb="EHLO"):
        self.expect(220)
        return self.cmd(verb + " client.test", 250)

    def eof(self, timeout=5):
        """Wait for the peer to close; returns what arrived before."""
        self.sock.settimeout(timeout)
        data, self.buf = self.buf, b""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return data
                data += chunk
        except ConnectionResetError:
            return data

    def starttls(self, ctx, hostname="peer.test"):
        assert self.buf == b""
        self.sock = ctx.wrap_socket(self.sock, server_hostname=hostname)

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@pytest.fixture
def make_peer():
    made = []

    def make(**kw):
        p = SMTPPeer(**kw)
        made.append(p)
        p.start()
        return p

    yield make
    for p in made:
        p.stop()
    for p in made:
        assert p.errors == [], p.errors


def send_txn(w, rcpts=("rcpt@peer.test",), body=b"Subject: t\r\n\r\nx\r\n"):
    w.cmd("MAIL FROM:<%s>" % FROM, 250)
    for r in rcpts:
        w.cmd("RCPT TO:<%s>" % r, 250)
    w.cmd("DATA", 354)
    w.send(body + b".\r\n")


def client_ctx(verify=False):
    ctx = ssl.create_default_context()
    if verify:
        ctx.load_verify_locations(smtppeer.cert_files()[0])
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


# ------------------------------------------------------------ basic session

def test_ehlo_and_pipelined_transaction(make_peer):
    peer = make_peer(size=1000000, chunking=True)
    with Wire(peer) as w:
        code, texts, raw = w.reply()
        assert (code, texts) == (220, ["peer.test ESMTP"])
        w.send("EHLO client.test\r\n")
        code, texts, raw = w.reply()
        assert code == 250
        assert texts == ["peer.test hello client.test", "PIPELINING",
                         "SIZE 1000000", "8BITMIME", "SMTPUTF8", "DSN",
                         "CHUNKING", "ENHANCEDSTATUSCODES"]
        lines = raw.split(b"\r\n")[:-1]
        assert all(ln.startswith(b"250-") for ln in lines[:-1])
        assert lines[-1] == b"250 ENHANCEDSTATUSCODES"
        # The whole command group in one write; replies come in order.
        w.send(b"MAIL FROM:<a@client.test> BODY=8BITMIME SIZE=20\r\n"
               b"RCPT TO:<b@peer.test>\r\n"
               b"RCPT TO:<C@Peer.test> NOTIFY=SUCCESS,FAILURE "
               b"ORCPT=rfc822;C@Peer.test\r\n"
               b"DATA\r\n")
        assert w.expect(250) == ["2.1.0 ok"]
        assert w.expect(250) == ["2.1.5 ok"]
        assert w.expect(250) == ["2.1.5 ok"]
        w.expect(354)
        # QUIT pipelined behind the final dot (RFC 2920 allows it).
        w.send(b"Subject: hi\r\n\r\nbody \xc3\xa9\r\n.\r\nQUIT\r\n")
        assert w.expect(250) == ["2.0.0 ok: queued"]
        w.expect(221)
        assert w.eof() == b""
    [m] = peer.wait_messages(1)
    assert m.mail_from == "a@client.test"
    assert m.mail_params == {"BODY": "8BITMIME", "SIZE": "20"}
    assert m.rcpts == [("b@peer.test", {}),
                       ("C@Peer.test", {"NOTIFY": "SUCCESS,FAILURE",
                                        "ORCPT": "rfc822;C@Peer.test"})]
    assert m.delivered == ["b@peer.test", "C@Peer.test"]
    assert m.data == b"Subject: hi\r\n\r\nbody \xc3\xa9"
    assert m.content == m.data + b"\r\n"
    assert m.raw == b"Subject: hi\r\n\r\nbody \xc3\xa9\r\n.\r\n"
    assert (m.helo, m.helo_verb, m.tls, m.conn_id, m.via) == \
        ("client.test", "EHLO", False, 1, "DATA")
    assert m.client[0] == "127.0.0.1"
    assert [c for _, c in peer.commands] == [
        "EHLO client.test", "MAIL FROM:<a@client.test> BODY=8BITMIME SIZE=20",
        "RCPT TO:<b@peer.test>",
        "RCPT TO:<C@Peer.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;"
        "C@Peer.test", "DATA", "QUIT"]
    assert peer.connections == 1
    peer.assert_clean()


def test_pipelining_checks(make_peer):
    # Without PIPELINING, a client must wait for every reply.
    peer = make_peer(pipelining=False)
    with Wire(peer) as w:
        texts = w.hello()
        assert "PIPELINING" not in texts
        w.send("MAIL FROM:<a@client.test>\r\nRCPT TO:<b@peer.test>\r\n")
        w.expect(250)
        w.expect(250)
        w.cmd("RSET", 250)
    v = peer.violations
    assert len(v) == 1 and "without PIPELINING" in v[0][1], v

    # With PIPELINING, EHLO and DATA must still end a group.
    peer = make_peer()
    with Wire(peer) as w:
        w.expect(220)
        w.send("EHLO client.test\r\nNOOP\r\n")
        w.expect(250)
        w.expect(250)
        w.send("MAIL FROM:<a@client.test>\r\nRCPT TO:<b@peer.test>\r\n")
        w.expect(250)
        w.expect(250)
        w.send("DATA\r\nSubject: early\r\n\r\nx\r\n.\r\n")
        w.expect(354)
        w.expect(250)
    v = [t for _, t in peer.violations]
    assert len(v) == 2, v
    assert "after EHLO" in v[0] and "after DATA" in v[1], v
    with pytest.raises(AssertionError):
        peer.assert_clean()

    # A client that waits is never reported, however fast it is.
    peer = make_peer(pipelining=False)
    with Wire(peer) as w:
        w.hello()
        for _ in range(20):
            send_txn(w)
            w.expect(250)
    assert len(peer.messages) == 20
    peer.assert_clean()


def test_smtplib_with_helo_fallback(make_peer):
    peer = make_peer(ehlo_ok=False)
    with smtplib.SMTP(peer.addr, peer.port, local_hostname="client.test",
                      timeout=10) as s:
        refused = s.sendmail(FROM, ["rcpt@peer.test"],
                             b"Subject: helo\r\n\r\nhi\r\n")
        assert refused == {}
    [m] = peer.wait_messages(1)
    assert (m.helo, m.helo_verb) == ("client.test", "HELO")
    assert [c.upper() for _, c in peer.commands][:2] == [
        "EHLO CLIENT.TEST", "HELO CLIENT.TEST"]
    assert m.data == b"Subject: helo\r\n\r\nhi"
    peer.assert_clean()
    # A HELO session has no extensions: parameters are refused.
    with Wire(peer) as w:
        w.expect(220)
        w.cmd("EHLO client.test", 502)
        w.cmd("HELO client.test", 250)
        w.cmd("MAIL FROM:<a@client.test> BODY=8BITMIME", 555)
    assert "BODY without the extension" in peer.violations[-1][1]


def test_per_recipient_refusal(make_peer):
    peer = make_peer(rcpt_reply={"bad@peer.test": "550 5.1.1 no such user",
                                 "@full.test": "452 4.2.2 mailbox full"})
    with smtplib.SMTP(peer.addr, peer.port, timeout=10) as s:
        refused = s.sendmail(FROM, ["good@peer.test", "BAD@peer.test",
                                    "x@full.test"],
                             b"Subject: r\r\n\r\nx\r\n")
    assert refused == {"BAD@peer.test": (550, b"5.1.1 no such user"),
                       "x@full.test": (452, b"4.2.2 mailbox full")}
    [m] = peer.wait_messages(1)
    assert m.rcpts == [("good@peer.test", {})]
    peer.assert_clean()


@pytest.mark.parametrize("stage,exc", [
    ("mail", smtplib.SMTPSenderRefused),
    ("rcpt", smtplib.SMTPRecipientsRefused),
    ("data_start", smtplib.SMTPDataError),
    ("data", smtplib.SMTPDataError)])
def test_fail_first(make_peer, stage, exc):
    peer = make_peer()
    peer.fail_first(2, "451 4.3.0 try later", stage=stage)
    msg = b"Subject: ff\r\n\r\nx\r\n"
    with smtplib.SMTP(peer.addr, peer.port, timeout=10) as s:
        for _ in range(2):
            with pytest.raises(exc) as ei:
                s.sendmail(FROM, ["a@peer.test", "b@peer.test"], msg)
            if stage == "rcpt":     # every RCPT of the transaction
                assert ei.value.recipients == {
                    "a@peer.test": (451, b"4.3.0 try later"),
                    "b@peer.test": (451, b"4.3.0 try later")}
            else:
                assert ei.value.smtp_code == 451
            s.rset()    # smtplib does not after a refused DATA command
        assert s.sendmail(FROM, ["a@peer.test", "b@peer.test"], msg) == {}
    [m] = peer.wait_messages(1)
    assert m.data == b"Subject: ff\r\n\r\nx"
    assert m.txn_id == (1 if stage == "mail" else 3)
    att = peer.attempts
    if stage == "data":
        assert [a.outcome for a in att] == ["refused", "refused",
                                            "accepted"]
        assert att[0].replies == ["451 4.3.0 try later"]
    else:
        assert [a.outcome for a in att] == ["accepted"]
    peer.assert_clean()


def test_421_closes_the_connection(make_peer):
    peer = make_peer()
    peer.fail_first(1, "421 4.3.2 shutting down", stage="mail")
    with smtplib.SMTP(peer.addr, peer.port, timeout=10) as s:
        with pytest.raises(smtplib.SMTPSenderRefused) as ei:
            s.sendmail(FROM, ["a@peer.test"], b"x\r\n")
        assert ei.value.smtp_code == 421
    with Wire(peer) as w:
        w.hello()
        w.cmd("MAIL FROM:<a@client.test>", 250)
    peer.fail_first(1, "421 4.3.2 bye", stage="rcpt")
    with Wire(peer) as w:
        w.hello()
        w.cmd("MAIL FROM:<a@client.test>", 250)
        w.cmd("RCPT TO:<b@peer.test>", 421)
        assert w.eof() == b""
    assert peer.connections == 3


def test_close_in_data_and_after_dot(make_peer):
    peer = make_peer()
    peer.close_in_data(1)
    part = b"Subject: partial\r\n\r\nfirst part\r\n"
    with Wire(peer) as w:
        w.hello()
        w.cmd("MAIL FROM:<%s>" % FROM, 250)
        w.cmd("RCPT TO:<a@peer.test>", 250)
        w.cmd("DATA", 354)
        w.send(part)
        assert w.eof() == b""
    [a] = peer.attempts
    assert a.outcome == "dropped_in_data"
    assert a.raw and part.startswith(a.raw)
    assert peer.messages == []

    peer.close_after_dot(1)
    full = b"Subject: whole\r\n\r\nbody\r\n"
    with Wire(peer) as w:
        w.hello()
        send_txn(w, ("a@peer.test",), full)
        assert w.eof() == b""       # no reply at all
    a = peer.attempts[-1]
    assert (a.outcome, a.raw, a.data) == ("dropped_after_dot",
                                          full + b".\r\n", full[:-2])
    assert peer.messages == []

    # The counters are used up: normal service.
    with smtplib.SMTP(peer.addr, peer.port, timeout=10) as s:
        s.sendmail(FROM, ["a@peer.test"], full)
    [m] = peer.wait_messages(1)
    assert m.content == full
    assert peer.connections == 3
    peer.assert_clean()


def test_drop_reply_and_delay(make_peer):
    peer = make_peer(mail_reply=DROP)
    with Wire(peer) as w:
        w.hello()
        w.send("MAIL FROM:<a@client.test>\r\n")
        assert w.eof() == b""
    peer.mail_reply = "250 2.1.0 fine"
    peer.delay_reply = {"noop": 0.4, "mail": 5.0}
    with Wire(peer) as w:
        w.hello()
        t0 = time.monotonic()
        w.cmd("NOOP", 250)
        assert time.monotonic() - t0 >= 0.4
    with pytest.raises((smtplib.SMTPServerDisconnected, socket.timeout)):
        with smtplib.SMTP(peer.addr, peer.port, timeout=0.5) as s:
            s.mail(FROM)
    # stop() cuts a delayed reply short.
    t0 = time.monotonic()
    peer.stop()
    assert time.monotonic() - t0 < 4


# ------------------------------------------------------------------- BDAT

def test_bdat_framing(make_peer):
    peer = make_peer(chunking=True)
    chunk1 = b"Subject: b\r\n\r\n.\r\nQUIT\r\nRSET\r\n"
    chunk2 = b"BDAT 5\r\nend\r\n"
    with Wire(peer) as w:
        assert "CHUNKING" in w.hello()
        w.send(b"MAIL FROM:<a@client.test>\r\nRCPT TO:<b@peer.test>\r\n"
               b"BDAT %d\r\n" % len(chunk1) + chunk1 +
               b"BDAT %d LAST\r\n" % len(chunk2) + chunk2)
        w.expect(250)
        w.expect(250)
        assert w.expect(250) == ["2.0.0 %d octets received" % len(chunk1)]
        assert w.expect(250) == ["2.0.0 ok: queued"]
        # In sync: nothing else is pending.
        w.cmd("NOOP", 250)
        # BDAT 0 LAST ends a transaction; DATA cannot follow BDAT.
        w.send(b"MAIL FROM:<a@client.test>\r\nRCPT TO:<b@peer.test>\r\n"
               b"BDAT 4\r\nab\r\n")
        w.expect(250)
        w.expect(250)
        w.expect(250)
        w.cmd("DATA", 503)
        w.cmd("BDAT 0 LAST", 250)
        # A message entirely in one LAST chunk, a dot line at its start.
        w.send(b"MAIL FROM:<a@client.test>\r\nRCPT TO:<b@peer.test>\r\n"
               b"BDAT 3 LAST\r\n.\r\n")
        w.expect(250)
        w.expect(250)
        w.expect(250)
        w.cmd("QUIT", 221)
    m1, m2, m3 = peer.wait_messages(3)
    assert m1.via == "BDAT"
    assert m1.raw == m1.data == m1.content == chunk1 + chunk2
    assert m2.data == b"ab\r\n"
    assert m3.data == b".\r\n"
    assert [t for _, t in peer.violations] == ["DATA after BDAT"]


def test_bdat_refused_without_chunking(make_peer):
    peer = make_peer()          # CHUNKING not offered
    with Wire(peer) as w:
        w.hello()
        w.cmd("MAIL FROM:<a@client.test>", 250)
        w.cmd("RCPT TO:<b@peer.test>", 250)
        w.send(b"BDAT 9 LAST\r\nNOOP\r\nxyz")
        w.expect(502)
        w.cmd("NOOP", 250)      # the 9 octets were read as the chunk
    assert peer.messages == []
    assert [t for _, t in peer.violations] == ["BDAT without CHUNKING"]


def test_bdat_close_in_data(make_peer):
    peer = make_peer(chunking=True)
    peer.close_in_data(1)
    with Wire(peer) as w:
        w.hello()
        w.cmd("MAIL FROM:<a@client.test>", 250)
        w.cmd("RCPT TO:<b@peer.test>", 250)
        w.send(b"BDAT 100 LAST\r\n" + b"x" * 40)
        assert w.eof() == b""
    [a] = peer.attempts
    assert (a.outcome, a.via) == ("dropped_in_data", "BDAT")
    assert 0 < len(a.raw) <= 40


# -------------------------------------------------------------------- TLS

def test_starttls(make_peer):
    peer = make_peer(starttls=True)
    with smtplib.SMTP(peer.addr, peer.port, timeout=10) as s:
        s.ehlo("client.test")
        assert s.has_extn("starttls")
        # The certificate chain is checked; the name is not: smtplib
        # would check the random IP address.
        ctx = client_ctx(verify=True)
        ctx.check_hostname = False
        code, _ = s.starttls(context=ctx)
        assert code == 220
        # smtplib sends EHLO again: STARTTLS is no longer offered.
        s.ehlo("client.test")
        assert not s.has_extn("starttls")
        s.sendmail(FROM, ["a@peer.test"], b"Subject: tls\r\n\r\nx\r\n")
    [m] = peer.wait_messages(1)
    assert m.tls is True
    assert m.tls_version in ("TLSv1.2", "TLSv1.3")
    assert m.cipher
    assert [c.upper() for _, c in peer.commands][:3] == [
        "EHLO CLIENT.TEST", "STARTTLS", "EHLO CLIENT.TEST"]
    peer.assert_clean()
    assert peer.tls_errors == []
    # The certificate is valid for peer.test.
    with Wire(peer) as w:
        w.hello()
        w.cmd("STARTTLS", 220)
        w.starttls(client_ctx(verify=True), "peer.test")
        w.cmd("EHLO client.test", 250)
        w.cmd("QUIT", 221)
    # A client that refuses the certificate: the peer records why.
    with Wire(peer) as w:
        w.hello()
        w.cmd("STARTTLS", 220)
        with pytest.raises(ssl.SSLCertVerificationError):
            w.starttls(ssl.create_default_context(), "peer.test")
    peer.wait_for(lambda p: p.tls_errors, 10, "a TLS error")


def test_starttls_resets_state_and_drops_injected_plaintext(make_peer):
    peer = make_peer(starttls=True)
    with Wire(peer) as w:
        w.hello()
        w.cmd("MAIL FROM:<a@client.test>", 250)
        # CVE-2011-0411 shape: a command behind STARTTLS in the same write.
        w.send("STARTTLS\r\nNOOP\r\n")
        w.expect(220)
        w.starttls(client_ctx())
        # The NOOP was discarded (else its 250 would come first) and the
        # transaction and the EHLO state are gone.
        w.cmd("MAIL FROM:<a@client.test>", 503)
        texts = w.cmd("EHLO client.test", 250)
        assert "STARTTLS" not in texts
        w.cmd("MAIL FROM:<a@client.test>", 250)
        w.cmd("STARTTLS", 503)
    assert "pipelined after STARTTLS" in peer.violations[0][1]
    assert [c for _, c in peer.commands].count("NOOP") == 0


def test_tls_garbage(make_peer):
    peer = make_peer(starttls=True, tls_garbage=True)
    with smtplib.SMTP(peer.addr, peer.port, timeout=10) as s:
        s.ehlo("client.test")
        with pytest.raises(ssl.SSLError):
            s.starttls(context=client_ctx())
    assert peer.messages == []
    # The peer notes the garbage after sending it: the client may see the
    # handshake fail first.
    peer.wait_for(lambda p: any("garbage" in t for _, w, t in p.transcript
                                if w == "-"), timeout=10,
                  what="the garbage note in the transcript")
    # The retry in plaintext works.
    peer.tls_garbage = False
    peer.starttls = False
    with smtplib.SMTP(peer.addr, peer.port, timeout=10) as s:
        s.sendmail(FROM, ["a@peer.test"], b"x\r\n")
    assert peer.wait_messages(1)[0].tls is False


def test_tls_context_override(make_peer):
    ctx = smtppeer.server_context()
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    peer = make_peer(starttls=True, tls_context=ctx)
    with smtplib.SMTP(peer.addr, peer.port, timeout=10) as s:
        s.starttls(context=client_ctx())
        s.sendmail(FROM, ["a@peer.test"], b"x\r\n")
    assert peer.wait_messages(1)[0].tls_version == "TLSv1.2"


# ------------------------------------------------------------------- LMTP

def test_lmtp_per_recipient_over_unix_socket(make_peer, tmp_path):
    path = str(tmp_path / "lmtp.sock")
    peer = make_peer(lmtp=True, unix_path=path, chunking=True,
                     rcpt_reply={"c@x.test": "550 5.1.1 unknown"},
                     lmtp_data_reply={"b@x.test": "452 4.2.2 mailbox full"})
    assert (peer.addr, peer.port) == (None, None)
    with Wire(peer) as w:
        assert w.expect(220) == ["peer.test LMTP"]
        w.cmd("EHLO client.test", 500)
        w.cmd("LHLO client.test", 250)
        w.send("MAIL FROM:<s@client.test>\r\nRCPT TO:<a@x.test>\r\n"
               "RCPT TO:<b@x.test>\r\nRCPT TO:<c@x.test>\r\nDATA\r\n")
        w.expect(250)
        w.expect(250)
        w.expect(250)
        w.expect(550)
        w.expect(354)
        w.send("Subject: l\r\n\r\nx\r\n.\r\n")
        # One reply per accepted recipient, in RCPT order: two, not three.
        assert w.expect(250) == ["2.0.0 ok: queued"]
        assert w.expect(452) == ["4.2.2 mailbox full"]
        w.cmd("NOOP", 250)
        # The same after BDAT LAST.
        w.send("MAIL FROM:<s@client.test>\r\nRCPT TO:<b@x.test>\r\n"
               "RCPT TO:<d@x.test>\r\nBDAT 3 LAST\r\nx\r\n")
        for code in (250, 250, 250, 452, 250):
            w.expect(code)
        w.cmd("NOOP", 250)
        w.cmd("QUIT", 221)
    m1, m2 = peer.wait_messages(2)
    assert [a for a, _ in m1.rcpts] == ["a@x.test", "b@x.test"]
    assert m1.delivered == ["a@x.test"]
    assert m1.replies == ["250 2.0.0 ok: queued", "452 4.2.2 mailbox full"]
    assert m2.delivered == ["d@x.test"]
    assert m2.via == "BDAT"
    assert [t for _, t in peer.violations] == [
        "EHLO in LMTP (RFC 2033 requires LHLO)"]
    peer.stop()
    assert not os.path.exists(path)


def test_lmtp_fail_first_over_tcp(make_peer):
    peer = make_peer(lmtp=True, port=0)
    assert peer.port != 0
    peer.fail_first(1, "451 4.3.0 later", stage="data")
    with Wire(peer) as w:
        w.hello("LHLO")
        for expect in ((451, 451), (250, 250)):
            send_txn(w, ("a@x.test", "b@x.test"))
            for code in expect:
                w.expect(code)
    [m] = peer.wait_messages(1)
    assert m.delivered == ["a@x.test", "b@x.test"]
    assert [a.outcome for a in peer.attempts] == ["refused", "accepted"]


# -------------------------------------------------------------- greetings

def test_421_greeting(make_peer):
    peer = make_peer(greeting="421 4.3.2 busy")
    with pytest.raises(smtplib.SMTPConnectError) as ei:
        smtplib.SMTP(peer.addr, peer.port, timeout=10)
    assert ei.value.smtp_code == 421
    with Wire(peer) as w:
        assert w.eof() == b"421 4.3.2 busy\r\n"


def test_554_greeting(make_peer):
    peer = make_peer(greeting="554 5.3.2 no service")
    with Wire(peer) as w:
        w.expect(554)
        w.cmd("EHLO client.test", 503)
        w.cmd("MAIL FROM:<a@client.test>", 503)
        w.cmd("QUIT", 221)
        assert w.eof() == b""


def test_multiline_greeting_and_no_enhanced_codes(make_peer):
    peer = make_peer(greeting="220 peer.test first\n220 second",
                     enhancedstatuscodes=False)
    with Wire(peer) as w:
        code, texts, raw = w.reply()
        assert raw == b"220-peer.test first\r\n220 second\r\n"
        texts = w.cmd("EHLO client.test", 250)
        assert "ENHANCEDSTATUSCODES" not in texts
        assert w.cmd("MAIL FROM:<a@client.test>", 250) == ["ok"]


def test_hang_greeting_and_stop(make_peer):
    peer = make_peer(hang_greeting=True)
    with Wire(peer, timeout=0.5) as w:
        with pytest.raises(socket.timeout):
            w.sock.recv(100)
        assert peer.wait_connections(1) == 1
        assert peer.open_connections == 1
        t0 = time.monotonic()
        peer.stop()
        assert time.monotonic() - t0 < 4
        assert w.eof() == b""
    assert peer.open_connections == 0
    with pytest.raises(OSError):
        socket.create_connection((peer.addr, peer.port), 2)


def test_connection_counts(make_peer):
    peer = make_peer()
    ws = [Wire(peer) for _ in range(3)]
    for w in ws:
        w.expect(220)
    assert peer.open_connections == 3
    for w in ws:
        w.cmd("QUIT", 221)
        w.close()
    peer.wait_for(lambda p: p.open_connections == 0, 10, "all closed")
    assert (peer.connections, peer.max_open_connections) == (3, 3)
    # A stopped peer starts again on the same address (a server that
    # comes back); what it recorded is kept.
    peer.stop()
    peer.start()
    with Wire(peer) as w:
        w.hello()
    assert peer.connections == 4


# -------------------------------------------------------------- addresses

def test_alloc_addr(make_peer):
    addrs = [alloc_addr() for _ in range(5)]
    assert len(set(addrs)) == 5
    for a in addrs:
        o = [int(x) for x in a.split(".")]
        assert o[0] == 127 and o[:3] != [127, 0, 0] and 0 < o[3] < 255
    peers = [make_peer(addr=a, hostname="p%d.test" % i)
             for i, a in enumerate(addrs)]
    for i, p in enumerate(peers):
        assert (p.addr, p.port) == (addrs[i], 25)
        with Wire(p) as w:
            assert w.expect(220) == ["p%d.test ESMTP" % i]
    # Taken: an explicit bind fails instead of sharing the address.
    with pytest.raises(OSError) as ei:
        SMTPPeer(addr=addrs[0]).start()
    assert ei.value.errno == 98        # EADDRINUSE
    # addr=None allocates as well; port=0 picks a free port.
    p = make_peer()
    assert p.addr not in addrs and p.port == 25
    p0 = make_peer(addr="127.0.0.1", port=0)
    assert p0.port not in (0, 25)
    with Wire(p0) as w:
        w.expect(220)
    # A released reservation can be bound explicitly; a client may use an
    # allocated address as its source.
    a = alloc_addr()
    release_addr(a)
    src = alloc_addr()
    pa = make_peer(addr=a)
    with smtplib.SMTP(pa.addr, 25, timeout=10,
                      source_address=(src, 0)) as s:
        s.sendmail(FROM, ["a@peer.test"], b"x\r\n")
    assert pa.wait_messages(1)[0].client[0] == src
    release_addr(src)


# ------------------------------------------------------ raw versus data

def test_raw_versus_data(make_peer):
    peer = make_peer()
    wire = b"..first\r\nSubject: dots\r\n\r\n..x\r\n..\r\n...\r\nend\r\n.\r\n"
    with Wire(peer) as w:
        w.hello()
        w.cmd("MAIL FROM:<a@client.test>", 250)
        w.cmd("RCPT TO:<b@peer.test>", 250)
        w.cmd("DATA", 354)
        # In two writes split inside the terminator.
        w.send(wire[:-3])
        time.sleep(0.05)    # not a wait: makes two TCP segments likely
        w.send(wire[-3:])
        w.expect(250)
        send_txn(w, body=b"")           # empty message
        w.expect(250)
        send_txn(w, body=b"\r\n")       # one empty line
        w.expect(250)
    m, empty, one = peer.wait_messages(3)
    assert m.raw == wire
    assert m.data == b".first\r\nSubject: dots\r\n\r\n.x\r\n.\r\n..\r\nend"
    assert m.content == m.data + b"\r\n"
    assert (empty.raw, empty.data, empty.content) == (b".\r\n", b"", b"")
    assert (one.raw, one.data, one.content) == (b"\r\n.\r\n", b"",
                                                b"\r\n")

    # smtplib dot-stuffs; the peer shows both sides.
    with smtplib.SMTP(peer.addr, peer.port, timeout=10) as s:
        s.sendmail(FROM, ["b@peer.test"],
                   b"Subject: s\r\n\r\n.x\r\n.\r\nend\r\n")
    m = peer.wait_messages(4)[3]
    assert m.raw == b"Subject: s\r\n\r\n..x\r\n..\r\nend\r\n.\r\n"
    assert m.data == b"Subject: s\r\n\r\n.x\r\n.\r\nend"
    peer.assert_clean()


def test_content_checks(make_peer):
    peer = make_peer()
    long_stuffed = b"." + b"." + b"y" * 997      # 998 octets unstuffed
    body = (b"Subject: c\r\n\r\n" + long_stuffed + b"\r\n" +
            b"z" * 1200 + b"\r\ncaf\xc3\xa9\r\n")
    with Wire(peer) as w:
        w.hello()
        send_txn(w, body=body)      # 8-bit without BODY=8BITMIME
        w.expect(250)
    v = [t for _, t in peer.violations]
    assert len(v) == 2, v
    assert v[0] == "8-bit message without BODY=8BITMIME"
    assert v[1].startswith("text line of 1200 octets")

    peer = make_peer(dsn=False, smtputf8=False, size=100)
    with Wire(peer) as w:
        w.hello()
        w.cmd("MAIL FROM:<a@client.test> RET=HDRS", 555)
        w.cmd("MAIL FROM:<a@client.test> SMTPUTF8", 555)
        w.send("MAIL FROM:<\u00fc@client.test>\r\n")
        w.expect(553)
        w.cmd("MAIL FROM:<a@client.test> SIZE=101", 552)
        w.cmd("MAIL FROM: <a@client.test>", 250)
        w.cmd("RCPT TO:<b@peer.test> NOTIFY=NEVER", 555)
        w.cmd("RCPT TO:<b@peer.test>", 250)
        w.cmd("DATA", 354)
        w.send(b"x" * 200 + b"\r\n.\r\n")
        assert w.expect(552) == ["5.3.4 message too big"]
        w.cmd("FOO", 500)
    assert peer.messages == []
    assert peer.attempts[0].outcome == "refused"
    v = [t for _, t in peer.violations]
    assert len(v) == 6, v


# ---------------------------------------------------------------- smuggling

def rfc5321_content(wire):
    """Independent model: lines are what lies between CRLFs; the first
    line that is exactly "." ends the data; a leading dot is removed."""
    out, pos = [], 0
    while True:
        end = wire.index(b"\r\n", pos)
        line, pos = wire[pos:end], end + 2
        if line == b".":
            return b"".join(out), pos
        out.append((line[1:] if line.startswith(b".") else line) + b"\r\n")


def test_smuggling_sequences_do_not_end_data(make_peer):
    variants = smuggling_variants()
    assert len(variants) >= 12
    for must in (b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r\n.\r",
                 b"\r\n.\r\r\n", b"\r\r\n.\r\r\n", b"\r\n\x00.\r\n"):
        assert must in dict(variants).values()
    head = b"Subject: smuggle\r\n\r\nhello"
    smuggled = (b"MAIL FROM:<spoof@evil.test>\r\n"
                b"RCPT TO:<victim@peer.test>\r\nDATA\r\nSMUGGLED\r\n")
    peer = make_peer()
    with Wire(peer) as w:
        w.hello()
        for name, v in variants:
            wire = head + v + smuggled + b".\r\n"
            nviol = len(peer.violations)
            w.cmd("MAIL FROM:<%s>" % FROM, 250)
            w.cmd("RCPT TO:<rcpt@peer.test>", 250)
            w.cmd("DATA", 354)
            w.send(wire)
            assert w.expect(250) == ["2.0.0 ok: queued"], name
            # Exactly one reply: the next one answers this NOOP.
            assert w.cmd("NOOP", 250) == ["2.0.0 ok"], name
            m = peer.messages[-1]
            assert m.raw == wire, name
            content, used = rfc5321_content(wire)
            assert used == len(wire), name
            assert m.content == content, name
            assert b"SMUGGLED" in m.data and b"spoof@evil.test" in m.data
            # Each variant holds a bare CR or LF, or a NUL: reported.
            assert len(peer.violations) > nviol, name
    msgs = peer.messages
    assert len(msgs) == len(variants)
    assert all(m.rcpts == [("rcpt@peer.test", {})] for m in msgs)
    assert not any("spoof" in c for _, c in peer.commands)
    assert peer.errors == []
