"""
test_metrics.py: the Prometheus endpoint (issue 6, `metrics ADDR:PORT`,
src/daemon/metrics_http.c, docs/metrics.md).

Every scrape is parsed with Debian's python3-prometheus-client
(prometheus_client.parser.text_string_to_metric_families), so what the
daemon serves is what a Prometheus server reads. Counters are read before
and after the traffic and compared: exact differences, never absolute
values (and never timings).
"""

import base64
import http.client
import smtplib
import socket
import ssl
import subprocess
import warnings

import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness import PETREL_BIN, free_port, wait_until
from dnsserver import DNSServer

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BODY = b"Subject: metrics\r\n\r\nhello\r\n"


def scrape(port, path="/metrics", method="GET"):
    """(status, headers dict, body bytes) of one request."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path)
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def samples(port):
    """{(sample name, ((label, value), ...)): value} of one scrape, and
    the families by name, after checking status and content type."""
    status, headers, body = scrape(port)
    assert status == 200, status
    assert headers["Content-Type"] == CONTENT_TYPE
    out, families = {}, {}
    for fam in text_string_to_metric_families(body.decode("utf-8")):
        families[fam.name] = fam
        for s in fam.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in out, "sample twice: %r" % (key,)
            out[key] = s.value
    return out, families


def val(s, name, **labels):
    return s[(name, tuple(sorted(labels.items())))]


def total(s, name):
    return sum(v for (n, _), v in s.items() if n == name)


def start(make_petrel, **kw):
    port = free_port()
    extra = kw.pop("extra_conf", "")
    p = make_petrel(extra_conf="metrics 127.0.0.1:%d\n%s" % (port, extra),
                    **kw)
    p.wait_log(r"listening metrics=127\.0\.0\.1:%d " % port)
    return p, port


def test_counters_rise_exactly(make_petrel):
    p, port = start(make_petrel)
    before, fams = samples(port)
    # Types as docs/metrics.md promises.
    assert fams["petrel_smtp_messages_received"].type == "counter"
    assert fams["petrel_delivery_latency_seconds"].type == "histogram"
    assert fams["petrel_queue_messages"].type == "gauge"

    with p.smtp() as s:
        for _ in range(3):
            s.sendmail("sender@example.org", ["alice@example.test"], BODY)
        code, _ = s.docmd("MAIL FROM:<sender@example.org>")
        assert code == 250
        code, _ = s.docmd("RCPT TO:<someone@elsewhere.example>")
        assert code == 550        # relay denied
        s.docmd("RSET")
    p.wait_delivered("alice@example.test", 3)
    wait_until(lambda: val(samples(port)[0],
                           "petrel_recipients_delivered_total") ==
               val(before, "petrel_recipients_delivered_total") + 3,
               what="3 deliveries counted")
    after, _ = samples(port)

    def rose(name, **labels):
        return val(after, name, **labels) - val(before, name, **labels)

    assert rose("petrel_smtp_messages_received_total", role="mx") == 3
    assert rose("petrel_smtp_recipients_accepted_total", role="mx") == 3
    assert rose("petrel_smtp_rejections_total", reason="relay_denied") == 1
    assert (total(after, "petrel_smtp_rejections_total") -
            total(before, "petrel_smtp_rejections_total")) == 1
    assert rose("petrel_smtp_connections_total", role="mx") == 1
    assert rose("petrel_spool_commits_total") == 3
    assert rose("petrel_spool_fsyncs_total", kind="file") >= 3
    assert rose("petrel_spool_fsyncs_total", kind="directory") >= 1
    assert rose("petrel_recipients_delivered_total") == 3
    # The deliveries are in the histogram: +3 observations, the +Inf
    # bucket equal to _count, buckets cumulative.
    assert rose("petrel_delivery_latency_seconds_count", kind="local") == 3
    assert rose("petrel_delivery_latency_seconds_count", kind="remote") == 0
    buckets = sorted(
        ((float(dict(lb)["le"]), v) for (n, lb), v in after.items()
         if n == "petrel_delivery_latency_seconds_bucket" and
         dict(lb)["kind"] == "local"))
    assert buckets[-1][0] == float("inf")
    assert buckets[-1][1] == val(after,
                                 "petrel_delivery_latency_seconds_count",
                                 kind="local")
    counts = [v for _, v in buckets]
    assert counts == sorted(counts), counts
    # Nothing left in the queue.
    wait_until(lambda: val(samples(port)[0], "petrel_queue_messages") == 0,
               what="an empty queue")
    s2, _ = samples(port)
    assert val(s2, "petrel_queue_recipients") == 0
    assert val(s2, "petrel_queue_oldest_message_age_seconds") == 0


def test_queue_gauges_and_tls(make_petrel):
    # A relayhost nobody answers on keeps a message queued.
    dead = free_port()
    p, port = start(make_petrel, trusted=("127.0.0.0/8",),
                    extra_conf="relayhost [127.0.0.1]:%d\nretry_initial 1h\n"
                               "client_timeout_connect 2s\n" % dead)
    before, _ = samples(port)
    with p.smtp() as s:
        s.starttls(context=ssl._create_unverified_context())
        s.ehlo()
        s.sendmail("alice@example.test",
                   ["x@remote.example", "y@remote.example"], BODY)
    wait_until(lambda: val(samples(port)[0],
                           "petrel_recipients_deferred_total") >= 1,
               what="a deferred attempt")
    after, _ = samples(port)
    assert val(after, "petrel_queue_messages") == 1
    assert val(after, "petrel_queue_recipients") == 2
    assert val(after, "petrel_queue_oldest_message_age_seconds") >= 0
    assert (val(after, "petrel_smtp_tls_handshakes_total", result="ok") -
            val(before, "petrel_smtp_tls_handshakes_total",
                result="ok")) == 1


def _sha512(password):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt
    return crypt.crypt(password, crypt.mksalt(crypt.METHOD_SHA512))


def _plain(password):
    return base64.b64encode(b"\0alice@example.test\0" +
                            password.encode()).decode()


def test_auth_results(make_petrel):
    sub = free_port()
    p, port = start(make_petrel,
                    listen=["127.0.0.1:%d mx" % free_port(),
                            "127.0.0.1:%d submission" % sub],
                    users={"alice@example.test": _sha512("right-pw")},
                    extra_conf="auth_fail_delay 0\n")
    before, _ = samples(port)
    s = smtplib.SMTP("127.0.0.1", sub, timeout=30)
    try:
        s.starttls(context=ssl._create_unverified_context())
        s.ehlo()
        # One AUTH each (smtplib's login() would try every mechanism).
        assert s.docmd("AUTH", "PLAIN " + _plain("wrong-pw"))[0] == 535
        assert s.docmd("AUTH", "PLAIN " + _plain("right-pw"))[0] == 235
    finally:
        s.quit()
    after, _ = samples(port)

    def rose(name, **labels):
        return val(after, name, **labels) - val(before, name, **labels)

    assert rose("petrel_smtp_auth_total", result="success") == 1
    assert rose("petrel_smtp_auth_total", result="failure") == 1
    assert rose("petrel_smtp_connections_total", role="submission") == 1
    assert rose("petrel_smtp_tls_handshakes_total", result="ok") == 1


def test_msgauth_verdicts(make_petrel):
    with DNSServer() as dns:
        dns.add("example.org", "TXT", "v=spf1 -all")
        p, port = start(make_petrel, dns=dns.addr, msgauth=True)
        before, _ = samples(port)
        with p.smtp() as s:
            s.sendmail("sender@example.org", ["alice@example.test"],
                       b"From: sender@example.org\r\nSubject: x\r\n\r\n"
                       b"hi\r\n")
        p.wait_delivered("alice@example.test", 1)
        after, _ = samples(port)

    def rose(name, **labels):
        return val(after, name, **labels) - val(before, name, **labels)

    assert rose("petrel_spf_results_total", result="fail") == 1
    assert rose("petrel_dkim_results_total", result="none") == 1
    assert (total(after, "petrel_dmarc_results_total") -
            total(before, "petrel_dmarc_results_total")) == 1


def raw_request(port, data, shut=False):
    """Send data, read until the server closes; the bytes read."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as c:
        c.sendall(data)
        if shut:
            c.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            chunk = c.recv(65536)
            if not chunk:
                return out
            out += chunk


def test_other_paths_and_methods(make_petrel):
    p, port = start(make_petrel)
    assert scrape(port, "/")[0] == 404
    assert scrape(port, "/metricsx")[0] == 404
    assert scrape(port, "/metrics/")[0] == 404
    assert scrape(port, "/metrics?name[]=x")[0] == 200
    status, headers, _ = scrape(port, method="POST")
    assert status == 405 and headers["Allow"] == "GET, HEAD"
    status, headers, body = scrape(port, method="HEAD")
    assert status == 200 and body == b""
    assert int(headers["Content-Length"]) > 1000
    assert raw_request(port, b"nonsense\r\n\r\n").startswith(
        b"HTTP/1.1 400 ")
    assert raw_request(port, b"GET /metrics SPDY/3\r\n\r\n").startswith(
        b"HTTP/1.1 400 ")
    # HTTP/1.0 and bare LF line ends are served too.
    assert raw_request(port, b"GET /metrics HTTP/1.0\n\n").startswith(
        b"HTTP/1.1 200 OK\r\n")
    samples(port)


def test_slow_oversized_and_too_many(make_petrel):
    p, port = start(make_petrel)
    # Oversized: a head over 8 KiB gets 431 and the connection ends.
    head = (b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * 20000 +
            b"\r\n\r\n")
    assert raw_request(port, head).startswith(b"HTTP/1.1 431 ")
    # A line that never ends: 431 as well.
    assert raw_request(port, b"GET /" + b"m" * 9000).startswith(
        b"HTTP/1.1 431 ")
    # A slow client (half a request) does not stop others.
    slow = socket.create_connection(("127.0.0.1", port), timeout=60)
    slow.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
    samples(port)
    # Connections past the limit (8) are closed at once; the others work.
    idle = [socket.create_connection(("127.0.0.1", port), timeout=30)
            for _ in range(7)]
    for c in idle:
        c.sendall(b"GET")
    extra = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        assert extra.recv(100) == b""
    except ConnectionResetError:
        pass
    extra.close()
    p.wait_log(r"metrics: 127\.0\.0\.1:%d: connection refused: 8 already "
               r"open" % port)
    for c in idle:
        c.close()
    wait_until(lambda: _scrape_ok(port), what="a scrape after the limit")
    # The slow client is dropped by the server (read timeout).
    assert slow.recv(100) == b""
    slow.close()
    # And SMTP never noticed.
    with p.smtp() as s:
        s.sendmail("sender@example.org", ["bob@example.test"], BODY)
    p.wait_delivered("bob@example.test", 1)
    samples(port)


def _scrape_ok(port):
    try:
        return scrape(port)[0] == 200
    except (ConnectionError, http.client.HTTPException, OSError):
        return False


def _listening_ports(pid):
    out = subprocess.run(["ss", "-Htlnp"], capture_output=True, text=True,
                         check=True).stdout
    return [line.split()[3] for line in out.splitlines()
            if "pid=%d," % pid in line]


def test_off_by_default(make_petrel):
    p = make_petrel()
    assert not any("metrics" in l for l in p.log_lines)
    # Only the SMTP listener is open.
    assert _listening_ports(p.proc.pid) == ["127.0.0.1:%d" % p.port]


def test_check_config_warns_off_loopback(make_petrel, tmp_path):
    p = make_petrel(start=False)

    def check(addr):
        conf = tmp_path / "petrel.conf"
        conf.write_text(p.conf_text() + "metrics %s\n" % addr)
        r = subprocess.run([PETREL_BIN, "check-config", "-c", str(conf)],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        return r.stderr

    assert "warning" not in check("127.0.0.1:9587")
    assert "warning" not in check("[::1]:9587")
    err = check("0.0.0.0:9587")
    assert "warning: metrics 0.0.0.0:9587 is not a loopback address" in err
    conf = tmp_path / "bad.conf"
    conf.write_text(p.conf_text() + "metrics localhost:9587\n")
    r = subprocess.run([PETREL_BIN, "check-config", "-c", str(conf)],
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert "metrics: bad address \"localhost:9587\"" in r.stderr
