"""Session limits a hostile or clumsy client runs into: replies it never
reads, lines past every limit followed by pipelined commands, recipients
over the limit, junk commands, deadlines after a refused message, running
out of file descriptors, and a client that half-closes after its last
command. Each test fails on the behaviour it guards against (seen before
the fixes went in)."""
import os
import socket
import threading
import time

import pytest

from harness import cpu_ticks, rss_kb, wait_until

pytestmark = pytest.mark.timeout(120)


def test_unread_replies_do_not_grow_memory(make_petrel):
    """A client that pipelines forever and never reads: the server stops
    reading it once 64 KiB of replies wait (RFC 2920 5), so memory stays
    flat; every command still gets its reply, in order, once it reads."""
    p = make_petrel(extra_conf="max_recipients 1")
    n = 300000
    line = b"RCPT TO:<alice@example.test>\r\n"
    s = socket.socket()
    # Small fixed buffers: the kernel must not absorb what we test.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    s.settimeout(60)
    s.connect((p.host, p.port))
    f = s.makefile("rb")
    assert f.readline().startswith(b"220")
    s.sendall(b"EHLO client.test\r\n")
    while not f.readline().startswith(b"250 "):
        pass
    s.sendall(b"MAIL FROM:<a@remote.test>\r\n")
    assert f.readline().startswith(b"250")
    base = rss_kb(p.proc.pid)

    sent = [0]

    def sender():
        chunk = line * 1000
        for _ in range(n // 1000):
            s.sendall(chunk)
            sent[0] += 1000

    t = threading.Thread(target=sender, daemon=True)
    t.start()
    # Without the bound the server would read all 9 MB and queue 11 MB of
    # replies; with it, the sender blocks long before.
    wait_until(lambda: not t.is_alive() or sent[0] > 0, timeout=30,
               what="the sender to start")
    t.join(timeout=5)
    assert t.is_alive(), "the server read %d commands without the client " \
        "reading one reply" % n
    grown = rss_kb(p.proc.pid) - base
    assert grown < 16 * 1024, "server RSS grew by %d kB" % grown
    # Now read: every command is answered, in order, none lost.
    got = {b"250": 0, b"452": 0}
    for i in range(n):
        r = f.readline()
        code = r[:3]
        assert code in got, "reply %d: %r" % (i, r)
        got[code] += 1
    t.join(timeout=30)
    assert got == {b"250": 1, b"452": n - 1}
    s.sendall(b"QUIT\r\n")
    assert f.readline().startswith(b"221")
    s.close()


def test_long_line_then_pipelined_commands(petrel):
    """An over-long line costs one 500; the commands after it are still
    read and answered (the over-long line arrives in two parts)."""
    with petrel.raw() as c:
        c.read_greeting()
        c.ehlo()
        c.send(b"X" * 12000)
        time.sleep(0.3)     # let the server read the first part alone
        c.send(b"X" * 400 + b"\r\nNOOP\r\nMAIL FROM:<a@remote.test>\r\n"
               b"RSET\r\n")
        c.expect(500, "5.5.2")
        c.expect(250, "2.0.0")
        c.expect(250, "2.1.0")
        c.expect(250, "2.0.0")
        c.send(b"NOOP\r\n")
        c.expect(250, "2.0.0")


def test_excess_recipients_are_not_errors(make_petrel):
    """RFC 5321 4.5.3.1.10: a client must be able to send more recipients
    than the limit and get 452 for the excess; that is not an error that
    ends the session (Postfix: smtpd_recipient_overshoot_limit)."""
    users = {"u%d@example.test" % i: "" for i in range(10)}
    p = make_petrel(users=users,
                    extra_conf="max_recipients 5\nmax_errors 3")
    with p.raw() as c:
        c.read_greeting()
        c.ehlo()
        c.send(b"MAIL FROM:<a@remote.test>\r\n" +
               b"".join(b"RCPT TO:<u%d@example.test>\r\n" % i
                        for i in range(10)) + b"DATA\r\n")
        c.expect(250, "2.1.0")
        for i in range(5):
            c.expect(250, "2.1.5")
        for i in range(5):
            c.expect(452, "4.5.3")
        c.expect(354)
        c.send(b"Subject: five\r\n\r\nx\r\n.\r\n")
        c.expect(250, "2.0.0")
    for i in range(5):
        p.wait_delivered("u%d@example.test" % i, 1)
    assert p.maildir_messages("u5@example.test") == []


def test_junk_commands_end_the_session(make_petrel):
    """After 100 NOOP/RSET/VRFY/HELP/EXPN without a message, each one
    counts as an error (Postfix's smtpd_junk_command_limit), so a client
    cannot hold a connection slot forever by sending NOOP."""
    p = make_petrel(extra_conf="max_errors 10")
    with p.raw() as c:
        c.read_greeting()
        c.ehlo()
        for i in range(110):
            c.send(b"NOOP\r\n")
            c.expect(250, "2.0.0")
        c.send(b"NOOP\r\n")
        c.expect(421, "4.7.0")
        c.wait_closed()


def test_delivering_resets_the_junk_count(make_petrel):
    p = make_petrel(extra_conf="max_errors 10")
    with p.raw() as c:
        c.read_greeting()
        c.ehlo()
        for round_ in range(3):
            for i in range(100):
                c.send(b"RSET\r\n")
                c.expect(250, "2.0.0")
            c.send(b"MAIL FROM:<a@remote.test>\r\n"
                   b"RCPT TO:<alice@example.test>\r\nDATA\r\n")
            c.expect(250)
            c.expect(250)
            c.expect(354)
            c.send(b"Subject: r%d\r\n\r\nx\r\n.\r\n" % round_)
            c.expect(250, "2.0.0")
        c.send(b"NOOP\r\n")
        c.expect(250, "2.0.0")
    p.wait_delivered("alice@example.test", 3)


def test_command_deadline_after_refused_message(make_petrel):
    """After a message refused at the final dot the client has a full
    command deadline again, not what was left of the DATA deadline."""
    p = make_petrel(extra_conf="timeout_data 3s\ntimeout_command 60s")
    with p.raw() as c:
        c.read_greeting()
        c.ehlo()
        c.send(b"MAIL FROM:<a@remote.test>\r\n")
        c.expect(250)
        c.send(b"RCPT TO:<alice@example.test>\r\n")
        c.expect(250)
        c.send(b"DATA\r\n")
        c.expect(354)
        c.send(b"Subject: slow\r\n\r\n")
        time.sleep(2)
        c.send(b"a NUL \x00 here\r\n.\r\n")
        c.expect(550, "5.6.0")
        time.sleep(2.5)     # past the DATA deadline, well within 60 s
        c.send(b"NOOP\r\n")
        c.expect(250, "2.0.0")


def test_out_of_descriptors_does_not_spin(make_petrel):
    """EMFILE on accept: the pending connection stays in the backlog and
    the listening socket stays readable; the server must pause accepting,
    not spin at 100% CPU writing a log line per attempt. (It now pauses
    before EMFILE, while a reserve of descriptors is left: the stricter
    test_exhaustion.py test_out_of_descriptors_clients_wait_sessions_complete
    also checks that the sessions it has can still take a message.)"""
    p = make_petrel(wrapper=["/usr/bin/prlimit", "--nofile=64:64", "--"],
                    extra_conf="max_connections 1000\n"
                               "max_connections_per_ip 1000")
    keep = p.raw()
    keep.read_greeting()
    socks = []
    try:
        for _ in range(80):
            socks.append(socket.create_connection((p.host, p.port),
                                                  timeout=10))
        p.wait_log(r"smtp: (descriptors low, not accepting|accept failed "
                   r".*Too many open files)")
        before_ticks = cpu_ticks(p.proc.pid)
        before_lines = len(p.log_lines)
        time.sleep(2)
        ticks = cpu_ticks(p.proc.pid) - before_ticks
        lines = len(p.log_lines) - before_lines
        hz = os.sysconf("SC_CLK_TCK")
        assert ticks < hz // 2, "%d CPU ticks in 2 s while out of " \
            "descriptors" % ticks
        assert lines < 20, "%d log lines in 2 s" % lines
        # The sessions it has are still served.
        keep.ehlo()
        keep.send(b"NOOP\r\n")
        keep.expect(250)
    finally:
        for s in socks:
            s.close()
        keep.close()
    # Once descriptors are free again, new clients get in.
    with p.raw() as c:
        c.read_greeting()


def test_half_close_after_quit_gets_every_reply(petrel):
    """A client that sends its whole transaction and QUIT, then closes its
    sending side, still reads every reply, the 250 included."""
    s = socket.create_connection((petrel.host, petrel.port), timeout=30)
    f = s.makefile("rb")
    assert f.readline().startswith(b"220")
    s.sendall(b"EHLO client.test\r\n")
    while not f.readline().startswith(b"250 "):
        pass
    s.sendall(b"MAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.test>\r\n"
              b"DATA\r\n")
    assert f.readline().startswith(b"250")
    assert f.readline().startswith(b"250")
    assert f.readline().startswith(b"354")
    s.sendall(b"Subject: half\r\n\r\nbody\r\n.\r\nQUIT\r\n")
    s.shutdown(socket.SHUT_WR)
    r = f.readline()
    assert r.startswith(b"250 2.0.0 Ok: queued as "), r
    assert f.readline().startswith(b"221")
    assert f.readline() == b""
    s.close()
    petrel.wait_delivered("alice@example.test", 1)
