"""
test_robustness.py: hostile and broken clients. Garbage, NUL bytes and
huge lines get 500 and the session goes on; a client that disappears in
the middle of DATA leaves nothing behind; 200 clients at once all get
their message delivered. After each, the daemon is alive (the harness
checks it at teardown) and serves the next client.
"""

import random
import socket
import struct
import threading

import pytest

from harness import (CLIENT_HELO, expected_maildir_bytes, maildir_form,
                     split_delivered, wait_until)

pytestmark = pytest.mark.timeout(300)


def deliver_one(p, rcpt="alice@example.test", subject=b"after"):
    msg = b"Subject: " + subject + b"\r\n\r\nstill working\r\n"
    with p.raw() as c:
        c.read_greeting()
        c.ehlo()
        c.send(b"MAIL FROM:<s@remote.test>\r\n")
        c.expect(250, "2.1.0")
        c.send(b"RCPT TO:<%s>\r\n" % rcpt.encode())
        c.expect(250, "2.1.5")
        c.send(b"DATA\r\n")
        c.expect(354)
        c.send(msg + b".\r\n")
        c.expect(250, "2.0.0")
    return msg


def test_garbage_lines(petrel):
    rnd = random.Random(5321)
    with petrel.raw() as c:
        c.read_greeting()
        c.ehlo()
        for _ in range(15):
            n = rnd.randint(1, 300)
            junk = bytes(rnd.choice(range(0x80, 0x100)) for _ in range(n))
            junk = b"\xff" + junk.replace(b"\r", b"").replace(b"\n", b"")
            c.send(junk + b"\r\n")
            c.expect(500, "5.5.2")
        c.send(b"NOOP\r\n")
        c.expect(250, "2.0.0")
    msg = deliver_one(petrel)
    [f] = petrel.wait_delivered("alice@example.test", 1)
    expected_maildir_bytes("s@remote.test", msg, f)


def test_garbage_blast_then_close(petrel):
    rnd = random.Random(2920)
    blob = bytes(rnd.getrandbits(8) for _ in range(1 << 20))
    with petrel.raw() as c:
        c.read_greeting()
        try:
            c.send(blob)
        except OSError:
            pass         # the server may hang up first (too many errors)
    # Random bytes before the greeting too (an early talker).
    s = socket.create_connection((petrel.host, petrel.port), timeout=10)
    try:
        s.sendall(blob[:65536])
    except OSError:
        pass
    s.close()
    msg = deliver_one(petrel)
    [f] = petrel.wait_delivered("alice@example.test", 1)
    expected_maildir_bytes("s@remote.test", msg, f)
    assert petrel.queue_ids("incoming") == []


def test_nul_bytes_in_commands(petrel):
    with petrel.raw() as c:
        c.read_greeting()
        c.send(b"EH\x00LO x.test\r\n")
        c.expect(500, "5.5.2")
        c.ehlo()
        for line in (b"NO\x00OP", b"\x00", b"\x00\x00\x00\x00",
                     b"MAIL FROM:<a\x00@remote.test>",
                     b"MAIL FROM:<a@remote.test>\x00"):
            c.send(line + b"\r\n")
            c.expect(500, "5.5.2")
        c.send(b"MAIL FROM:<a@remote.test>\r\n")
        c.expect(250, "2.1.0")
        c.send(b"RCPT TO:<alice\x00@example.test>\r\n")
        c.expect(500, "5.5.2")
        c.send(b"RCPT TO:<alice@example.test>\r\n")
        c.expect(250, "2.1.5")
        c.send(b"NOOP\r\n")
        c.expect(250, "2.0.0")


@pytest.mark.parametrize("size", [100 * 1024, 1024 * 1024])
def test_huge_command_line(petrel, size):
    with petrel.raw() as c:
        c.read_greeting()
        c.ehlo()
        c.send(b"NOOP " + b"x" * size + b"\r\n")
        c.expect(500, "5.5.2")
        c.send(b"MAIL FROM:<a@remote.test> " + b"y" * size + b"\r\n")
        c.expect(500, "5.5.2")
        # The session continues and is in sync.
        c.send(b"NOOP\r\n")
        c.expect(250, "2.0.0")
        c.send(b"MAIL FROM:<a@remote.test>\r\n")
        c.expect(250, "2.1.0")


def test_huge_line_without_crlf_then_close(petrel):
    """An endless line: the server must not buffer it all."""
    with petrel.raw() as c:
        c.read_greeting()
        chunk = b"z" * 65536
        sent = 0
        try:
            while sent < 8 * 1024 * 1024:
                c.send(chunk)
                sent += len(chunk)
        except OSError:
            pass        # hung up on us: fine
    deliver_one(petrel)
    petrel.wait_delivered("alice@example.test", 1)


@pytest.mark.parametrize("how", ["close", "reset"])
@pytest.mark.parametrize("where", ["header", "body", "after-dot-cr"])
def test_client_vanishes_mid_data(petrel, how, where):
    partial = {
        "header": b"Subject: vanish\r\nX-Long: ",
        "body": b"Subject: vanish\r\n\r\n" + b"line\r\n" * 20000,
        "after-dot-cr": b"Subject: vanish\r\n\r\nbody\r\n.\r",
    }[where]
    c = petrel.raw()
    c.read_greeting()
    c.ehlo()
    c.send(b"MAIL FROM:<s@remote.test>\r\nRCPT TO:<alice@example.test>\r\n"
           b"RCPT TO:<bob@example.test>\r\nDATA\r\n")
    c.expect(250, "2.1.0")
    c.expect(250, "2.1.5")
    c.expect(250, "2.1.5")
    c.expect(354)
    c.send(partial)
    if how == "reset":
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                          struct.pack("ii", 1, 0))
    c.close()
    # The server notices, discards the incoming file and serves others.
    wait_until(lambda: petrel.queue_ids("incoming") == [], timeout=20,
               what="spool/incoming to be cleaned")
    msg = deliver_one(petrel, rcpt="bob@example.test")
    [f] = petrel.wait_delivered("bob@example.test", 1)
    expected_maildir_bytes("s@remote.test", msg, f)
    assert petrel.maildir_messages("alice@example.test") == []
    assert petrel.queue_ids() == []
    assert petrel.queue_ids("incoming") == []


@pytest.mark.timeout(300)
def test_200_concurrent_sessions(make_petrel):
    n = 200
    users = {"u%d@example.test" % i: "" for i in range(10)}
    p = make_petrel(users=users,
                    extra_conf="max_connections_per_ip %d" % (n + 10))
    barrier = threading.Barrier(n, timeout=60)
    errors = []
    ids = [None] * n

    def message(i):
        return (b"Subject: concurrent %d\r\nX-Seq: %d\r\n\r\n" % (i, i) +
                (b"client %d line\r\n" % i) * (1 + i % 50))

    def client(i):
        try:
            c = p.raw(timeout=120)
            try:
                c.read_greeting()
                barrier.wait()
                c.send("EHLO %s\r\n" % CLIENT_HELO)
                c.expect(250)
                c.send(b"MAIL FROM:<c%d@remote.test>\r\n"
                       b"RCPT TO:<u%d@example.test>\r\nDATA\r\n"
                       % (i, i % 10))
                c.expect(250, "2.1.0")
                c.expect(250, "2.1.5")
                c.expect(354)
                c.send(message(i) + b".\r\n")
                lines = c.expect(250, "2.0.0")
                ids[i] = lines[-1].split()[-1]
                c.send(b"QUIT\r\n")
                c.expect(221)
            finally:
                c.close()
        except BaseException as e:  # report every failure, not the first
            errors.append((i, repr(e)))
            try:
                barrier.abort()
            except Exception:
                pass

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=200)
    assert not any(t.is_alive() for t in threads), "clients hung"
    assert not errors, errors[:10]
    assert len(set(ids)) == n, "queue IDs are not unique"
    wait_until(lambda: len(p.all_maildir_files()) >= n, timeout=120,
               what="%d deliveries" % n)
    p.wait_queue_empty(timeout=60)
    assert len(p.all_maildir_files()) == n
    for u in range(10):
        got = sorted(split_delivered(f)[2]
                     for f in p.maildir_messages("u%d@example.test" % u))
        want = sorted(maildir_form(message(i)) for i in range(u, n, 10))
        assert got == want, "u%d" % u
    assert p.queue_ids("incoming") == []
