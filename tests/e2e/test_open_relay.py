"""
test_open_relay.py: port 25 never relays for strangers (issue 4, RFC 5321
3.6.2). A client on 127.0.0.9, outside `trusted 127.0.0.1/32`, tries the
old tricks: the percent hack, bang paths, source routes, a quoted local
part holding an '@', a trailing dot, an upper-case domain, an address
literal and the plain remote address. Each RCPT must be refused (550
5.7.1 for a remote domain; 550 5.1.1 or 501 for what stays in the local
domain), nothing may be queued, and nothing may reach the remote peer.

The setup would relay if Petrel let it: other.test and a.test have MX
records (a DNSServer on loopback) pointing at an SMTPPeer on 127.X.Y.Z:25,
whose address is also the one in the literal. The positive controls send
the same RCPTs from 127.0.0.1 (trusted) and after AUTH on the submission
listener from 127.0.0.9, and the peer gets them. Each refusal test ends
with a trusted message to the peer, waited for: once it has arrived and
the queue is empty, anything Petrel had wrongly taken would have been sent
before it.
"""

import base64
import re
import warnings

import pytest

from dnsserver import DNSServer
from harness import RawClient, free_port, tls_context
from smtppeer import SMTPPeer

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import crypt
    except ImportError:
        crypt = None

pytestmark = pytest.mark.timeout(120)

STRANGER = "127.0.0.9"
ALICE, ALICE_PW = "alice@example.test", "alice-relay-pw"
SENDERS = ("x@outside.test", ALICE, "")
MSG = b"Subject: relay attempt\r\n\r\nrelay me\r\n"

REMOTE_DENIED = {(550, "5.7.1")}
LOCAL_REFUSED = {(550, "5.1.1"), (550, "5.1.3"), (501, "5.1.3"),
                 (501, "5.5.4"), (553, "5.1.3")}
SYNTAX_OR_DENIED = REMOTE_DENIED | {(501, "5.1.3"), (501, "5.5.4"),
                                    (553, "5.1.3")}

# (id, address with PEER for the peer's address, allowed refusals)
TRICKS = [
    ("percent", "user%other.test@example.test", LOCAL_REFUSED),
    ("percent-upper", "user%OTHER.TEST@EXAMPLE.TEST", LOCAL_REFUSED),
    ("percent-literal", "user%[PEER]@example.test", LOCAL_REFUSED),
    ("bang", "other.test!user@example.test", LOCAL_REFUSED),
    ("source-route", "@a.test:user@other.test", SYNTAX_OR_DENIED),
    ("source-route-via-us", "@example.test:user@other.test",
     SYNTAX_OR_DENIED),
    ("source-route-two", "@example.test,@a.test:user@other.test",
     SYNTAX_OR_DENIED),
    ("quoted-at", '"user@other.test"@example.test', LOCAL_REFUSED),
    ("quoted-percent", '"user%other.test"@example.test', LOCAL_REFUSED),
    ("trailing-dot", "user@other.test.", SYNTAX_OR_DENIED),
    ("trailing-dot-upper", "user@OTHER.TEST.", SYNTAX_OR_DENIED),
    ("uppercase", "user@OTHER.TEST", REMOTE_DENIED),
    ("mixed-case", "user@Other.Test", REMOTE_DENIED),
    ("ip-literal", "user@[PEER]", REMOTE_DENIED),
    ("plain", "user@other.test", REMOTE_DENIED),
]

# The forms a trusted or authenticated client may relay, and what the
# peer then sees as the recipient (a source route is dropped, RFC 5321
# 4.1.1.3 and C).
RELAYABLE = [
    ("plain", "user@other.test", "user@other.test"),
    ("uppercase", "user@OTHER.TEST", "user@OTHER.TEST"),
    ("ip-literal", "user@[PEER]", "user@[PEER]"),
    ("source-route", "@a.test:user@other.test", "user@other.test"),
]


@pytest.fixture
def world(make_petrel):
    """(petrel, peer): other.test and a.test route to the peer; Petrel
    trusts 127.0.0.1 only, and has an mx and a submission listener."""
    with DNSServer() as dns, SMTPPeer() as peer:
        for d in ("other.test", "a.test"):
            dns.add(d, "MX", "10 mx.%s." % d)
            dns.add("mx." + d, "A", peer.addr)
        mx, sub = free_port(), free_port()
        if crypt is not None:
            h = crypt.crypt(ALICE_PW, crypt.mksalt(crypt.METHOD_SHA512))
        else:
            h = None
        p = make_petrel(
            start=False,
            listen=["127.0.0.1:%d mx" % mx, "127.0.0.1:%d submission" % sub],
            trusted=("127.0.0.1/32",), dns=dns.addr,
            users={ALICE: h or "", "bob@example.test": ""},
            extra_conf="retry_initial 1s\nretry_max 4s\n"
                       "client_timeout_connect 3s\n"
                       "client_timeout_command 3s\ndelay_warning 0\n"
                       "auth_fail_delay 0\n")
        p.start()
        p.sub_port = sub
        p.can_login = h is not None
        yield p, peer


def addr_for(peer, template):
    return template.replace("PEER", peer.addr)


def check(c, line, code, enhanced=None):
    c.send(line + "\r\n")
    return c.expect(code, enhanced)


def reply_pair(code, lines):
    return code, lines[-1].split(" ", 1)[0]


def send_trusted(p, rcpt, body=MSG, sender="x@outside.test"):
    """From 127.0.0.1 (trusted) on port 25: a whole transaction."""
    with p.raw() as c:
        c.read_greeting()
        c.ehlo()
        check(c, "MAIL FROM:<%s>" % sender, 250)
        check(c, "RCPT TO:<%s>" % rcpt, 250)
        check(c, "DATA", 354)
        c.send(body + b".\r\n")
        c.expect(250)
        check(c, "QUIT", 221)


def barrier(p, peer, n_before):
    """A trusted message to the peer, waited for; then the queue must be
    empty and the peer must have nothing else."""
    tag = "barrier-%d@other.test" % n_before
    send_trusted(p, tag, b"Subject: barrier\r\n\r\nbarrier\r\n")
    msgs = peer.wait_messages(n_before + 1)
    p.wait_queue_empty()
    return msgs, tag


@pytest.mark.parametrize("name,template,allowed", TRICKS,
                         ids=[t[0] for t in TRICKS])
def test_untrusted_cannot_relay(world, name, template, allowed):
    p, peer = world
    rcpt = addr_for(peer, template)
    with p.raw(source=STRANGER) as c:
        c.read_greeting()
        c.ehlo()
        for sender in SENDERS:
            check(c, "MAIL FROM:<%s>" % sender, 250)
            code, lines = c.cmd("RCPT TO:<%s>" % rcpt)
            assert reply_pair(code, lines) in allowed, \
                "RCPT TO:<%s> from %s (MAIL FROM:<%s>) got %s %r" % (
                    rcpt, STRANGER, sender, code, lines)
            if reply_pair(code, lines) == (550, "5.7.1"):
                assert lines[-1].endswith("Relay access denied"), lines
            # DATA without a recipient: refused; send the body anyway
            # if it were not.
            code, lines = c.cmd("DATA")
            if code == 354:
                c.send(MSG + b".\r\n")
                code, lines = c.reply()
                raise AssertionError("DATA accepted after a refused RCPT: "
                                     "%s %r" % (code, lines))
            assert code in (503, 554), (code, lines)
            check(c, "RSET", 250)
        check(c, "QUIT", 221)
    assert p.queue_ids() == []
    assert peer.connections == 0
    p.wait_log(r"smtp: disconnect session=\S+ client=127\.0\.0\.9 ")
    # Nothing left to send: the barrier is the peer's only message.
    msgs, tag = barrier(p, peer, 0)
    assert [[r for r, _ in m.rcpts] for m in msgs] == [[tag]]
    assert p.queue_ids() == [] and p.queue_ids("failed") == []
    assert p.all_maildir_files() == []
    assert not [cmd for _, cmd in peer.commands
                if cmd.upper().startswith("RCPT") and tag not in cmd]
    peer.assert_clean()


def test_untrusted_catch_all_keeps_tricks_local(make_petrel):
    """With a catch-all, the percent hack and bang path addresses are
    accepted, but as local mail for the catch-all's mailbox: delivered
    there, never relayed."""
    with DNSServer() as dns, SMTPPeer() as peer:
        dns.add("other.test", "MX", "10 mx.other.test.")
        dns.add("mx.other.test", "A", peer.addr)
        p = make_petrel(trusted=("127.0.0.1/32",), dns=dns.addr,
                        aliases="@example.test: bob\n")
        rcpts = ["user%other.test@example.test",
                 "other.test!user@example.test",
                 '"user@other.test"@example.test']
        with p.raw(source=STRANGER) as c:
            c.read_greeting()
            c.ehlo()
            check(c, "MAIL FROM:<x@outside.test>", 250)
            for r in rcpts:
                check(c, "RCPT TO:<%s>" % r, 250)
            check(c, "RCPT TO:<user@other.test>", 550, "5.7.1")
            check(c, "DATA", 354)
            c.send(MSG + b".\r\n")
            c.expect(250)
        [f] = p.wait_delivered("bob@example.test", 1)
        assert f.endswith(b"relay me\n")
        msgs, tag = barrier(p, peer, 0)
        assert [[r for r, _ in m.rcpts] for m in msgs] == [[tag]]


@pytest.mark.parametrize("name,template,want", RELAYABLE,
                         ids=[t[0] for t in RELAYABLE])
def test_trusted_relays(world, name, template, want):
    """Positive control: the same RCPT from 127.0.0.1 reaches the peer."""
    p, peer = world
    rcpt = addr_for(peer, template)
    send_trusted(p, rcpt, b"Subject: trusted %s\r\n\r\nok\r\n"
                 % name.encode())
    [m] = peer.wait_messages(1)
    assert [r for r, _ in m.rcpts] == [addr_for(peer, want)]
    assert m.mail_from == "x@outside.test"
    assert b"Subject: trusted " + name.encode() in m.content
    p.wait_queue_empty()
    peer.assert_clean()


def _b64(s):
    return base64.b64encode(s.encode()).decode()


@pytest.mark.parametrize("name,template,want", RELAYABLE,
                         ids=[t[0] for t in RELAYABLE])
def test_authenticated_relays(world, name, template, want):
    """Positive control: from the untrusted address, after STARTTLS and
    AUTH on the submission listener, the same RCPT reaches the peer."""
    p, peer = world
    if not p.can_login:
        pytest.skip("no crypt module to make a password hash")
    rcpt = addr_for(peer, template)
    with RawClient("127.0.0.1", p.sub_port, source=STRANGER) as c:
        c.read_greeting()
        c.ehlo()
        check(c, "STARTTLS", 220)
        c.starttls(tls_context())
        c.ehlo()
        check(c, "MAIL FROM:<%s>" % ALICE, 530, "5.7.0")
        check(c, "AUTH PLAIN " + _b64("\0%s\0%s" % (ALICE, ALICE_PW)), 235,
              "2.7.0")
        check(c, "MAIL FROM:<%s>" % ALICE, 250)
        check(c, "RCPT TO:<%s>" % rcpt, 250)
        check(c, "DATA", 354)
        c.send(b"From: <%s>\r\nSubject: auth %s\r\n\r\nok\r\n.\r\n"
               % (ALICE.encode(), name.encode()))
        c.expect(250)
    [m] = peer.wait_messages(1)
    assert [r for r, _ in m.rcpts] == [addr_for(peer, want)]
    assert m.mail_from == ALICE
    assert m.client[0] != STRANGER      # sent by Petrel, not the client
    p.wait_queue_empty()
    p.wait_log(r"smtp: auth session=\S+ client=127\.0\.0\.9 "
               r"user=alice@example\.test")
    peer.assert_clean()


def test_untrusted_whole_battery_one_session(world):
    """All the tricks in one session, interleaved with a local recipient
    that is accepted: the message is delivered to the local user only."""
    p, peer = world
    with p.raw(source=STRANGER) as c:
        c.read_greeting()
        c.ehlo()
        check(c, "MAIL FROM:<x@outside.test>", 250)
        for _name, template, allowed in TRICKS:
            rcpt = addr_for(peer, template)
            code, lines = c.cmd("RCPT TO:<%s>" % rcpt)
            assert reply_pair(code, lines) in allowed, (rcpt, code, lines)
            check(c, "RCPT TO:<bob@example.test>", 250)
        check(c, "DATA", 354)
        c.send(MSG + b".\r\n")
        c.expect(250)
    [f] = p.wait_delivered("bob@example.test", 1)
    assert f.endswith(b"\n\nrelay me\n"), f
    # One delivery, the local one.
    deliveries = [l for l in p.log_lines
                  if "delivery: rcpt queue=" in l and " to=<" in l]
    assert len(deliveries) == 1 and re.search(
        r"to=<bob@example\.test> relay=local .*status=sent", deliveries[0]), \
        deliveries
    msgs, tag = barrier(p, peer, 0)
    assert [[r for r, _ in m.rcpts] for m in msgs] == [[tag]]
    assert p.queue_ids("failed") == []
