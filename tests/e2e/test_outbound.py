"""
test_outbound.py: Petrel sends mail onward (issue 3): MX lookup through
its own resolver (libunbound) against a DNS server on loopback
(dnsserver.py), the SMTP client against fake remote servers on
127.X.Y.Z:25 (smtppeer.py), retries, and bounces (RFC 3464) that land in
the local sender's Maildir, where Python's email package reads them.

Every daemon here: a trusted client (127.0.0.0/8) relays, retry_initial
1s, retry_max 4s, short client timeouts, no delay warnings unless a test
asks; each test has its own DNS server and daemon (libunbound remembers
unresponsive servers), and its own peers on random loopback addresses.
"""

import email
import email.policy
import os
import re
import signal
import time
from datetime import datetime, timezone

import pytest

from dnsserver import DNSServer
from harness import smuggling_variants, wait_until
from smtppeer import SMTPPeer, alloc_addr, release_addr

SENDER = "alice@example.test"
BASE_CONF = """
retry_initial 1s
retry_max 4s
client_timeout_connect 3s
client_timeout_command 3s
client_timeout_data 5s
delay_warning 0
"""


@pytest.fixture
def dns():
    with DNSServer() as srv:
        yield srv


def conf_with(extra):
    """BASE_CONF with extra's directives replacing or adding lines."""
    lines = {}
    for text in (BASE_CONF, extra):
        for line in text.strip().splitlines():
            if line.strip():
                lines[line.split()[0]] = line
    return "\n".join(lines.values()) + "\n"


def start(make_petrel, dns, extra="", **kw):
    kw.setdefault("trusted", ("127.0.0.0/8",))
    return make_petrel(dns=dns.addr, extra_conf=conf_with(extra), **kw)


def mx(dns, domain, *hosts):
    """MX records for domain: hosts are (pref, name, addr or None)."""
    for pref, name, addr in hosts:
        dns.add(domain, "MX", "%d %s." % (pref, name))
        if addr is not None:
            dns.add(name, "A", addr)


def send(p, rcpts, body, sender=SENDER, mail_opts=(), rcpt_opts=None):
    """One transaction; rcpt_opts maps an address to its RCPT options."""
    rcpt_opts = rcpt_opts or {}
    with p.smtp() as s:
        s.ehlo()
        code, resp = s.mail(sender, list(mail_opts))
        assert code == 250, (code, resp)
        for r in rcpts:
            code, resp = s.rcpt(r, rcpt_opts.get(r, []))
            assert code == 250, (r, code, resp)
        code, resp = s.data(body)
        assert code == 250, (code, resp)
        return resp.decode()


def reports(p, count, address=SENDER, timeout=30):
    """The first count messages in address's Maildir, parsed."""
    wait_until(lambda: len(p.maildir_files(address)) >= count,
               timeout=timeout, what="%d report(s) for %s" % (count, address))
    out = []
    for raw in p.maildir_messages(address)[:count]:
        out.append((raw, email.message_from_bytes(
            raw, policy=email.policy.default)))
    return out


def parse_dsn(msg):
    """(text part, per-message fields, [per-recipient fields], third
    part) of a multipart/report; fields are email.message.Message."""
    assert msg.get_content_type() == "multipart/report", msg
    # RFC 6533: global-delivery-status for SMTPUTF8 mail.
    kind = msg.get_param("report-type")
    assert kind in ("delivery-status", "global-delivery-status")
    parts = list(msg.iter_parts())
    assert len(parts) == 3, [q.get_content_type() for q in parts]
    text, status, orig = parts
    assert text.get_content_type() == "text/plain"
    assert status.get_content_type() == "message/" + kind
    blocks = status.get_payload()
    if not (isinstance(blocks, list) and len(blocks) >= 2):
        # email parses message/delivery-status into field blocks, not
        # message/global-delivery-status: split that one by hand.
        raw = status.as_bytes().split(b"\n\n", 1)[1]
        raw = raw.replace(b"\r\n", b"\n").decode("utf-8")
        blocks = [email.message_from_string(b.strip() + "\n",
                                            policy=email.policy.default)
                  for b in raw.split("\n\n") if b.strip()]
    assert len(blocks) >= 2, blocks
    return text, blocks[0], blocks[1:], orig


def rcpt_report(p, timeout=30):
    """The fields of the one recipient in the one report the sender
    gets."""
    [(_raw, msg)] = reports(p, 1, timeout=timeout)
    _text, _per_msg, [rcpt], _orig = parse_dsn(msg)
    return rcpt


def log_ids(p, regex):
    return re.findall(regex, "\n".join(p.log_lines))


# ---------------------------------------------------------------- routing


@pytest.mark.parametrize("failure", ["refused", "421", "hang"])
def test_second_mx_when_first_fails(make_petrel, dns, failure):
    """MX 10 refuses connections / answers 421 / never greets: the
    message goes to MX 20, once."""
    bad_addr = alloc_addr()
    first = None
    if failure == "refused":
        release_addr(bad_addr)          # nothing listens: refused
    else:
        first = SMTPPeer(addr=bad_addr)
        if failure == "421":
            first.greeting = "421 4.3.2 too busy"
        else:
            first.hang_greeting = True
        first.start()
    try:
        with SMTPPeer() as second:
            mx(dns, "remote.test", (10, "mx1.remote.test", bad_addr),
               (20, "mx2.remote.test", second.addr))
            p = start(make_petrel, dns, "client_timeout_command 2s\n")
            send(p, ["bob@remote.test"], b"Subject: fallback\r\n\r\nhi\r\n")
            [m] = second.wait_messages(1)
            assert m.mail_from == SENDER
            assert [r for r, _ in m.rcpts] == ["bob@remote.test"]
            assert b"Subject: fallback" in m.data
            p.wait_queue_empty()
            p.wait_log(r"to=<bob@remote.test> relay=mx2\.remote\.test\[%s\]"
                       r":25 .*status=sent" % re.escape(second.addr))
            second.assert_clean()
            assert p.maildir_files(SENDER) == []
            assert len(second.messages) == 1
            if failure != "refused":
                assert first.connections >= 1
                assert first.messages == []
    finally:
        if first is not None:
            first.stop()


def test_implicit_mx(make_petrel, dns):
    """No MX record: the domain's own A record (RFC 5321 5.1)."""
    with SMTPPeer() as peer:
        dns.add("remote.test", "A", peer.addr)
        p = start(make_petrel, dns)
        send(p, ["bob@remote.test"], b"Subject: a-only\r\n\r\nhi\r\n")
        peer.wait_messages(1)
        p.wait_queue_empty()
        assert dns.count("remote.test", "MX") >= 1
        peer.assert_clean()


def test_cname_followed(make_petrel, dns):
    with SMTPPeer() as peer:
        dns.add("remote.test", "MX", "10 alias.remote.test.")
        dns.add("alias.remote.test", "CNAME", "real.remote.test.")
        dns.add("real.remote.test", "A", peer.addr)
        p = start(make_petrel, dns)
        send(p, ["bob@remote.test"], b"Subject: cname\r\n\r\nhi\r\n")
        peer.wait_messages(1)
        p.wait_queue_empty()


def test_null_mx_bounces(make_petrel, dns):
    """MX 0 . (RFC 7505): bounced at once with 5.1.10, nothing sent."""
    dns.add("nomail.test", "MX", "0 .")
    p = start(make_petrel, dns)
    send(p, ["bob@nomail.test"], b"Subject: null mx\r\n\r\nhi\r\n")
    rcpt = rcpt_report(p)
    assert rcpt["Action"] == "failed"
    assert rcpt["Status"] == "5.1.10"
    assert "bob@nomail.test" in rcpt["Final-Recipient"]
    p.wait_queue_empty()
    # Once: no retry of a permanent failure.
    assert len(log_ids(p, r"to=<bob@nomail.test>.*status=bounced")) == 1


def test_nxdomain_bounces(make_petrel, dns):
    p = start(make_petrel, dns)
    send(p, ["bob@nowhere.test"], b"Subject: nx\r\n\r\nhi\r\n")
    rcpt = rcpt_report(p)
    assert rcpt["Action"] == "failed"
    assert rcpt["Status"].startswith("5.")
    assert "nowhere.test" in rcpt["Diagnostic-Code"]
    p.wait_queue_empty()


def test_servfail_then_recovery(make_petrel, dns):
    """A temporary DNS failure defers (never the A record instead); the
    retry after the server recovers delivers."""
    with SMTPPeer() as peer:
        mx(dns, "remote.test", (10, "mx1.remote.test", peer.addr))
        dns.add("remote.test", "A", peer.addr)   # must not be used
        dns.fail("remote.test", "servfail")
        p = start(make_petrel, dns)
        send(p, ["bob@remote.test"], b"Subject: servfail\r\n\r\nhi\r\n")
        p.wait_log(r"to=<bob@remote.test>.*dsn=4\.4\.3 status=deferred")
        assert peer.connections == 0
        dns.unfail("remote.test")
        peer.wait_messages(1, timeout=30)
        p.wait_queue_empty()
        assert p.maildir_files(SENDER) == []


def test_relayhost(make_petrel, dns):
    """relayhost [addr]:port sends every non-local message there, with no
    MX lookup at all."""
    with SMTPPeer(port=0) as smarthost:
        p = start(make_petrel, dns, "relayhost [%s]:%d\n" %
                  (smarthost.addr, smarthost.port))
        send(p, ["bob@remote.test", "carol@other.test"],
             b"Subject: smarthost\r\n\r\nhi\r\n")
        [m] = smarthost.wait_messages(1)
        assert sorted(r for r, _ in m.rcpts) == ["bob@remote.test",
                                                 "carol@other.test"]
        p.wait_queue_empty()
        assert dns.count("remote.test") == 0
        assert dns.count("other.test") == 0


def test_relayhost_on_our_own_address(make_petrel, dns):
    """A relay host on one of our listening addresses but another port (a
    content filter at [127.0.0.1]:10025 beside our 127.0.0.1:25) is not
    a loop: only address and port together are us."""
    with SMTPPeer(addr="127.0.0.1", port=0) as filt:
        p = start(make_petrel, dns, "relayhost [127.0.0.1]:%d\n" % filt.port)
        assert p.host == "127.0.0.1" and p.port != filt.port
        send(p, ["bob@remote.test"], b"Subject: filter\r\n\r\nhi\r\n")
        filt.wait_messages(1)
        p.wait_queue_empty()
        assert p.maildir_files(SENDER) == []


def test_transport_file(make_petrel, dns):
    """transport: a domain to smtp:[host]:port, subdomains of another to
    LMTP over a Unix socket; the rest by MX."""
    p = make_petrel(start=False, dns=dns.addr, trusted=("127.0.0.0/8",))
    # The daemon's user must reach the socket: its 0755 work dir.
    sock = os.path.join(p.tmpdir, "lmtp.sock")
    tfile = os.path.join(p.tmpdir, "transport")
    with SMTPPeer(port=0) as routed, SMTPPeer(lmtp=True,
                                              unix_path=sock) as lmtp, \
            SMTPPeer() as bymx:
        mx(dns, "mx.test", (10, "mx1.mx.test", bymx.addr))
        with open(tfile, "w", encoding="utf-8") as f:
            f.write("# routes\nrouted.test  smtp:[%s]:%d\n"
                    ".lmtp.test  lmtp:unix:%s\n"
                    % (routed.addr, routed.port, sock))
        os.chmod(tfile, 0o644)
        p.extra_conf = conf_with("transport %s\n" % tfile)
        p.write_conf()
        p.start()
        send(p, ["a@routed.test", "b@sub.lmtp.test", "c@mx.test"],
             b"Subject: transport\r\n\r\nhi\r\n")
        routed.wait_messages(1)
        lmtp.wait_messages(1)
        bymx.wait_messages(1)
        p.wait_queue_empty()
        assert lmtp.messages[0].helo_verb == "LHLO"
        assert dns.count("routed.test") == 0


def test_transport_discard(make_petrel, dns):
    """transport discard: (Postfix's discard(8)): the message is accepted
    and queued, then dropped for that domain's recipients only (logged
    status=sent relay=discard with the line's text); the other recipient
    of the same message is still delivered, and no DNS is asked for the
    discarded domain."""
    p = make_petrel(start=False, dns=dns.addr, trusted=("127.0.0.0/8",))
    tfile = os.path.join(p.tmpdir, "transport")
    with SMTPPeer(port=0) as routed:
        with open(tfile, "w", encoding="utf-8") as f:
            f.write("sink.test discard:bench-sink\n"
                    "routed.test smtp:[%s]:%d\n" % (routed.addr, routed.port))
        os.chmod(tfile, 0o644)
        p.extra_conf = conf_with("transport %s\n" % tfile)
        p.write_conf()
        p.start()
        send(p, ["a@sink.test", "b@Sub.Sink.test", "c@routed.test"],
             b"Subject: discard\r\n\r\nhi\r\n")
        routed.wait_messages(1)
        p.wait_queue_empty()
        assert [a for a, _ in routed.messages[0].rcpts] == ["c@routed.test"]
        p.wait_log(r"to=<a@sink\.test>.*relay=discard.*status=sent.*"
                   r"discarded: bench-sink")
        assert dns.count("sink.test") == 0
        # Sub.Sink.test is not sink.test (no ".sink.test" line): by MX,
        # which does not exist here.
        p.wait_log(r"to=<b@Sub\.Sink\.test>.*status=(deferred|bounced)")


def test_backup_mx_drops_self_and_worse(make_petrel, dns):
    """We are MX 20 for backup.test: MX 30 (worse) is never tried, MX 10
    gets the mail. For selfonly.test we are the best MX: 5.4.6."""
    with SMTPPeer() as best, SMTPPeer() as worse:
        p = start(make_petrel, dns)
        mx(dns, "backup.test", (10, "mx1.backup.test", best.addr),
           (20, "mx.example.test", None), (30, "mx3.backup.test",
                                            worse.addr))
        mx(dns, "selfonly.test", (10, "mx.example.test", None),
           (20, "mx2.selfonly.test", worse.addr))
        send(p, ["bob@backup.test"], b"Subject: backup\r\n\r\nhi\r\n")
        best.wait_messages(1)
        send(p, ["bob@selfonly.test"], b"Subject: loop\r\n\r\nhi\r\n")
        rcpt = rcpt_report(p)
        assert rcpt["Status"] == "5.4.6"
        p.wait_queue_empty()
        assert worse.connections == 0


def test_bind_address(make_petrel, dns):
    """smtp_bind_address: the peer sees our chosen source address."""
    src = alloc_addr()
    release_addr(src)
    with SMTPPeer() as peer:
        mx(dns, "remote.test", (10, "mx1.remote.test", peer.addr))
        p = start(make_petrel, dns, "smtp_bind_address %s\n" % src)
        send(p, ["bob@remote.test"], b"Subject: bind\r\n\r\nhi\r\n")
        [m] = peer.wait_messages(1)
        assert m.client[0] == src


# ---------------------------------------------------------------- per recipient


def test_one_of_two_refused_bounce_fields(make_petrel, dns):
    """550 for one of two recipients: the other is delivered; the sender
    gets a bounce that names the failed one and the server's exact reply,
    checked part by part and field by field (RFC 3464, RFC 3461)."""
    reply = "550 5.1.1 <bad@remote.test>: Recipient address rejected"
    with SMTPPeer() as peer:
        peer.rcpt_reply = {"bad@remote.test": reply}
        mx(dns, "remote.test", (10, "mx1.remote.test", peer.addr))
        p = start(make_petrel, dns)
        body = (b"From: Alice <alice@example.test>\r\n"
                b"To: bob@remote.test, bad@remote.test\r\n"
                b"Subject: half\r\nMessage-ID: <half@example.test>\r\n"
                b"\r\nsecret body line\r\n")
        send(p, ["good@remote.test", "bad@remote.test"], body,
                         mail_opts=["RET=HDRS", "ENVID=env+2B1"],
                         rcpt_opts={"bad@remote.test":
                                    ["NOTIFY=FAILURE",
                                     "ORCPT=rfc822;Bad+2Bx@remote.test"]})
        [m] = peer.wait_messages(1)
        assert m.delivered == ["good@remote.test"]
        [(raw, msg)] = reports(p, 1)
        p.wait_queue_empty()

    # The envelope: from <>, to the sender.
    assert raw.startswith(b"Return-Path: <>\n")
    assert msg["From"].addresses[0].addr_spec == \
        "MAILER-DAEMON@mx.example.test"
    assert msg["To"].addresses[0].addr_spec == SENDER
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["Subject"]
    assert msg["Message-ID"]
    text, per_msg, rcpts, orig = parse_dsn(msg)

    # Part 1: a person can read who failed and why.
    t = text.get_content()
    assert "bad@remote.test" in t
    assert reply in t
    assert "good@remote.test" not in t

    # Part 2: per message, then exactly one recipient.
    assert per_msg["Reporting-MTA"] == "dns; mx.example.test"
    assert per_msg["Original-Envelope-Id"] == "env+1"
    arrival = per_msg["Arrival-Date"]
    assert arrival and email.utils.parsedate_to_datetime(arrival)
    assert len(rcpts) == 1
    r = rcpts[0]
    assert r["Final-Recipient"] == "rfc822; bad@remote.test"
    assert r["Original-Recipient"] == "rfc822; Bad+x@remote.test"
    assert r["Action"] == "failed"
    assert r["Status"] == "5.1.1"
    assert r["Remote-MTA"] == "dns; mx1.remote.test"
    assert r["Diagnostic-Code"] == "smtp; " + reply

    # Part 3: the original headers only (RET=HDRS), not the body.
    assert orig.get_content_type() == "text/rfc822-headers"
    hdrs = orig.get_payload() if isinstance(orig.get_payload(), str) \
        else orig.get_content()
    assert "Subject: half" in str(hdrs)
    assert b"secret body line" not in raw


def test_ret_full_returns_message(make_petrel, dns):
    with SMTPPeer() as peer:
        peer.rcpt_reply = {"bad@remote.test": "550 5.1.1 no"}
        mx(dns, "remote.test", (10, "mx1.remote.test", peer.addr))
        p = start(make_petrel, dns)
        send(p, ["bad@remote.test"],
             b"Subject: full\r\n\r\nthe whole body\r\n",
             mail_opts=["RET=FULL"])
        [(raw, msg)] = reports(p, 1)
        _t, _m, _r, orig = parse_dsn(msg)
        assert orig.get_content_type() == "message/rfc822"
        assert b"the whole body" in raw


def test_451_then_success(make_petrel, dns):
    with SMTPPeer() as peer:
        peer.fail_first(1, "451 4.3.0 try again later", "data")
        mx(dns, "remote.test", (10, "mx1.remote.test", peer.addr))
        p = start(make_petrel, dns)
        send(p, ["bob@remote.test"], b"Subject: retry\r\n\r\nhi\r\n")
        peer.wait_messages(1, timeout=30)
        p.wait_queue_empty()
        p.wait_log(r"to=<bob@remote.test>.*dsn=4\.3\.0 status=deferred "
                   r"\(451 4\.3\.0 try again later\)")
        p.wait_log(r"to=<bob@remote.test>.*attempts=2 .*status=sent")
        assert len(peer.messages) == 1
        assert p.maildir_files(SENDER) == []


def test_lifetime_exceeded_bounces(make_petrel, dns):
    with SMTPPeer() as peer:
        peer.rcpt_default_reply = "452 4.2.2 mailbox full"
        mx(dns, "remote.test", (10, "mx1.remote.test", peer.addr))
        p = start(make_petrel, dns, "queue_lifetime 3s\n")
        send(p, ["bob@remote.test"], b"Subject: expire\r\n\r\nhi\r\n")
        r = rcpt_report(p, timeout=40)
        assert r["Action"] == "failed"
        assert "452 4.2.2 mailbox full" in r["Diagnostic-Code"]
        p.wait_queue_empty()
        assert peer.messages == []


def test_closed_mid_data_retried_once(make_petrel, dns):
    """The server drops the connection in the middle of DATA: retried,
    delivered exactly once."""
    with SMTPPeer() as peer:
        peer.close_in_data(1)
        mx(dns, "remote.test", (10, "mx1.remote.test", peer.addr))
        p = start(make_petrel, dns)
        send(p, ["bob@remote.test"], b"Subject: drop\r\n\r\n" +
             (b"x" * 900 + b"\r\n") * 300)
        peer.wait_messages(1, timeout=30)
        p.wait_queue_empty()
        outcomes = [a.outcome for a in peer.attempts]
        assert outcomes == ["dropped_in_data", "accepted"], outcomes
        assert p.maildir_files(SENDER) == []


def test_backoff_doubles_and_caps(make_petrel, dns):
    """Attempt times from the log: 1, 2, 4, 4 s apart (retry_initial 1s,
    retry_max 4s), each within 1 s."""
    with SMTPPeer() as peer:
        peer.rcpt_default_reply = "451 4.3.0 later"
        mx(dns, "remote.test", (10, "mx1.remote.test", peer.addr))
        p = start(make_petrel, dns)
        send(p, ["bob@remote.test"], b"Subject: backoff\r\n\r\nhi\r\n")
        wait_until(lambda: len(log_ids(
            p, r"to=<bob@remote.test>.*status=deferred")) >= 5,
            timeout=40, what="5 attempts")
        stamps = []
        for line in p.log_lines:
            if "to=<bob@remote.test>" in line and "status=deferred" in line:
                ts = line.split()[0]
                stamps.append(datetime.strptime(
                    ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
                        tzinfo=timezone.utc).timestamp())
        gaps = [b - a for a, b in zip(stamps, stamps[1:])][:4]
        for got, want in zip(gaps, [1, 2, 4, 4]):
            assert abs(got - want) <= 1.0, (gaps, stamps)


# ---------------------------------------------------------------- connections


def test_connection_reuse(make_petrel, dns):
    """20 messages to one destination with destination_concurrency 1 use
    exactly one connection (RSET between)."""
    with SMTPPeer() as peer:
        mx(dns, "remote.test", (10, "mx1.remote.test", peer.addr))
        p = start(make_petrel, dns, "destination_concurrency 1\n")
        with p.smtp() as s:
            for i in range(20):
                s.sendmail(SENDER, ["bob@remote.test"],
                           b"Subject: reuse %d\r\n\r\nhi\r\n" % i)
        peer.wait_messages(20, timeout=60)
        p.wait_queue_empty()
        assert peer.connections == 1
        assert peer.max_open_connections == 1
        rsets = [c for _, c in peer.commands if c.upper().startswith("RSET")]
        assert len(rsets) >= 19
        peer.assert_clean()


def test_concurrency_limit(make_petrel, dns):
    with SMTPPeer() as peer:
        peer.delay_reply = {"data": 0.3}
        mx(dns, "remote.test", (10, "mx1.remote.test", peer.addr))
        p = start(make_petrel, dns, "destination_concurrency 3\n")
        for i in range(12):
            send(p, ["bob@remote.test"], b"Subject: c %d\r\n\r\nhi\r\n" % i)
        peer.wait_messages(12, timeout=60)
        assert 1 <= peer.max_open_connections <= 3


def test_421_backs_off_whole_destination(make_petrel, dns):
    """After a 421, the destination backs off: the next messages for it
    are deferred at once, without a connection each."""
    with SMTPPeer() as peer:
        mx(dns, "remote.test", (10, "mx1.remote.test", peer.addr))
        peer.greeting = "421 4.3.2 go away"
        p = start(make_petrel, dns, "retry_initial 3s\nretry_max 3s\n")
        send(p, ["bob@remote.test"], b"Subject: one\r\n\r\nhi\r\n")
        p.wait_log(r"destination=mx:remote.test backs off")
        n = peer.connections
        for i in range(5):
            send(p, ["bob@remote.test"], b"Subject: more\r\n\r\nhi\r\n")
        p.wait_log(r"delivery temporarily suspended")
        assert peer.connections == n
        peer.greeting = "220 peer.test ESMTP"
        peer.wait_messages(6, timeout=40)
        p.wait_queue_empty()


def test_starttls_opportunistic(make_petrel, dns):
    with SMTPPeer(starttls=True) as peer:
        mx(dns, "remote.test", (10, "mx1.remote.test", peer.addr))
        p = start(make_petrel, dns)
        send(p, ["bob@remote.test"], b"Subject: tls\r\n\r\nhi\r\n")
        [m] = peer.wait_messages(1)
        assert m.tls and m.tls_version.startswith("TLSv1.")
        p.wait_log(r"relay=mx1.remote.test\[%s\]:25 tls=\"TLSv1\.[23] "
                   % re.escape(peer.addr))


def test_tls_handshake_failure_falls_back(make_petrel, dns):
    with SMTPPeer(starttls=True) as peer:
        peer.tls_garbage = True
        mx(dns, "remote.test", (10, "mx1.remote.test", peer.addr))
        p = start(make_petrel, dns)
        send(p, ["bob@remote.test"], b"Subject: notls\r\n\r\nhi\r\n")
        [m] = peer.wait_messages(1, timeout=30)
        assert not m.tls
        p.wait_log(r"TLS handshake failed, retrying without TLS")


# ---------------------------------------------------------------- content


def test_8bit_to_7bit_peer_bounces(make_petrel, dns):
    """No 8BITMIME at the peer: 8-bit mail bounces with 5.6.3 (never
    converted: that would break DKIM signatures)."""
    with SMTPPeer(eightbitmime=False) as peer:
        mx(dns, "remote.test", (10, "mx1.remote.test", peer.addr))
        p = start(make_petrel, dns)
        send(p, ["bob@remote.test"],
             "Subject: caf\u00e9\r\n\r\nna\u00efve\r\n".encode(),
             mail_opts=["BODY=8BITMIME"])
        r = rcpt_report(p)
        assert r["Status"] == "5.6.3"
        assert peer.messages == []
        p.wait_queue_empty()


def test_smtputf8_to_plain_peer_bounces(make_petrel, dns):
    with SMTPPeer(smtputf8=False) as peer:
        mx(dns, "remote.test", (10, "mx1.remote.test", peer.addr))
        p = start(make_petrel, dns)
        send(p, ["bob@remote.test"], b"Subject: u\r\n\r\nhi\r\n",
             sender="alice@example.test", mail_opts=["SMTPUTF8"])
        r = rcpt_report(p)
        assert r["Status"] == "5.6.7"
        assert peer.messages == []


def test_long_line_bounces(make_petrel, dns):
    """A line over 998 octets is never sent (nor rewrapped): 5.6.0."""
    with SMTPPeer() as peer:
        mx(dns, "remote.test", (10, "mx1.remote.test", peer.addr))
        p = start(make_petrel, dns)
        send(p, ["bob@remote.test"],
             b"Subject: long\r\n\r\n" + b"y" * 1500 + b"\r\n")
        r = rcpt_report(p)
        assert r["Status"] == "5.6.0"
        assert peer.messages == []


def test_too_many_hops_bounces(make_petrel, dns):
    with SMTPPeer() as peer:
        mx(dns, "remote.test", (10, "mx1.remote.test", peer.addr))
        p = start(make_petrel, dns, "max_hops 5\n")
        hops = b"".join(b"Received: from hop%d.test by x; "
                        b"Mon, 1 Jan 2024 00:00:00 +0000\r\n" % i
                        for i in range(5))
        send(p, ["bob@remote.test"], hops + b"Subject: loop\r\n\r\nhi\r\n")
        r = rcpt_report(p)
        assert r["Status"] == "5.4.6"
        assert peer.messages == []


def test_outbound_hygiene_bytes(make_petrel, dns):
    """What the peer receives, byte for byte: dot-stuffed lines, CRLF
    only, and none of the smuggling end-of-data variants ends the data
    early. Accepted with bare_lf normalize (the variants contain bare CR
    and LF), sent with every line ending in CRLF."""
    variants = sorted(v for _, v in smuggling_variants())
    assert len(variants) >= 12
    accepted = 0
    with SMTPPeer() as peer:
        mx(dns, "remote.test", (10, "mx1.remote.test", peer.addr))
        p = start(make_petrel, dns, "bare_lf normalize\n")
        for i, v in enumerate(variants):
            body = (b"Subject: smuggle %d\r\n\r\nbefore\r\n" % i +
                    v + b"MAIL FROM:<evil@x>\r\n"
                    b"after\r\n")
            with p.raw() as c:
                c.read_greeting()
                c.ehlo()
                assert c.cmd("MAIL FROM:<%s>" % SENDER)[0] == 250
                assert c.cmd("RCPT TO:<bob@remote.test>")[0] == 250
                assert c.cmd("DATA")[0] == 354
                c.send(body + b"\r\n.\r\n")
                code, _ = c.reply()
                if code == 250:
                    accepted += 1
        dots = (b"Subject: dots\r\n\r\n.\r\n..\r\n.x\r\n. \r\n"
                b"...\r\nend\r\n")
        send(p, ["bob@remote.test"], dots)
        peer.wait_messages(accepted + 1, timeout=60)
        p.wait_queue_empty(timeout=60)
        msgs = peer.messages
        peer.assert_clean()
        for m in msgs:
            # No bare CR or LF on the wire, no line over 998.
            lines = m.raw.split(b"\r\n")
            assert all(b"\r" not in ln and b"\n" not in ln for ln in lines)
            assert all(len(ln) <= 999 for ln in lines)
            assert m.raw.endswith(b"\r\n.\r\n")
            assert m.raw.count(b"\r\n.\r\n") == 1
            if b"Subject: smuggle" in m.data:
                assert b"after" in m.data      # nothing cut short
        [d] = [m for m in msgs if b"Subject: dots" in m.data]
        assert d.raw.endswith(b"\r\n..\r\n...\r\n..x\r\n.. \r\n"
                              b"....\r\nend\r\n.\r\n")
        assert d.data.endswith(b"\r\n.\r\n..\r\n.x\r\n. \r\n...\r\nend")


def test_bdat_to_chunking_peer(make_petrel, dns):
    with SMTPPeer(chunking=True) as peer:
        mx(dns, "remote.test", (10, "mx1.remote.test", peer.addr))
        p = start(make_petrel, dns)
        body = b"Subject: chunks\r\n\r\n" + b".dot line\r\n" * 20000
        send(p, ["bob@remote.test"], body)
        [m] = peer.wait_messages(1)
        assert m.via == "BDAT"
        assert m.content.endswith(b".dot line\r\n")
        assert m.content.count(b".dot line\r\n") == 20000
        peer.assert_clean()


# ---------------------------------------------------------------- DSN


def test_notify_success_relayed_notice(make_petrel, dns):
    """NOTIFY=SUCCESS to a peer without DSN: a "relayed" notice."""
    with SMTPPeer(dsn=False) as peer:
        mx(dns, "remote.test", (10, "mx1.remote.test", peer.addr))
        p = start(make_petrel, dns)
        send(p, ["bob@remote.test"], b"Subject: notify\r\n\r\nhi\r\n",
             rcpt_opts={"bob@remote.test": ["NOTIFY=SUCCESS,FAILURE"]})
        peer.wait_messages(1)
        r = rcpt_report(p)
        assert r["Action"] == "relayed"
        assert r["Status"].startswith("2.")
        p.wait_queue_empty()


def test_notify_passed_to_dsn_peer(make_petrel, dns):
    """A DSN-capable next hop gets NOTIFY/ORCPT/RET/ENVID and we send no
    notice ourselves."""
    with SMTPPeer() as peer:
        mx(dns, "remote.test", (10, "mx1.remote.test", peer.addr))
        p = start(make_petrel, dns)
        send(p, ["bob@remote.test"], b"Subject: pass\r\n\r\nhi\r\n",
             mail_opts=["RET=HDRS", "ENVID=abc"],
             rcpt_opts={"bob@remote.test":
                        ["NOTIFY=SUCCESS", "ORCPT=rfc822;bob@remote.test"]})
        [m] = peer.wait_messages(1)
        assert m.mail_params.get("RET") == "HDRS"
        assert m.mail_params.get("ENVID") == "abc"
        params = m.rcpts[0][1]
        assert params.get("NOTIFY") == "SUCCESS"
        assert params.get("ORCPT", "").lower() == "rfc822;bob@remote.test"
        p.wait_queue_empty()
        time.sleep(0.5)     # a notice would be queued by now
        assert p.maildir_files(SENDER) == []


def test_notify_never_no_bounce(make_petrel, dns):
    with SMTPPeer() as peer:
        peer.rcpt_reply = {"bad@remote.test": "550 5.1.1 no"}
        mx(dns, "remote.test", (10, "mx1.remote.test", peer.addr))
        p = start(make_petrel, dns)
        send(p, ["bad@remote.test"], b"Subject: never\r\n\r\nhi\r\n",
             rcpt_opts={"bad@remote.test": ["NOTIFY=NEVER"]})
        p.wait_log(r"to=<bad@remote.test>.*status=bounced")
        p.wait_queue_empty()
        assert p.maildir_files(SENDER) == []


def test_delay_warning(make_petrel, dns):
    with SMTPPeer() as peer:
        peer.rcpt_default_reply = "451 4.3.0 later"
        mx(dns, "remote.test", (10, "mx1.remote.test", peer.addr))
        p = start(make_petrel, dns, "delay_warning 2s\n")
        send(p, ["bob@remote.test"], b"Subject: slow\r\n\r\nhi\r\n")
        r = rcpt_report(p, timeout=30)
        assert r["Action"] == "delayed"
        assert r["Status"].startswith("4.")
        assert r["Will-Retry-Until"]
        # Once only.
        time.sleep(4)
        assert len(p.maildir_files(SENDER)) == 1


def test_bounce_of_bounce_dropped(make_petrel, dns):
    """Mail from <> that fails is never bounced (to <>): dropped with a
    log line."""
    with SMTPPeer() as peer:
        peer.rcpt_reply = {"bad@remote.test": "550 5.1.1 no"}
        mx(dns, "remote.test", (10, "mx1.remote.test", peer.addr))
        p = start(make_petrel, dns)
        send(p, ["bad@remote.test"], b"Subject: dbl\r\n\r\nhi\r\n",
             sender="")
        p.wait_log(r"status=dropped \(undeliverable mail from <>")
        p.wait_queue_empty()


# ---------------------------------------------------------------- control


def test_sigusr1_retries_now(make_petrel, dns):
    with SMTPPeer() as peer:
        peer.fail_first(1, "451 4.3.0 later", "data")
        mx(dns, "remote.test", (10, "mx1.remote.test", peer.addr))
        p = start(make_petrel, dns, "retry_initial 1h\nretry_max 1h\n")
        send(p, ["bob@remote.test"], b"Subject: usr1\r\n\r\nhi\r\n")
        p.wait_log(r"to=<bob@remote.test>.*status=deferred")
        assert peer.messages == []
        p.signal(signal.SIGUSR1)
        peer.wait_messages(1, timeout=15)
        p.wait_queue_empty()


def test_kill9_during_delivery(make_petrel, dns):
    """kill -9 while a slow peer receives: after the restart, delivered
    recipients are not sent again (at most the one in flight), pending
    ones are."""
    with SMTPPeer() as peer:
        peer.delay_reply = {"data": 1.5}
        mx(dns, "remote.test", (10, "mx1.remote.test", peer.addr))
        p = start(make_petrel, dns, "destination_concurrency 1\n")
        for i in range(6):
            send(p, ["bob@remote.test"], b"Subject: k%d\r\n\r\nhi\r\n" % i)
        peer.wait_messages(2, timeout=30)
        p.kill()

        def subjects():
            return [re.search(rb"Subject: (k\d)", m.data).group(1)
                    for m in peer.messages]

        before = set(subjects())
        peer.delay_reply = 0.0
        p.start()
        want = {b"k%d" % i for i in range(6)}
        wait_until(lambda: set(subjects()) >= want, timeout=40,
                   what="all six delivered")
        p.wait_queue_empty()
        got = subjects()
        dups = len(got) - len(set(got))
        assert dups <= 1, got
        assert len(before) >= 2


def test_starts_without_a_resolver(make_petrel, tmp_path):
    """No dns lines and an unusable /etc/resolv.conf (a private mount
    namespace hides the real one): the daemon still starts, delivers
    locally, and keeps remote mail queued (deferred) instead of refusing
    to run."""
    bad = tmp_path / "resolv.conf"
    bad.write_text("nameserver not-an-address\n")
    wrapper = ["unshare", "-m", "sh", "-c",
               'mount --bind "$0" /etc/resolv.conf && exec "$@"', str(bad)]
    p = make_petrel(dns=(), wrapper=wrapper, trusted=("127.0.0.0/8",),
                    extra_conf=conf_with(""))
    p.wait_log(r"no DNS resolver \(reading /etc/resolv.conf")
    send(p, ["bob@example.test", "carol@remote.test"],
         b"Subject: nodns\r\n\r\nhi\r\n")
    wait_until(lambda: p.maildir_files("bob@example.test"), timeout=30,
               what="local delivery")
    p.wait_log(r"to=<carol@remote.test>.*status=deferred "
               r"\(451 4.4.3 no DNS resolver configured\)")
