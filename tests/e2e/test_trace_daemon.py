"""
test_trace_daemon.py: `petrel trace` asking the running daemon over its
control socket (issue 6, "trace QUERY" in src/daemon/control.c).

The daemon's ring answers with no log_file at all, by queue ID and by
Message-ID, with exactly the lines the daemon logged for the message and
its SMTP session; the queue commands' lines (`queue: held queue=...`) are
part of the story; the daemon is asked before log_file is read, and with
the daemon stopped log_file is read; callers who are not root, the
daemon's user or in its group are refused, as for `petrel queue`.
"""

import os
import pwd
import re
import socket
import subprocess

from harness import PETREL_BIN
from smtppeer import SMTPPeer

SENDER = "alice@example.test"
DEFER = "451 4.3.0 try again later"


def trace(p, query, *extra, user=None):
    cmd = [PETREL_BIN, "trace", "-c", p.conf_path] + list(extra) + [query]
    if user is not None:
        pw = pwd.getpwnam(user)
        cmd = ["setpriv", "--reuid", str(pw.pw_uid), "--regid",
               str(pw.pw_gid), "--clear-groups"] + cmd
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def queue(p, *args):
    return subprocess.run([PETREL_BIN, "queue"] + list(args) +
                          ["-c", p.conf_path], capture_output=True,
                          text=True, timeout=120)


def send(p, rcpts, body, sender=SENDER):
    with p.smtp() as s:
        s.ehlo()
        assert s.mail(sender)[0] == 250
        for r in rcpts:
            assert s.rcpt(r)[0] == 250
        code, resp = s.data(body)
        assert code == 250, (code, resp)
    return re.search(r"queued as (\S+)", resp.decode()).group(1)


def body(mid):
    return ("From: %s\r\nMessage-ID: <%s>\r\nSubject: trace\r\n\r\n"
            "hello\r\n" % (SENDER, mid)).encode()


def session_of(lines, qid):
    for l in lines:
        m = re.search(r"smtp: queued queue=%s session=(\S+) " % qid, l)
        if m:
            return m.group(1)
    raise AssertionError("no queued line for %s" % qid)


def story(lines, qid):
    """What `petrel trace QID` is to print (docs/logging.md): the
    message's lines and its session's lines that name no queue ID."""
    session = session_of(lines, qid)
    q = re.compile(r" queue=%s( |$)" % qid)
    s = re.compile(r" session=%s( |$)" % session)
    return [l for l in lines if q.search(l) or
            (s.search(l) and " queue=" not in l)]


def test_trace_from_daemon(make_petrel):
    """No log_file: the daemon's ring tells the story, by queue ID and by
    Message-ID; the request is logged; an unknown ID is exit 1."""
    p = make_petrel()
    with open(p.conf_path) as f:
        assert "log_file" not in f.read()
    q = send(p, ["bob@example.test"], body("ring.1@example.test"))
    p.wait_log(r"delivery: removed queue=%s " % q)
    want = story(p.log_lines, q)
    assert "smtp: connect session=" in want[0], want
    assert "smtp: queued queue=%s " % q in "\n".join(want)
    assert "delivery: removed queue=%s " % q in want[-1], want
    mark = p.log_mark()
    r = trace(p, q)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == want
    assert r.stderr == ""
    p.wait_log(r"control: uid=0 pid=\d+ request=trace arg=%s$" % q,
               start=mark)
    for mid in ("<ring.1@example.test>", "ring.1@example.test"):
        r = trace(p, mid)
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines() == want
    # Unknown to the daemon, and no log_file: nothing known, exit 1.
    r = trace(p, "1K1CWTRB6T0BBCEX")
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert r.stdout == ""
    assert "the daemon knows nothing of it" in r.stderr, r.stderr
    r = trace(p, "<nobody.sent.this@example.test>")
    assert r.returncode == 1 and r.stdout == "", r.stderr


def test_trace_queue_commands(make_petrel):
    """hold, release and delete are logged with queue= and so are part
    of the message's story, in order, the deletion last."""
    with SMTPPeer(port=0) as peer:
        peer.rcpt_default_reply = DEFER
        conf = ("relayhost [%s]:%d\nretry_initial 1h\nretry_max 2h\n"
                "delay_warning 0\nclient_timeout_connect 3s\n"
                "client_timeout_command 3s\n" % (peer.addr, peer.port))
        p = make_petrel(extra_conf=conf, trusted=("127.0.0.0/8",))
        q = send(p, ["bob@remote.test"], body("held.1@example.test"))
        p.wait_log(r"queue=%s .*attempts=1 .*status=deferred" % q)
        for cmd in ("hold", "release"):
            r = queue(p, cmd, q)
            assert r.returncode == 0, r.stderr
        # A release retries at once.
        p.wait_log(r"queue=%s .*attempts=2 .*status=deferred" % q)
        r = queue(p, "delete", q)
        assert r.returncode == 0, r.stderr
        p.wait_log(r"queue: deleted queue=%s " % q)
        r = trace(p, q)
        assert r.returncode == 0, r.stderr
        got = r.stdout.splitlines()
        assert got == story(p.log_lines, q)
        admin = [re.search(r"info: (queue: \w+ queue=\S+ .*)$", l).group(1)
                 for l in got if "info: queue: " in l]
        assert admin == ["queue: %s queue=%s (by the administrator)" %
                         (verb, q) for verb in ("held", "released",
                                                "deleted")], admin
        assert got[-1].endswith("queue: deleted queue=%s (by the "
                                "administrator)" % q)


def test_trace_daemon_then_file(make_petrel):
    """With log_file configured the daemon is still asked first (the file
    moved away, the lines come all the same); stopped, the file is read
    and tells the same story; neither: exit 2, both reasons said."""
    p = make_petrel(start=False)
    logfile = os.path.join(p.tmpdir, "petrel.log")
    away = logfile + ".away"
    p.extra_conf += "log_file %s\n" % logfile
    p.write_conf()
    p.start()
    q = send(p, ["bob@example.test"], body("file.1@example.test"))
    p.wait_log(r"delivery: removed queue=%s " % q)
    want = story(p.log_lines, q)
    os.rename(logfile, away)
    r = trace(p, q)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == want
    r = trace(p, "<file.1@example.test>")
    assert r.returncode == 0 and r.stdout.splitlines() == want, r.stderr
    os.rename(away, logfile)
    assert p.stop() == 0
    assert not os.path.exists(os.path.join(p.tmpdir, "run", "control"))
    r = trace(p, q)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == want
    r = trace(p, "file.1@example.test")
    assert r.returncode == 0 and r.stdout.splitlines() == want, r.stderr
    os.rename(logfile, away)
    r = trace(p, q)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "the daemon is not running" in r.stderr, r.stderr
    assert logfile in r.stderr, r.stderr


def test_trace_refused(make_petrel):
    """As for `petrel queue`: nobody cannot connect to the 0660 socket;
    with the socket opened up, the daemon itself refuses nobody and logs
    it; the daemon's user is answered."""
    p = make_petrel()
    q = send(p, ["bob@example.test"], body("perm.1@example.test"))
    p.wait_log(r"delivery: removed queue=%s " % q)
    want = story(p.log_lines, q)
    r = trace(p, q, user="nobody")
    assert r.returncode == 4, (r.returncode, r.stderr)
    assert "Permission denied" in r.stderr and "only root" in r.stderr
    assert r.stdout == ""
    sock = os.path.join(p.tmpdir, "run", "control")
    os.chmod(sock, 0o666)
    mark = p.log_mark()
    r = trace(p, q, user="nobody")
    assert r.returncode == 4, (r.returncode, r.stderr)
    assert "only root" in r.stderr and r.stdout == ""
    p.wait_log(r"control: refused uid=%d" % pwd.getpwnam("nobody").pw_uid,
               start=mark)
    r = trace(p, q, user="petrel")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == want


def control(p, request):
    """One raw request on the control socket: the whole answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect(os.path.join(p.tmpdir, "run", "control"))
        s.sendall(request)
        out = b""
        while True:
            b = s.recv(65536)
            if not b:
                return out
            out += b


def test_trace_wire(make_petrel):
    """The answer as sent (control.c): a "line" line per log line, then
    "ok N lines"; a query of neither form and nothing known are errors."""
    p = make_petrel()
    q = send(p, ["bob@example.test"], body("wire.1@example.test"))
    p.wait_log(r"delivery: removed queue=%s " % q)
    want = story(p.log_lines, q)
    got = control(p, b"trace %s\n" % q.encode()).decode().split("\n")
    assert got[-1] == ""
    assert got[-2] == "ok %d lines" % len(want), got[-3:]
    assert got[:-2] == ["line " + l for l in want]
    got = control(p, b"trace %3Cwire.1@example.test%3E\n").decode()
    assert got.endswith("\nok %d lines\n" % len(want)), got[-200:]
    assert control(p, b"trace %0A\n") == (
        b"err bad not a queue ID (letters and digits) or a Message-ID "
        b"(<local@domain>)\n")
    assert control(p, b"trace -\n") == b"err bad bad trace query\n"
    assert control(p, b"trace\n") == b"err bad missing argument\n"
    assert control(p, b"trace 1K1CWTRB6T0BBCEX\n") == \
        b"err notfound the daemon has no recent line about it\n"
