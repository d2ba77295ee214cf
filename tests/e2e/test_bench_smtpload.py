"""
test_bench_smtpload.py: the load generator of bench/ (bench/smtpload.c,
built as petrel-smtpload beside petrel) against a live Petrel.

Functional checks only, never timing: the output line (every key, in
order, in its format), the counts (sent, failed, connections =
ceil(messages / per-connection)), the messages as delivered (exactly the
requested size once Petrel's Return-Path and Received are taken off,
lines of at most 78 characters, none starting with ".", a distinct
Message-ID each) and the exit codes (0 all sent, 1 a refusal with the reply
on stderr, 2 usage error or -T timeout).

The binary: PETREL_SMTPLOAD, else petrel-smtpload in PETREL_BIN's
directory (make builds both into the same directory).
"""

import os
import re
import socket
import subprocess
import threading
import time

import pytest

import harness
from harness import split_delivered

SMTPLOAD = os.environ.get(
    "PETREL_SMTPLOAD",
    os.path.join(os.path.dirname(os.path.abspath(harness.PETREL_BIN)),
                 "petrel-smtpload"))
KEYS = ["sent", "failed", "connections", "seconds", "rate", "lat_p50",
        "lat_p90", "lat_p99", "lat_max"]
FORMATS = {"sent": r"\d+", "failed": r"\d+", "connections": r"\d+",
           "seconds": r"\d+\.\d{3}", "rate": r"\d+\.\d",
           "lat_p50": r"\d+\.\d{3}", "lat_p90": r"\d+\.\d{3}",
           "lat_p99": r"\d+\.\d{3}", "lat_max": r"\d+\.\d{3}"}
ALICE = "alice@example.test"
SENDER = "bench@load.test"


def run_load(*args, timeout=120):
    assert os.access(SMTPLOAD, os.X_OK), \
        "no petrel-smtpload at %s (make builds it; or set " \
        "PETREL_SMTPLOAD)" % SMTPLOAD
    r = subprocess.run([SMTPLOAD] + [str(a) for a in args],
                       capture_output=True, text=True, timeout=timeout)
    assert "Sanitizer" not in r.stderr and \
        "runtime error:" not in r.stderr, r.stderr
    return r


def parse_line(stdout):
    """The one output line as a dict; asserts the keys, order, formats."""
    lines = stdout.splitlines()
    assert len(lines) == 1, "want one line on stdout, got %r" % stdout
    pairs = [f.split("=", 1) for f in lines[0].split(" ")]
    assert all(len(p) == 2 for p in pairs), "not key=value: %r" % lines[0]
    assert [k for k, _ in pairs] == KEYS, \
        "keys %r, want %r" % ([k for k, _ in pairs], KEYS)
    for k, v in pairs:
        assert re.fullmatch(FORMATS[k], v), "%s=%r, want %s" % (
            k, v, FORMATS[k])
    d = {k: (int(v) if FORMATS[k] == r"\d+" else float(v)) for k, v in pairs}
    assert d["lat_p50"] <= d["lat_p90"] <= d["lat_p99"] <= d["lat_max"], d
    return d


def check_message(data, size):
    """A delivered file: Return-Path + Received, then the message of
    exactly `size` bytes as sent (the Maildir has LF for CRLF)."""
    rp, _received, rest = split_delivered(data)
    assert rp == b"Return-Path: <%s>\n" % SENDER.encode(), rp
    sent_len = len(rest) + rest.count(b"\n")
    assert sent_len == size, "message of %d bytes, want %d" % (sent_len,
                                                               size)
    lines = rest.split(b"\n")
    assert lines[-1] == b"", "does not end in a line break"
    for line in lines[:-1]:
        assert len(line) <= 78, "line of %d characters: %r" % (len(line),
                                                               line)
        assert not line.startswith(b"."), "line starts with '.': %r" % line
    m = re.search(rb"^Message-ID: (<[^>\n]+>)$", rest, re.M | re.I)
    assert m, "no Message-ID in %r" % rest[:400]
    return m.group(1)


def test_counts_sizes_and_message_ids(make_petrel):
    p = make_petrel()
    size = 1500
    r = run_load("-q", "-s", 10, "-m", 200, "-M", 7, "-l", size,
                 "-f", SENDER, "-t", ALICE, "%s:%d" % (p.host, p.port))
    assert r.returncode == 0, "exit %d, stderr %r" % (r.returncode,
                                                      r.stderr)
    d = parse_line(r.stdout)
    assert (d["sent"], d["failed"], d["connections"]) == (200, 0, 29), d
    assert d["seconds"] > 0 and d["rate"] > 0, d
    msgs = p.wait_delivered(ALICE, 200, timeout=120)
    ids = [check_message(m, size) for m in msgs]
    assert len(set(ids)) == 200, "%d distinct Message-IDs of 200" % len(
        set(ids))


def test_last_connection_carries_the_rest_and_odd_sizes(make_petrel):
    """-M larger than what is left, one session; sizes at the edges of the
    line filling (a single byte over the headers cannot be a line)."""
    p = make_petrel()
    target = "%s:%d" % (p.host, p.port)
    sizes = []
    for extra in (0, 1, 2, 81, 82, 83, 160, 161):
        base = run_load("-q", "-l", 1, "-f", SENDER, "-t", ALICE, target)
        m = re.search(r"-l: at least (\d+) bytes", base.stderr)
        assert base.returncode == 2 and m, base.stderr
        size = int(m.group(1)) + extra
        sizes.append(size)
        r = run_load("-q", "-m", 3, "-M", 2, "-l", size, "-f", SENDER,
                     "-t", ALICE, target)
        assert r.returncode == 0, (size, r.stderr)
        d = parse_line(r.stdout)
        assert (d["sent"], d["failed"], d["connections"]) == (3, 0, 2), d
    msgs = p.wait_delivered(ALICE, 3 * len(sizes), timeout=60)
    got = sorted(len(split_delivered(m)[2]) +
                 split_delivered(m)[2].count(b"\n") for m in msgs)
    assert got == sorted(s for s in sizes for _ in range(3)), got
    for m in msgs:
        check_message(m, len(split_delivered(m)[2]) +
                      split_delivered(m)[2].count(b"\n"))


def test_refused_recipient(make_petrel):
    """An unknown user of a local domain: every message fails (RSET keeps
    the connection for the next one), exit 1, the reply on stderr with
    the command it answered."""
    p = make_petrel()
    r = run_load("-q", "-s", 1, "-m", 5, "-M", 3, "-f", SENDER,
                 "-t", "nobody@example.test", "%s:%d" % (p.host, p.port))
    assert r.returncode == 1, "exit %d, stderr %r" % (r.returncode,
                                                      r.stderr)
    d = parse_line(r.stdout)
    assert (d["sent"], d["failed"], d["connections"]) == (0, 5, 2), d
    assert re.search(r"after RCPT TO:<nobody@example\.test>: 5\d\d ",
                     r.stderr), r.stderr
    assert p.all_maildir_files() == []


def test_connection_refused():
    port = harness.free_port()
    r = run_load("-q", "-s", 2, "-m", 4, "127.0.0.1:%d" % port)
    assert r.returncode == 1, r
    d = parse_line(r.stdout)
    assert (d["sent"], d["failed"]) == (0, 4), d
    assert "Connection refused" in r.stderr, r.stderr


def test_timeout_exits_2():
    """A listener that never greets: -T 1 gives up with exit 2."""
    with socket.socket() as ls:
        ls.bind(("127.0.0.1", 0))
        ls.listen(8)
        r = run_load("-q", "-T", 1, "127.0.0.1:%d" % ls.getsockname()[1])
    assert r.returncode == 2, r
    assert "timeout" in r.stderr, r.stderr
    d = parse_line(r.stdout)
    assert d["sent"] == 0, d


@pytest.mark.parametrize("args", [
    [],
    ["127.0.0.1:25", "127.0.0.1:26"],
    ["127.0.0.1"],
    ["127.0.0.1:0"],
    ["-x", "127.0.0.1:25"],
    ["-s", "0", "127.0.0.1:25"],
    ["-m", "ten", "127.0.0.1:25"],
    ["-M", "-1", "127.0.0.1:25"],
    ["-l", "10", "127.0.0.1:25"],
    ["-r", "0", "127.0.0.1:25"],
    ["-T", "0", "127.0.0.1:25"],
    ["-t", "a b@example.test", "127.0.0.1:25"],
    ["-f", "x" * 80 + "@example.test", "127.0.0.1:25"],
])
def test_usage_errors(args):
    r = run_load(*args)
    assert r.returncode == 2, "exit %d for %r: %r" % (r.returncode, args,
                                                      r.stderr)
    assert r.stdout == "", r.stdout
    assert "usage:" in r.stderr or "petrel-smtpload:" in r.stderr, r.stderr



def fake_transaction(f):
    """Answer EHLO, MAIL, RCPT, DATA and the message (to its dot)."""
    for reply in (b"250-fake\r\n250 OK\r\n", b"250 ok\r\n", b"250 ok\r\n",
                  b"354 go\r\n"):
        f.readline()
        f.write(reply)
        f.flush()
    while f.readline() not in (b".\r\n", b""):
        pass


def test_server_closes_while_waiting_for_the_slot():
    """-r 2, two sessions, two messages per connection. Message 0 goes at
    once on connection A, message 1 at 0.5 s on B; then A waits for
    message 2 (1.0 s) and B for message 3 (1.5 s), A first in the queue.
    Once B has had its first 250, a fake server sends A a 421 and closes
    it: message 2 fails, and B must still send message 3 (a session closed
    while it waits must leave the wait queue whole; a broken queue loses B
    and the run ends by -T, exit 2). B's last 250 comes with a 421 in the
    same write: the second reply a read brings is parsed too (the QUIT
    then gets a 421: an error, but no message lost)."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(8)
    ls.settimeout(30)
    b_done = threading.Event()

    def conn_a(c):
        with c:
            f = c.makefile("rwb")
            f.write(b"220 fake A\r\n")
            f.flush()
            fake_transaction(f)
            f.write(b"250 queued\r\n")
            f.flush()
            b_done.wait(30)
            time.sleep(0.2)  # order only: B back in the queue behind A
            f.write(b"421 4.3.2 going away\r\n")
            f.flush()

    def conn_b(c):
        with c:
            f = c.makefile("rwb")
            f.write(b"220 fake B\r\n")
            f.flush()
            fake_transaction(f)
            f.write(b"250 queued\r\n")
            f.flush()
            b_done.set()
            for reply in (b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n"):
                f.readline()
                f.write(reply)
                f.flush()
            while f.readline() not in (b".\r\n", b""):
                pass
            # A 421 in the same write as the 250: parsed, in state QUIT.
            f.write(b"250 queued\r\n421 4.3.2 B going away\r\n")
            f.flush()
            f.readline()

    def serve():
        threads = []
        for handler in (conn_a, conn_b):
            try:
                c, _ = ls.accept()
            except OSError:
                return
            t = threading.Thread(target=handler, args=(c,), daemon=True)
            t.start()
            threads.append(t)
        for t in threads:
            t.join(30)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        r = run_load("-q", "-s", 2, "-m", 4, "-M", 2, "-r", 2, "-T", 10,
                     "127.0.0.1:%d" % ls.getsockname()[1])
    finally:
        ls.close()
        t.join(30)
    assert r.returncode == 1, r
    d = parse_line(r.stdout)
    assert (d["sent"], d["failed"], d["connections"]) == (3, 1, 2), d
    assert "after (message and final \".\"): 421 4.3.2 going away" in \
        r.stderr, r.stderr
    assert "2 errors in all" in r.stderr, r.stderr
