"""
test_dns.py: Petrel's resolver (libunbound, src/dns/) against the loopback
DNS server of dnsserver.py, through `petrel resolve`: every record type,
NXDOMAIN, NODATA, SERVFAIL, timeouts, CNAME chains, a TXT record too big
for UDP (TCP fallback), and the RFC 5321 5.1 route lookup (MX order,
implicit MX, null MX, this host in the MX list).

Each `petrel resolve` is its own process with its own libunbound, so a
server that libunbound marked unresponsive in one case cannot leak into
another. Zones use TTL 0, so every lookup reaches the server.
"""

import concurrent.futures
import os
import shutil
import subprocess
import tempfile
import time

import pytest

import harness
from dnsserver import DNSServer

LONG_TXT = "".join(chr(ord("a") + i % 26) for i in range(2000))


def populate(srv):
    srv.add("multi.test", "A", "127.0.0.2")
    srv.add("multi.test", "A", "127.0.0.3")
    srv.add("multi.test", "AAAA", "::1")
    srv.add("multi.test", "AAAA", "2001:db8::7")
    srv.add("mail.test", "MX", "10 MX1.Mail.Test.")
    srv.add("mail.test", "MX", "20 mx2.mail.test.")
    srv.add("spf.test", "TXT", "v=spf1 ip4:127.0.0.0/8 -all")
    srv.add("spf.test", "TXT", ["split ", "in two"])
    srv.add("bin.test", "TXT", b"a\x00b\\c\xff")
    srv.add("long.test", "TXT", LONG_TXT)
    srv.add("2.0.0.127.in-addr.arpa", "PTR", "mx1.mail.test.")
    srv.add("alias.test", "CNAME", "middle.test.")
    srv.add("middle.test", "CNAME", "multi.test.")
    srv.add("_25._tcp.mx1.mail.test", "TLSA",
            "3 1 1 0c72ac70b745ac19998811b131d662c9ac69dbdbe7cb23e5b514b566"
            "64c5d3d6")
    srv.add("nodata.test", "TXT", "only text here")
    srv.fail("servfail.test", "servfail")
    srv.fail("refused.test", "refused")
    srv.fail("slow.test", "timeout")

    # Routes.
    srv.zone("""
$ORIGIN route.test.
$TTL 0
@       MX 20 mx2
@       MX 10 mx1
mx1     A  127.0.0.2
mx2     A  127.0.0.3
mx2     AAAA ::1
""")
    srv.add("implicit.test", "A", "127.0.0.4")
    srv.add("nullmx.test", "MX", "0 .")
    srv.add("nullmx.test", "A", "127.0.0.5")
    srv.add("backup.test", "MX", "10 primary.backup.test.")
    srv.add("backup.test", "MX", "20 mx.self.test.")
    srv.add("backup.test", "MX", "30 worse.backup.test.")
    srv.add("primary.backup.test", "A", "127.0.0.6")
    srv.add("worse.backup.test", "A", "127.0.0.7")
    srv.add("loop.test", "MX", "10 mx.self.test.")
    srv.add("loop.test", "MX", "20 primary.backup.test.")
    srv.add("selfaddr.test", "MX", "10 us.selfaddr.test.")
    srv.add("us.selfaddr.test", "A", "127.0.0.9")
    srv.add("mxtemp.test", "A", "127.0.0.8")
    srv.fail("mxtemp.test", "servfail")


@pytest.fixture(scope="module")
def dns():
    with DNSServer() as srv:
        populate(srv)
        yield srv


@pytest.fixture(scope="module")
def conf(dns):
    d = tempfile.mkdtemp(prefix="petrel-dns-")
    path = os.path.join(d, "petrel.conf")
    with open(path, "w", encoding="utf-8") as f:
        f.write("# written by tests/e2e/test_dns.py\n"
                "hostname mx.self.test\n"
                "spool %s/spool\n"
                "maildir %s/mail/%%d/%%u\n"
                "listen 127.0.0.9:25 mx\n"
                "dns %s\n"
                "dns_max_queries 10\n" % (d, d, dns.addr))
    yield path
    shutil.rmtree(d, ignore_errors=True)


def resolve(conf, rtype, name, timeout=30):
    t0 = time.monotonic()
    p = subprocess.run([harness.PETREL_BIN, "resolve", "-c", conf, rtype,
                        name], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=timeout)
    return (p.returncode, p.stdout.decode("utf-8", "replace").splitlines(),
            p.stderr.decode("utf-8", "replace"), time.monotonic() - t0)


def ok(conf, rtype, name):
    rc, out, err, _ = resolve(conf, rtype, name)
    assert rc == 0, "resolve %s %s: exit %d, stderr %r" % (rtype, name, rc,
                                                            err)
    return out, err


@pytest.mark.parametrize("rtype,name,want", [
    ("A", "multi.test", ["127.0.0.2", "127.0.0.3"]),
    ("AAAA", "multi.test", ["::1", "2001:db8::7"]),
    ("MX", "mail.test", ["10 mx1.mail.test", "20 mx2.mail.test"]),
    ("TXT", "spf.test", ["v=spf1 ip4:127.0.0.0/8 -all", "split in two"]),
    ("txt", "bin.test", ["a\\000b\\092c\\255"]),
    ("PTR", "2.0.0.127.in-addr.arpa", ["mx1.mail.test"]),
    ("CNAME", "alias.test", ["middle.test"]),
    ("TLSA", "_25._tcp.mx1.mail.test",
     ["3 1 1 0c72ac70b745ac19998811b131d662c9ac69dbdbe7cb23e5b514b56664c5d3d6"]),
])
def test_record_types(dns, conf, rtype, name, want):
    before = dns.count(name, rtype)
    out, _ = ok(conf, rtype, name)
    assert out == want
    # Answered by our server, not by a cache or a built-in zone.
    assert dns.count(name, rtype) > before


def test_nxdomain(dns, conf):
    rc, out, err, _ = resolve(conf, "A", "nowhere.test")
    assert (rc, out, err.strip()) == (1, [], "NXDOMAIN")
    assert dns.count("nowhere.test", "A") >= 1


def test_nodata(conf):
    rc, out, err, _ = resolve(conf, "A", "nodata.test")
    assert (rc, out, err.strip()) == (1, [], "NODATA")


@pytest.mark.parametrize("name", ["servfail.test", "refused.test"])
def test_server_failure(dns, conf, name):
    rc, out, err, elapsed = resolve(conf, "MX", name)
    assert rc == 75, err
    assert out == []
    # libunbound reports a REFUSED from its forwarder as SERVFAIL too.
    assert err.strip() == "TEMPFAIL: SERVFAIL"
    assert dns.count(name, "MX") >= 1
    assert elapsed < 10


def test_timeout(dns, conf):
    before = dns.count("slow.test", "A")
    rc, out, err, elapsed = resolve(conf, "A", "slow.test")
    assert rc == 75, err
    assert err.strip() == "TEMPFAIL: timed out"
    assert dns.count("slow.test", "A") > before
    # libunbound gives up after a few seconds, not its default minutes.
    assert elapsed < 10, elapsed


def test_cname_chain(conf):
    out, err = ok(conf, "A", "alias.test")
    assert out == ["127.0.0.2", "127.0.0.3"]
    assert "; canonical name multi.test" in err


def test_txt_over_tcp(dns, conf):
    dns.reset_queries()
    out, _ = ok(conf, "TXT", "long.test")
    assert out == [LONG_TXT]
    protos = [p for n, t, p in dns.transcript if n == "long.test"]
    # Truncated over UDP, then the whole answer over TCP.
    assert protos[0] == "udp" and "tcp" in protos, protos


def test_ipv6_server(tmp_path):
    try:
        srv = DNSServer(host="::1").start()
    except OSError as e:
        pytest.skip("no IPv6 loopback: %s" % e)
    try:
        srv.add("v6.test", "A", "127.0.0.42")
        assert srv.addr.startswith("[::1]:")
        path = tmp_path / "petrel.conf"
        path.write_text("dns %s\n" % srv.addr)
        out, _ = ok(str(path), "A", "v6.test")
        assert out == ["127.0.0.42"]
        assert srv.count("v6.test", "A") >= 1
    finally:
        srv.stop()


def test_parallel_processes(dns, conf):
    """Many resolvers at once against the one server."""
    names = ["multi.test", "mail.test", "spf.test", "implicit.test"] * 5
    types = {"multi.test": "A", "mail.test": "MX", "spf.test": "TXT",
             "implicit.test": "A"}
    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as ex:
        results = list(ex.map(lambda n: (n, resolve(conf, types[n], n)),
                              names))
    for n, (rc, out, err, _) in results:
        assert rc == 0, (n, err)
        assert out, n


def test_usage_errors(conf):
    rc, out, err, _ = resolve(conf, "NS", "mail.test")
    assert rc == 2 and "unknown type" in err
    p = subprocess.run([harness.PETREL_BIN, "resolve", "-c", conf, "A"],
                       capture_output=True, text=True)
    assert p.returncode == 2 and "usage: petrel resolve" in p.stderr


@pytest.mark.skipif(os.path.exists("/usr/share/dns/root.key"),
                    reason="the root trust anchor is installed")
def test_dnssec_needs_trust_anchor(tmp_path, dns):
    path = tmp_path / "petrel.conf"
    path.write_text("dns %s\ndnssec on\n" % dns.addr)
    rc, out, err, _ = resolve(str(path), "A", "multi.test")
    assert rc == 1
    assert "/usr/share/dns/root.key" in err


# The route lookup (RFC 5321 5.1).

def test_route_two_preferences(dns, conf):
    out, _ = ok(conf, "route", "route.test")
    # MX order; mx2's AAAA before its A.
    assert out == ["10 mx1.route.test 127.0.0.2:25",
                   "20 mx2.route.test [::1]:25",
                   "20 mx2.route.test 127.0.0.3:25"]


def test_route_implicit_mx(dns, conf):
    out, _ = ok(conf, "route", "implicit.test")
    assert out == ["0 implicit.test 127.0.0.4:25"]
    assert dns.count("implicit.test", "MX") >= 1


def test_route_null_mx(dns, conf):
    before = dns.count("nullmx.test", "A")
    rc, out, err, _ = resolve(conf, "route", "nullmx.test")
    assert rc == 1 and out == []
    assert err.startswith("556 5.1.10 "), err
    assert "null MX" in err
    assert dns.count("nullmx.test", "A") == before


def test_route_nxdomain(conf):
    rc, out, err, _ = resolve(conf, "route", "nowhere.test")
    assert rc == 1 and out == []
    assert err.startswith("550 5.1.2 "), err


def test_route_mx_servfail_never_uses_a(dns, conf):
    rc, out, err, _ = resolve(conf, "route", "mxtemp.test")
    assert rc == 75 and out == []
    assert err.startswith("451 4.4.3 "), err
    assert dns.count("mxtemp.test", "A") == 0


def test_route_self_backup(conf):
    # We are the 20: only the better 10 is left.
    out, _ = ok(conf, "route", "backup.test")
    assert out == ["10 primary.backup.test 127.0.0.6:25"]


def test_route_self_best(conf):
    rc, out, err, _ = resolve(conf, "route", "loop.test")
    assert rc == 1 and out == []
    assert err.strip() == "554 5.4.6 mail for loop.test loops back to myself"


def test_route_self_by_address(conf):
    # The MX host resolves to our listening address 127.0.0.9:25.
    rc, out, err, _ = resolve(conf, "route", "selfaddr.test")
    assert rc == 1 and err.startswith("554 5.4.6 "), err
