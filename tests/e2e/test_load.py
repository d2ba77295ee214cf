"""
test_load.py: 2000 concurrent sessions, each completing a transaction.

One thread (asyncio) holds 2000 client sockets: every session connects and
reads its greeting, then all wait until the 2000 are connected at once, then
each sends EHLO, MAIL, RCPT, DATA and its message. Every message must get
its 250 and be delivered. The test raises its own RLIMIT_NOFILE (the daemon
inherits it, and raises its own limit as far as the hard limit allows) and
sets max_connections high enough. Runs in make check: a few seconds when
all is well; the client gives up after 90 s and the delivery wait after
90 s more (pytest-timeout 180 s). PETREL_LOAD_SESSIONS changes the count.
"""

import asyncio
import os
import re
import resource
import subprocess
import time

import pytest

from harness import expected_maildir_bytes

SESSIONS = int(os.environ.get("PETREL_LOAD_SESSIONS", "2000"))
SENDER = "load@example.org"
ALICE = "alice@example.test"
HELO = "client.example.test"


def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < want:
        pytest.skip("RLIMIT_NOFILE hard limit %d < %d" % (hard, want))
    if soft == resource.RLIM_INFINITY or soft >= want:
        return soft, hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return soft, hard


def make_message(i):
    return ("From: <%s>\r\nTo: <%s>\r\nSubject: load %d\r\n"
            "Message-ID: <load-%d@load.test>\r\n\r\nmessage number %d\r\n"
            % (SENDER, ALICE, i, i, i)).encode()


def listen_backlog(port):
    """The accept queue length of the listener on port (ss's Send-Q), or
    None if ss cannot tell."""
    try:
        out = subprocess.run(["ss", "-ltnH", "sport = :%d" % port],
                             capture_output=True, text=True,
                             timeout=10).stdout.split()
        return int(out[2])
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return None


async def read_reply(reader):
    lines = []
    while True:
        line = await reader.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("closed, after %r" % lines)
        lines.append(line)
        if line[3:4] != b"-":
            return int(line[:3]), lines


async def expect(reader, code):
    c, lines = await read_reply(reader)
    if c != code:
        raise AssertionError("expected %d, got %r" % (code, lines))
    return lines


async def session(i, host, port, connected, go, results):
    reader, writer = await asyncio.open_connection(host, port)
    try:
        await expect(reader, 220)
        connected()
        await go.wait()
        writer.write(b"EHLO %s\r\n" % HELO.encode())
        await expect(reader, 250)
        writer.write(b"MAIL FROM:<%s>\r\n" % SENDER.encode())
        await expect(reader, 250)
        writer.write(b"RCPT TO:<%s>\r\n" % ALICE.encode())
        await expect(reader, 250)
        writer.write(b"DATA\r\n")
        await expect(reader, 354)
        writer.write(make_message(i) + b".\r\n")
        lines = await expect(reader, 250)
        m = re.search(rb"queued as (\S+)", lines[-1])
        results[i] = m.group(1).decode()
        writer.write(b"QUIT\r\n")
        await expect(reader, 221)
    finally:
        writer.close()


async def run_all(host, port, n, deadline):
    results = {}
    count = [0]
    go = asyncio.Event()

    def connected():
        count[0] += 1
        if count[0] == n:
            go.set()

    async def guarded(i):
        try:
            await session(i, host, port, connected, go, results)
        except Exception as e:      # collected and reported below
            return "session %d: %r" % (i, e)
        return None

    tasks = [asyncio.ensure_future(guarded(i)) for i in range(n)]
    done, pending = await asyncio.wait(tasks, timeout=deadline)
    for t in pending:
        t.cancel()
    errors = [t.result() for t in done if t.result()]
    return results, count[0], errors, len(pending)


@pytest.mark.timeout(180)
def test_2000_concurrent_sessions(make_petrel):
    raise_nofile(SESSIONS * 2 + 1024)
    p = make_petrel(extra_conf="max_connections %d\n"
                               "max_connections_per_ip %d\n"
                               "timeout_command 120s\n"
                               % (SESSIONS + 100, SESSIONS + 100))
    t0 = time.monotonic()
    results, peak, errors, stuck = asyncio.run(
        run_all(p.host, p.port, SESSIONS, deadline=90))
    took = time.monotonic() - t0
    print("%d sessions: %d connected at once, %d queued, %.1fs"
          % (SESSIONS, peak, len(results), took))
    assert not errors, "%d sessions failed, e.g. %s" % (len(errors),
                                                        errors[:5])
    backlog = listen_backlog(p.port)
    assert peak == SESSIONS, (
        "only %d of %d sessions got their greeting within the deadline; "
        "the daemon's listen backlog is %s (a backlog far below the burst "
        "overflows the accept queue: the kernel drops the handshake ACKs "
        "and the clients wait for a greeting that comes late or never)"
        % (peak, SESSIONS, backlog))
    assert stuck == 0, "%d sessions did not finish in time" % stuck
    assert len(results) == SESSIONS
    assert len(set(results.values())) == SESSIONS, "duplicate queue ids"
    p.wait_delivered(ALICE, SESSIONS, timeout=90)
    by_mid = {}
    for path in p.maildir_files(ALICE):
        with open(path, "rb") as f:
            data = f.read()
        m = re.search(rb"(?m)^Message-ID: <load-(\d+)@load.test>", data)
        assert m, data[:300]
        i = int(m.group(1))
        assert i not in by_mid, "message %d delivered twice" % i
        by_mid[i] = data
    assert sorted(by_mid) == list(range(SESSIONS))
    for i, data in by_mid.items():
        expected_maildir_bytes(SENDER, make_message(i), data,
                               queue_id=results[i])
    assert p.alive()
