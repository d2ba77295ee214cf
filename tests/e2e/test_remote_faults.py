"""
test_remote_faults.py: outbound delivery against remote faults (issue 8):
a peer that accepts TCP and never answers, answers one octet a second,
resets the connection in the middle of DATA, says 250 and closes, closes
after the 354, sends malformed (multi-line) replies or a 10 MB reply line,
or never takes the connection (full accept queue); DNS that never answers
or answers garbage, SERVFAIL, or an MX that points at nothing.

For each fault the test checks
  (a) the outcome: deferred and retried (a normal server, or the DNS
      server once it recovers, then gets the message exactly once), or
      delivered when the 250 came, or bounced for a permanent answer; the
      delivery counters (`metrics`) count a recipient delivered only when
      it was; the log line that says why; the client timeouts firing at
      their configured values (peer side: from the moment the wait began
      to Petrel's close); the daemon's memory with the 10 MB line;
  (b) that Petrel's port-25 listener stays responsive while the fault is
      in progress: a second client sends NOOPs (about 100, spread over
      the fault and the retry after it) and their p99 round trip must
      stay under 500 ms (three times that under sanitizers). Each test prints a line
      "NOOP-LATENCY fault=NAME n=N p50=.. p99=.. max=.." (pytest -s).

"250 then close" counts as delivered: RFC 5321 6.1 makes the 250 to the
end of data the moment the receiver takes responsibility, and Postfix
logs such a delivery as sent (a lost connection at QUIT is not an
error). A malformed reply to the end of data is not a 250: the message
is deferred and sent again (a possible duplicate, RFC 1047), never
counted delivered and never bounced.

The remote peers here are scripted per connection (ScriptedPeer below,
not smtppeer.py: the faults are below the SMTP level); the first
`faulty` connections run the fault, later ones are a plain server. The
DNS faults use dnsserver.py with a reply mangler (GarbleDNS).

PETREL_LONG=1 adds the variant where every reply is dribbled one octet a
second (about 40 seconds). The file takes about 100 s (mostly waiting for
timeouts and retries, little CPU).
"""

import math
import os
import re
import select
import socket
import struct
import threading
import time

import pytest
from dnslib import DNSRecord

from dnsserver import DNSServer
from harness import SANITIZE, RawClient, free_port, wait_until
from smtppeer import _alloc_socket

SENDER = "alice@example.test"
RCPT = "bob@remote.test"
LONG = os.environ.get("PETREL_LONG") == "1"
FACTOR = 3 if SANITIZE else 1
P99_BOUND = 0.5 * FACTOR          # seconds
T_CONNECT, T_COMMAND, T_DATA = 3, 3, 4
SLACK = 4.0 * FACTOR              # how late a timeout may fire, seconds
# Peak RSS growth allowed while a 10 MB reply line comes in. Buffering
# the line would cost 10 MB, and several times that under TSan (shadow
# memory); the daemon's own growth meanwhile (NOOP sessions, the
# delivery) is about 1 MB plain and 4 MB under ASan.
RSS_GROWTH_KIB = (24 if "thread" in os.environ.get("PETREL_SANITIZE", "")
                  else 8) * 1024
CONF = """
retry_initial 1s
retry_max 2s
client_timeout_connect %ds
client_timeout_command %ds
client_timeout_data %ds
delay_warning 0
""" % (T_CONNECT, T_COMMAND, T_DATA)
BODY = b"Subject: fault\r\n\r\nhello\r\n"


# ------------------------------------------------------------ fake peers


class Closed(Exception):
    pass


class Conn:
    """One connection of a ScriptedPeer, seen from the server side."""

    def __init__(self, peer, sock, n):
        self.peer = peer
        self.sock = sock
        self.n = n                  # 1 for the first connection
        self.buf = b""
        self.t_accept = time.monotonic()
        self.t_eof = None           # Petrel closed its side
        self.marks = {}             # name -> monotonic time

    def mark(self, name):
        self.marks[name] = time.monotonic()

    def send(self, data):
        self.sock.sendall(data)

    def dribble(self, data, interval=1.0):
        """One octet every interval seconds (the last one without a
        wait after it), noticing meanwhile when Petrel closes."""
        for i in range(len(data)):
            self.sock.sendall(data[i:i + 1])
            if i + 1 == len(data):
                break
            end = time.monotonic() + interval
            while time.monotonic() < end:
                r, _, _ = select.select([self.sock], [], [],
                                        max(0.0, end - time.monotonic()))
                if r:
                    chunk = self.recv()     # Closed at EOF
                    if chunk is not None:
                        self.buf += chunk

    def recv(self):
        if self.peer.stopping.is_set():
            raise Closed()
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return None
        except OSError:
            chunk = b""
        if not chunk:
            if self.t_eof is None:
                self.t_eof = time.monotonic()
            raise Closed()
        return chunk

    def readline(self, limit=60.0):
        end = time.monotonic() + limit
        while b"\r\n" not in self.buf:
            if time.monotonic() > end:
                raise Closed()
            chunk = self.recv()
            if chunk is not None:
                self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_data(self, limit=60.0):
        """The content up to the final dot (excluded)."""
        end = time.monotonic() + limit
        while True:
            i = (b"\r\n" + self.buf).find(b"\r\n.\r\n")
            if i >= 0:
                data, self.buf = self.buf[:i], self.buf[i + 3:]
                return data
            if time.monotonic() > end:
                raise Closed()
            chunk = self.recv()
            if chunk is not None:
                self.buf += chunk

    def read_some(self, n):
        """At least n octets of whatever comes (part of the body)."""
        while len(self.buf) < n:
            chunk = self.recv()
            if chunk is not None:
                self.buf += chunk

    def hang(self):
        """Read and drop everything until Petrel closes (t_eof)."""
        while True:
            self.recv()

    def rst(self):
        """Close with a TCP RST (SO_LINGER 0)."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                             struct.pack("ii", 1, 0))
        self.sock.close()
        raise Closed()

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        raise Closed()


STAGES = ("greeting", "ehlo", "mail", "rcpt", "data", "dot", "quit",
          "starttls")
# A stage's callable that returns this has sent the reply itself and lets
# the session go on; any other return value ends the session.
SESSION_GOES_ON = object()
NORMAL = {
    "greeting": b"220 peer.test ESMTP\r\n",
    "ehlo": b"250-peer.test\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n",
    "mail": b"250 2.1.0 ok\r\n",
    "rcpt": b"250 2.1.5 ok\r\n",
    "data": b"354 go ahead\r\n",
    "dot": b"250 2.0.0 ok: queued\r\n",
    "quit": b"221 2.0.0 bye\r\n",
}


class ScriptedPeer:
    """A fake SMTP server on a random 127.X.Y.Z:25 (reserved as smtppeer
    does). Each connection plays the SMTP server side; for the first
    `faulty` connections, the stages in `fault` (stage -> bytes to send
    instead of the normal reply, or a callable f(conn) that takes over
    the connection, see SESSION_GOES_ON) replace the normal behaviour. A
    stage's callable runs after the command was read (for "dot": after
    the whole content; for "greeting": right after the accept)."""

    def __init__(self, fault, faulty=1):
        self.fault = fault
        self.faulty = faulty
        self.dot_is_250 = False     # a fault at "dot" still says 250
        self.addr, self.lsock = _alloc_socket(25)
        # A small fixed receive buffer (accepted sockets inherit it):
        # the kernel then holds little of a big message for the peer, so
        # a fault "in the middle of DATA" is in the middle for Petrel too
        # (its send buffer, up to tcp_wmem's 4 MB, holds the rest).
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        self.lsock.settimeout(0.2)
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.conns = []
        self.bodies = []        # every content received in full
        self.accepted = []      # content answered with the normal 250
        self.errors = []
        self.threads = []

    def start(self):
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self.threads.append(t)
        return self

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(10)
        self.lsock.close()
        for c in self.conns:
            try:
                c.sock.close()
            except OSError:
                pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _accept(self):
        while not self.stopping.is_set():
            try:
                s, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            s.settimeout(0.2)
            with self.lock:
                c = Conn(self, s, len(self.conns) + 1)
                self.conns.append(c)
            t = threading.Thread(target=self._run, args=(c,), daemon=True)
            t.start()
            self.threads.append(t)

    def _run(self, c):
        try:
            self._session(c)
        except (Closed, OSError):
            pass                    # Petrel went away, or a timeout
        except Exception as e:      # a bug in the test
            self.errors.append(repr(e))
        finally:
            try:
                c.sock.close()
            except OSError:
                pass

    def _step(self, c, stage):
        """Send the reply for stage; False when the fault took over."""
        act = self.fault.get(stage) if c.n <= self.faulty else None
        c.mark(stage)
        if act is None:
            c.send(NORMAL[stage])
            return True
        if callable(act):
            return act(c) is SESSION_GOES_ON
        c.send(act)
        return True

    def _session(self, c):
        if not self._step(c, "greeting"):
            return
        while True:
            line = c.readline()
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                stage = "ehlo"
            elif verb == b"MAIL":
                stage = "mail"
            elif verb == b"RCPT":
                stage = "rcpt"
            elif verb == b"STAR" and "starttls" in self.fault and \
                    c.n <= self.faulty:
                self._step(c, "starttls")
                return
            elif verb == b"RSET":
                c.send(b"250 2.0.0 ok\r\n")
                continue
            elif verb == b"QUIT":
                if self._step(c, "quit"):
                    c.close()
                return
            elif verb == b"DATA":
                if not self._step(c, "data"):
                    return
                body = c.read_data()
                with self.lock:
                    self.bodies.append(body)
                act = self.fault.get("dot") if c.n <= self.faulty else None
                if act is None or self.dot_is_250:
                    with self.lock:
                        self.accepted.append(body)
                if not self._step(c, "dot"):
                    return
                continue
            else:
                c.send(b"502 5.5.2 no\r\n")
                continue
            if not self._step(c, stage):
                return


class GarbleDNS(DNSServer):
    """dnsserver.py whose replies about some names are mangled:
    garble(name, mode) with mode "garbage" (the right ID, then octets
    that do not parse), "wrong_id" (a good answer with another ID),
    "truncated" (a good answer cut in the middle of its records)."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.garbled = {}

    def garble(self, name, mode):
        with self._lock:
            self.garbled[name.lower().rstrip(".")] = mode

    def ungarble(self, name):
        with self._lock:
            self.garbled.pop(name.lower().rstrip("."), None)

    def _handle(self, data, proto):
        out = super()._handle(data, proto)
        if out is None or len(data) < 12:
            return out
        try:
            name = str(DNSRecord.parse(data).q.qname).lower().rstrip(".")
        except Exception:
            return out
        with self._lock:
            mode = self.garbled.get(name)
        if mode == "garbage":
            # QR set, one question, five answers claimed; then junk.
            return out[:2] + b"\x84\x00\x00\x01\x00\x05\x00\x00\x00\x00" + \
                b"\xc0\xff\x3f\xff" * 12
        if mode == "wrong_id":
            wid = (struct.unpack("!H", out[:2])[0] ^ 0x5a5a) & 0xffff
            return struct.pack("!H", wid) + out[2:]
        if mode == "truncated":
            # Cut inside the first record after the question (the
            # header still counts them all).
            rep = DNSRecord.parse(out)
            head = len(DNSRecord(rep.header, q=rep.q).pack())
            return out[:min(head + 6, len(out) - 1)]
        return out


# ----------------------------------------------------------- measuring


class NoopSampler:
    """A client on Petrel's listener that sends NOOP every `interval`
    seconds and records each round trip. It reconnects every 50 NOOPs
    (the session counts NOOPs as junk past 100)."""

    def __init__(self, p, interval):
        self.p = p
        self.interval = interval
        self.samples = []
        self.error = None
        self.stop_ev = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            while not self.stop_ev.is_set():
                with RawClient(self.p.host, self.p.port, timeout=30) as c:
                    c.read_greeting()
                    c.ehlo()
                    for _ in range(50):
                        if self.stop_ev.wait(self.interval):
                            break
                        t0 = time.perf_counter()
                        c.send(b"NOOP\r\n")
                        c.expect(250)
                        self.samples.append(time.perf_counter() - t0)
                    c.send(b"QUIT\r\n")
        except Exception as e:
            self.error = e

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_ev.set()
        self.thread.join(60)

    def report(self, fault):
        s = sorted(self.samples)
        assert self.error is None, "NOOP client failed: %r" % self.error
        assert len(s) >= 20, "only %d NOOPs during the fault" % len(s)
        p50 = s[(len(s) - 1) // 2]
        p99 = s[max(0, math.ceil(0.99 * len(s)) - 1)]
        print("\nNOOP-LATENCY fault=%-20s n=%3d p50=%7.2fms p99=%7.2fms "
              "max=%7.2fms%s" % (fault, len(s), p50 * 1e3, p99 * 1e3,
                                 s[-1] * 1e3, " (sanitizer)" if SANITIZE
                                 else ""))
        assert p99 < P99_BOUND, \
            "NOOP p99 %.0f ms during %s (bound %.0f ms)" % (
                p99 * 1e3, fault, P99_BOUND * 1e3)


def metric(port, name):
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    m = re.search(rb"^%s (\S+)$" % name.encode(), data, re.M)
    assert m, "no %s in the metrics" % name
    return float(m.group(1))


def rss_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s for pid %d" % (field, pid))


# -------------------------------------------------------------- set-up


@pytest.fixture
def dns():
    with GarbleDNS() as srv:
        yield srv


def start(make_petrel, dns, extra=""):
    """A daemon with CONF, extra's directives replacing or adding lines,
    and a metrics listener (p.mport)."""
    mport = free_port()
    lines = {}
    for text in (CONF, "metrics 127.0.0.1:%d\n" % mport, extra):
        for line in text.strip().splitlines():
            lines[line.split()[0]] = line
    p = make_petrel(dns=dns.addr, trusted=("127.0.0.0/8",),
                    extra_conf="\n".join(lines.values()) + "\n")
    p.wait_log(r"listening metrics=127\.0\.0\.1:%d " % mport)
    p.mport = mport
    return p


def submit(p, body=BODY):
    with p.smtp() as s:
        s.ehlo()
        assert s.mail(SENDER)[0] == 250
        assert s.rcpt(RCPT)[0] == 250
        code, resp = s.data(body)
        assert code == 250, (code, resp)


def deferred_re(why):
    return (r"to=<%s> relay=\S+ .*attempts=1 dsn=4\.\d+\.\d+ "
            r"status=deferred \(.*%s" % (re.escape(RCPT), why))


def check_timeout(c, since, limit, what):
    """Petrel closed c `limit` seconds after the mark `since`."""
    wait_until(lambda: c.t_eof is not None, timeout=limit + SLACK + 10,
               what="Petrel to close the connection (%s)" % what)
    took = c.t_eof - c.marks[since]
    print("\ntimeout %s: closed after %.2fs (configured %ds)"
          % (what, took, limit))
    # The peer marks a moment a little after Petrel armed its timer (a
    # thread has to run first): a second of leeway below.
    assert limit - 1.0 <= took <= limit + SLACK, \
        "%s: closed after %.2fs, configured %ds" % (what, took, limit)


# --------------------------------------------------------- peer faults

def _hang(c):
    c.hang()


def _close(c):
    c.close()


def _rst_mid_data(c):
    c.read_some(256 * 1024)
    c.rst()


def _250_close(c):
    c.send(NORMAL["dot"])
    c.close()


def _dribble_greeting(c):
    # Far longer than client_timeout_command at one octet a second.
    c.dribble(b"220 peer.test " + b"x" * 120 + b"\r\n")
    c.hang()


def _unended_then_silence(c):
    c.send(b"250-peer.test\r\n250-8BITMIME\r\n")
    c.hang()


def _endless_lines(c):
    while True:
        c.send(b"250-peer.test says hello again\r\n" * 64)
        time.sleep(0.01)


def _huge_line(c):
    c.send(b"220 ")
    chunk = b"x" * 65536
    for _ in range(10 * 1024 * 1024 // len(chunk)):
        c.send(chunk)
    c.hang()


# name: (fault per stage, first-attempt log regex, est. duration seconds,
#        timeout check (mark, seconds) or None, message size)
PEER_FAULTS = {
    "silent": ({"greeting": _hang},
               r"timed out while receiving the initial server greeting",
               T_COMMAND + 1, ("greeting", T_COMMAND), None),
    "dribble_greeting": ({"greeting": _dribble_greeting},
                         r"timed out while receiving the initial server "
                         r"greeting", T_COMMAND + 1, ("greeting", T_COMMAND),
                         None),
    "silent_at_dot": ({"dot": _hang},
                      r"timed out while sending end of data -- message may "
                      r"be sent more than once", T_DATA + 1, ("dot", T_DATA),
                      None),
    "rst_mid_data": ({"data": lambda c: (c.send(NORMAL["data"]),
                                         _rst_mid_data(c))},
                     r"lost connection with \S+ while sending (message "
                     r"body|end of data)", 0, None, 8 * 1024 * 1024),
    "close_after_354": ({"data": lambda c: (c.send(NORMAL["data"]),
                                            _close(c))},
                        r"lost connection with \S+ while sending (message "
                        r"body|end of data)", 0, None, 8 * 1024 * 1024),
    "mixed_codes": ({"dot": b"250-2.0.0 ok\r\n550 5.0.0 no\r\n"},
                    r"protocol error with \S+ while \S.*: reply codes "
                    r"differ between lines", 0, None, None),
    "unended_multiline": ({"ehlo": _unended_then_silence},
                          r"timed out while performing the EHLO handshake",
                          T_COMMAND + 1, ("ehlo", T_COMMAND), None),
    "endless_multiline": ({"ehlo": _endless_lines},
                          r"protocol error with \S+ while performing the "
                          r"EHLO handshake: too many reply lines", 0, None,
                          None),
    "missing_space": ({"greeting": b"220peer.test ESMTP\r\n"},
                      r"protocol error with \S+ while receiving the "
                      r"initial server greeting: malformed reply", 0, None,
                      None),
    "nondigit_code": ({"mail": b"2O0 2.1.0 ok\r\n"},
                      r"protocol error with \S+ while sending MAIL FROM: "
                      r"malformed reply", 0, None, None),
    "nul_in_reply": ({"dot": b"250 2.0.0 o\x00k\r\n"},
                     r"protocol error with \S+ while sending end of data: "
                     r"malformed reply", 0, None, None),
    "huge_line": ({"greeting": _huge_line},
                  r"protocol error with \S+ while receiving the initial "
                  r"server greeting: reply line too long", 0, None, None),
}


@pytest.mark.parametrize("name", list(PEER_FAULTS))
def test_peer_fault_deferred(make_petrel, dns, name):
    """The first connection meets the fault: the recipient is deferred
    with the reason in the log (at the configured timeout where one
    applies) and not counted delivered; the retry reaches a plain server
    and delivers exactly once."""
    fault, why, est, tmo, size = PEER_FAULTS[name]
    body = BODY
    if size:
        line = b"y" * 998 + b"\r\n"
        body = b"Subject: big\r\n\r\n" + line * (size // len(line))
    with ScriptedPeer(fault) as peer:
        dns.add("remote.test", "MX", "10 mx1.remote.test.")
        dns.add("mx1.remote.test", "A", peer.addr)
        p = start(make_petrel, dns)
        pid = p.proc.pid
        if name == "huge_line":
            try:
                with open("/proc/%d/clear_refs" % pid, "w") as f:
                    f.write("5")    # reset VmHWM, the peak RSS
                rss0 = rss_kib(pid, "VmRSS")
            except OSError:         # not ours to reset: the peak so far
                rss0 = rss_kib(pid, "VmHWM")
        mark = p.log_mark()
        # The NOOPs span the fault and the retry (retry_initial 1s).
        with NoopSampler(p, (est + 1.0) / 100.0) as sampler:
            submit(p, body)
            line = p.wait_log(deferred_re(why), start=mark,
                              timeout=est + SLACK + 20)
            print("\n%s: %s" % (name, line.string.split("status=", 1)[1]))
            if name == "huge_line":
                grew = rss_kib(pid, "VmHWM") - rss0
            # The retry goes through, once.
            p.wait_log(r"to=<%s> .*attempts=2 dsn=2\.\d+\.\d+ status=sent"
                       % re.escape(RCPT), start=mark, timeout=30)
        sampler.report(name)
        if name == "huge_line":
            print("\nhuge_line: peak RSS grew by %d KiB" % grew)
            # The line is cut at 4 KiB; 10 MB buffered would show.
            assert grew < RSS_GROWTH_KIB, "RSS grew by %d KiB" % grew
        if tmo is not None:
            check_timeout(peer.conns[0], tmo[0], tmo[1], name)
        p.wait_queue_empty()
        assert len(peer.accepted) == 1, len(peer.accepted)
        assert peer.accepted[0].endswith(body)
        # The whole content came twice only when the fault was at its
        # end (then a duplicate is the price of a reply we cannot use).
        assert len(peer.bodies) == (2 if "dot" in fault else 1)
        # One failed attempt, not counted delivered; one delivery.
        assert metric(p.mport, "petrel_recipients_deferred_total") == 1
        assert metric(p.mport, "petrel_recipients_delivered_total") == 1
        assert metric(p.mport, "petrel_recipients_bounced_total") == 0
        assert p.maildir_files(SENDER) == []
        assert not peer.errors, peer.errors


@pytest.mark.parametrize("name", ["250_then_close", "bad_quit_reply",
                                  "bare_lf"])
def test_peer_fault_delivered(make_petrel, dns, name):
    """The 250 to the end of data came: delivered, once, even though the
    peer then closes without answering QUIT; replies with bare LF line
    ends are read as Postfix reads them (the CR is optional)."""
    if name == "250_then_close":
        fault = {"dot": _250_close}
    elif name == "bad_quit_reply":
        fault = {"quit": b"2x1 \x00" + b"z" * 8192}
    else:
        fault = {k: v.replace(b"\r\n", b"\n") for k, v in NORMAL.items()}
    with ScriptedPeer(fault, faulty=100) as peer:
        dns.add("remote.test", "MX", "10 mx1.remote.test.")
        dns.add("mx1.remote.test", "A", peer.addr)
        p = start(make_petrel, dns)
        mark = p.log_mark()
        with NoopSampler(p, 0.02) as sampler:
            submit(p)
            p.wait_log(r"to=<%s> .*attempts=1 dsn=2\.0\.0 status=sent "
                       r"\(250 2\.0\.0 ok: queued\)" % re.escape(RCPT),
                       start=mark, timeout=20)
            p.wait_queue_empty()
            if name == "bad_quit_reply":
                wait_until(lambda: "quit" in peer.conns[0].marks,
                           timeout=20, what="QUIT")
            time.sleep(2)           # past retry_initial: nothing more
        sampler.report(name)
        assert len(peer.bodies) == 1
        assert len(peer.conns) == 1
        assert metric(p.mport, "petrel_recipients_delivered_total") == 1
        assert metric(p.mport, "petrel_recipients_deferred_total") == 0
        assert not any("status=deferred" in l for l in p.log_lines[mark:])
        assert not peer.errors, peer.errors


def test_tls_handshake_silent(make_petrel, dns):
    """The peer offers STARTTLS, answers 220, then says nothing: the
    handshake times out after client_timeout_command and the same
    address is tried again at once without TLS (RFC 7435), which
    delivers; nothing is deferred."""
    def silent_after_220(c):
        c.send(b"220 2.0.0 go ahead\r\n")
        c.mark("handshake")
        c.hang()

    ehlo = NORMAL["ehlo"].replace(b"250 ENH", b"250-STARTTLS\r\n250 ENH")
    with ScriptedPeer({"ehlo": ehlo, "starttls": silent_after_220}) as peer:
        dns.add("remote.test", "MX", "10 mx1.remote.test.")
        dns.add("mx1.remote.test", "A", peer.addr)
        p = start(make_petrel, dns)
        mark = p.log_mark()
        with NoopSampler(p, (T_COMMAND + 1) / 100.0) as sampler:
            submit(p)
            line = p.wait_log(r"relay=\S+ TLS handshake failed, retrying "
                              r"without TLS: 451 4\.4\.2 conversation "
                              r"with \S+ timed out while performing the "
                              r"TLS handshake", start=mark,
                              timeout=T_COMMAND + SLACK + 20)
            print("\ntls_silent: %s" % line.string.split("remote: ")[1])
            p.wait_log(r"to=<%s> .*attempts=1 dsn=2\.0\.0 status=sent"
                       % re.escape(RCPT), start=mark, timeout=30)
        sampler.report("tls_handshake_silent")
        check_timeout(peer.conns[0], "handshake", T_COMMAND, "tls_silent")
        p.wait_queue_empty()
        assert len(peer.conns) == 2
        assert len(peer.accepted) == 1
        assert metric(p.mport, "petrel_recipients_delivered_total") == 1
        assert metric(p.mport, "petrel_recipients_deferred_total") == 0
        assert not peer.errors, peer.errors


def test_250_then_close_with_more_queued(make_petrel, dns):
    """Two messages on one connection; the peer says 250 to the first,
    then drops the connection at the next command: the first is sent
    (once), the second deferred, retried on a new connection and sent
    (once). Nothing is lost, nothing counted twice."""
    def slow_greeting(c):
        time.sleep(1)           # both messages are queued meanwhile
        c.send(NORMAL["greeting"])
        return SESSION_GOES_ON

    def ok_then_drop(c):
        c.send(NORMAL["dot"])
        c.mark("next")
        c.readline()            # RSET (or MAIL): no reply
        c.close()

    with ScriptedPeer({"greeting": slow_greeting,
                       "dot": ok_then_drop}) as peer:
        peer.dot_is_250 = True
        dns.add("remote.test", "MX", "10 mx1.remote.test.")
        dns.add("mx1.remote.test", "A", peer.addr)
        p = start(make_petrel, dns, "destination_concurrency 1\n")
        mark = p.log_mark()
        with NoopSampler(p, 0.04) as sampler:
            submit(p, b"Subject: one\r\n\r\n1\r\n")
            submit(p, b"Subject: two\r\n\r\n2\r\n")
            line = p.wait_log(r"to=<%s> .*attempts=1 dsn=4\.4\.2 "
                              r"status=deferred \(451 4\.4\.2 lost "
                              r"connection with \S+ while sending "
                              r"(RSET|MAIL FROM)" % re.escape(RCPT),
                              start=mark, timeout=30)
            print("\nmore_queued: %s" % line.string.split("status=", 1)[1])
            wait_until(lambda: len(peer.accepted) == 2, timeout=30,
                       what="both messages at the peer")
            p.wait_queue_empty()
        sampler.report("250_close_more_queued")
        sent = [l for l in p.log_lines[mark:] if "status=sent" in l]
        assert len(sent) == 2, sent
        assert sorted(m.split(b"\r\n")[-2] for m in peer.accepted) == \
            [b"1", b"2"]
        assert len(peer.conns) == 2
        assert metric(p.mport, "petrel_recipients_delivered_total") == 2
        assert metric(p.mport, "petrel_recipients_deferred_total") == 1
        assert not peer.errors, peer.errors


@pytest.mark.skipif(not LONG, reason="PETREL_LONG=1: about 40 s")
def test_every_reply_dribbled(make_petrel, dns):
    """Every reply at one octet a second, each within
    client_timeout_command: slow, but delivered once."""
    short = {
        "greeting": b"220 p\r\n", "ehlo": b"250 p\r\n", "mail": b"250 o\r\n",
        "rcpt": b"250 o\r\n", "data": b"354 g\r\n", "dot": b"250 o\r\n",
        "quit": b"221 b\r\n",
    }

    def dribbler(reply):
        return lambda c: c.dribble(reply) or SESSION_GOES_ON

    fault = {k: dribbler(v) for k, v in short.items()}
    with ScriptedPeer(fault, faulty=100) as peer:
        peer.dot_is_250 = True
        dns.add("remote.test", "MX", "10 mx1.remote.test.")
        dns.add("mx1.remote.test", "A", peer.addr)
        p = start(make_petrel, dns, "client_timeout_command 10s\n"
                  "client_timeout_data 10s\n")
        mark = p.log_mark()
        with NoopSampler(p, 0.5) as sampler:
            submit(p)
            p.wait_log(r"to=<%s> .*attempts=1 dsn=2\.\d\.\d status=sent"
                       % re.escape(RCPT), start=mark, timeout=120)
        sampler.report("dribble_all")
        assert len(peer.accepted) == 1


def test_connect_timeout(make_petrel, dns):
    """A peer whose accept queue is full drops the SYN: the connection
    attempt gives up after client_timeout_connect, deferred."""
    addr, lsock = _alloc_socket(25)
    fill = []
    try:
        lsock.listen(0)             # Linux: one pending connection at most
        for _ in range(3):
            f = socket.socket()
            f.setblocking(False)
            f.connect_ex((addr, 25))
            fill.append(f)
        time.sleep(0.2)
        dns.add("remote.test", "MX", "10 mx1.remote.test.")
        dns.add("mx1.remote.test", "A", addr)
        p = start(make_petrel, dns)
        mark = p.log_mark()
        with NoopSampler(p, (T_CONNECT + 1) / 100.0) as sampler:
            t0 = time.monotonic()
            submit(p)
            m = p.wait_log(r"to=<%s> relay=\S+ .*attempts=1 dsn=4\.4\.1 "
                           r"status=deferred \(451 4\.4\.1 connect to "
                           r"mx1\.remote\.test\[%s\]:25: "
                           % (re.escape(RCPT), re.escape(addr)),
                           start=mark, timeout=T_CONNECT + SLACK + 20)
            took = time.monotonic() - t0
        sampler.report("connect_timeout")
        print("\nconnect_timeout: %s; deferred after %.2fs (configured "
              "%ds)" % (m.string.split("status=", 1)[1], took, T_CONNECT))
        assert T_CONNECT - 0.5 <= took <= T_CONNECT + SLACK, took
        assert metric(p.mport, "petrel_recipients_delivered_total") == 0
    finally:
        for f in fill:
            f.close()
        lsock.close()


# ---------------------------------------------------------- DNS faults

# How remote.test's MX lookup breaks; "a_" ones break the A lookup of
# its MX host instead.
DNS_FAULTS = ("timeout", "garbage", "wrong_id", "truncated", "servfail",
              "a_garbage")


@pytest.mark.parametrize("mode", DNS_FAULTS)
def test_dns_fault_deferred(make_petrel, dns, mode):
    """The MX lookup fails temporarily: deferred with 4.4.3 (never the
    A record instead, never a bounce), retried, and delivered once the
    DNS server answers properly again. The lookup gives up within a
    bounded time (libunbound's own timeouts; no directive sets them)."""
    with ScriptedPeer({}) as peer:
        dns.add("remote.test", "MX", "10 mx1.remote.test.")
        dns.add("mx1.remote.test", "A", peer.addr)
        if mode == "a_garbage":
            dns.garble("mx1.remote.test", "garbage")
        elif mode in ("timeout", "servfail"):
            dns.fail("remote.test", mode)
        else:
            dns.garble("remote.test", mode)
        p = start(make_petrel, dns)
        mark = p.log_mark()
        t0 = time.monotonic()
        with NoopSampler(p, 0.04) as sampler:
            submit(p)
            p.wait_log(r"remote: destination=mx:remote\.test DNS lookup "
                       r"failed: 451 4\.4\.3 ", start=mark, timeout=60)
            took = time.monotonic() - t0
            line = p.wait_log(r"to=<%s> relay=\S+ .*attempts=1 "
                              r"dsn=4\.4\.3 status=deferred"
                              % re.escape(RCPT), start=mark, timeout=30)
            print("\ndns_%s: %s" % (mode,
                                    line.string.split("status=", 1)[1]))
            # Retried, and deferred again while the fault lasts.
            p.wait_log(r"to=<%s> relay=\S+ .*attempts=2 dsn=4\.4\.3 "
                       r"status=deferred" % re.escape(RCPT), start=mark,
                       timeout=60)
            assert peer.conns == []
            assert metric(p.mport, "petrel_recipients_delivered_total") == 0
            assert metric(p.mport, "petrel_recipients_bounced_total") == 0
            dns.unfail("remote.test")
            dns.ungarble("remote.test")
            dns.ungarble("mx1.remote.test")
            p.wait_log(r"to=<%s> .*dsn=2\.0\.0 status=sent"
                       % re.escape(RCPT), start=mark, timeout=90)
        sampler.report("dns_" + mode)
        print("\ndns_%s: deferred after %.1fs" % (mode, took))
        assert took < 20 * FACTOR, "DNS gave up after %.1fs" % took
        p.wait_queue_empty()
        assert len(peer.accepted) == 1
        assert metric(p.mport, "petrel_recipients_delivered_total") == 1
        assert metric(p.mport, "petrel_recipients_deferred_total") >= 2
        assert p.maildir_files(SENDER) == []


def test_mx_pointing_at_nothing(make_petrel, dns):
    """The MX host has no address at all (NXDOMAIN): a permanent
    failure, bounced with 5.4.4 as Postfix does ("Host or domain name
    not found"), without any connection."""
    dns.add("remote.test", "MX", "10 nowhere.remote.test.")
    p = start(make_petrel, dns)
    mark = p.log_mark()
    with NoopSampler(p, 0.01) as sampler:
        submit(p)
        p.wait_log(r"to=<%s> .*dsn=5\.4\.4 status=bounced \(550 5\.4\.4 "
                   r"remote\.test: no address for any mail exchanger\)"
                   % re.escape(RCPT), start=mark, timeout=30)
        wait_until(lambda: len(p.maildir_files(SENDER)) == 1, timeout=30,
                   what="the bounce")
        time.sleep(1)       # and nothing else happens
    sampler.report("mx_to_nothing")
    assert dns.count("nowhere.remote.test") >= 1
    assert metric(p.mport, "petrel_recipients_bounced_total") == 1
    assert metric(p.mport, "petrel_recipients_deferred_total") == 0
    # The one delivery is the bounce, to the sender's Maildir.
    assert metric(p.mport, "petrel_recipients_delivered_total") == 1
    assert not any("relay=mx" in l for l in p.log_lines[mark:])
