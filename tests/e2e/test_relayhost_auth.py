"""
test_relayhost_auth.py: `relayhost_auth USER PASSWORD-FILE` (issue 4, the
client side of SMTP AUTH). A first Petrel ("sender", domain a.test) sends
every non-local message to its relayhost; the relayhost is a second Petrel
("relay", domain b.test) whose `submission` listener checks the login
against its users file (a $6$ hash from Python's crypt module), with
`auth_plaintext no`, so a real server decides. The relay's certificate is
the self-signed one it makes at start: the client does not verify (RFC
7435).

Also: no credentials without TLS (a fake relay that offers AUTH but not
STARTTLS, one whose TLS handshake fails: no plaintext retry), none for
routes other than the relayhost (a transport line), and a missing, empty
or unreadable password file stops `check-config` and `serve`.
"""

import base64
import os
import re
import shutil
import subprocess
import warnings

import pytest

from dnsserver import DNSServer
from harness import PETREL_BIN, free_port, wait_until, workdir
from smtppeer import SMTPPeer

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import crypt
    except ImportError:  # Python 3.13 has none
        crypt = None

RELAY_ADDR = "127.0.0.2"        # the relay Petrel listens here
LOGIN = "relay@b.test"          # its account for the sender
PASSWORD = "Sm4rt host pw"      # a space inside: the whole first line
BOB = "bob@b.test"              # a local user of the relay
BASE_CONF = """retry_initial 1s
retry_max 4s
client_timeout_connect 3s
client_timeout_command 3s
client_timeout_data 5s
delay_warning 0
"""
MSG = ("From: %s\r\nTo: %s\r\nSubject: through the smarthost\r\n\r\n"
       "relayed with AUTH\r\n" % (LOGIN, BOB)).encode()

needs_crypt = pytest.mark.skipif(crypt is None,
                                 reason="no crypt module to make a hash")


@pytest.fixture
def dns():
    with DNSServer() as srv:
        yield srv


def write_secret(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(path, 0o600)


def start_relay(make_petrel, dns):
    """The second Petrel: submission on RELAY_ADDR, LOGIN's $6$ hash."""
    h = crypt.crypt(PASSWORD, crypt.mksalt(crypt.METHOD_SHA512))
    assert h.startswith("$6$"), h
    return make_petrel(
        listen=["%s:%d submission" % (RELAY_ADDR, free_port())],
        domains=("b.test",), hostname="relay.b.test", dns=dns.addr,
        users={LOGIN: h, BOB: ""},
        extra_conf=BASE_CONF + "auth_plaintext no\nauth_fail_delay 0\n")


def sender_conf(host, port, pwfile, extra=""):
    return BASE_CONF + ("relayhost [%s]:%d\nrelayhost_auth %s %s\n%s"
                        % (host, port, LOGIN, pwfile, extra))


def make_sender(make_petrel, dns, host, port, password=PASSWORD, extra=""):
    """The first Petrel: trusts 127.0.0.1, relays through [host]:port as
    LOGIN with password (None: no password file at all)."""
    p = make_petrel(start=False, domains=("a.test",), hostname="mx.a.test",
                    dns=dns.addr, trusted=("127.0.0.1/32",),
                    users={"alice@a.test": ""})
    pwfile = os.path.join(p.tmpdir, "relay-password")
    if password is not None:
        write_secret(pwfile, password + "\n")
    p.pwfile = pwfile
    p.extra_conf = sender_conf(host, port, pwfile, extra)
    p.write_conf()
    return p


def submit(p, rcpts, sender=LOGIN, body=MSG):
    with p.smtp() as s:
        s.ehlo()
        code, resp = s.mail(sender)
        assert code == 250, (code, resp)
        for r in rcpts:
            code, resp = s.rcpt(r)
            assert code == 250, (r, code, resp)
        code, resp = s.data(body)
        assert code == 250, (code, resp)


def queue_file_bytes(p):
    out = b""
    for qid in p.queue_ids():
        try:
            with open(os.path.join(p.spool, "queue", qid), "rb") as f:
                out += f.read()
        except FileNotFoundError:
            pass
    return out


def assert_no_secret_logged(p):
    """Neither the password nor a base64 form of it in the log."""
    forms = [PASSWORD,
             base64.b64encode(("\0%s\0%s" % (LOGIN, PASSWORD)).encode())
             .decode(),
             base64.b64encode(PASSWORD.encode()).decode()]
    text = "\n".join(p.log_lines)
    for f in forms:
        assert f not in text, "%r in the log" % f


# ------------------------------------------------------------ delivery


@needs_crypt
def test_relayhost_auth_delivers(make_petrel, dns):
    """A message for b.test goes through the relay Petrel, which checks
    the login (PLAIN, under TLS) and delivers to its local user."""
    relay = start_relay(make_petrel, dns)
    p = make_sender(make_petrel, dns, RELAY_ADDR, relay.port)
    p.start()
    submit(p, [BOB])
    [got] = relay.wait_delivered(BOB, 1)
    assert b"relayed with AUTH" in got
    p.wait_queue_empty()
    m = relay.wait_log(r"smtp: auth session=\S+ client=127\.0\.0\.1 "
                       r"user=(\S+) mech=(\S+)")
    assert m.group(1) == LOGIN and m.group(2) == "PLAIN", m.group(0)
    # The sender logged in over TLS, and says so.
    p.wait_log(r"client: authenticated conn=\d+ peer=\S+ user=%s "
               r"mech=PLAIN" % re.escape(LOGIN))
    c = p.wait_log(r"remote: connected destination=(\S+) relay=\S+ "
                   r"tls=\"(TLSv1\.[23]) [^\"]+\" auth=yes")
    assert c.group(1) == "smtp+auth:[%s]:%d" % (RELAY_ADDR, relay.port)
    p.wait_log(r"delivery: rcpt queue=\S+ to=<%s> .* status=sent" % re.escape(BOB))
    # The relay's Received: says the message came with TLS and AUTH.
    assert re.search(rb"with ESMTPSA id", got), got[:600]
    assert_no_secret_logged(p)
    assert_no_secret_logged(relay)


@needs_crypt
def test_relayhost_auth_reuses_the_login(make_petrel, dns):
    """Two messages queued at once share one authenticated connection:
    the relay sees one AUTH (no second one after RSET)."""
    relay = start_relay(make_petrel, dns)
    p = make_sender(make_petrel, dns, RELAY_ADDR, relay.port,
                    extra="destination_concurrency 1\n")
    p.start()
    # One transaction per message, back to back, before the first goes.
    submit(p, [BOB])
    submit(p, [BOB])
    relay.wait_delivered(BOB, 2)
    p.wait_queue_empty()
    text = "\n".join(relay.log_lines)
    auths = re.findall(r"smtp: auth session=\S+ client=\S+ user=%s "
                       r"mech=PLAIN" % re.escape(LOGIN), text)
    connects = re.findall(r"remote: connected destination=smtp\+auth:",
                          "\n".join(p.log_lines))
    # As many logins as connections: never one per message on a reused
    # connection.
    assert len(auths) == len(connects) >= 1, (auths, connects)
    sent = re.findall(r"delivery: rcpt queue=\S+ to=<%s> .* status=sent"
                      % re.escape(BOB), "\n".join(p.log_lines))
    assert len(sent) == 2, sent
    # Normally the second message rides the first one's connection
    # (conn_msgs=2): then one login served both.
    if re.search(r"remote: transaction queue=\S+ relay=\S+ .*conn_msgs=2 ",
                 "\n".join(p.log_lines)):
        assert len(connects) == 1 and len(auths) == 1, (auths, connects)


@needs_crypt
def test_relayhost_auth_wrong_password_defers(make_petrel, dns):
    """The relay answers 535 5.7.8: the message is deferred (never
    bounced), the log line and the queue file keep the relay's reply,
    nothing reaches the relay's user, and the relay saw no MAIL."""
    relay = start_relay(make_petrel, dns)
    p = make_sender(make_petrel, dns, RELAY_ADDR, relay.port,
                    password="not the password")
    p.start()
    submit(p, [BOB])
    m = p.wait_log(r"delivery: rcpt queue=(\S+) to=<%s> .* dsn=(\S+) "
                   r"status=deferred \((.*)\)$" % re.escape(BOB))
    assert m.group(2) == "4.7.8", m.group(0)
    assert "535 5.7.8" in m.group(3), m.group(0)
    assert "SASL authentication failed" in m.group(3), m.group(0)
    relay.wait_log(r"smtp: auth failed client=127\.0\.0\.1 user=%s"
                   % re.escape(LOGIN))
    wait_until(lambda: b"535 5.7.8" in queue_file_bytes(p),
               what="the queue file's last reply")
    assert len(p.queue_ids()) == 1
    assert relay.maildir_files(BOB) == []
    # Deferred, not bounced: no report to anybody, nothing failed.
    assert not p.queue_ids("failed")
    assert "status=bounced" not in "\n".join(p.log_lines)
    # The destination backs off rather than trying again at once.
    p.wait_log(r"remote: destination=smtp\+auth:\S+ backs off")
    assert_no_secret_logged(p)


# ------------------------------------------------- never in plaintext


def test_relayhost_auth_needs_tls(make_petrel, dns):
    """A relay that offers AUTH but no STARTTLS gets no credentials and
    no message: deferred, and the log says why."""
    with SMTPPeer(port=0, starttls=False,
                  extra_ehlo=["AUTH PLAIN LOGIN"]) as fake:
        p = make_sender(make_petrel, dns, fake.addr, fake.port)
        p.start()
        submit(p, [BOB])
        m = p.wait_log(r"delivery: rcpt queue=\S+ to=<%s> .* status=deferred "
                       r"\((.*)\)$" % re.escape(BOB))
        assert "offers no TLS" in m.group(1), m.group(0)
        assert "credentials are never sent in plaintext" in m.group(1)
        fake.wait_for(lambda f: any(c.startswith("QUIT")
                                    for _, c in f.commands),
                      what="QUIT")
        cmds = [c for _, c in fake.commands]
        assert not any(c.upper().startswith(("AUTH", "MAIL")) for c in cmds), \
            cmds
        assert fake.messages == []
        assert len(p.queue_ids()) == 1
        assert_no_secret_logged(p)


def test_relayhost_auth_no_plaintext_retry(make_petrel, dns):
    """The relay's TLS handshake fails: with credentials, the address is
    not tried again in plaintext (as opportunistic TLS would do); the
    message is deferred."""
    with SMTPPeer(port=0, starttls=True, tls_garbage=True,
                  extra_ehlo=["AUTH PLAIN LOGIN"]) as fake:
        p = make_sender(make_petrel, dns, fake.addr, fake.port)
        p.start()
        submit(p, [BOB])
        p.wait_log(r"TLS handshake failed, not retrying without TLS "
                   r"\(relayhost_auth\)")
        m = p.wait_log(r"delivery: rcpt queue=\S+ to=<%s> .* status=deferred "
                       r"\((.*)\)$" % re.escape(BOB))
        assert "TLS handshake" in m.group(1), m.group(0)
        cmds = [c for _, c in fake.commands]
        assert cmds and all(c.split()[0].upper() in ("EHLO", "STARTTLS")
                            for c in cmds), cmds
        assert "retrying without TLS:" not in "\n".join(p.log_lines)
        assert fake.messages == []
        assert_no_secret_logged(p)


def test_relayhost_auth_only_for_the_relayhost(make_petrel, dns):
    """A transport line is another route: its peer gets the message
    without AUTH (and without TLS: it offers none)."""
    with SMTPPeer(port=0) as other, SMTPPeer(port=0, starttls=False,
                                             extra_ehlo=["AUTH PLAIN"]) \
            as relay:
        p = make_sender(make_petrel, dns, relay.addr, relay.port)
        tfile = os.path.join(p.tmpdir, "transport")
        with open(tfile, "w", encoding="utf-8") as f:
            f.write("c.test  smtp:[%s]:%d\n" % (other.addr, other.port))
        p.extra_conf += "transport %s\n" % tfile
        p.write_conf()
        p.start()
        submit(p, ["carol@c.test"])
        [msg] = other.wait_messages(1)
        assert [r for r, _ in msg.rcpts] == ["carol@c.test"]
        p.wait_queue_empty()
        assert not any(c.upper().startswith("AUTH")
                       for _, c in other.commands), other.commands
        assert relay.connections == 0


# ------------------------------------------------------ configuration


def check_config(conf, as_user=None):
    cmd = [PETREL_BIN, "check-config", "-c", conf]
    if as_user is not None:
        cmd = ["setpriv", "--reuid=%s" % as_user, "--regid=%s" % as_user,
               "--clear-groups"] + cmd
    return subprocess.run(cmd, stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=30)


def serve(conf):
    """`petrel serve` must exit at once; a hang is a failure."""
    return subprocess.run([PETREL_BIN, "serve", "-c", conf],
                          stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=30)


@pytest.mark.parametrize("problem", ["missing", "empty"])
def test_relayhost_auth_bad_password_file(make_petrel, dns, problem):
    """No password file, or an empty first line: check-config and serve
    both refuse, naming the file."""
    p = make_sender(make_petrel, dns, "127.0.0.3", free_port(),
                    password=None if problem == "missing" else "")
    want = {"missing": r"relayhost_auth: cannot read %s: No such file"
                       % re.escape(p.pwfile),
            "empty": r"relayhost_auth: %s: the first line \(the password\)"
                     r" is empty" % re.escape(p.pwfile)}[problem]
    r = check_config(p.conf_path)
    out = (r.stdout + r.stderr).decode("utf-8", "replace")
    assert r.returncode != 0, out
    assert re.search(want, out), out
    r = serve(p.conf_path)
    out = (r.stdout + r.stderr).decode("utf-8", "replace")
    assert r.returncode != 0, out
    assert re.search(want, out), out
    assert "listening addr=" not in out, out


def test_relayhost_auth_unreadable_password_file(make_petrel, dns):
    """A file only root may read: check-config run as the daemon's user
    says it cannot read it (root can, so serve starts)."""
    d = workdir()
    try:
        pwfile = os.path.join(d, "relay-password")
        write_secret(pwfile, PASSWORD + "\n")      # root's, 0600
        conf = os.path.join(d, "petrel.conf")
        with open(conf, "w", encoding="utf-8") as f:
            f.write("hostname mx.a.test\nspool %s/spool\n"
                    "listen 127.0.0.1:%d mx\ndomain a.test\n"
                    "maildir %s/mail/%%d/%%u\ndns %s\nuser petrel\n"
                    % (d, free_port(), d, dns.addr))
            f.write(sender_conf("127.0.0.3", 2525, pwfile))
        os.chmod(conf, 0o644)
        r = check_config(conf, as_user="petrel")
        out = (r.stdout + r.stderr).decode("utf-8", "replace")
        assert r.returncode != 0, out
        assert re.search(r"relayhost_auth: cannot read %s: Permission "
                         r"denied" % re.escape(pwfile), out), out
        # Positive control: readable for the same user, it passes.
        os.chmod(pwfile, 0o644)
        r = check_config(conf, as_user="petrel")
        out = (r.stdout + r.stderr).decode("utf-8", "replace")
        assert "relayhost_auth" not in out, out
    finally:
        shutil.rmtree(d, ignore_errors=True)
