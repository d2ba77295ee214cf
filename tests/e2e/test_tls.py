"""
test_tls.py: Petrel's TLS end to end (issue 4): protocol versions (TLS
1.0/1.1 refused by default, proved against a client that really offers
them), SNI certificate choice, certificate reload on SIGHUP with an open
session going on, the start-up readability check and supplementary groups
after the privilege drop, the self-signed fallback, the STARTTLS command
injection (CVE-2011-0411), implicit TLS on submissions (RFC 8314),
`openssl s_client -starttls smtp`, TLS in the Received: header, clients
that hang up without close_notify, and handshake garbage.

Certificates are made with `openssl req -x509` in each test's work
directory (tls_certs.py); every certificate gets its own serial, which is
what the tests look at on the client side.
"""

import grp
import os
import random
import re
import signal
import smtplib
import socket
import ssl
import stat
import subprocess
import time

import pytest

from harness import (CLIENT_HELO, PETREL_BIN, RawClient, free_port,
                     parse_received, split_delivered, tls_context,
                     wait_until)
from tls_certs import (SClient, brief_protocol, cert_info, make_pair,
                       pem_to_der, petrel_ids, replace_pair, s_client)

SENDER = "sender@example.org"
RCPT = "alice@example.test"
OLD_TLS = ["-cipher", "DEFAULT:@SECLEVEL=0"]


# ---- helpers ----

def listeners(*roles):
    """listen= lines on fresh loopback ports, and the ports by role."""
    lines, ports = [], {}
    for role in roles:
        port = free_port()
        lines.append("127.0.0.1:%d %s" % (port, role))
        ports[role] = port
    return lines, ports


def tls_conf(pairs):
    """tls_cert/tls_key lines; pairs: [(cert, key, name or None)]."""
    out = []
    for cert, key, name in pairs:
        sfx = " " + name if name else ""
        out.append("tls_cert %s%s" % (cert, sfx))
        out.append("tls_key %s%s" % (key, sfx))
    return "\n".join(out)


def starttls_client(p, port=None, context=None, server_hostname=None,
                    ehlo=True):
    """A RawClient on the mx (or given) port after EHLO, STARTTLS, the
    handshake and (with ehlo) EHLO again."""
    c = RawClient(p.host, port or p.port)
    c.read_greeting()
    lines = c.ehlo()
    assert "STARTTLS" in lines, "STARTTLS not offered: %r" % lines
    c.send("STARTTLS\r\n")
    c.expect(220, "2.0.0")
    c.starttls(context, server_hostname=server_hostname)
    if ehlo:
        c.ehlo()
    return c


def implicit_client(p, port, context=None, server_hostname=None):
    """A RawClient on a submissions port: handshake first, then the 220."""
    c = RawClient(p.host, port)
    c.starttls(context, server_hostname=server_hostname)
    c.read_greeting()
    return c


def peer(c):
    return cert_info(c.sock.getpeercert(binary_form=True))


def peer_serial_starttls(p, **kw):
    c = starttls_client(p, ehlo=False, **kw)
    try:
        return peer(c)["serial"]
    finally:
        c.send("QUIT\r\n")
        c.close()


def send_message(c, tag, rcpt=RCPT):
    """MAIL, RCPT, DATA over an open session; returns the message sent."""
    msg = ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n"
           "Message-ID: <%s@tls.test>\r\n\r\nbody of %s\r\n"
           % (SENDER, rcpt, tag, tag, tag)).encode()
    c.send("MAIL FROM:<%s>\r\n" % SENDER)
    c.expect(250)
    c.send("RCPT TO:<%s>\r\n" % rcpt)
    c.expect(250)
    c.send("DATA\r\n")
    c.expect(354)
    c.send(msg + b".\r\n")
    c.expect(250)
    return msg


def delivered_with(p, tag, count):
    """The delivered message whose Subject is tag (count messages in
    all for RCPT)."""
    msgs = p.wait_delivered(RCPT, count)
    mine = [m for m in msgs if b"\nSubject: " + tag.encode() + b"\n" in m]
    assert len(mine) == 1, "message %s delivered %d times" % (tag, len(mine))
    return mine[0]


def s_server(cert, key, version):
    """`openssl s_server` on a loopback port accepting only version
    ("-tls1", "-tls1_1") with every cipher; returns (proc, port)."""
    port = free_port()
    proc = subprocess.Popen(
        ["openssl", "s_server", "-accept", "127.0.0.1:%d" % port,
         "-cert", cert, "-key", key, version] + OLD_TLS,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT)

    def up():
        if proc.poll() is not None:
            raise AssertionError("s_server exited: %r" % proc.stdout.read())
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    try:
        wait_until(up, timeout=10, what="openssl s_server to listen")
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc, port


def stop_s_server(proc):
    proc.kill()
    proc.wait()
    proc.stdout.close()
    proc.stdin.close()


def handshake_failed_after(p, mark, timeout=10):
    return p.wait_log(r"smtp: TLS handshake failed session=\S+ "
                      r"client=127\.0\.0\.1 error=", timeout=timeout,
                      start=mark)


# ---- 1. protocol versions ----

@pytest.mark.parametrize("version", ["-tls1", "-tls1_1"])
def test_old_tls_refused_by_default(make_petrel, version):
    lines, ports = listeners("mx", "submissions")
    p = make_petrel(listen=lines)
    cert, key = make_pair(p.tmpdir, "ctl", "control.test", serial=4242,
                          key="rsa")
    want = {"-tls1": "TLSv1", "-tls1_1": "TLSv1.1"}[version]

    # Positive control: the very client command, against a server that
    # accepts this version, does get it. Without this the refusal below
    # could be the client's own doing (security level, MinProtocol).
    proc, sport = s_server(cert, key, version)
    try:
        rc, _out, err = s_client(["-connect", "127.0.0.1:%d" % sport,
                                  version, "-brief"] + OLD_TLS)
    finally:
        stop_s_server(proc)
    assert rc == 0 and brief_protocol(err) == want, \
        "control: s_client %s could not reach openssl s_server " \
        "(rc=%s):\n%s" % (version, rc, err)

    # The same command against Petrel's implicit-TLS listener.
    mark = p.log_mark()
    rc, _out, err = s_client(["-connect", "127.0.0.1:%d"
                              % ports["submissions"], version, "-brief"]
                             + OLD_TLS)
    assert rc != 0 and brief_protocol(err) is None, \
        "Petrel (465) accepted %s by default:\n%s" % (want, err)
    m = handshake_failed_after(p, mark)
    assert "unsupported protocol" in m.string, m.string

    # And with STARTTLS on the mx listener.
    mark = p.log_mark()
    rc, _out, err = s_client(["-connect", "127.0.0.1:%d" % ports["mx"],
                              "-starttls", "smtp", version, "-brief"]
                             + OLD_TLS)
    assert rc != 0 and brief_protocol(err) is None, \
        "Petrel (STARTTLS) accepted %s by default:\n%s" % (want, err)
    m = handshake_failed_after(p, mark)
    assert "unsupported protocol" in m.string, m.string
    assert p.alive()


@pytest.mark.parametrize("version", ["-tls1", "-tls1_1"])
def test_old_tls_accepted_when_configured(make_petrel, version):
    """Positive control on Petrel's side: the same clients get TLS 1.0
    and 1.1 once the configuration allows them (and a cipher list that
    has ciphers those versions can use: the default list is TLS 1.2
    only)."""
    lines, ports = listeners("mx", "submissions")
    p = make_petrel(listen=lines, extra_conf=(
        "tls_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3\ntls_ciphers DEFAULT"))
    want = {"-tls1": "TLSv1", "-tls1_1": "TLSv1.1"}[version]
    for args in (["-connect", "127.0.0.1:%d" % ports["submissions"]],
                 ["-connect", "127.0.0.1:%d" % ports["mx"],
                  "-starttls", "smtp"]):
        mark = p.log_mark()
        rc, _out, err = s_client(args + [version, "-brief"] + OLD_TLS)
        assert rc == 0 and brief_protocol(err) == want, \
            "%s refused with tls_protocols allowing it (rc=%s):\n%s" % (
                want, rc, err)
        p.wait_log(r"smtp: tls session=\S+ client=127\.0\.0\.1 "
                   r"protocol=%s cipher=" % want.replace(".", r"\."),
                   start=mark)


def test_tls_protocols_alone_enables_tls1(make_petrel):
    """`tls_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3` without tls_ciphers
    must make TLS 1.0 possible (tls.h: the security level is lowered so
    that "the setting has an effect"). The default cipher list (Mozilla
    intermediate) holds only TLS 1.2 AEAD suites, so unless Petrel adds
    ciphers TLS 1.0 can use (or refuses the combination at start), the
    directive is silently a no-op."""
    lines, ports = listeners("submissions")
    p = make_petrel(listen=lines, extra_conf=(
        "tls_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3"))
    mark = p.log_mark()
    rc, _out, err = s_client(["-connect", "127.0.0.1:%d"
                              % ports["submissions"], "-tls1", "-brief"]
                             + OLD_TLS)
    if rc != 0:
        m = handshake_failed_after(p, mark)
        raise AssertionError(
            "BUG: tls_protocols TLSv1 ... (default tls_ciphers) still "
            "refuses TLS 1.0: %s" % m.string)
    assert brief_protocol(err) == "TLSv1", err


@pytest.mark.parametrize("maxv", [ssl.TLSVersion.TLSv1_2,
                                  ssl.TLSVersion.TLSv1_3])
def test_tls12_and_13_accepted_by_default(make_petrel, maxv):
    lines, ports = listeners("mx", "submissions")
    p = make_petrel(listen=lines)
    want = {ssl.TLSVersion.TLSv1_2: "TLSv1.2",
            ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[maxv]
    ctx = tls_context(minimum=maxv, maximum=maxv)
    c = starttls_client(p, context=ctx)
    assert c.sock.version() == want
    c.cmd("QUIT")
    c.close()
    c = implicit_client(p, ports["submissions"], context=ctx)
    assert c.sock.version() == want
    c.close()


# ---- 2. SNI ----

def test_sni_picks_certificate(make_petrel):
    lines, ports = listeners("mx", "submissions")
    p = make_petrel(start=False, listen=lines)
    d = p.tmpdir
    # Named pairs first: the default is the pair without a name, not
    # the first one.
    mail = make_pair(d, "mail", "mail.example.test", serial=1001,
                     owner="petrel")
    wild = make_pair(d, "wild", "*.wild.test", serial=1002, owner="petrel")
    dflt = make_pair(d, "default", "default.test", serial=1003,
                     owner="petrel")
    p.extra_conf = tls_conf([(mail[0], mail[1], "mail.example.test"),
                             (wild[0], wild[1], "*.wild.test"),
                             (dflt[0], dflt[1], None)])
    p.write_conf()
    p.start()
    cases = [("mail.example.test", 1001, "mail.example.test"),
             ("x.wild.test", 1002, "*.wild.test"),
             ("smtp-1.wild.test", 1002, "*.wild.test"),
             ("a.b.wild.test", 1003, "default.test"),   # one label only
             ("wild.test", 1003, "default.test"),
             ("unknown.test", 1003, "default.test"),
             ("example.test", 1003, "default.test"),
             (None, 1003, "default.test")]              # no SNI
    for name, serial, cn in cases:
        for how in ("starttls", "implicit"):
            if how == "starttls":
                c = starttls_client(p, server_hostname=name, ehlo=False)
            else:
                c = implicit_client(p, ports["submissions"],
                                    server_hostname=name)
            got = peer(c)
            c.close()
            assert (got["serial"], got["cn"]) == (serial, cn), \
                "SNI %r (%s): got serial %s CN %s, expected %s %s" % (
                    name, how, got["serial"], got["cn"], serial, cn)
    # Names compare case-insensitively, with or without a trailing dot
    # (s_client sends -servername exactly as given).
    for name, cn in (("MAIL.Example.TEST", "mail.example.test"),
                     ("mail.example.test.", "mail.example.test"),
                     ("X.WILD.test", "*.wild.test")):
        rc, out, err = s_client(["-connect", "127.0.0.1:%d"
                                 % ports["submissions"], "-servername",
                                 name, "-brief"])
        assert rc == 0, err
        assert "Peer certificate: CN = %s" % cn in err, \
            "SNI %r: %s" % (name, err)


# ---- 3. reload on SIGHUP ----

def test_certificate_reload_on_sighup(make_petrel):
    p = make_petrel(start=False)
    d = p.tmpdir
    cert, key = make_pair(d, "server", "mx.example.test", serial=5001,
                          owner="petrel")
    p.extra_conf = tls_conf([(cert, key, None)])
    p.write_conf()
    p.start()
    assert peer_serial_starttls(p) == 5001

    # A session under TLS, open across every reload below.
    old = starttls_client(p)
    assert peer(old)["serial"] == 5001

    replace_pair(d, "server", "mx.example.test", serial=5002)
    mark = p.log_mark()
    p.signal(signal.SIGHUP)
    p.wait_log(r"tls: certificates reloaded", start=mark)
    assert peer_serial_starttls(p) == 5002, \
        "a new connection after the reload still gets the old certificate"
    send_message(old, "after-reload")
    delivered_with(p, "after-reload", 1)

    # A key that does not match the new certificate: refused, the last
    # good pair stays.
    other = make_pair(d, "other", "other.test", serial=9999, owner="petrel")
    replace_pair(d, "server", "mx.example.test", serial=5003,
                 key_from=other[1])
    mark = p.log_mark()
    p.signal(signal.SIGHUP)
    m = p.wait_log(r"tls: reload failed: (.*); keeping the certificates "
                   r"in use", start=mark)
    assert key in m.group(1), m.string
    p.wait_log(r"config: reloaded", start=mark)
    assert peer_serial_starttls(p) == 5002

    # A key the daemon's user cannot read: refused the same way.
    replace_pair(d, "server", "mx.example.test", serial=5004, owner=None)
    assert os.stat(key).st_uid == 0 and \
        stat.S_IMODE(os.stat(key).st_mode) == 0o600
    mark = p.log_mark()
    p.signal(signal.SIGHUP)
    m = p.wait_log(r"tls: reload failed: (.*); keeping the certificates "
                   r"in use", start=mark)
    assert key in m.group(1) and "ermission denied" in m.group(1), m.string
    p.wait_log(r"config: reloaded", start=mark)
    assert peer_serial_starttls(p) == 5002

    # The first session went on through all three reloads.
    send_message(old, "after-failed-reloads")
    old.cmd("QUIT")
    old.close()
    delivered_with(p, "after-failed-reloads", 2)

    # And a good pair again is taken.
    replace_pair(d, "server", "mx.example.test", serial=5005)
    mark = p.log_mark()
    p.signal(signal.SIGHUP)
    p.wait_log(r"tls: certificates reloaded", start=mark)
    assert peer_serial_starttls(p) == 5005


# ---- 4. start-up readability check, supplementary groups ----

GROUP = "ssl-cert"


@pytest.fixture
def ssl_cert_group():
    """Group ssl-cert (Debian's convention) with petrel in it; petrel is
    taken out again afterwards if this fixture put it in."""
    try:
        grp.getgrnam(GROUP)
    except KeyError:
        subprocess.run(["groupadd", "--system", GROUP], check=True)
    added = "petrel" not in grp.getgrnam(GROUP).gr_mem
    if added:
        subprocess.run(["gpasswd", "-a", "petrel", GROUP], check=True,
                       capture_output=True)
    try:
        yield grp.getgrnam(GROUP).gr_gid
    finally:
        if added:
            subprocess.run(["gpasswd", "-d", "petrel", GROUP],
                           capture_output=True)


def exits_with(p, timeout=20):
    """Start p expecting it to exit by itself; returns its exit code."""
    p.start(wait=False)
    try:
        p.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError("petrel still running:\n%s" % p.log_tail())
    return p.stop()


def test_startup_refuses_key_unreadable_by_daemon_user(make_petrel):
    p = make_petrel(start=False)
    d = p.tmpdir
    mode = stat.S_IMODE(os.stat(d).st_mode)
    assert mode & 0o005 == 0o005, "work dir %s is %o" % (d, mode)
    cert, key = make_pair(d, "server", "mx.example.test", serial=6001,
                          owner=None, key_mode=0o600)
    assert os.stat(key).st_uid == 0
    p.extra_conf = tls_conf([(cert, key, None)])
    p.write_conf()
    rc = exits_with(p)
    assert rc != 0, "petrel started with a key only root can read"
    p.wait_log(r"daemon: tls_key %s is not readable by user petrel: "
               r"make it readable by a group petrel is in"
               % re.escape(key))
    # check-config, run as root, refuses it too.
    r = subprocess.run([PETREL_BIN, "check-config", "-c", p.conf_path],
                       capture_output=True, timeout=60)
    assert r.returncode == 1, r
    assert ("tls_key %s is not readable by user petrel" % key).encode() \
        in r.stderr, r.stderr

    # A directory petrel cannot search hides a readable file too.
    sub = os.path.join(d, "private")
    os.mkdir(sub, 0o700)
    cert2, key2 = make_pair(sub, "server", "mx.example.test", serial=6002,
                            owner="petrel")
    p.extra_conf = tls_conf([(cert2, key2, None)])
    p.write_conf()
    mark = p.log_mark()
    rc = exits_with(p)
    assert rc != 0
    p.wait_log(r"daemon: tls_cert %s is not readable by user petrel"
               % re.escape(cert2), start=mark)


def test_key_readable_through_supplementary_group(make_petrel,
                                                  ssl_cert_group):
    gid = ssl_cert_group
    p = make_petrel(start=False)
    d = p.tmpdir
    cert, key = make_pair(d, "server", "mx.example.test", serial=7001,
                          owner=None, key_mode=0o640)
    os.chown(key, 0, gid)
    p.extra_conf = tls_conf([(cert, key, None)])
    p.write_conf()
    p.start()
    assert peer_serial_starttls(p) == 7001

    # The daemon runs as petrel with ssl-cert among its groups.
    uid, pgid = petrel_ids()
    with open("/proc/%d/status" % p.proc.pid) as f:
        status = f.read()
    uids = [l for l in status.splitlines() if l.startswith("Uid:")][0]
    groups = [l for l in status.splitlines() if l.startswith("Groups:")][0]
    assert uids.split()[1:] == [str(uid)] * 4, uids
    assert str(gid) in groups.split()[1:], \
        "ssl-cert (%d) lost in the privilege drop: %s" % (gid, groups)

    # A reload reads the files as petrel: it can, through the group...
    replace_pair(d, "server", "mx.example.test", serial=7002, owner=None,
                 key_mode=0o640)
    os.chown(key, 0, gid)
    mark = p.log_mark()
    p.signal(signal.SIGHUP)
    p.wait_log(r"tls: certificates reloaded", start=mark)
    assert peer_serial_starttls(p) == 7002

    # ... and only through it (control: without the group bit it fails).
    replace_pair(d, "server", "mx.example.test", serial=7003, owner=None,
                 key_mode=0o600)
    os.chown(key, 0, gid)
    mark = p.log_mark()
    p.signal(signal.SIGHUP)
    p.wait_log(r"tls: reload failed: .*ermission denied", start=mark)
    assert peer_serial_starttls(p) == 7002


# ---- 5. self-signed fallback ----

def test_selfsigned_generated_once_and_reused(make_petrel):
    p = make_petrel()
    certp = os.path.join(p.spool, "tls", "selfsigned.pem")
    keyp = os.path.join(p.spool, "tls", "selfsigned.key")
    m = p.wait_log(r"tls: generated a self-signed certificate for (\S+) "
                   r"in (\S+)")
    assert m.group(1) == p.hostname and m.group(2) == certp, m.string
    uid, gid = petrel_ids()
    for path in (certp, keyp):
        st = os.stat(path)
        assert stat.S_IMODE(st.st_mode) == 0o600, "%s is %o" % (
            path, stat.S_IMODE(st.st_mode))
        assert (st.st_uid, st.st_gid) == (uid, gid), \
            "%s owned by %d:%d" % (path, st.st_uid, st.st_gid)

    c = starttls_client(p)
    der = c.sock.getpeercert(binary_form=True)
    first = cert_info(der)
    assert der == pem_to_der(certp), "served certificate is not the file"
    assert first["cn"] == p.hostname and p.hostname in first["sans"], first
    send_message(c, "selfsigned")
    c.cmd("QUIT")
    c.close()
    delivered_with(p, "selfsigned", 1)

    mark = p.log_mark()
    p.restart()
    assert peer_serial_starttls(p) == first["serial"], \
        "restart made a new self-signed certificate"
    with p._cond:
        again = [l for l in p.log_lines[mark:] if "generated a self-signed"
                 in l]
    assert not again, again

    # A reload (as petrel, after the privilege drop) keeps it too.
    mark = p.log_mark()
    p.signal(signal.SIGHUP)
    p.wait_log(r"tls: certificates reloaded", start=mark)
    assert peer_serial_starttls(p) == first["serial"]
    with p._cond:
        again = [l for l in p.log_lines[mark:] if "generated a self-signed"
                 in l]
    assert not again, again


# ---- 6. STARTTLS command injection ----

def test_starttls_pipelined_commands_discarded(petrel):
    p = petrel
    c = RawClient(p.host, p.port)
    c.read_greeting()
    c.ehlo()
    # One send(): STARTTLS and an RSET the attacker slipped in behind it.
    c.send(b"STARTTLS\r\nRSET\r\n")
    c.expect(220, "2.0.0")
    # starttls() asserts that nothing came after the 220 in plaintext;
    # a plaintext RSET reply arriving later would break the handshake.
    c.starttls()
    c.send("EHLO %s\r\n" % CLIENT_HELO)
    code, lines = c.reply()
    assert code == 250 and lines[0].startswith(p.hostname), \
        "first reply under TLS is not the EHLO one (RSET answered?): " \
        "%s %r" % (code, lines)
    assert "STARTTLS" not in lines, "STARTTLS offered again under TLS"
    code, lines = c.cmd("NOOP")
    assert code == 250 and lines == lines[-1:], (code, lines)
    c.sock.settimeout(0.3)
    try:
        extra = c.sock.recv(4096)
    except (socket.timeout, ssl.SSLWantReadError):
        extra = b""
    assert extra == b"", "unexpected bytes after NOOP: %r" % extra
    c.sock.settimeout(c.timeout)
    c.close()


def test_starttls_restarts_session(petrel):
    p = petrel
    c = RawClient(p.host, p.port)
    c.read_greeting()
    c.ehlo()
    c.send("MAIL FROM:<%s>\r\n" % SENDER)
    c.expect(250)
    # In a transaction STARTTLS is a sequence error.
    c.send("STARTTLS\r\n")
    c.expect(503, "5.5.1")
    c.send("RSET\r\n")
    c.expect(250)
    c.send("STARTTLS\r\n")
    c.expect(220, "2.0.0")
    c.starttls()
    # The session starts over: MAIL before EHLO is out of sequence.
    c.send("MAIL FROM:<%s>\r\n" % SENDER)
    c.expect(503, "5.5.1")
    c.ehlo()
    c.send("STARTTLS\r\n")
    lines = c.expect(503, "5.5.1")
    assert "TLS already active" in lines[-1], lines
    c.send("STARTTLS now\r\n")
    code, _ = c.reply()
    assert code in (501, 503), code
    send_message(c, "restarted")
    c.cmd("QUIT")
    c.close()
    delivered_with(p, "restarted", 1)


def test_starttls_with_argument_and_before_ehlo(petrel):
    c = petrel.raw()
    c.read_greeting()
    c.send("STARTTLS\r\n")
    c.expect(503, "5.5.1")
    c.ehlo()
    c.send("STARTTLS x\r\n")
    c.expect(501, "5.5.4")
    # Still plaintext and usable: a real STARTTLS works afterwards.
    c.send("STARTTLS\r\n")
    c.expect(220, "2.0.0")
    c.starttls()
    c.ehlo()
    c.cmd("QUIT")
    c.close()


# ---- 7. implicit TLS (submissions) ----

def test_implicit_tls_smtp_ssl(make_petrel):
    lines, ports = listeners("mx", "submissions")
    p = make_petrel(listen=lines)
    # SMTP_SSL() with a host raises SMTPConnectError unless the first
    # reply (after the handshake) is a 220.
    s = smtplib.SMTP_SSL(p.host, ports["submissions"], context=tls_context(),
                         timeout=30, local_hostname=CLIENT_HELO)
    assert s.sock.version() in ("TLSv1.2", "TLSv1.3")
    code, msg = s.ehlo()
    assert code == 250 and msg.startswith(p.hostname.encode()), (code, msg)
    assert not s.has_extn("starttls"), s.esmtp_features
    code, msg = s.docmd("STARTTLS")
    assert code == 503 and msg.startswith(b"5.5.1"), (code, msg)
    # Submission wants AUTH first: the session works and is one.
    code, msg = s.docmd("MAIL", "FROM:<%s>" % SENDER)
    assert code == 530 and msg.startswith(b"5.7.0"), (code, msg)
    s.quit()


def s_client_session(args, hostname):
    """Run s_client ARGS -brief -crlf -ign_eof, then EHLO and QUIT, each
    after the previous reply; returns (rc, stdout, stderr) and checks the
    SMTP exchange seen on stdout (the greeting or, after STARTTLS, the
    EHLO reply are the first lines s_client prints as data)."""
    c = SClient(args + ["-brief", "-crlf", "-ign_eof"])
    try:
        if "-starttls" not in args:
            c.wait_out(r"^220 %s " % re.escape(hostname))
        mark = c.mark()
        c.write("EHLO %s" % CLIENT_HELO)
        c.wait_out(r"^250 ", start=mark)
        mark = c.mark()
        c.write("QUIT")
        c.wait_out(r"^221 2\.0\.0", start=mark)
    finally:
        rc, out, err = c.finish()
    return rc, out, err


def test_implicit_tls_s_client(make_petrel):
    lines, ports = listeners("mx", "submissions")
    p = make_petrel(listen=lines)
    rc, out, err = s_client_session(
        ["-connect", "127.0.0.1:%d" % ports["submissions"]], p.hostname)
    assert brief_protocol(err) == "TLSv1.3", err
    out_lines = out.splitlines()
    assert out_lines[0].startswith("220 %s" % p.hostname), out
    assert "250-%s" % p.hostname in out_lines, out
    assert not any("STARTTLS" in l for l in out_lines), out
    # rc is not checked: s_client exits 1 when the server hangs up
    # without close_notify (test_quit_sends_close_notify).


def test_plaintext_to_implicit_tls_port(make_petrel):
    lines, ports = listeners("mx", "submissions")
    p = make_petrel(listen=lines)
    mark = p.log_mark()
    c = RawClient(p.host, ports["submissions"], timeout=10)
    c.send("EHLO %s\r\n" % CLIENT_HELO)
    data = c.wait_closed()
    c.close()
    assert b"220" not in data and b"250" not in data, \
        "plaintext SMTP on the implicit-TLS port: %r" % data
    handshake_failed_after(p, mark)
    # Still serving.
    c = implicit_client(p, ports["submissions"])
    c.ehlo()
    c.close()


def test_submission_port_starttls(make_petrel):
    """Port 587: STARTTLS offered, AUTH only once under TLS."""
    lines, ports = listeners("submission")
    p = make_petrel(listen=lines)
    c = RawClient(p.host, ports["submission"])
    c.read_greeting()
    ehlo = c.ehlo()
    assert "STARTTLS" in ehlo, ehlo
    assert not any(l.startswith("AUTH") for l in ehlo), ehlo
    c.send("STARTTLS\r\n")
    c.expect(220, "2.0.0")
    c.starttls()
    ehlo = c.ehlo()
    assert "STARTTLS" not in ehlo, ehlo
    assert any(l.startswith("AUTH") and "PLAIN" in l.split()
               for l in ehlo), ehlo
    c.cmd("QUIT")
    c.close()


def test_handshake_deadline(make_petrel):
    """A client that never finishes the handshake is dropped after
    timeout_command, also when it trickles bytes to look alive."""
    lines, ports = listeners("mx", "submissions")
    p = make_petrel(listen=lines, extra_conf="timeout_command 1")
    # Silent on 465, and silent after STARTTLS.
    for how in ("implicit", "starttls"):
        mark = p.log_mark()
        c = RawClient(p.host, ports["submissions" if how == "implicit"
                                     else "mx"], timeout=10)
        if how == "starttls":
            c.read_greeting()
            c.ehlo()
            c.send("STARTTLS\r\n")
            c.expect(220)
        t0 = time.monotonic()
        c.wait_closed(timeout=5)
        c.close()
        assert time.monotonic() - t0 < 4
        p.wait_log(r"smtp: timeout session=\S+ client=127\.0\.0\.1 "
                   r"state=TLS", start=mark)
    # A ClientHello one byte every 0.2 s.
    hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"A" * 100
    c = RawClient(p.host, ports["submissions"], timeout=10)
    t0 = time.monotonic()
    cut = None
    for i in range(len(hello)):
        try:
            c.sock.send(hello[i:i + 1])
        except OSError:
            cut = time.monotonic() - t0
            break
        if time.monotonic() - t0 > 4:
            break
        time.sleep(0.2)
    c.close()
    assert cut is not None and cut < 4, \
        "a trickled handshake kept the connection for %.1f s " \
        "(timeout_command 1)" % (time.monotonic() - t0)
    assert p.alive()


# ---- 8. openssl s_client -starttls smtp ----

def test_s_client_starttls_smtp(petrel):
    p = petrel
    mark = p.log_mark()
    rc, out, err = s_client_session(
        ["-connect", "127.0.0.1:%d" % p.port, "-starttls", "smtp"],
        p.hostname)
    proto = brief_protocol(err)
    assert proto == "TLSv1.3", err
    m = p.wait_log(r"smtp: tls session=\S+ client=127\.0\.0\.1 "
                   r"protocol=(\S+) cipher=(\S+)", start=mark)
    assert m.group(1) == proto, m.string
    assert "Ciphersuite: %s" % m.group(2) in err, (m.string, err)
    out_lines = out.splitlines()
    assert "250-%s" % p.hostname in out_lines, out
    assert not any("STARTTLS" in l for l in out_lines), out
    assert out_lines[-1].startswith("221 "), out


@pytest.mark.parametrize("role", ["mx", "submissions"])
def test_quit_sends_close_notify(make_petrel, role):
    """RFC 8446 6.1: each party MUST send close_notify before closing its
    write side. After QUIT the 221 must be followed by close_notify, not
    a bare TCP FIN: a strict client (OpenSSL 3 by default, s_client,
    Python with suppress_ragged_eofs=False) otherwise sees a truncation
    error and cannot tell the session ended cleanly."""
    lines, ports = listeners(role)
    p = make_petrel(listen=lines)
    c = RawClient(p.host, p.port)
    if role == "mx":
        c.read_greeting()
        c.ehlo()
        c.send("STARTTLS\r\n")
        c.expect(220)
    # Debian's Python 3.11 sets OP_IGNORE_UNEXPECTED_EOF by default, which
    # turns a bare FIN into a clean b"": clear it to see the difference.
    ctx = tls_context()
    ctx.options &= ~ssl.OP_IGNORE_UNEXPECTED_EOF
    c.sock = ctx.wrap_socket(c.sock, suppress_ragged_eofs=False)
    if role != "mx":
        c.read_greeting()
    c.ehlo()
    c.send("QUIT\r\n")
    c.expect(221, "2.0.0")
    try:
        tail = c.sock.recv(4096)
    except ssl.SSLError as e:
        if "EOF" not in str(e):
            raise
        raise AssertionError("BUG: %s: the server closed the TCP connection "
                             "after 221 without close_notify (%s)"
                             % (role, e))
    finally:
        c.close()
    assert tail == b"", tail


# ---- 9. Received: header ----

@pytest.mark.parametrize("maxv", [None, ssl.TLSVersion.TLSv1_2])
def test_received_records_tls(petrel, maxv):
    p = petrel
    c = starttls_client(p, context=tls_context(maximum=maxv))
    name, version, _bits = c.sock.cipher()
    if maxv is None:
        assert version == "TLSv1.3", version
    else:
        assert version == "TLSv1.2", version
        assert name.startswith("ECDHE-"), name
    tag = "received-%s" % version
    send_message(c, tag)
    c.cmd("QUIT")
    c.close()
    msg = delivered_with(p, tag, 1)
    _rp, received, _rest = split_delivered(msg)
    r = parse_received(received)
    assert r["proto"] == "ESMTPS", r
    assert r["comments"].strip() == "(using %s with cipher %s)" % (
        version, name), "Received: %r" % received


def test_received_plaintext_has_no_tls(petrel):
    """Control for the test above: without TLS there is no such line."""
    p = petrel
    c = p.raw()
    c.read_greeting()
    c.ehlo()
    send_message(c, "plain")
    c.cmd("QUIT")
    c.close()
    _rp, received, _rest = split_delivered(delivered_with(p, "plain", 1))
    r = parse_received(received)
    assert r["proto"] == "ESMTP" and r["comments"] == "", r


# ---- 10. clients that hang up without close_notify ----

def test_close_without_close_notify(petrel):
    p = petrel
    c = starttls_client(p)
    send_message(c, "dirty-close")
    # Hang up without close_notify (no unwrap, no QUIT).
    c.sock.shutdown(socket.SHUT_RDWR)
    c.close()
    delivered_with(p, "dirty-close", 1)
    # Another one, in the middle of DATA.
    c = starttls_client(p)
    c.send("MAIL FROM:<%s>\r\n" % SENDER)
    c.expect(250)
    c.send("RCPT TO:<%s>\r\n" % RCPT)
    c.expect(250)
    c.send("DATA\r\n")
    c.expect(354)
    c.send("Subject: cut\r\n\r\nhalf a mess")
    mark = p.log_mark()
    c.sock.shutdown(socket.SHUT_RDWR)
    c.close()
    p.wait_log(r"smtp: disconnect session=", start=mark)
    assert p.alive()
    # The daemon answers the next client, under TLS.
    c = starttls_client(p)
    send_message(c, "next")
    c.cmd("QUIT")
    c.close()
    msgs = p.wait_delivered(RCPT, 2)
    assert not any(b"half a mess" in m for m in msgs)


# ---- 11. handshake garbage ----

def test_handshake_garbage(make_petrel):
    lines, ports = listeners("mx", "submissions")
    p = make_petrel(listen=lines)
    rnd = random.Random(4)
    # Pure noise, and noise behind a plausible TLS handshake record
    # header; 20000 bytes is more than any record, so OpenSSL decides
    # without waiting for more.
    payloads = [rnd.randbytes(20000),
                b"\x16\x03\x01\x02\x00" + rnd.randbytes(20000),
                b"\x16\x03\x03\x00\x30\x01\x00\x00\x2c" + rnd.randbytes(64)]
    for data in payloads:
        mark = p.log_mark()
        c = RawClient(p.host, ports["submissions"], timeout=10)
        try:
            c.send(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        handshake_failed_after(p, mark)
        c.wait_closed()
        c.close()
        assert p.alive()
    # The same after STARTTLS on the mx listener.
    mark = p.log_mark()
    c = RawClient(p.host, ports["mx"], timeout=10)
    c.read_greeting()
    c.ehlo()
    c.send("STARTTLS\r\n")
    c.expect(220)
    c.send(payloads[0])
    handshake_failed_after(p, mark)
    c.wait_closed()
    c.close()
    # Still serving both listeners.
    c = implicit_client(p, ports["submissions"])
    c.ehlo()
    c.close()
    c = starttls_client(p, port=ports["mx"])
    c.cmd("QUIT")
    c.close()
