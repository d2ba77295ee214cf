"""
test_logging.py: the per-message log lines (docs/logging.md), `log_file`
and its reopening on SIGHUP, `log syslog`, and `petrel trace` reading the
log file (issue 6, "Logs and metrics").

A message relayed after one deferral and a message bounced, then
`grep QUEUEID` over log_file: each tells the message's whole story with the
documented events and keys, and the queued line names the session whose
connect line is in the log. Syslog: the daemon runs in a private mount
namespace (unshare -m) whose /dev is a tmpfs with /dev/log a symbolic link
to a datagram socket this test listens on, so nothing of the host's
logging is touched.
"""

import os
import pwd
import re
import signal
import socket
import stat
import subprocess
import threading

import pytest

from dnsserver import DNSServer
from harness import PETREL_BIN, wait_until
from smtppeer import SMTPPeer

SENDER = "alice@example.test"
BASE_CONF = """
retry_initial 1s
retry_max 4s
client_timeout_connect 3s
client_timeout_command 3s
client_timeout_data 5s
delay_warning 0
"""

# "TS petrel[PID]: LEVEL: COMPONENT: EVENT key=value ... (text)"
LINE_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) "
                     r"petrel\[(\d+)\]: (debug|info|warn|error): (.*)$")


@pytest.fixture
def dns():
    with DNSServer() as srv:
        yield srv


def parse(line):
    """(event, {key: value}, text in parentheses or None) of a log line:
    the event is the words before the first key=value."""
    m = LINE_RE.match(line)
    assert m, line
    rest = m.group(4)
    text = None
    t = re.search(r" \((.*)\)$", rest)
    if t:
        text = t.group(1)
        rest = rest[:t.start()]
    words, fields = [], {}
    # A value is a word without spaces or "quoted" (no '"' inside: the
    # daemon escapes it).
    for m in re.finditer(r'\S+?=(?:"[^"]*"|\S*)|\S+', rest):
        tok = m.group(0)
        if "=" in tok:
            k, _, v = tok.partition("=")
            assert k not in fields, (k, line)
            fields[k] = v
        else:
            assert not fields, ("a word after the fields", line)
            words.append(tok)
    return " ".join(words), fields, text


def start(make_petrel, dns, extra="", **kw):
    kw.setdefault("trusted", ("127.0.0.0/8",))
    return make_petrel(dns=dns.addr, extra_conf=BASE_CONF + extra, **kw)


def mx(dns, domain, addr):
    dns.add(domain, "MX", "10 mx1.%s." % domain)
    dns.add("mx1." + domain, "A", addr)


def send(p, rcpts, body, sender=SENDER):
    with p.smtp() as s:
        s.ehlo()
        assert s.mail(sender)[0] == 250
        for r in rcpts:
            assert s.rcpt(r)[0] == 250
        code, resp = s.data(body)
        assert code == 250, (code, resp)
        return resp.decode().split()[-1]


def log_dir(p):
    """A directory for log_file the daemon's user may create files in
    (logrotate's usual setup is `create`; here the directory is its)."""
    d = os.path.join(p.tmpdir, "log")
    os.makedirs(d, exist_ok=True)
    pw = pwd.getpwnam("petrel")
    os.chown(d, pw.pw_uid, pw.pw_gid)
    return d


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return f.read().splitlines()


def grep(lines, word):
    return [l for l in lines if word in l]


def trace(p, query, *extra):
    return subprocess.run([PETREL_BIN, "trace", "-c", p.conf_path] +
                          list(extra) + [query], capture_output=True,
                          text=True, timeout=60)


def test_message_story(make_petrel, dns):
    """One deferral then success; one bounce. grep QUEUEID over log_file
    gives each story with the documented keys, in order."""
    with SMTPPeer() as peer:
        peer.fail_first(1, "451 4.3.0 try again later", "data")
        peer.rcpt_reply = {"bad@remote.test": "550 5.1.1 no such user"}
        mx(dns, "remote.test", peer.addr)
        p = start(make_petrel, dns, start=False)
        logfile = os.path.join(p.tmpdir, "petrel.log")
        p.extra_conf += "log_file %s\n" % logfile
        p.write_conf()
        p.start()

        body = (b"From: alice@example.test\r\nMessage-ID: <story.1@example."
                b"test>\r\nSubject: story\r\n\r\nhello\r\n")
        q1 = send(p, ["bob@remote.test"], body)
        peer.wait_messages(1, timeout=30)
        q2 = send(p, ["bad@remote.test"],
                  b"Subject: doomed\r\n\r\nno such user\r\n")
        wait_until(lambda: p.maildir_files(SENDER), timeout=30,
                   what="the bounce")
        p.wait_queue_empty()
        p.wait_log(r"delivery: removed queue=%s " % q1)
        p.wait_log(r"delivery: removed queue=%s " % q2)

        # log_file holds what stderr shows, line for line.
        rc = p.stop()
        assert rc == 0
        lines = read_lines(logfile)
        # From its opening on (the configuration's path came before).
        assert lines and lines[0] in p.log_lines, lines[:3]
        assert p.log_lines[p.log_lines.index(lines[0]):] == lines
        st = os.stat(logfile)
        assert stat.S_IMODE(st.st_mode) == 0o640
        assert st.st_uid == pwd.getpwnam("petrel").pw_uid

    # The first message: received, deferred, sent, removed.
    story = [parse(l) for l in grep(lines, q1)]
    events = [(e, f.get("status")) for e, f, _t in story]
    assert events == [("smtp: queued", None),
                      ("remote: transaction", None),
                      ("delivery: rcpt", "deferred"),
                      ("remote: transaction", None),
                      ("delivery: rcpt", "sent"),
                      ("delivery: removed", None)], events
    for e, f, _t in story:
        # queue= first after the event name, on every line.
        assert list(f)[0] == "queue" and f["queue"] == q1, (e, f)
    e, f, t = story[0]
    assert f["from"] == "<%s>" % SENDER
    assert f["nrcpt"] == "1"
    assert f["client"] == "127.0.0.1"
    assert f["message-id"] == "<story.1@example.test>"
    # size: the message as queued, our Received: field included.
    assert int(f["size"]) > len(body)
    assert int(f["size"]) == len(peer.messages[0].content), \
        (f["size"], len(peer.messages[0].content))
    session = f["session"]
    assert re.fullmatch(r"[0-9a-f]{16}", session)
    # The session's connect line is in the log too.
    connect = [parse(l) for l in lines if "session=%s " % session in l]
    assert connect[0][0] == "smtp: connect", connect[0]
    assert connect[0][1]["client"] == "127.0.0.1"
    relay = r"mx1\.remote\.test\[%s\]:25" % re.escape(peer.addr)
    for (e, f, t), status, reply in ((story[2], "deferred",
                                      "451 4.3.0 try again later"),
                                     (story[4], "sent", None)):
        assert f["to"] == "<bob@remote.test>"
        assert re.fullmatch(relay, f["relay"]), f
        assert f["status"] == status
        assert re.fullmatch(r"\d+", f["delay"]) and f["attempts"]
        assert f["dsn"] == ("4.3.0" if status == "deferred" else "2.0.0")
        assert t is not None and t.startswith(reply or "250 "), t
        # status= is the last field, the remote reply after it.
        assert list(f)[-1] == "status"

    # The bounced message: its result, the report it caused (with the
    # report's own queue ID), the report's own story.
    story2 = [parse(l) for l in grep(lines, q2)]
    e, f, t = [s for s in story2 if s[0] == "delivery: rcpt"][0]
    assert f["to"] == "<bad@remote.test>" and f["status"] == "bounced"
    assert f["dsn"] == "5.1.1" and t == "550 5.1.1 no such user"
    [rep] = [s for s in story2 if s[0] == "delivery: report"]
    assert rep[1]["queue"] == q2 and rep[1]["report"] == "failure"
    assert rep[1]["to"] == "<%s>" % SENDER
    q3 = rep[1]["report_queue"]
    assert q3 != q2
    story3 = [parse(l) for l in grep(lines, q3)]
    mine = [s for s in story3 if s[1]["queue"] == q3]
    assert [s[0] for s in mine] == ["delivery: queued", "delivery: rcpt",
                                    "delivery: removed"], mine
    assert mine[0][1]["report_of"] == q2 and mine[0][1]["from"] == "<>"
    assert mine[0][1]["message-id"].startswith("<")
    assert mine[1][1]["relay"] == "local" and \
        mine[1][1]["status"] == "sent"

    # petrel trace, from log_file with the daemon stopped: the session's
    # lines and the message's own, as logged, in order.
    r = trace(p, q1)
    assert r.returncode == 0, r.stderr
    want = [l for l in lines if "queue=%s " % q1 in l or
            ("session=%s " % session in l and " queue=" not in l)]
    assert r.stdout.splitlines() == want
    # By Message-ID, with or without brackets: the same story.
    for mid in ("<story.1@example.test>", "story.1@example.test"):
        r = trace(p, mid)
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines() == want
    # The bounced message's story includes its report's.
    r = trace(p, q2)
    assert r.returncode == 0
    got = r.stdout.splitlines()
    assert grep(lines, "queue=%s " % q3)[0] in got
    assert all(("queue=%s " % q2) in l or ("queue=%s " % q3) in l or
               " queue=" not in l for l in got), got


def test_trace_errors(make_petrel):
    p = make_petrel(start=False)
    logfile = os.path.join(p.tmpdir, "petrel.log")
    # No log_file and no daemon to ask: nowhere to look.
    r = trace(p, "1K1CWTRB6T0BBCE8")
    assert r.returncode == 2 and "no log_file" in r.stderr, r
    r = trace(p, "not a queue id")
    assert r.returncode == 2 and "not a queue ID" in r.stderr, r
    r = subprocess.run([PETREL_BIN, "trace", "-c", p.conf_path],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "usage" in r.stderr
    p.extra_conf += "log_file %s\n" % logfile
    p.write_conf()
    # log_file configured but not there (yet): exit 2, said so.
    r = trace(p, "1K1CWTRB6T0BBCE8")
    assert r.returncode == 2 and logfile in r.stderr, r
    p.start()
    q = send(p, ["bob@example.test"], b"Subject: x\r\n\r\nx\r\n")
    p.wait_log(r"delivery: removed queue=%s " % q)
    # Unknown: exit 1. Known: exit 0 (the daemon running; -f given).
    r = trace(p, "1K1CWTRB6T0BBCEX")
    assert r.returncode == 1 and r.stdout == "", r
    r = trace(p, q, "-f", logfile)
    assert r.returncode == 0 and "smtp: queued queue=%s " % q in r.stdout


def test_log_file_reopen(make_petrel):
    """logrotate: rename the file, SIGHUP; the daemon writes to a new
    file at the path, and the old one keeps only the earlier lines."""
    p = make_petrel(start=False)
    d = log_dir(p)
    logfile = os.path.join(d, "petrel.log")
    p.extra_conf += "log_file %s\n" % logfile
    p.write_conf()
    p.start()
    q1 = send(p, ["bob@example.test"], b"Subject: 1\r\n\r\none\r\n")
    p.wait_log(r"delivery: removed queue=%s " % q1)
    os.rename(logfile, logfile + ".1")
    mark = p.log_mark()
    p.signal(signal.SIGHUP)
    p.wait_log(r"config: reloaded", start=mark)
    q2 = send(p, ["bob@example.test"], b"Subject: 2\r\n\r\ntwo\r\n")
    p.wait_log(r"delivery: removed queue=%s " % q2)
    old, new = read_lines(logfile + ".1"), read_lines(logfile)
    assert grep(old, q1) and not grep(old, q2)
    assert grep(new, q2) and not grep(new, q1)
    assert grep(new, "config: reload requested")
    st = os.stat(logfile)
    assert stat.S_IMODE(st.st_mode) == 0o640
    assert st.st_uid == pwd.getpwnam("petrel").pw_uid


def test_log_file_reopen_fails(make_petrel):
    """The daemon's user cannot create the file again (a root-owned
    directory): the error is logged and the old file stays in use."""
    p = make_petrel(start=False)
    logfile = os.path.join(p.tmpdir, "petrel.log")  # root's, 0755
    p.extra_conf += "log_file %s\n" % logfile
    p.write_conf()
    p.start()
    os.rename(logfile, logfile + ".1")
    mark = p.log_mark()
    p.signal(signal.SIGHUP)
    p.wait_log(r"error: daemon: log_file: cannot reopen: Permission denied; "
               r"still writing to the file open before", start=mark)
    q = send(p, ["bob@example.test"], b"Subject: 1\r\n\r\none\r\n")
    p.wait_log(r"delivery: removed queue=%s " % q)
    assert not os.path.exists(logfile)
    assert grep(read_lines(logfile + ".1"), "smtp: queued queue=%s " % q)


def test_log_file_refused_at_start(make_petrel):
    p = make_petrel(start=False)
    p.extra_conf += "log_file %s/no/such/dir/petrel.log\n" % p.tmpdir
    p.write_conf()
    p.start(wait=False)
    p.wait_log(r"error: daemon: log_file \S+/no/such/dir/petrel.log: "
               r"No such file or directory")
    assert p.proc.wait(timeout=30) == 1
    p.stopped = True


class SyslogListener:
    """A datagram socket standing in for /dev/log."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        os.chmod(path, 0o666)
        self.sock.settimeout(0.2)
        self.messages = []
        self.cond = threading.Condition()
        self.running = True
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while self.running:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            with self.cond:
                self.messages.append(data.decode("utf-8", "replace"))
                self.cond.notify_all()

    def wait(self, regex, timeout=20):
        rx = re.compile(regex)
        found = []

        def pred():
            with self.cond:
                found[:] = [m for m in self.messages if rx.search(m)]
            return found
        wait_until(pred, timeout=timeout, what="syslog message %r" % regex)
        return found[0]

    def close(self):
        self.running = False
        self.thread.join()
        self.sock.close()


def namespace_wrapper(tmpdir, sock):
    """unshare -m, then a tmpfs /dev with the usual devices bound in and
    /dev/log pointing at sock; exec the daemon ("$@")."""
    stage = os.path.join(tmpdir, "devstage")
    os.makedirs(stage)
    devs = ("null", "zero", "urandom", "random", "full")
    for name in devs:
        open(os.path.join(stage, name), "w").close()
    script = "set -e\n"
    for name in devs:
        script += "mount --bind /dev/%s %s/%s\n" % (name, stage, name)
    script += "mount -t tmpfs -o mode=0755 tmpfs /dev\n"
    for name in devs:
        script += "touch /dev/%s\nmount --bind %s/%s /dev/%s\n" % (
            name, stage, name, name)
    script += "ln -s %s /dev/log\nexec \"$@\"\n" % sock
    return ["unshare", "-m", "--propagation", "private", "sh", "-c",
            script, "sh"]


def test_syslog(make_petrel):
    """`log syslog`: facility mail, ident petrel with the pid, the level
    mapped; the same text as the log file's lines after "petrel[PID]: ";
    nothing more on stderr."""
    probe = subprocess.run(["unshare", "-m", "--propagation", "private",
                            "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("no mount namespaces here: %s" % probe.stderr)
    p = make_petrel(start=False)
    sock = os.path.join(p.tmpdir, "log.sock")
    listener = SyslogListener(sock)
    try:
        logfile = os.path.join(p.tmpdir, "petrel.log")
        p.wrapper = namespace_wrapper(p.tmpdir, sock)
        p.extra_conf += "log syslog\nlog_file %s\n" % logfile
        p.write_conf()
        p.start(wait=False)
        # LOG_MAIL (2) * 8 + LOG_INFO (6) = 22.
        listener.wait(r"^<22>.*petrel\[\d+\]: info: listening addr=")
        q = send(p, ["bob@example.test"], b"Subject: s\r\n\r\nsyslog\r\n")
        msg = listener.wait(r"info: delivery: removed queue=%s " % q)
        assert re.search(r"petrel\[%d\]: " % p.proc.pid, msg), msg
        queued = listener.wait(r"info: smtp: queued queue=%s " % q)
        # A warning: LOG_MAIL * 8 + LOG_WARNING (4) = 20 (a reload
        # that changes dns, which needs a restart).
        p.dns = ["127.0.0.1:5354"]
        p.write_conf()
        p.signal(signal.SIGHUP)
        listener.wait(r"^<20>.*petrel\[\d+\]: warn: config: dns or dnssec "
                      r"changed")
        # The text after "petrel[PID]: " is the log file's line's.
        lines = read_lines(logfile)
        body = queued.split("]: ", 1)[1]
        assert [l for l in lines if l.endswith("]: " + body)], (body, lines)
        # stderr: the lines before the configuration was applied only.
        assert not any("listening addr=" in l for l in p.log_lines), \
            p.log_lines
        rc = p.stop()
        assert rc == 0
    finally:
        listener.close()
