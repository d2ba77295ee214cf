"""
test_outbound_review.py: regression tests for faults found by reviewing
the outbound queue manager (src/delivery/scheduler.c, remote.c). Each test
failed before its fix; the docstring names the fault.

Same set-up as test_outbound.py (its helpers are imported): a DNS server
on loopback, fake peers on random 127.X.Y.Z:25, short retries.
"""

import re
import time

from test_outbound import SENDER, dns, mx, send, start  # noqa: F401
from smtppeer import SMTPPeer


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
                   r"undeliverable mail from <> \(a failed double bounce\)")
        p.wait_queue_empty()
        # Give a storm time to show itself.
        time.sleep(2)
        log = "\n".join(p.log_lines)
        assert len(re.findall(r"report=failure", log)) == 1
        rcpts = [c for _cid, c in peer.commands
                 if c.upper().startswith("RCPT")]
        assert len(rcpts) == 2, rcpts   # bad@, then postmaster@ once
