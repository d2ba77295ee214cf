"""
test_outbound_review.py: regression tests for faults found by reviewing
the outbound queue manager (src/delivery/scheduler.c, remote.c). Each test
failed before its fix; the docstring names the fault.

Same set-up as test_outbound.py (its helpers are imported): a DNS server
on loopback, fake peers on random 127.X.Y.Z:25, short retries.
"""

import os
import re
import struct
import threading
import time

from harness import wait_until
from queuefile import records
from smtppeer import SMTPPeer
from test_outbound import SENDER, dns, mx, send, start  # noqa: F401


class OneAtATime(SMTPPeer):
    """A peer that serves one connection per client at a time, as many
    real servers do: the others are greeted with 421."""

    def __init__(self, *args, **kw):
        self._holder = None
        self._hlock = threading.Lock()
        super().__init__(*args, **kw)

    @property
    def greeting(self):
        name = threading.current_thread().name
        if not name.startswith("smtppeer-conn-"):
            return "220 peer.test ESMTP"
        cid = int(name.rsplit("-", 1)[1])
        with self._hlock:
            if self._holder is None:
                self._holder = cid
            if self._holder == cid:
                return "220 peer.test ESMTP"
        return "421 4.7.0 too many connections from your address"

    @greeting.setter
    def greeting(self, value):
        pass

    def _session_done(self, sess):
        super()._session_done(sess)
        with self._hlock:
            if self._holder == sess.id:
                self._holder = None


def test_failed_double_bounce_not_reported_again(make_petrel, dns):
    """A double bounce (mail from <> sent to the double_bounce address)
    that fails was itself reported to the double_bounce address, from
    <>, and so on for ever: a report storm. It is dropped with a log
    line."""
    with SMTPPeer() as peer:
        peer.rcpt_default_reply = "550 5.1.1 no such user"
        mx(dns, "remote.test", (10, "mx1.remote.test", peer.addr))
        p = start(make_petrel, dns, "double_bounce postmaster@remote.test\n")
        send(p, ["bad@remote.test"], b"Subject: dbl\r\n\r\nhi\r\n",
             sender="")
        p.wait_log(r"to=<postmaster@remote.test>.*status=dropped "
                   r"\(undeliverable mail from <>: a failed double "
                   r"bounce\)")
        p.wait_queue_empty()
        # Give a storm time to show itself.
        time.sleep(2)
        log = "\n".join(p.log_lines)
        assert len(re.findall(r"report=failure", log)) == 1
        rcpts = [c for _cid, c in peer.commands
                 if c.upper().startswith("RCPT")]
        assert len(rcpts) == 2, rcpts   # bad@, then postmaster@ once


def test_sigterm_records_finished_groups(make_petrel, dns):
    """One message for two destinations: the fast one has it, the slow
    one is still receiving when SIGTERM comes. The shutdown threw away
    the whole batch's results, the fast destination's included, so the
    next start sent it there a second time."""
    with SMTPPeer() as fast, SMTPPeer() as slow:
        slow.delay_reply = {"data": 30}
        mx(dns, "fast.test", (10, "mx.fast.test", fast.addr))
        mx(dns, "slow.test", (10, "mx.slow.test", slow.addr))
        p = start(make_petrel, dns, "client_timeout_data 60s\n")
        send(p, ["a@fast.test", "b@slow.test"],
             b"Subject: two\r\n\r\nhi\r\n")
        fast.wait_messages(1)
        p.wait_log(r"remote: transaction queue=\S+ relay=mx.fast.test\S* .*accepted=1/1")
        slow.wait_for(lambda pp: any(c.upper().startswith("DATA")
                                     for _cid, c in pp.commands),
                      what="DATA at the slow peer")
        p.stop()
        slow.delay_reply = 0.0
        p.start()
        slow.wait_messages(1)
        p.wait_queue_empty()
        assert len(fast.messages) == 1, [m.rcpts for m in fast.messages]


def test_idle_connection_gives_up_its_slot(make_petrel, dns):
    """max_outbound_connections reached by idle connections: a
    destination waiting for a slot waited until they said QUIT on their
    own after 2 s of idleness, so one message for six domains with one
    slot took over 10 s. An idle connection now gives its slot up at
    once: when it goes idle while another destination waits, and when a
    destination starts waiting while it is idle."""
    peers = [SMTPPeer() for _ in range(6)]
    for peer in peers:
        peer.start()
    try:
        for i, peer in enumerate(peers):
            mx(dns, "d%d.test" % i, (10, "mx.d%d.test" % i, peer.addr))
        p = start(make_petrel, dns, "max_outbound_connections 1\n")
        t0 = time.monotonic()
        send(p, ["u@d%d.test" % i for i in range(6)],
             b"Subject: six\r\n\r\nhi\r\n")
        p.wait_queue_empty()
        took = time.monotonic() - t0
        assert took < 5, "six destinations took %.1f s" % took
        assert all(len(peer.messages) == 1 for peer in peers)
        # Now one connection is idle (2 s kept); another domain's mail
        # must not wait for it to time out.
        t0 = time.monotonic()
        send(p, ["v@d0.test"], b"Subject: next\r\n\r\nhi\r\n")
        peers[0].wait_messages(2)
        took = time.monotonic() - t0
        assert took < 1.5, "waited %.1f s for the idle slot" % took
        p.wait_queue_empty()
    finally:
        for peer in peers:
            peer.stop()


def test_parallel_failures_one_backoff_step(make_petrel, dns):
    """Five messages open five connections at once, and every one gets
    a 421 greeting: one outage. Each failing connection counted as a
    failure of its own, so the destination backed off for 2, 4, 8, 16,
    32 s at once (with the default 20 connections, straight to
    retry_max) instead of retry_initial."""
    with SMTPPeer() as peer:
        peer.greeting = "421 4.3.2 go away"
        peer.delay_reply = {"greeting": 0.5}
        mx(dns, "remote.test", (10, "mx1.remote.test", peer.addr))
        p = start(make_petrel, dns, "retry_initial 2s\nretry_max 60s\n")
        with p.smtp() as s:
            for i in range(5):
                s.sendmail(SENDER, ["bob@remote.test"],
                           b"Subject: %d\r\n\r\nhi\r\n" % i)
        p.wait_log(r"to=<bob@remote.test>.*status=deferred")
        wait_until(lambda: len(re.findall(
            r"to=<bob@remote.test>.*status=deferred",
            "\n".join(p.log_lines))) >= 5, what="5 deferrals")
        assert peer.connections >= 2    # in parallel, as meant
        steps = re.findall(r"destination=mx:remote.test backs off for "
                           r"(\d+)s after (\d+) failures",
                           "\n".join(p.log_lines))
        assert steps == [("2", "1")], steps


def test_connection_limit_at_peer_does_not_stall(make_petrel, dns):
    """A peer that takes one connection per client: six messages open
    six connections, five get 421 at once, and each of those backed the
    whole destination off and deferred everything waiting, the mail for
    the one good connection included; every retry did the same, so the
    queue never drained (2 of 6 in 40 s, 43 connections). A failure
    while other connections go on now only closes that one."""
    with OneAtATime() as peer:
        peer.delay_reply = {"ehlo": 0.2}
        mx(dns, "remote.test", (10, "mx1.remote.test", peer.addr))
        p = start(make_petrel, dns, "retry_initial 2s\nretry_max 4s\n")
        with p.smtp() as s:
            for i in range(6):
                s.sendmail(SENDER, ["bob@remote.test"],
                           b"Subject: %d\r\n\r\nhi\r\n" % i)
        peer.wait_messages(6, timeout=10)
        p.wait_queue_empty()
        assert len(peer.messages) == 6
        assert "status=deferred" not in "\n".join(p.log_lines)


def rcpt_states(p, qid):
    """Status of each recipient (0 PENDING, 1 DELIVERED, 2 FAILED) in
    the queue file, from its STATE records (docs/queue-format.md)."""
    return [struct.unpack(">I", payload[4:8])[0]
            for typ, payload in records(os.path.join(p.spool, "queue", qid))
            if typ == 0x31]


def test_kill9_keeps_finished_part(make_petrel, dns):
    """One message for two destinations: the fast one has it, the slow
    one takes its time. The fast one's result stayed in memory until the
    slow one ended, so a kill -9 meanwhile sent the message to the fast
    destination again, long after that attempt had finished. Now it is
    in the queue file as soon as it is known."""
    with SMTPPeer() as fast, SMTPPeer() as slow:
        slow.delay_reply = {"data": 30}
        mx(dns, "fast.test", (10, "mx.fast.test", fast.addr))
        mx(dns, "slow.test", (10, "mx.slow.test", slow.addr))
        p = start(make_petrel, dns, "client_timeout_data 60s\n")
        send(p, ["a@fast.test", "b@slow.test"],
             b"Subject: two\r\n\r\nhi\r\n")
        fast.wait_messages(1)
        [qid] = p.queue_ids()
        wait_until(lambda: rcpt_states(p, qid) == [1, 0], timeout=10,
                   what="a@fast.test DELIVERED in the queue file "
                   "while b@slow.test is still being sent")
        p.kill()
        slow.delay_reply = 0.0
        p.start()
        slow.wait_messages(1)
        p.wait_queue_empty()
        assert len(fast.messages) == 1, [m.rcpts for m in fast.messages]


def test_kill9_keeps_local_delivery(make_petrel, dns):
    """The same for a local recipient beside a slow remote one: the
    Maildir delivery was recorded only when the remote part ended, so a
    kill -9 meanwhile delivered it to the Maildir a second time."""
    with SMTPPeer() as slow:
        slow.delay_reply = {"data": 30}
        mx(dns, "slow.test", (10, "mx.slow.test", slow.addr))
        p = start(make_petrel, dns, "client_timeout_data 60s\n")
        send(p, ["bob@example.test", "b@slow.test"],
             b"Subject: two\r\n\r\nhi\r\n")
        wait_until(lambda: p.maildir_files("bob@example.test"),
                   what="the local delivery")
        [qid] = p.queue_ids()
        wait_until(lambda: rcpt_states(p, qid) == [1, 0], timeout=10,
                   what="bob@ DELIVERED in the queue file while "
                   "b@slow.test is still being sent")
        p.kill()
        slow.delay_reply = 0.0
        p.start()
        slow.wait_messages(1)
        p.wait_queue_empty()
        assert len(p.maildir_files("bob@example.test")) == 1
