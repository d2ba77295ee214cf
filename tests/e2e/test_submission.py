"""
test_submission.py: mail programs send through Petrel (issue 4): SMTP AUTH
(RFC 4954) on the submission (587, STARTTLS) and submissions (465,
implicit TLS, RFC 8314) listeners, with real clients (Python smtplib,
swaks) and byte-exact RawClient sessions for every refusal and its exact
code, the failure delay (a timer per client address, not a pause of the
daemon), the hash types of the users file, Dovecot's auth socket,
sender_login (MAIL FROM and From:), the Received header and the Date and
Message-ID headers that submission adds.

Every daemon has three listeners (mx, submission, submissions) on
127.0.0.1, the default self-signed certificate, and `auth_fail_delay 0`
unless the test is about the delay. Mail relayed onward goes to an
SMTPPeer found through a DNSServer on loopback, so that the test sees the
message and its envelope at the other end.
"""

import base64
import email
import email.policy
import email.utils
import os
import re
import select
import shutil
import signal
import smtplib
import socket
import subprocess
import threading
import time
import warnings

import pytest

from dnsserver import DNSServer
from harness import (CLIENT_HELO, PETREL_BIN, RawClient,
                     expected_maildir_bytes, free_port, parse_received,
                     queue_id_from_reply, split_delivered, swaks,
                     tls_context, wait_until, workdir)
from smtppeer import SMTPPeer

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import crypt
    except ImportError:  # Python 3.13 has none
        crypt = None

pytestmark = pytest.mark.timeout(120)

HOST = "127.0.0.1"
ROLES = ("mx", "submission", "submissions")
ALICE, ALICE_PW = "alice@example.test", "alice-pw-1"
BOB = "bob@example.test"                 # empty hash: never logs in
CAROL, CAROL_PW = "carol@example.test", "carol-pw-2"
DAVE, DAVE_PW = "dave@example.test", "dave-pw-3"
REMOTE = "rcpt@remote.test"
OTHER_ADDR = "127.0.0.7"                 # a second client address
DOVECOT = "/usr/sbin/dovecot"
DOVECOT_PW = "dv-secret-1"


# ---------------------------------------------------------------- hashes

_hash_cache = {}


def cli_yescrypt(password):
    """A yescrypt hash made by `petrel user add --stdin` in a scratch
    configuration (the users file it appends to is read back)."""
    if password in _hash_cache:
        return _hash_cache[password]
    d = workdir()
    try:
        users = os.path.join(d, "users")
        conf = os.path.join(d, "petrel.conf")
        with open(users, "w") as f:
            f.write("")
        with open(conf, "w") as f:
            f.write("hostname mx.example.test\nspool %s/spool\n"
                    "listen 127.0.0.1:2599 mx\ndomain example.test\n"
                    "maildir %s/mail/%%d/%%u\nusers %s\n" % (d, d, users))
        r = subprocess.run([PETREL_BIN, "user", "add", "-c", conf,
                            "x@example.test", "--stdin"],
                           input=password.encode(), capture_output=True,
                           timeout=60)
        assert r.returncode == 0, r
        with open(users) as f:
            line = f.read().strip()
        h = line.split(":", 1)[1]
        assert h.startswith("$y$"), line
    finally:
        shutil.rmtree(d, ignore_errors=True)
    _hash_cache[password] = h
    return h


def sha512(password):
    if crypt is None:
        return cli_yescrypt(password)
    h = crypt.crypt(password, crypt.mksalt(crypt.METHOD_SHA512))
    assert h.startswith("$6$"), h
    return h


def bcrypt(password):
    """A $2b$ hash, from Python's crypt (libxcrypt) or mkpasswd; None
    when neither can make one."""
    if crypt is not None:
        h = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH,
                                               rounds=16))
        if h and h.startswith("$2b$"):
            return h
    if shutil.which("mkpasswd"):
        r = subprocess.run(["mkpasswd", "-m", "bcrypt", "--stdin"],
                           input=password.encode(), capture_output=True,
                           timeout=30)
        h = r.stdout.decode().strip()
        if r.returncode == 0 and h.startswith("$2b$"):
            return h
    return None


def default_users():
    return {ALICE: sha512(ALICE_PW), BOB: ""}


# ---------------------------------------------------------------- daemon

BASE_CONF = """
auth_fail_delay 0
retry_initial 1s
retry_max 4s
client_timeout_connect 3s
client_timeout_command 3s
delay_warning 0
"""


def conf_with(extra):
    """BASE_CONF with extra's directives replacing or adding lines."""
    lines = {}
    for text in (BASE_CONF, extra):
        for line in text.strip().splitlines():
            if line.strip():
                lines[line.split()[0]] = line
    return "\n".join(lines.values()) + "\n"


def start(make_petrel, extra="", users=None, run=True, **kw):
    """A daemon with an mx, a submission and a submissions listener;
    p.ports maps each role to its port."""
    ports = {r: free_port() for r in ROLES}
    listen = ["%s:%d %s" % (HOST, ports[r], r) for r in ROLES]
    p = make_petrel(start=False, listen=listen, extra_conf=conf_with(extra),
                    users=users if users is not None else default_users(),
                    **kw)
    p.ports = ports
    if run:
        p.start()
    return p


@pytest.fixture
def remote():
    """(dns, peer): remote.test's MX is the peer on 127.X.Y.Z:25."""
    with DNSServer() as dns, SMTPPeer() as peer:
        dns.add("remote.test", "MX", "10 mx.remote.test.")
        dns.add("mx.remote.test", "A", peer.addr)
        yield dns, peer


# ---------------------------------------------------------------- clients

def b64(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


def plain(user, password, authzid=""):
    return b64("%s\0%s\0%s" % (authzid, user, password))


def check(c, line, code, enhanced=None):
    """Send line, expect code (and the enhanced code); the reply text."""
    c.send(line + "\r\n")
    return c.expect(code, enhanced)


def connect(p, role, source=None, tls=True, timeout=20):
    """A RawClient on the role's listener after the greeting and EHLO;
    with tls (on submission/mx) after STARTTLS and a second EHLO.
    c.ehlo_lines is the last EHLO reply."""
    c = RawClient(HOST, p.ports[role], timeout=timeout, source=source)
    if role == "submissions":
        c.starttls()
        c.read_greeting()
        c.ehlo_lines = c.ehlo()
        return c
    c.read_greeting()
    c.ehlo_lines = c.ehlo()
    if tls:
        check(c, "STARTTLS", 220, "2.0.0")
        c.starttls()
        c.ehlo_lines = c.ehlo()
    return c


def login(c, user=ALICE, password=ALICE_PW):
    check(c, "AUTH PLAIN " + plain(user, password), 235, "2.7.0")


def data(c, msg):
    """DATA with msg (no line may start with a dot); the final reply."""
    check(c, "DATA", 354)
    c.send(msg + b".\r\n")
    return c.reply()


def smtplib_submission(p, user=ALICE, password=ALICE_PW):
    s = smtplib.SMTP(HOST, p.ports["submission"], local_hostname=CLIENT_HELO,
                     timeout=30)
    s.ehlo()
    assert s.has_extn("starttls")
    assert not s.has_extn("auth"), "AUTH offered before TLS"
    code, _ = s.starttls(context=tls_context())
    assert code == 220
    s.ehlo()
    assert s.has_extn("auth")
    assert set(s.esmtp_features["auth"].split()) == {"PLAIN", "LOGIN"}
    code, text = s.login(user, password)
    assert (code, text) == (235, b"2.7.0 Authentication successful")
    return s


def message(subject, sender=ALICE, to=BOB, extra=b"", date=True):
    """A message whose header holds Date and Message-ID (so that nothing
    is added) unless date is False."""
    h = b"From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n" % (
        sender.encode(), to.encode(), subject.encode())
    if date:
        h += (b"Date: Mon, 02 Mar 2026 10:00:00 +0000\r\n"
              b"Message-ID: <%s@client.example.test>\r\n" % subject.encode())
    return h + extra + b"\r\nBody of " + subject.encode() + b".\r\n"


def _split_peer(m):
    lines = m.content.split(b"\r\n")
    assert lines[0].startswith(b"Received: from "), m.content[:300]
    n = 1
    while lines[n][:1] in (b" ", b"\t"):
        n += 1
    return lines[:n], lines[n:]


def peer_message_body(m):
    """What the peer got, less the Received header Petrel prepends."""
    return b"\r\n".join(_split_peer(m)[1])


def peer_received(m):
    """The Received header Petrel prepended, LF line ends."""
    return b"\n".join(_split_peer(m)[0]) + b"\n"


def received_of(file_bytes):
    _rp, received, _rest = split_delivered(file_bytes)
    return received.decode(), parse_received(received)


def subjects(p, address):
    out = []
    for raw in p.maildir_messages(address):
        m = email.message_from_bytes(raw, policy=email.policy.default)
        out.append(str(m["Subject"]))
    return sorted(out)


# ------------------------------------------------ successful submission


def test_smtplib_starttls_587_relays_to_peer(make_petrel, remote):
    """smtplib: STARTTLS, login (PLAIN) on 587, a message for a remote
    domain from a client that is not trusted: the peer gets it with the
    envelope and the message as sent, behind one Received header."""
    dns, peer = remote
    p = start(make_petrel, dns=dns.addr)
    msg = message("relay-587", to=REMOTE)
    with smtplib_submission(p) as s:
        s.sendmail(ALICE, [REMOTE], msg)
    [m] = peer.wait_messages(1)
    assert m.mail_from == ALICE
    assert [r for r, _ in m.rcpts] == [REMOTE]
    assert peer_message_body(m) == msg
    r = parse_received(peer_received(m))
    assert r["proto"] == "ESMTPSA", r
    assert r["for_rcpt"] == REMOTE, r
    p.wait_queue_empty()
    p.wait_log(r"to=<%s> relay=mx\.remote\.test\[%s\]:25 .*status=sent"
               % (re.escape(REMOTE), re.escape(peer.addr)))
    assert p.all_maildir_files() == []
    peer.assert_clean()


def test_smtp_ssl_465_delivers_locally(make_petrel):
    """SMTP_SSL on 465 (TLS first, then the greeting), login, local
    delivery: the Maildir file is the message as sent."""
    p = start(make_petrel)
    msg = message("local-465")
    with smtplib.SMTP_SSL(HOST, p.ports["submissions"],
                          local_hostname=CLIENT_HELO, timeout=30,
                          context=tls_context()) as s:
        s.ehlo()
        assert not s.has_extn("starttls"), "STARTTLS offered on 465"
        assert set(s.esmtp_features["auth"].split()) == {"PLAIN", "LOGIN"}
        assert s.login(ALICE, ALICE_PW) == (
            235, b"2.7.0 Authentication successful")
        code, text = s.mail(ALICE)
        assert code == 250, text
        assert s.rcpt(BOB)[0] == 250
        code, text = s.data(msg)
        assert code == 250, text
    qid = queue_id_from_reply(text)
    [f] = p.wait_delivered(BOB, 1)
    expected_maildir_bytes(ALICE, msg, f, rcpt=BOB, queue_id=qid,
                           helo=CLIENT_HELO)
    _text, r = received_of(f)
    assert r["proto"] == "ESMTPSA"
    assert "(using TLSv1." in r["comments"], r
    p.wait_log(r"smtp: auth session=\S+ client=127\.0\.0\.1 "
               r"user=alice@example\.test mech=PLAIN")


swaks_ssl = pytest.mark.skipif(
    subprocess.run(["perl", "-MNet::SSLeay", "-e", "1"],
                   capture_output=True).returncode != 0,
    reason="swaks needs Perl's Net::SSLeay for TLS (Debian package "
    "libnet-ssleay-perl), not installed")


@swaks_ssl
@pytest.mark.parametrize("role,tls,mech", [
    ("submission", "--tls", "PLAIN"),
    ("submission", "--tls", "LOGIN"),
    ("submissions", "--tlsc", "PLAIN"),
])
def test_swaks_submission(make_petrel, remote, role, tls, mech):
    """swaks with TLS and AUTH: one message for a local user and a
    remote one: the Maildir and the peer each get it."""
    dns, peer = remote
    p = start(make_petrel, dns=dns.addr)
    subject = "swaks-%s-%s" % (role, mech)
    r = swaks("--server", "%s:%d" % (HOST, p.ports[role]), tls,
              "--helo", CLIENT_HELO,
              "--auth", mech, "--auth-user", ALICE,
              "--auth-password", ALICE_PW,
              "--from", ALICE, "--to", "%s,%s" % (BOB, REMOTE),
              "--header", "Subject: " + subject,
              "--body", "swaks body line")
    out = r.stdout.decode("utf-8", "replace")
    assert r.returncode == 0, out + r.stderr.decode()
    assert re.search(r"<~ +235 2\.7\.0 Authentication successful", out), out
    [m] = peer.wait_messages(1)
    assert m.mail_from == ALICE
    assert [x for x, _ in m.rcpts] == [REMOTE]
    assert b"Subject: " + subject.encode() + b"\r\n" in m.content
    assert b"\r\n\r\nswaks body line\r\n" in m.content
    [f] = p.wait_delivered(BOB, 1)
    assert b"Subject: " + subject.encode() + b"\n" in f
    assert peer_message_body(m).replace(b"\r\n", b"\n") == \
        split_delivered(f)[2]
    p.wait_log(r"smtp: auth session=\S+ client=127\.0\.0\.1 "
               r"user=alice@example\.test mech=%s" % mech)
    peer.assert_clean()


# ------------------------------------------------------------ refusals


def test_auth_before_tls_538(make_petrel):
    """On 587 before STARTTLS: no AUTH in EHLO, and AUTH with any
    mechanism, known or not, gets 538 5.7.11; after STARTTLS it works
    in the same session."""
    p = start(make_petrel)
    with connect(p, "submission", tls=False) as c:
        assert "STARTTLS" in c.ehlo_lines
        assert not [l for l in c.ehlo_lines if l.startswith("AUTH")]
        for line in ("AUTH PLAIN " + plain(ALICE, ALICE_PW), "AUTH PLAIN",
                     "AUTH LOGIN", "AUTH FOO", "AUTH CRAM-MD5"):
            lines = check(c, line, 538, "5.7.11")
        assert "Encryption required" in lines[-1]
        check(c, "STARTTLS", 220, "2.0.0")
        c.starttls()
        c.ehlo()
        login(c)
    # With mx_auth: the same on port 25.
    p2 = start(make_petrel, "mx_auth yes\n")
    with connect(p2, "mx", tls=False) as c:
        assert not [l for l in c.ehlo_lines if l.startswith("AUTH")]
        check(c, "AUTH PLAIN " + plain(ALICE, ALICE_PW), 538, "5.7.11")
        check(c, "AUTH BOGUS", 538, "5.7.11")


@pytest.mark.parametrize("role,tls", [("submission", False),
                                      ("submission", True),
                                      ("submissions", True)])
def test_mail_before_auth_530(make_petrel, role, tls):
    p = start(make_petrel)
    with connect(p, role, tls=tls) as c:
        lines = check(c, "MAIL FROM:<%s>" % ALICE, 530, "5.7.0")
        assert "Authentication required" in lines[-1]
        check(c, "MAIL FROM:<>", 530, "5.7.0")
        if tls:
            login(c)
            check(c, "MAIL FROM:<%s>" % ALICE, 250)


@pytest.mark.parametrize("user,password,mech", [
    (ALICE, "wrong-password", "PLAIN"),
    (ALICE, "wrong-password", "LOGIN"),
    (ALICE, ALICE_PW.upper(), "PLAIN"),
    ("nobody@example.test", ALICE_PW, "PLAIN"),
    ("nobody@example.test", "x", "LOGIN"),
    (BOB, "", "PLAIN"),                  # empty hash, empty password
    (BOB, "", "LOGIN"),
    (BOB, "anything", "PLAIN"),
    (BOB, "*", "PLAIN"),
    (BOB, "!", "LOGIN"),
])
def test_bad_credentials_535(make_petrel, user, password, mech):
    """Wrong password, unknown user, a user whose hash is empty (with
    any password, the empty one too): 535 5.7.8 and the log line
    `auth failed client=IP user=NAME`; the session goes on and the
    right credentials still work in it."""
    p = start(make_petrel)
    mark = p.log_mark()
    with connect(p, "submission") as c:
        if mech == "PLAIN":
            lines = check(c, "AUTH PLAIN " + plain(user, password), 535,
                          "5.7.8")
        else:
            check(c, "AUTH LOGIN", 334)
            check(c, b64(user), 334)
            lines = check(c, b64(password), 535, "5.7.8")
        assert "Authentication credentials invalid" in lines[-1]
        p.wait_log(r"auth failed client=127\.0\.0\.1 user=%s session=\S+ "
                   r"mech=%s failures=1" % (re.escape(user), mech),
                   start=mark)
        check(c, "MAIL FROM:<%s>" % ALICE, 530, "5.7.0")
        if user != ALICE:
            check(c, "MAIL FROM:<%s>" % user, 530, "5.7.0")
        login(c)
    p.wait_log(r"smtp: auth session=\S+ client=127\.0\.0\.1 "
               r"user=alice@example\.test mech=PLAIN", start=mark)
    ok = [l for l in p.log_lines[mark:] if "smtp: auth session=" in l]
    assert len(ok) == 1 and "user=alice@example.test " in ok[0], ok


def test_third_failure_closes_421(make_petrel):
    p = start(make_petrel)
    mark = p.log_mark()
    with connect(p, "submission") as c:
        for i in (1, 2):
            check(c, "AUTH PLAIN " + plain(ALICE, "bad%d" % i), 535, "5.7.8")
        c.send("AUTH PLAIN %s\r\n" % plain(ALICE, "bad3"))
        c.expect(535, "5.7.8")
        lines = c.expect(421, "4.7.0")
        assert lines[-1] == ("4.7.0 mx.example.test Error: too many failed "
                             "authentications"), lines
        assert c.wait_closed() == b""
    p.wait_log(r"auth failed client=127\.0\.0\.1 user=alice@example\.test "
               r"session=\S+ mech=PLAIN failures=3", start=mark)
    # A new session starts from zero (right password works).
    with connect(p, "submission") as c:
        login(c)


def test_auth_max_failures_5(make_petrel):
    """auth_max_failures 5: four failures leave the session open (the
    right password then works); in another session the fifth closes."""
    p = start(make_petrel, "auth_max_failures 5\n")
    with connect(p, "submission") as c:
        for i in range(4):
            check(c, "AUTH PLAIN " + plain(ALICE, "bad%d" % i), 535, "5.7.8")
        check(c, "NOOP", 250)
        login(c)
    with connect(p, "submission") as c:
        for i in range(4):
            check(c, "AUTH PLAIN " + plain(ALICE, "bad%d" % i), 535, "5.7.8")
        c.send("AUTH LOGIN %s\r\n" % b64(ALICE))
        c.expect(334)
        c.send(b64("bad5") + "\r\n")
        c.expect(535, "5.7.8")
        c.expect(421, "4.7.0")
        c.wait_closed()


def test_auth_twice_503(make_petrel):
    p = start(make_petrel)
    with connect(p, "submissions") as c:
        login(c)
        ehlo = c.ehlo()
        assert not [l for l in ehlo if l.startswith("AUTH")], ehlo
        lines = check(c, "AUTH PLAIN " + plain(ALICE, ALICE_PW), 503,
                      "5.5.1")
        assert "already authenticated" in lines[-1]
        check(c, "AUTH LOGIN", 503, "5.5.1")
        check(c, "MAIL FROM:<%s>" % ALICE, 250)


def test_mx_auth(make_petrel):
    """Port 25 without mx_auth: no AUTH in EHLO, AUTH 503 5.5.1 (also
    after STARTTLS), relaying refused. With mx_auth yes: AUTH after
    STARTTLS, and then the session may relay."""
    p = start(make_petrel)
    with connect(p, "mx", tls=False) as c:
        check(c, "AUTH PLAIN " + plain(ALICE, ALICE_PW), 503, "5.5.1")
    with connect(p, "mx") as c:
        assert not [l for l in c.ehlo_lines if l.startswith("AUTH")]
        lines = check(c, "AUTH PLAIN " + plain(ALICE, ALICE_PW), 503,
                      "5.5.1")
        assert "authentication not enabled" in lines[-1]
        check(c, "AUTH LOGIN", 503, "5.5.1")
        check(c, "MAIL FROM:<%s>" % ALICE, 250)
        check(c, "RCPT TO:<%s>" % REMOTE, 550, "5.7.1")

    p2 = start(make_petrel, "mx_auth yes\n")
    with connect(p2, "mx") as c:
        assert "AUTH PLAIN LOGIN" in c.ehlo_lines, c.ehlo_lines
        check(c, "MAIL FROM:<%s>" % ALICE, 250)
        check(c, "RCPT TO:<%s>" % REMOTE, 550, "5.7.1")
        check(c, "RSET", 250)
        check(c, "MAIL FROM:<%s>" % ALICE, 250)
        # Not inside a transaction (RFC 4954 4).
        check(c, "AUTH PLAIN " + plain(ALICE, ALICE_PW), 503, "5.5.1")
        check(c, "RSET", 250)
        login(c)
        check(c, "MAIL FROM:<%s>" % ALICE, 250)
        check(c, "RCPT TO:<%s>" % REMOTE, 250)
        check(c, "RSET", 250)
    # Unauthenticated mail for local users still comes in on port 25.
    with connect(p2, "mx", tls=False) as c:
        check(c, "MAIL FROM:<x@remote.test>", 250)
        check(c, "RCPT TO:<%s>" % BOB, 250)


def test_auth_plaintext(make_petrel):
    """auth_plaintext yes: AUTH offered and accepted without TLS; the
    Received header says ESMTPA (no TLS)."""
    p = start(make_petrel, "auth_plaintext yes\n")
    with connect(p, "submission", tls=False) as c:
        assert "AUTH PLAIN LOGIN" in c.ehlo_lines, c.ehlo_lines
        assert "STARTTLS" in c.ehlo_lines
        login(c)
        assert not [l for l in c.ehlo() if l.startswith("AUTH")]
        check(c, "MAIL FROM:<%s>" % ALICE, 250)
        check(c, "RCPT TO:<%s>" % BOB, 250)
        msg = message("plaintext")
        code, lines = data(c, msg)
        assert code == 250, lines
    [f] = p.wait_delivered(BOB, 1)
    expected_maildir_bytes(ALICE, msg, f, rcpt=BOB)
    _t, r = received_of(f)
    assert r["proto"] == "ESMTPA", r
    assert "using" not in r["comments"], r


def test_auth_response_length_limit(make_petrel):
    """RFC 4954 4: responses of 12288 octets are accepted (then judged as
    credentials or base64), one octet more is 500 5.5.6, as the initial
    response and as a line after 334; the session goes on."""
    p = start(make_petrel, "auth_max_failures 20\n")
    # Exactly 12288 octets of base64 for a PLAIN message: 9216 octets.
    raw = b"\0" + ALICE.encode() + b"\0"
    raw += b"x" * (9216 - len(raw))
    exact = b64(raw)
    assert len(exact) == 12288
    with connect(p, "submission") as c:
        for n in (12289, 12292, 20000, 100000):
            lines = check(c, "AUTH PLAIN " + "A" * n, 500, "5.5.6")
            check(c, "NOOP", 250)
        assert "too long" in lines[-1]
        check(c, "AUTH PLAIN " + exact, 535, "5.7.8")
        # 12288 octets of bad base64: not "too long".
        code, lines = c.cmd("AUTH PLAIN " + "A" * 12287 + "!")
        assert code == 501 and lines[-1].startswith("5.5.2"), (code, lines)
        # After 334.
        check(c, "AUTH PLAIN", 334)
        check(c, "A" * 12289, 500, "5.5.6")
        check(c, "NOOP", 250)
        check(c, "AUTH PLAIN", 334)
        check(c, "A" * 30000, 500, "5.5.6")
        check(c, "NOOP", 250)
        check(c, "AUTH PLAIN", 334)
        check(c, exact, 535, "5.7.8")
        check(c, "AUTH LOGIN", 334)
        check(c, "A" * 12289, 500, "5.5.6")
        check(c, "AUTH LOGIN " + b64(ALICE), 334)
        check(c, "A" * 12289, 500, "5.5.6")
        check(c, "AUTH LOGIN " + b64(ALICE), 334)
        check(c, b64(b"y" * 9216), 535, "5.7.8")
        # Still a working session.
        login(c)
        check(c, "MAIL FROM:<%s>" % ALICE, 250)


def test_auth_cancel_and_unknown_mechanism(make_petrel):
    p = start(make_petrel)
    mark = p.log_mark()
    with connect(p, "submission") as c:
        check(c, "AUTH PLAIN", 334)
        check(c, "*", 501, "5.0.0")
        lines = check(c, "AUTH LOGIN", 334)
        assert lines == ["VXNlcm5hbWU6"]
        check(c, "*", 501, "5.0.0")
        check(c, "AUTH LOGIN", 334)
        lines = check(c, b64(ALICE), 334)
        assert lines == ["UGFzc3dvcmQ6"]
        check(c, "*", 501, "5.0.0")
        for mech in ("CRAM-MD5", "FOO", "GSSAPI", "XOAUTH2", "PLAINX"):
            check(c, "AUTH " + mech, 504, "5.5.4")
            check(c, "AUTH %s %s" % (mech, plain(ALICE, ALICE_PW)), 504,
                  "5.5.4")
        # Lower case mechanism names are the same mechanism (RFC 4422).
        check(c, "AUTH plain " + plain(ALICE, ALICE_PW), 235, "2.7.0")
    # Cancelling is not a failed login.
    assert not [l for l in p.log_lines[mark:] if "auth failed" in l]


def test_auth_login_exchange(make_petrel):
    """AUTH LOGIN: 334 VXNlcm5hbWU6 ("Username:"), 334 UGFzc3dvcmQ6
    ("Password:"), 235; and with the user name as initial response."""
    p = start(make_petrel)
    with connect(p, "submission") as c:
        assert check(c, "AUTH LOGIN", 334) == ["VXNlcm5hbWU6"]
        assert check(c, b64(ALICE), 334) == ["UGFzc3dvcmQ6"]
        check(c, b64(ALICE_PW), 235, "2.7.0")
    with connect(p, "submissions") as c:
        assert check(c, "AUTH LOGIN " + b64(ALICE), 334) == ["UGFzc3dvcmQ6"]
        check(c, b64(ALICE_PW), 235, "2.7.0")
    p.wait_log(r"smtp: auth session=\S+ client=127\.0\.0\.1 "
               r"user=alice@example\.test mech=LOGIN")


def test_auth_authzid_case_and_state(make_petrel):
    """PLAIN with an authzid: only the user's own name is accepted; the
    user name is case-insensitive (and MAIL FROM in any case is still
    the user's); AUTH before EHLO is 503 5.5.1."""
    p = start(make_petrel, "auth_max_failures 10\n")
    with connect(p, "submission") as c:
        check(c, "AUTH PLAIN " + plain(ALICE, ALICE_PW, authzid=BOB), 535,
              "5.7.8")
        check(c, "AUTH PLAIN " + plain(ALICE, ALICE_PW, authzid=ALICE),
              235, "2.7.0")
    with connect(p, "submission") as c:
        check(c, "AUTH PLAIN " + plain(ALICE.upper(), ALICE_PW), 235,
              "2.7.0")
        check(c, "MAIL FROM:<%s>" % ALICE.upper(), 250)
        check(c, "RSET", 250)
        check(c, "MAIL FROM:<%s>" % BOB, 553, "5.7.1")
    with RawClient(HOST, p.ports["submissions"], timeout=20) as c:
        c.starttls()
        c.read_greeting()
        check(c, "AUTH PLAIN " + plain(ALICE, ALICE_PW), 503, "5.5.1")
        c.ehlo()
        login(c)
    # After STARTTLS the session restarts from EHLO.
    with connect(p, "submission", tls=False) as c:
        check(c, "STARTTLS", 220, "2.0.0")
        c.starttls()
        check(c, "AUTH PLAIN " + plain(ALICE, ALICE_PW), 503, "5.5.1")


def test_auth_pipelined_with_mail(make_petrel):
    """AUTH and MAIL in one packet: the MAIL is answered after the AUTH
    result (the check runs off the event loop and, on failure, behind
    the delay timer), and judged by it: 235 then 250, or 535 then 530."""
    p = start(make_petrel, "auth_fail_delay 1\n")
    with connect(p, "submission") as c:
        t0 = time.monotonic()
        c.send("AUTH PLAIN %s\r\nMAIL FROM:<%s>\r\nNOOP\r\n"
               % (plain(ALICE, "wrong"), ALICE))
        c.expect(535, "5.7.8")
        assert time.monotonic() - t0 >= 0.9
        c.expect(530, "5.7.0")
        c.expect(250)
        c.send("AUTH PLAIN %s\r\nMAIL FROM:<%s>\r\nRCPT TO:<%s>\r\n"
               % (plain(ALICE, ALICE_PW), ALICE, BOB))
        c.expect(235, "2.7.0")
        c.expect(250, "2.1.0")
        c.expect(250, "2.1.5")
        code, lines = data(c, message("pipelined"))
        assert code == 250, lines
    p.wait_delivered(BOB, 1)


# ---------------------------------------------------- auth_fail_delay


def _reply_pending(c):
    return bool(c.buf) or bool(select.select([c.sock], [], [], 0)[0])


def _fail_timed(c, other, password):
    """AUTH with a wrong password on c; while it waits, NOOPs on other
    must be answered at once. Returns (seconds to the 535, NOOP times)."""
    t0 = time.monotonic()
    c.send("AUTH PLAIN %s\r\n" % plain(ALICE, password))
    noops = []
    for _ in range(3):
        t = time.monotonic()
        check(other, "NOOP", 250)
        noops.append(time.monotonic() - t)
        assert not _reply_pending(c), \
            "535 came %.2fs after AUTH" % (time.monotonic() - t0)
        time.sleep(0.05)
    c.expect(535, "5.7.8")
    return time.monotonic() - t0, noops


def test_auth_fail_delay_timer(make_petrel):
    """auth_fail_delay 1: the 535 comes after about 1 s, the second
    failure from the same address after about 2 s; meanwhile a session
    from another address gets its NOOPs answered at once, and its own
    failure waits 1 s (the count is per address)."""
    p = start(make_petrel, "auth_fail_delay 1\n")
    mark = p.log_mark()
    with connect(p, "submission") as a, \
            connect(p, "submission", source=OTHER_ADDR) as b:
        first, noops1 = _fail_timed(a, b, "wrong1")
        assert 0.9 <= first < 1.8, first
        second, noops2 = _fail_timed(a, b, "wrong2")
        assert second >= 1.8, second
        assert max(noops1 + noops2) < 0.3, noops1 + noops2
        # Another address has its own count: 1 s, not 4.
        third, noops3 = _fail_timed(b, a, "wrong3")
        assert 0.9 <= third < 1.8, third
        assert max(noops3) < 0.3, noops3
    p.wait_log(r"auth failed client=127\.0\.0\.1 user=alice@example\.test "
               r"session=\S+ mech=PLAIN failures=2", start=mark)
    p.wait_log(r"auth failed client=127\.0\.0\.7 user=alice@example\.test "
               r"session=\S+ mech=PLAIN failures=1", start=mark)


def test_client_gone_during_auth_wait(make_petrel):
    """Clients that hang up while their AUTH is being checked or while
    the 535 waits on its timer (and one that sends QUIT behind the AUTH):
    the daemon goes on serving, and the pipelined QUIT is answered after
    the 535."""
    p = start(make_petrel, "auth_fail_delay 1\n")
    mark = p.log_mark()
    for pw in ("wrong-a", ALICE_PW):
        c = connect(p, "submission")
        c.send("AUTH PLAIN %s\r\n" % plain(ALICE, pw))
        c.close()
    with connect(p, "submission", source=OTHER_ADDR) as c:
        t0 = time.monotonic()
        c.send("AUTH PLAIN %s\r\nQUIT\r\n" % plain(ALICE, "wrong-b"))
        c.expect(535, "5.7.8")
        c.expect(221)
        c.wait_closed()
        # The first client's timer (set before this one's) has run.
        assert time.monotonic() - t0 >= 0.9
    wait_until(lambda: sum(1 for l in p.log_lines[mark:]
                           if "smtp: disconnect session=" in l) >= 3,
               what="three disconnect lines")
    with connect(p, "submissions") as c:
        login(c)


def test_auth_fail_delay_zero(make_petrel):
    p = start(make_petrel, "auth_fail_delay 0\n")
    with connect(p, "submission") as c:
        for i in range(2):
            t0 = time.monotonic()
            check(c, "AUTH PLAIN " + plain(ALICE, "bad%d" % i), 535, "5.7.8")
            assert time.monotonic() - t0 < 0.5


# ---------------------------------------------------------- hash types


def test_hash_types(make_petrel):
    """yescrypt (made by `petrel user add`), bcrypt and SHA-512 hashes
    all authenticate with the right password and not with a wrong one."""
    h6 = sha512(ALICE_PW)
    h2b = bcrypt(CAROL_PW)
    users = {ALICE: h6, BOB: ""}
    if h2b is not None:
        users[CAROL] = h2b
    p = start(make_petrel, users=users, run=False)
    r = subprocess.run([PETREL_BIN, "user", "add", "-c", p.conf_path, DAVE,
                        "--stdin"], input=DAVE_PW.encode(),
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r
    with open(os.path.join(p.tmpdir, "users")) as f:
        lines = dict(l.split(":", 1) for l in f.read().splitlines())
    assert lines[DAVE].startswith("$y$"), lines
    p.start()
    accounts = [(ALICE, ALICE_PW), (DAVE, DAVE_PW)]
    if h2b is not None:
        assert lines[CAROL].startswith("$2b$")
        accounts.append((CAROL, CAROL_PW))
    for user, pw in accounts:
        with connect(p, "submissions") as c:
            check(c, "AUTH PLAIN " + plain(user, pw + "x"), 535, "5.7.8")
            check(c, "AUTH PLAIN " + plain(user, pw[:-1]), 535, "5.7.8")
            login(c, user, pw)
            check(c, "MAIL FROM:<%s>" % user, 250)
        p.wait_log(r"smtp: auth session=\S+ client=127\.0\.0\.1 user=%s "
                   r"mech=PLAIN" % re.escape(user))
    if h2b is None:
        pytest.skip("bcrypt: neither Python's crypt nor mkpasswd (package "
                    "whois) can make a $2b$ hash here; yescrypt and "
                    "SHA-512 passed")


# --------------------------------------------------------- sender_login

ALIASES = """\
sales@example.test: alice@example.test
support: alice
team: bob
@example.test: alice
"""


def test_sender_login_mail_from(make_petrel):
    p = start(make_petrel, aliases=ALIASES)
    with connect(p, "submission") as c:
        login(c)
        for addr in (BOB, "team@example.test", "random@example.test",
                     "alice@remote.test", "postmaster@example.test"):
            lines = check(c, "MAIL FROM:<%s>" % addr, 553, "5.7.1")
            assert lines[-1] == ("5.7.1 <%s>: Sender address rejected: not "
                                 "owned by the authenticated user" % addr)
        for addr in (ALICE, "sales@example.test", "support@example.test",
                     "", "Alice@Example.Test", "SALES@example.test"):
            check(c, "MAIL FROM:<%s>" % addr, 250, "2.1.0")
            check(c, "RSET", 250)
    # The catch-all does deliver random@ to alice (so the 553 above is
    # not for want of an alias).
    with connect(p, "mx", tls=False) as c:
        check(c, "MAIL FROM:<x@remote.test>", 250)
        check(c, "RCPT TO:<random@example.test>", 250)


def test_sender_login_from_header(make_petrel):
    """The From: header must be owned too: 550 5.7.1 after the final dot
    and nothing delivered; a display name is fine, an alias is fine,
    MAIL FROM:<> is fine, two From: headers are not."""
    p = start(make_petrel, aliases=ALIASES)
    refused = [
        (message("from-bob", sender=BOB), "<%s>" % BOB),
        (b"From: Alice <alice@example.test>, Bob <bob@example.test>\r\n"
         b"Subject: from-two-addrs\r\n\r\nx\r\n", "<%s>" % BOB),
        (b"From: \"Alice\" <random@example.test>\r\n"
         b"Subject: from-catchall\r\n\r\nx\r\n", "<random@example.test>"),
        (b"From: <alice@example.test>\r\nSubject: two-from\r\n"
         b"From: <alice@example.test>\r\n\r\nx\r\n", "malformed"),
        (b"From: <alice@example.test>\r\nSubject: two-from-2\r\n"
         b"From: <bob@example.test>\r\n\r\nx\r\n", "malformed"),
        (b"From: alice@example.test <\r\nSubject: bad-from\r\n\r\nx\r\n",
         "malformed"),
    ]
    accepted = [
        ("", message("from-alice-null-sender")),
        (ALICE, b"From: \"Alice Example\" <alice@example.test>\r\n"
                b"Subject: display-name\r\n\r\nx\r\n"),
        (ALICE, b"From: Alice Example <Alice@Example.Test>\r\n"
                b"Subject: display-name-case\r\n\r\nx\r\n"),
        ("sales@example.test", b"From: Sales <sales@example.test>\r\n"
                               b"Subject: from-alias\r\n\r\nx\r\n"),
        (ALICE, b"Subject: no-from\r\n\r\nx\r\n"),
    ]
    with connect(p, "submission") as c:
        login(c)
        for msg, what in refused:
            check(c, "MAIL FROM:<%s>" % ALICE, 250)
            check(c, "RCPT TO:<%s>" % BOB, 250)
            code, lines = data(c, msg)
            assert code == 550, (msg, code, lines)
            if what == "malformed":
                assert lines[-1] == "5.7.1 Error: malformed From: header", \
                    (msg, lines)
            else:
                assert lines[-1] == ("5.7.1 From: header address %s not "
                                     "owned by the authenticated user"
                                     % what), (msg, lines)
        for sender, msg in accepted:
            check(c, "MAIL FROM:<%s>" % sender, 250)
            check(c, "RCPT TO:<%s>" % BOB, 250)
            code, lines = data(c, msg)
            assert code == 250, (msg, code, lines)
    p.wait_delivered(BOB, len(accepted))
    assert subjects(p, BOB) == sorted(
        ["from-alice-null-sender", "display-name", "display-name-case",
         "from-alias", "no-from"])
    assert p.queue_ids("failed") == []


def test_sender_login_no(make_petrel):
    p = start(make_petrel, "sender_login no\n")
    msg = message("spoof-allowed", sender=BOB)
    with connect(p, "submission") as c:
        login(c)
        check(c, "MAIL FROM:<%s>" % BOB, 250)
        check(c, "RCPT TO:<%s>" % BOB, 250)
        code, lines = data(c, msg)
        assert code == 250, lines
        check(c, "MAIL FROM:<someone@remote.test>", 250)
        check(c, "RSET", 250)
    [f] = p.wait_delivered(BOB, 1)
    expected_maildir_bytes(BOB, msg, f, rcpt=BOB)


# ------------------------------------------------------ added headers


def test_received_hides_login_by_default(make_petrel):
    p = start(make_petrel)
    msg = b"Subject: anon\r\n\r\nwho sent this?\r\n"
    with connect(p, "submission") as c:
        login(c)
        check(c, "MAIL FROM:<>", 250)
        check(c, "RCPT TO:<%s>" % BOB, 250)
        code, lines = data(c, msg)
        assert code == 250, lines
    [f] = p.wait_delivered(BOB, 1)
    text, r = received_of(f)
    assert r["proto"] == "ESMTPSA", r
    assert "Authenticated" not in text
    assert b"alice" not in f.lower(), f


def test_received_auth_name_yes(make_petrel):
    p = start(make_petrel, "received_auth_name yes\n")
    with connect(p, "submissions") as c:
        login(c)
        check(c, "MAIL FROM:<>", 250)
        check(c, "RCPT TO:<%s>" % BOB, 250)
        code, lines = data(c, b"Subject: named\r\n\r\nx\r\n")
        assert code == 250, lines
    [f] = p.wait_delivered(BOB, 1)
    text, r = received_of(f)
    assert r["proto"] == "ESMTPSA", r
    assert "\t(Authenticated sender: alice@example.test)\n" in text, text
    assert r["comments"].count("(") == 2, r       # TLS, then the name


def _header_block(file_bytes):
    rest = split_delivered(file_bytes)[2]
    head, _, body = rest.partition(b"\n\n")
    return head.split(b"\n"), body


def test_submission_adds_date_and_message_id(make_petrel):
    p = start(make_petrel)
    bare = (b"From: <alice@example.test>\r\nTo: <bob@example.test>\r\n"
            b"Subject: no-date\r\n\r\nbody\r\n")
    only_date = (b"From: <alice@example.test>\r\nSubject: only-date\r\n"
                 b"Date: Mon, 02 Mar 2026 10:00:00 +0000\r\n\r\nbody\r\n")
    both = message("has-both")
    ids = {}
    with connect(p, "submission") as c:
        login(c)
        for name, msg in (("bare", bare), ("only_date", only_date),
                          ("both", both)):
            check(c, "MAIL FROM:<%s>" % ALICE, 250)
            check(c, "RCPT TO:<%s>" % BOB, 250)
            code, lines = data(c, msg)
            assert code == 250, lines
            ids[name] = queue_id_from_reply(lines)
    files = p.wait_delivered(BOB, 3)
    by_id = {}
    for f in files:
        _t, r = received_of(f)
        by_id[r["id"]] = f

    head, body = _header_block(by_id[ids["bare"]])
    assert head[:3] == [b"From: <alice@example.test>",
                        b"To: <bob@example.test>", b"Subject: no-date"], head
    assert len(head) == 5, head
    assert head[3].startswith(b"Date: "), head
    assert head[4] == b"Message-ID: <%s@mx.example.test>" % (
        ids["bare"].encode()), head
    when = email.utils.parsedate_to_datetime(head[3][6:].decode())
    assert abs(when.timestamp() - time.time()) < 600, head[3]
    assert body == b"body\n"

    head, body = _header_block(by_id[ids["only_date"]])
    assert head == [b"From: <alice@example.test>", b"Subject: only-date",
                    b"Date: Mon, 02 Mar 2026 10:00:00 +0000",
                    b"Message-ID: <%s@mx.example.test>"
                    % ids["only_date"].encode()], head

    expected_maildir_bytes(ALICE, both, by_id[ids["both"]], rcpt=BOB)


def test_mx_adds_no_date_or_message_id(make_petrel):
    p = start(make_petrel)
    msg = b"From: <x@remote.test>\r\nSubject: from-outside\r\n\r\nbody\r\n"
    with connect(p, "mx") as c:
        check(c, "MAIL FROM:<x@remote.test>", 250)
        check(c, "RCPT TO:<%s>" % BOB, 250)
        code, lines = data(c, msg)
        assert code == 250, lines
    [f] = p.wait_delivered(BOB, 1)
    expected_maildir_bytes("x@remote.test", msg, f, rcpt=BOB)
    _t, r = received_of(f)
    assert r["proto"] == "ESMTPS", r


# -------------------------------------------------------------- Dovecot


class DovecotAuth:
    """A private Dovecot with no protocols, only its auth service, whose
    auth-client socket (mode 0666) Petrel's user can reach."""

    def __init__(self, users):
        self.dir = workdir()
        self.sock = os.path.join(self.dir, "auth-client")
        self.log = []
        self.proc = None
        for d in ("base", "state"):
            os.mkdir(os.path.join(self.dir, d), 0o755)
        passwd = os.path.join(self.dir, "passwd")
        with open(passwd, "w") as f:
            for u, pw in users.items():
                f.write("%s:{PLAIN}%s::::::\n" % (u, pw))
        os.chmod(passwd, 0o644)
        self.conf = os.path.join(self.dir, "dovecot.conf")
        with open(self.conf, "w") as f:
            f.write("""\
base_dir = {d}/base
state_dir = {d}/state
log_path = /dev/stderr
info_log_path = /dev/stderr
protocols =
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
first_valid_uid = 0
default_internal_user = dovecot
default_login_user = dovenull
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {passwd}
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {passwd}
}}
service auth {{
  unix_listener auth-client {{
    path = {sock}
    mode = 0666
  }}
}}
service anvil {{
  chroot =
}}
""".format(d=self.dir, passwd=passwd, sock=self.sock))

    def _read(self, stream):
        for line in iter(stream.readline, b""):
            self.log.append(line.decode("utf-8", "replace").rstrip("\n"))

    def start(self):
        r = subprocess.run(["/usr/bin/doveconf", "-n", "-c", self.conf],
                           capture_output=True, timeout=30)
        assert r.returncode == 0, r.stderr.decode()
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", self.conf],
                                     stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        threading.Thread(target=self._read, args=(self.proc.stdout,),
                         daemon=True).start()
        wait_until(lambda: self._connectable() or
                   self.proc.poll() is not None, timeout=20,
                   what="dovecot's auth-client socket")
        assert self.proc.poll() is None, "\n".join(self.log)

    def _connectable(self):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            try:
                s.connect(self.sock)
                return True
            except OSError:
                return False

    def _children(self):
        out = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % d) as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == self.proc.pid:
                out.append(int(d))
        return out

    def stop(self):
        """Stop the master and its children together: the auth process
        outlives the master while a client (Petrel) is connected to it,
        and the master alone takes seconds to shut down."""
        if self.proc is None or self.proc.poll() is not None:
            return
        children = self._children()
        self.proc.send_signal(signal.SIGTERM)
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

        def gone(pid):
            try:
                with open("/proc/%d/stat" % pid) as f:
                    return f.read().rsplit(")", 1)[1].split()[0] == "Z"
            except OSError:
                return True
        wait_until(lambda: all(gone(pid) for pid in children), timeout=20,
                   what="dovecot's processes to exit")

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.mark.skipif(not os.path.exists(DOVECOT),
                    reason="%s is missing (package dovecot-core)" % DOVECOT)
def test_auth_dovecot(make_petrel):
    """auth dovecot unix:PATH against a real Dovecot auth service: its
    password logs in (235), a wrong one, the users file's own password
    and an unknown user do not (535); the session then submits mail.
    Dovecot stopped: 454 4.7.0; started again: Petrel reconnects.
    (Each failure comes from its own client address: Dovecot delays
    every later request from an address that failed, 2 s and more.)"""
    dv = DovecotAuth({ALICE: DOVECOT_PW})
    ok = False
    try:
        dv.start()
        p = start(make_petrel, "auth dovecot unix:%s\n" % dv.sock)
        mark = p.log_mark()
        for src, user, pw in (("127.0.0.21", ALICE, "wrong"),
                              ("127.0.0.22", ALICE, ALICE_PW),
                              ("127.0.0.23", "nobody@example.test",
                               DOVECOT_PW)):
            with connect(p, "submission", source=src) as c:
                check(c, "AUTH PLAIN " + plain(user, pw), 535, "5.7.8")
            p.wait_log(r"auth failed client=%s user=%s session=\S+ "
                       r"mech=PLAIN failures=1"
                       % (re.escape(src), re.escape(user)), start=mark)
        with connect(p, "submission", source="127.0.0.24") as c:
            check(c, "AUTH LOGIN", 334)
            check(c, b64(ALICE), 334)
            check(c, b64("wrong"), 535, "5.7.8")
        with connect(p, "submission") as c:
            login(c, ALICE, DOVECOT_PW)
            check(c, "MAIL FROM:<%s>" % ALICE, 250)
            check(c, "RCPT TO:<%s>" % BOB, 250)
            msg = message("via-dovecot")
            code, lines = data(c, msg)
            assert code == 250, lines
        with connect(p, "submissions") as c:
            check(c, "AUTH LOGIN " + b64(ALICE), 334)
            check(c, b64(DOVECOT_PW), 235, "2.7.0")
        p.wait_log(r"smtp: auth session=\S+ client=127\.0\.0\.1 "
                   r"user=alice@example\.test mech=LOGIN", start=mark)
        [f] = p.wait_delivered(BOB, 1)
        expected_maildir_bytes(ALICE, msg, f, rcpt=BOB)

        # Dovecot goes away: 454 4.7.0; back again: Petrel reconnects.
        dv.stop()
        with connect(p, "submission") as c:
            check(c, "AUTH PLAIN " + plain(ALICE, DOVECOT_PW), 454, "4.7.0")
            dv.start()
            check(c, "AUTH PLAIN " + plain(ALICE, DOVECOT_PW), 235, "2.7.0")
        ok = True
    finally:
        dv.stop()
        if ok:
            dv.cleanup()
        else:
            print("---- dovecot log ----\n" + "\n".join(dv.log))


def test_auth_dovecot_socket_missing_454(make_petrel):
    d = workdir()
    try:
        p = start(make_petrel, "auth dovecot unix:%s/no-such-socket\n" % d)
        with connect(p, "submission") as c:
            lines = check(c, "AUTH PLAIN " + plain(ALICE, ALICE_PW), 454,
                          "4.7.0")
            assert "Temporary authentication failure" in lines[-1]
            check(c, "AUTH LOGIN", 334)
            check(c, b64(ALICE), 334)
            check(c, b64(ALICE_PW), 454, "4.7.0")
            check(c, "MAIL FROM:<%s>" % ALICE, 530, "5.7.0")
            # Not counted as failures: no 421 after three.
            check(c, "AUTH PLAIN " + plain(ALICE, ALICE_PW), 454, "4.7.0")
            check(c, "NOOP", 250)
    finally:
        shutil.rmtree(d, ignore_errors=True)
