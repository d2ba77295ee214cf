"""
harness.py: run a real Petrel daemon for end-to-end tests.

Every test builds a Petrel() (or uses the `petrel` fixture from conftest.py):
it writes a configuration into a fresh directory under /tmp, starts
`petrel serve -c FILE` in the foreground, reads its log from stderr and waits
for every "listening addr=" line before the test talks to it. Nothing here
sleeps to wait for something: every wait polls with a deadline.

Tests run as root; the daemon drops to user petrel, so the work directory is
0755 and the daemon itself creates the spool and the Maildir root.
"""

import json
import os
import random
import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("PETREL_SOURCE_DIR",
                            os.path.dirname(os.path.dirname(_HERE)))
PETREL_BIN = os.environ.get("PETREL_BIN",
                            os.path.join(SOURCE_DIR, "build", "petrel"))
# Conformance material written by others: the unchanged copy of
# ../shared/conformance kept in tests/data (CI has no ../shared beside the
# checkout; test_conformance_copy.py keeps the two equal).
CONFORMANCE_DIR = os.environ.get(
    "PETREL_CONFORMANCE_DIR",
    os.path.join(SOURCE_DIR, "tests", "data", "conformance"))
SWAKS = "/usr/bin/swaks"
CLIENT_HELO = "client.example.test"
SANITIZE = bool(os.environ.get("PETREL_SANITIZE"))

LISTEN_RE = re.compile(r"listening addr=(\S+) port=(\d+) role=(\S+)")


_PORTS_GIVEN = set()
# Seeded per process (pid, time): parallel test processes pick apart.
_PORT_RANDOM = random.Random(os.getpid() ^ time.time_ns())


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now, and
    that this process has not handed out before: the kernel may give the
    same ephemeral port to two binds in a row once the first socket is
    closed, and two listeners of one daemon then collide (seen in CI:
    'listen: "127.0.0.1:42419" already listed')."""
    # Below the kernel's ephemeral range (ip_local_port_range, 32768 and
    # up by default): a port bound with 0 and closed again is handed to
    # the next outgoing connection, and a test's clients make many (seen
    # in a CI rehearsal: "cannot listen on 127.0.0.1:43141: Address
    # already in use").
    lo, hi = 20000, 32767
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            first = int(f.read().split()[0])
        if first - 1 > lo + 1000:
            hi = first - 1
    except (OSError, ValueError, IndexError):
        pass
    for _ in range(1000):
        port = _PORT_RANDOM.randint(lo, hi)
        if port in _PORTS_GIVEN:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _PORTS_GIVEN.add(port)
        return port
    raise RuntimeError("no fresh free port after 1000 tries")


def workdir():
    d = tempfile.mkdtemp(dir="/tmp", prefix="petrel-e2e-")
    os.chmod(d, 0o755)
    return d


def wait_until(pred, timeout=20, interval=0.02, what="condition"):
    """Poll pred() until it returns a true value; return that value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %ss waiting for %s"
                                 % (timeout, what))
        time.sleep(interval)


def ascii_lower(s):
    """Lower-case ASCII letters only (what the daemon does for %d/%u)."""
    return "".join(c.lower() if "A" <= c <= "Z" else c for c in s)


def unquote_localpart(local):
    if len(local) >= 2 and local[0] == '"' and local[-1] == '"':
        return re.sub(r"\\(.)", r"\1", local[1:-1])
    return local


class RawClient:
    """A byte-exact SMTP client over a plain socket."""

    def __init__(self, host, port, timeout=30, family=socket.AF_INET,
                 source=None):
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        if source is not None:
            self.sock.bind((source, 0))
        self.sock.connect((host, port))
        self.buf = b""
        self.timeout = timeout

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sock.sendall(data)

    def cmd(self, line):
        """Send one command line (CRLF added) and return reply()."""
        if isinstance(line, str):
            line = line.encode("utf-8")
        self.send(line + b"\r\n")
        return self.reply()

    def _readline(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed by the server "
                                      "(pending %r)" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def reply(self):
        """One (possibly multi-line) reply: (code, [text, ...]).

        The text of each line is what follows "NNN-" or "NNN ", so it
        starts with the enhanced status code when there is one."""
        lines = []
        code = None
        while True:
            line = self._readline()
            if len(line) < 3 or not line[:3].isdigit() or \
                    (len(line) > 3 and line[3:4] not in (b" ", b"-")):
                raise AssertionError("malformed reply line %r" % line)
            c = int(line[:3])
            if code is not None and c != code:
                raise AssertionError("reply code changed inside a "
                                     "multi-line reply: %r" % line)
            code = c
            lines.append(line[4:].decode("utf-8", "replace"))
            if len(line) == 3 or line[3:4] == b" ":
                return code, lines

    def expect(self, code, enhanced=None):
        c, lines = self.reply()
        assert c == code, "expected %s, got %s %r" % (code, c, lines)
        if enhanced is not None:
            got = lines[-1].split(" ", 1)[0]
            assert got == enhanced, "expected %s %s, got %s %r" % (
                code, enhanced, c, lines)
        return lines

    def read_greeting(self):
        return self.expect(220)

    def ehlo(self, name=CLIENT_HELO):
        self.send("EHLO %s\r\n" % name)
        return self.expect(250)

    def wait_closed(self, timeout=10):
        """Assert the server closes the connection (EOF) within timeout;
        returns any bytes it sent before closing."""
        self.sock.settimeout(timeout)
        data = self.buf
        self.buf = b""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return data
                data += chunk
        except socket.timeout:
            raise AssertionError("server did not close the connection "
                                 "(got %r)" % data)
        except ConnectionResetError:
            return data
        finally:
            self.sock.settimeout(self.timeout)

    def starttls(self, context=None, server_hostname=None):
        """Wrap the socket in TLS (after "220 Ready to start TLS", or at
        once for port 465). Bytes already buffered are an error: a server
        must not send anything between its 220 and the handshake."""
        assert self.buf == b"", "bytes before the handshake: %r" % self.buf
        self.sock = (context or tls_context()).wrap_socket(
            self.sock, server_hostname=server_hostname)
        return self.sock

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def tls_context(minimum=None, maximum=None):
    """A client context that does not check the certificate (Petrel's
    default one is self-signed); minimum/maximum: ssl.TLSVersion."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if minimum is not None:
        ctx.minimum_version = minimum
    if maximum is not None:
        ctx.maximum_version = maximum
    return ctx


class Petrel:
    """One daemon with its own configuration, spool and Maildir root."""

    def __init__(self, tmpdir=None, extra_conf="", domains=("example.test",),
                 users=None, aliases=None, user="petrel", listen=None,
                 hostname="mx.example.test", trusted=(), env=None,
                 wrapper=None, dns="127.0.0.1:5353", msgauth=False):
        self.own_tmpdir = tmpdir is None
        self.tmpdir = tmpdir or workdir()
        self.hostname = hostname
        self.domains = list(domains)
        if users is None:
            users = {"alice@example.test": "", "bob@example.test": ""}
        self.users = users
        self.aliases = aliases
        self.user = user
        # A port picked here may be taken by another test before the
        # daemon binds it; start() then picks another (first start only).
        self.auto_listen = listen is None
        self.started_once = False
        if listen is None:
            listen = ["127.0.0.1:%d mx" % free_port()]
        elif isinstance(listen, str):
            listen = [listen]
        self.listen = list(listen)
        first = self.listen[0].split()[0]
        host, _, port = first.rpartition(":")
        self.host = host.strip("[]")
        self.port = int(port)
        self.trusted = list(trusted)
        self.extra_conf = extra_conf
        # SPF/DKIM/DMARC on incoming mail: off unless a test asks for it,
        # so that the other tests see their messages byte for byte
        # (no Authentication-Results) and no DNS lookups at DATA.
        self.msgauth = msgauth
        # DNS servers for the `dns` lines: tests that deliver outbound
        # pass their own loopback server (dnsserver.py).
        self.dns = [dns] if isinstance(dns, str) else list(dns or [])
        self.env = env
        self.wrapper = list(wrapper or [])
        self.spool = os.path.join(self.tmpdir, "spool")
        self.maildir_root = os.path.join(self.tmpdir, "mail")
        self.conf_path = os.path.join(self.tmpdir, "petrel.conf")
        self.log_lines = []
        self.proc = None
        self.killed = False
        self.stopped = False
        self._cond = threading.Condition()
        self._reader = None
        self.write_conf()

    # configuration

    def conf_text(self):
        out = ["# written by tests/e2e/harness.py",
               "hostname %s" % self.hostname,
               "spool %s" % self.spool,
               "run_dir %s/run" % self.tmpdir,
               "maildrop %s/maildrop" % self.tmpdir,
               "maildir %s/%%d/%%u" % self.maildir_root]
        for d in self.dns:
            out.append("dns %s" % d)
        for l in self.listen:
            out.append("listen %s" % l)
        for d in self.domains:
            out.append("domain %s" % d)
        for t in self.trusted:
            out.append("trusted %s" % t)
        if self.users is not False:
            out.append("users %s" % os.path.join(self.tmpdir, "users"))
        if self.aliases is not None:
            out.append("aliases %s" % os.path.join(self.tmpdir, "aliases"))
        if self.user is not None:
            out.append("user %s" % self.user)
        if not self.msgauth and "msgauth" not in self.extra_conf:
            out.append("msgauth no")
        out.append(self.extra_conf)
        return "\n".join(out) + "\n"

    def write_conf(self):
        if self.users is not False:
            with open(os.path.join(self.tmpdir, "users"), "w",
                      encoding="utf-8") as f:
                for addr, h in self.users.items():
                    f.write("%s:%s\n" % (addr, h))
        if self.aliases is not None:
            with open(os.path.join(self.tmpdir, "aliases"), "w",
                      encoding="utf-8") as f:
                f.write(self.aliases)
        with open(self.conf_path, "w", encoding="utf-8") as f:
            f.write(self.conf_text())
        for name in ("users", "aliases", "petrel.conf"):
            p = os.path.join(self.tmpdir, name)
            if os.path.exists(p):
                os.chmod(p, 0o644)

    # process control

    def command(self):
        return self.wrapper + [PETREL_BIN, "serve", "-c", self.conf_path]

    def _read_stderr(self, stream):
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._cond:
                self.log_lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def start(self, wait=True, timeout=20):
        for attempt in range(5):
            mark = len(self.log_lines)
            try:
                return self._start(wait, timeout)
            except AssertionError:
                retry = (self.auto_listen and not self.started_once and
                         attempt < 4 and self.proc.poll() is not None and
                         any("Address already in use" in l
                             for l in self.log_lines[mark:]))
                if not retry:
                    raise
                self.port = free_port()
                self.listen = ["127.0.0.1:%d mx" % self.port]
                self.write_conf()

    def _start(self, wait, timeout):
        assert self.proc is None or self.proc.poll() is not None, \
            "already running"
        env = dict(os.environ)
        if self.env:
            env.update(self.env)
        mark = len(self.log_lines)
        self.killed = False
        self.stopped = False
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=env,
                                     cwd=self.tmpdir)
        self._reader = threading.Thread(target=self._read_stderr,
                                        args=(self.proc.stderr,), daemon=True)
        self._reader.start()
        if wait:
            self.wait_listening(timeout=timeout, start=mark)
            self.started_once = True
        return self

    def wait_listening(self, timeout=20, start=0):
        want = len(self.listen)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                n = sum(1 for l in self.log_lines[start:]
                        if LISTEN_RE.search(l))
                if n >= want:
                    return
                # Once it exited, wait for the reader to see EOF so the
                # log holds the last lines (the reason).
                if self.proc.poll() is not None and \
                        not self._reader.is_alive():
                    raise AssertionError(
                        "petrel exited with %s before listening:\n%s"
                        % (self.proc.returncode, self.log_tail()))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("petrel not listening after %ss:\n%s"
                                         % (timeout, self.log_tail()))
                self._cond.wait(min(left, 0.1))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Send sig, wait for the exit and return the exit code (negative
        for death by a signal, as subprocess reports it)."""
        if self.proc is None:
            return None
        self.stopped = True
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("petrel did not exit %ss after signal %s:\n%s"
                                 % (timeout, sig, self.log_tail()))
        if self._reader is not None:
            self._reader.join(timeout=10)
        return rc

    def kill(self):
        self.killed = True
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=10)

    def signal(self, sig):
        """Send sig (e.g. signal.SIGUSR1: retry the queue now)."""
        self.proc.send_signal(sig)

    def restart(self):
        rc = self.stop()
        assert rc in (0, None) or self.killed, \
            "petrel exited with %s:\n%s" % (rc, self.log_tail())
        self.start()

    # log

    def log_mark(self):
        with self._cond:
            return len(self.log_lines)

    def log_tail(self, n=60):
        with self._cond:
            return "\n".join(self.log_lines[-n:])

    def wait_log(self, regex, timeout=20, start=0):
        """The first log line at index >= start matching regex."""
        rx = re.compile(regex)
        deadline = time.monotonic() + timeout
        with self._cond:
            i = start
            while True:
                while i < len(self.log_lines):
                    m = rx.search(self.log_lines[i])
                    if m:
                        return m
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no log line matching %r after %ss:"
                                         "\n%s" % (regex, timeout,
                                                   self.log_tail()))
                self._cond.wait(min(left, 0.1))

    # clients

    def smtp(self, **kw):
        kw.setdefault("timeout", 30)
        kw.setdefault("local_hostname", CLIENT_HELO)
        return smtplib.SMTP(self.host, self.port, **kw)

    def raw(self, timeout=30, source=None):
        fam = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        return RawClient(self.host, self.port, timeout=timeout, family=fam,
                         source=source)

    def swaks(self, *args):
        return swaks("--server", self.host, "--port", str(self.port),
                     "--helo", CLIENT_HELO, *args)

    # mailboxes and spool

    def maildir_path(self, address):
        local, _, domain = address.rpartition("@")
        return os.path.join(self.maildir_root, ascii_lower(domain),
                            ascii_lower(unquote_localpart(local)))

    def maildir_files(self, address):
        base = self.maildir_path(address)
        out = []
        for sub in ("new", "cur"):
            d = os.path.join(base, sub)
            try:
                names = os.listdir(d)
            except FileNotFoundError:
                continue
            out.extend(os.path.join(d, n) for n in names)
        return sorted(out, key=os.path.basename)

    def maildir_messages(self, address):
        res = []
        for p in self.maildir_files(address):
            with open(p, "rb") as f:
                res.append(f.read())
        return res

    def wait_delivered(self, address, count, timeout=30, exact=True):
        """Wait until address has at least count messages, then for the
        queue to drain; with exact, assert it has exactly count. Returns
        the contents, sorted by file name."""
        wait_until(lambda: len(self.maildir_files(address)) >= count,
                   timeout=timeout,
                   what="%d message(s) for %s" % (count, address))
        self.wait_queue_empty(timeout=timeout)
        msgs = self.maildir_messages(address)
        if exact:
            assert len(msgs) == count, "%s has %d messages, expected %d" % (
                address, len(msgs), count)
        return msgs

    def queue_ids(self, sub="queue"):
        try:
            return sorted(os.listdir(os.path.join(self.spool, sub)))
        except FileNotFoundError:
            return []

    def wait_queue_empty(self, timeout=30):
        """A queue file leaves spool/queue once every recipient is done:
        removed when all were delivered, moved to spool/failed when one
        failed for good (src/delivery/delivery.h)."""
        wait_until(lambda: not self.queue_ids(), timeout=timeout,
                   what="spool/queue to drain (left: %s)" % self.queue_ids())

    def all_maildir_files(self):
        out = []
        for root, _dirs, files in os.walk(self.maildir_root):
            if os.path.basename(root) in ("new", "cur"):
                out.extend(os.path.join(root, f) for f in files)
        return sorted(out)

    # context manager

    def cleanup(self):
        if self.own_tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)

    def finish(self, failed):
        """Stop the daemon. Unless the test already failed, assert it was
        still running (unless the test killed or stopped it), exited 0
        and logged no sanitizer report; remove the work dir on success."""
        problems = []
        if self.proc is not None:
            was_alive = self.proc.poll() is None
            if not was_alive and not self.killed and not self.stopped:
                problems.append("petrel died during the test (exit %s)"
                                % self.proc.returncode)
            rc = self.stop() if was_alive else self.proc.returncode
            if was_alive and rc != 0:
                problems.append("petrel exited with %s after SIGTERM" % rc)
        with self._cond:
            san = [l for l in self.log_lines
                   if "Sanitizer" in l or "runtime error:" in l]
        if san:
            problems.append("sanitizer report: %s" % san[0])
        if failed or problems:
            sys.stderr.write("---- petrel log (%s) ----\n%s\n"
                             % (self.tmpdir, self.log_tail(200)))
        if problems and not failed:
            raise AssertionError("; ".join(problems))
        if not failed:
            self.cleanup()

    def __enter__(self):
        if not self.alive():
            self.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        self.finish(failed=exc_type is not None)
        return False



def rss_kb(pid):
    """The resident set of process pid, in KiB (/proc/PID/status)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


def cpu_ticks(pid):
    """utime + stime of process pid, in clock ticks (/proc/PID/stat)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def split_delivered(file_bytes):
    """Split a delivered Maildir file into (return_path_line,
    received_header, rest). The Received header is every line up to the
    first that is neither "Received:" nor a continuation (tab/space)."""
    assert file_bytes.startswith(b"Return-Path: "), \
        "no Return-Path first: %r" % file_bytes[:200]
    rp, _, rest = file_bytes.partition(b"\n")
    assert rest.startswith(b"Received: "), \
        "no Received header second: %r" % file_bytes[:300]
    lines = rest.split(b"\n")
    n = 1
    while n < len(lines) and lines[n][:1] in (b"\t", b" "):
        n += 1
    received = b"\n".join(lines[:n]) + b"\n"
    body = b"\n".join(lines[n:])
    return rp + b"\n", received, body


RECEIVED_RE = re.compile(
    r"^Received: from (?P<helo>\S+) \((?P<info>[^)]*?)\[(?P<ip>[0-9A-Za-z.:]+)"
    r"(?:\])\)(?P<comments>(?:\n\t\([^\n]*\))*)"
    r"\n\tby (?P<host>\S+) \(Petrel\) with (?P<proto>[A-Z0-9]+) "
    r"id (?P<id>[^\s;]+)(?P<rest>.*)$", re.S)
DATE_RE = re.compile(r";\s+(?:[A-Z][a-z]{2}, )?\d{1,2} [A-Z][a-z]{2} \d{4} "
                     r"\d\d:\d\d:\d\d [+-]\d{4}")


def parse_received(received):
    """Parse the Received header Petrel prepends; returns a dict with helo,
    ip, host, proto, id, for_rcpt (None when there is no "for") and
    comments (the "(using TLSv1.3 with cipher ...)" and "(Authenticated
    sender: ...)" lines between "from" and "by", "" when none)."""
    text = received.decode("utf-8")
    unfolded = text.rstrip("\n")
    m = RECEIVED_RE.match(unfolded)
    assert m, "Received header not in the expected form: %r" % text
    d = m.groupdict()
    fm = re.search(r"\s+for <([^>]*)>;", d["rest"])
    d["for_rcpt"] = fm.group(1) if fm else None
    assert DATE_RE.search(d["rest"]), "no date in Received: %r" % text
    return d


def maildir_form(sent):
    """The message as the Maildir holds it: CRLF turned into LF."""
    return sent.replace(b"\r\n", b"\n")


def expected_maildir_bytes(sender, sent, file_bytes, rcpt=None, helo=None,
                           queue_id=None, hostname=None):
    """Check a delivered file: "Return-Path: <sender>\\n", a Received
    header Petrel wrote, then exactly the message sent (CRLF -> LF).

    sent is the message as the client meant it (before dot-stuffing).
    rcpt: the expected "for <rcpt>" (False: assert there is none, None:
    don't check). Returns the rest (the message) for further comparison."""
    if isinstance(sender, str):
        sender = sender.encode("utf-8")
    rp, received, rest = split_delivered(file_bytes)
    assert rp == b"Return-Path: <" + sender + b">\n", \
        "Return-Path %r, expected <%r>" % (rp, sender)
    r = parse_received(received)
    if rcpt is False:
        assert r["for_rcpt"] is None, "unexpected 'for' in %r" % received
    elif rcpt is not None:
        assert r["for_rcpt"] == rcpt, "Received 'for' is %r, expected %r" % (
            r["for_rcpt"], rcpt)
    if helo is not None:
        assert r["helo"] == helo, r
    if queue_id is not None:
        assert r["id"] == queue_id, "Received id %r, queue id %r" % (
            r["id"], queue_id)
    if hostname is not None:
        assert r["host"] == hostname, r
    assert r["ip"] in ("127.0.0.1", "::1", "IPv6:::1"), r
    if sent is not None:
        want = maildir_form(sent)
        assert rest == want, "delivered message differs:\n got %r\nwant %r" % (
            rest[:2000], want[:2000])
    return rest


def swaks(*args):
    return subprocess.run([SWAKS] + [str(a) for a in args],
                          stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=60)


def queue_id_from_reply(text):
    """The ID from "2.0.0 Ok: queued as ID"."""
    if isinstance(text, bytes):
        text = text.decode()
    if isinstance(text, list):
        text = text[-1]
    m = re.search(r"queued as (\S+)", text)
    assert m, "no queue id in %r" % text
    return m.group(1)


SMUGGLING_VARIANTS_REL = os.path.join("conformance", "smtp",
                                      "smuggling-eod-variants.json")


def smuggling_variants_path():
    """The SMTP-smuggling conformance file, from CONFORMANCE_DIR."""
    return os.path.join(CONFORMANCE_DIR, "smtp",
                        "smuggling-eod-variants.json")


def smuggling_variants():
    """The fake end-of-data sequences of the public scanners, each once,
    in file order: [(name, bytes)], named after the first place a
    sequence stands ("hannob-lflf", "sec-consult-outbound-6")."""
    with open(smuggling_variants_path(), encoding="utf-8") as f:
        d = json.load(f)
    out = {}
    for name, v in d["hannob_smtpsmug"].items():
        out.setdefault(v, "hannob-" + name)
    for key in ("sec_consult_inbound", "sec_consult_outbound"):
        for i, v in enumerate(d[key]):
            out.setdefault(v, "%s-%d" % (key.replace("_", "-"), i))
    return [(name, v.encode("latin-1")) for v, name in out.items()]
