"""
test_spf_suite.py: the openspf RFC 7208 test suite
(tests/data/conformance/spf/rfc7208-tests.yml, the unchanged copy of
../shared/conformance, read at test time with PyYAML, never edited) through the real resolver path:
`petrel spf check` (src/cli/spf.c) -> msgauth/spf.c -> dns/dns.c ->
libunbound -> a loopback DNS server serving exactly one scenario's
zonedata with TTL 0.

Every scenario gets its own server (ZoneServer below) and every test its
own `petrel spf check --dns 127.0.0.1:PORT` process, so libunbound's cache
and its memory of unresponsive servers never carry over from one test to
the next. The configuration given with -c names a dead server
(127.0.0.1:9), so the suite passes only if --dns replaces the
configuration's servers. A test passes when the result (line 1) is one of
the allowed ones and, when the suite gives an explanation, the
"explanation: " line is exactly it; the default explanation is set to
"DEFAULT" with --default-exp, as in the reference driver
(tests/data/conformance/tools/pyspf_run_suite.py). Prints every
failure and "N passed, M failed"; fails unless M is 0 and N is the
suite's 203.

The zonedata is read as the reference driver reads it (see its header and
tests/unit/spf_suite_dump.py): a TXT or SPF value is one record whose
character-strings are the list's items (a plain string is one item; an
item over 255 octets is split, as a zone file would have to), UTF-8
encoded; SPF records are also served as TXT when the name has no TXT
entry of its own ("TXT: NONE" counts as one); "TYPE: NONE" is no record;
a bare TIMEOUT makes every query type that has no record listed before it
go unanswered, "TYPE: TIMEOUT" that type; names not listed are NXDOMAIN,
except names under "error." which go unanswered (the driver's
convention); a listed name without records of the type asked is NODATA.
An unanswered query is what the suite's TIMEOUT means: libunbound gives
up after its timeout (about two seconds) and spf.c reports temperror.

ZoneServer is our own small authoritative server (dnslib for the wire
format) rather than dnsserver.py's DNSServer, which keys names as text
(a zonedata name holds spaces, ':' and '/'), times out only whole names
and has no type 99. It answers over UDP and TCP on one port: EDNS (1232
octets) when asked, TC over UDP when the answer does not fit, CNAMEs
followed up to 8 links (a loop ends the chain, and libunbound reports
it), an SOA with TTL 0 and minimum 0 in negative answers. One
deliberate difference from the driver: an empty record ("SPF: [ ]") is
served as one empty character-string, as RFC 1035 3.3.14 requires at
least one; its text is "" either way.

Scenarios run four at a time (a TIMEOUT costs libunbound's timeout, about
2.3 s), the tests of a scenario one after the other: about 8 s in all.

Also here, the command itself: its output lines, the null reverse-path
("" and "<>") checking the HELO identity, exit 2 for a bad command line,
exit 1 when the resolver cannot be made, and the reason of a fail.
"""

import concurrent.futures
import errno
import os
import shutil
import socketserver
import struct
import subprocess
import tempfile
import threading

import pytest
import yaml
from dnslib import (AAAA, CLASS, CNAME, EDNS0, MX, OPCODE, PTR, QTYPE, RCODE,
                    RR, SOA, TXT, A, DNSHeader, DNSLabel, DNSRecord)

import harness

SUITE = os.environ.get(
    "PETREL_SPF_SUITE",
    os.path.join(harness.CONFORMANCE_DIR, "spf", "rfc7208-tests.yml"))
SUITE_TESTS = 203
WORKERS = 4
UDP_MAX_EDNS = 1232
MAX_CNAME_CHAIN = 8
CHECK_TIMEOUT = 60      # seconds for one `petrel spf check`
RESULTS = ("none", "neutral", "pass", "fail", "softfail", "temperror",
           "permerror")


def _labels(name):
    """A zonedata name (or record target) as a tuple of label octets."""
    b = name.encode("utf-8")
    if b.endswith(b".") and b != b".":
        b = b[:-1]
    if b in (b"", b"."):
        return ()
    return tuple(b.split(b"."))


def _key(labels):
    return tuple(label.lower() for label in labels)   # ASCII only


def _txt_strings(v):
    """The character-strings of one TXT record from a zonedata value."""
    items = [v] if isinstance(v, str) else list(v)
    out = []
    for s in items:
        b = s.encode("utf-8")
        out += [b[i:i + 255] for i in range(0, len(b), 255)] or [b""]
    return out or [b""]


def zone_from_scenario(scen):
    """{key: (labels, [record, ...])}: a record is "TIMEOUT" (bare) or
    (QTYPE value, rdata or "TIMEOUT"), in zonedata order."""
    zone = {}
    for name, recs in (scen.get("zonedata") or {}).items():
        out, spfs, has_txt = [], [], False
        for r in recs or []:
            if r == "TIMEOUT":
                out.append("TIMEOUT")
                continue
            (t, v), = r.items()
            t = t.upper()
            if t == "TXT":
                has_txt = True
            if v == "NONE" or v == ["NONE"]:
                continue
            code = getattr(QTYPE, t)
            if v == "TIMEOUT":
                out.append((code, "TIMEOUT"))
                continue
            if t in ("TXT", "SPF"):
                rdata = TXT(_txt_strings(v))
                if t == "SPF":
                    spfs.append(rdata)
            elif t == "A":
                rdata = A(v)
            elif t == "AAAA":
                rdata = AAAA(v)
            elif t == "MX":
                pref, host = v
                rdata = MX(DNSLabel(_labels(host or ".")), int(pref))
            elif t == "PTR":
                rdata = PTR(DNSLabel(_labels(v)))
            elif t == "CNAME":
                rdata = CNAME(DNSLabel(_labels(v)))
            else:
                raise ValueError("zonedata %r: type %s not served"
                                 % (name, t))
            out.append((code, rdata))
        if not has_txt:
            out += [(QTYPE.TXT, rdata) for rdata in spfs]
        labels = _labels(name)
        zone[_key(labels)] = (labels, out)
    return zone


class ZoneServer:
    """An authoritative server for one scenario's zone (see the header)."""

    def __init__(self, zone):
        self.zone = zone
        self.port = None
        self._udp = self._tcp = None
        self._threads = []

    # answers

    def lookup(self, labels, qtype, chain=0):
        """("ok"|"nodata"|"nxdomain"|"timeout", [RR, ...])"""
        entry = self.zone.get(_key(labels))
        if entry is None:
            if labels and labels[0].lower() == b"error":
                return "timeout", []
            return "nxdomain", []
        owner = DNSLabel(labels)
        answers, seen = [], False
        for r in entry[1]:
            if r == "TIMEOUT":
                if not seen:
                    return "timeout", []
                break
            code, rdata = r
            if code != qtype:
                continue
            seen = True
            if isinstance(rdata, str):  # "TIMEOUT"
                return "timeout", []
            answers.append(RR(owner, code, CLASS.IN, 0, rdata))
        if answers:
            return "ok", answers
        cnames = [r[1] for r in entry[1] if not isinstance(r, str)
                  and r[0] == QTYPE.CNAME and not isinstance(r[1], str)]
        if not cnames or qtype == QTYPE.CNAME:
            return "nodata", []
        rr = RR(owner, QTYPE.CNAME, CLASS.IN, 0, cnames[0])
        target = tuple(cnames[0].label.label)
        if chain + 1 >= MAX_CNAME_CHAIN or _key(target) == _key(labels):
            return "ok", [rr]           # a loop: the resolver sees it
        status, rest = self.lookup(target, qtype, chain + 1)
        if status == "timeout":
            return status, []
        return status, [rr] + rest

    def handle(self, data, proto):
        """The reply to one query packet, or None to stay silent."""
        try:
            req = DNSRecord.parse(data)
        except Exception:
            return None
        if req.header.qr or not req.questions:
            return None
        q = req.q
        reply = DNSRecord(DNSHeader(id=req.header.id, qr=1, aa=1, ra=1,
                                    rd=req.header.rd,
                                    opcode=req.header.opcode), q=q)
        opt = [rr for rr in req.ar if rr.rtype == QTYPE.OPT]
        if opt:
            reply.add_ar(EDNS0(udp_len=UDP_MAX_EDNS))
        if req.header.opcode != OPCODE.QUERY:
            reply.header.rcode = RCODE.NOTIMP
            return reply.pack()
        status, rrs = self.lookup(tuple(q.qname.label), q.qtype)
        if status == "timeout":
            return None
        for rr in rrs:
            reply.add_answer(rr)
        if status in ("nxdomain", "nodata"):
            if status == "nxdomain":
                reply.header.rcode = RCODE.NXDOMAIN
            last = tuple(rrs[-1].rdata.label.label) if rrs else \
                tuple(q.qname.label)
            zone = DNSLabel(last[-2:])
            reply.add_auth(RR(zone, QTYPE.SOA, CLASS.IN, 0, SOA(
                DNSLabel((b"ns",) + last[-2:]),
                DNSLabel((b"hostmaster",) + last[-2:]),
                (1, 3600, 600, 86400, 0))))
        out = reply.pack()
        if proto == "udp":
            limit = 512
            if opt:
                limit = max(512, min(opt[0].rclass, UDP_MAX_EDNS))
            if len(out) > limit:
                reply.rr, reply.auth = [], []
                reply.ar = [rr for rr in reply.ar if rr.rtype == QTYPE.OPT]
                reply.header.tc = 1
                out = reply.pack()
        return out

    # life cycle

    def start(self):
        owner = self

        class UDPHandler(socketserver.BaseRequestHandler):
            def handle(self):
                data, sock = self.request
                out = owner.handle(data, "udp")
                if out is not None:
                    sock.sendto(out, self.client_address)

        class TCPHandler(socketserver.StreamRequestHandler):
            def handle(self):
                while True:
                    hdr = self.rfile.read(2)
                    if len(hdr) < 2:
                        return
                    data = self.rfile.read(struct.unpack("!H", hdr)[0])
                    out = owner.handle(data, "tcp")
                    if out is None:
                        return          # unanswered: close
                    self.wfile.write(struct.pack("!H", len(out)) + out)

        for _ in range(50):
            tcp = socketserver.ThreadingTCPServer(("127.0.0.1", 0),
                                                  TCPHandler,
                                                  bind_and_activate=False)
            tcp.daemon_threads = True
            tcp.allow_reuse_address = True
            udp = socketserver.ThreadingUDPServer(("127.0.0.1", 0),
                                                  UDPHandler,
                                                  bind_and_activate=False)
            udp.daemon_threads = True
            try:
                tcp.server_bind()
                port = tcp.server_address[1]
                udp.server_address = ("127.0.0.1", port)
                udp.server_bind()
            except OSError as e:
                tcp.server_close()
                udp.server_close()
                if e.errno == errno.EADDRINUSE:
                    continue
                raise
            tcp.server_activate()
            self.port, self._tcp, self._udp = port, tcp, udp
            break
        else:
            raise OSError(errno.EADDRINUSE, "no free port for UDP and TCP")
        for srv in (self._udp, self._tcp):
            t = threading.Thread(target=srv.serve_forever,
                                 kwargs={"poll_interval": 0.05},
                                 daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self):
        for srv in (self._udp, self._tcp):
            if srv is not None:
                srv.shutdown()
                srv.server_close()
        for t in self._threads:
            t.join(timeout=10)
        self._udp = self._tcp = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port


def spf_check(conf, server, t):
    """Run one `petrel spf check`; (result, explanation or None, output)."""
    argv = [harness.PETREL_BIN, "spf", "check", "-c", conf,
            "--dns", server.addr, "--ip", str(t["host"]),
            "--mail-from", t["mailfrom"] or "", "--helo", t["helo"] or "",
            "--receiver", "receiver.example", "--default-exp", "DEFAULT"]
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=CHECK_TIMEOUT)
    out = p.stdout.decode("utf-8", "replace")
    lines = out.splitlines()
    text = "exit %d, stdout %r, stderr %r" % (
        p.returncode, out, p.stderr.decode("utf-8", "replace"))
    if p.returncode != 0 or not lines or lines[0] not in RESULTS:
        return None, None, text
    exp = None
    for line in lines[1:]:
        if line.startswith("explanation: "):
            exp = line[len("explanation: "):]
    return lines[0], exp, text


def run_scenario(conf, scen):
    """[(test id, ok, why)] for one scenario, on its own server."""
    out = []
    with ZoneServer(zone_from_scenario(scen)) as server:
        for tid, t in scen["tests"].items():
            want = t["result"] if isinstance(t["result"], list) else \
                [t["result"]]
            res, exp, text = spf_check(conf, server, t)
            ok = res in want and ("explanation" not in t
                                  or exp == t["explanation"])
            why = ""
            if not ok:
                why = "got %s want %s" % (res, "|".join(want))
                if "explanation" in t:
                    why += " explanation %r want %r" % (exp,
                                                         t["explanation"])
                why += " (%s)" % text
            out.append((tid, ok, why))
    return out


def test_spf_suite_over_libunbound():
    with open(SUITE, "rb") as f:
        scenarios = list(yaml.safe_load_all(f))
    total = sum(len(s["tests"]) for s in scenarios)
    d = tempfile.mkdtemp(prefix="petrel-spf-")
    try:
        conf = os.path.join(d, "petrel.conf")
        with open(conf, "w", encoding="utf-8") as f:
            # A dead server: the tests pass only if --dns replaces it.
            f.write("# written by tests/e2e/test_spf_suite.py\n"
                    "hostname mx.receiver.example\n"
                    "spool %s/spool\n"
                    "maildir %s/mail/%%d/%%u\n"
                    "dns 127.0.0.1:9\n" % (d, d))
        with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
            results = list(pool.map(lambda s: run_scenario(conf, s),
                                    scenarios))
    finally:
        shutil.rmtree(d, ignore_errors=True)
    passed = failed = 0
    for scen, res in zip(scenarios, results):
        for tid, ok, why in res:
            if ok:
                passed += 1
            else:
                failed += 1
                print("FAIL %s / %s: %s" % (scen.get("description", ""),
                                           tid, why))
    print("%d passed, %d failed" % (passed, failed))
    assert total == SUITE_TESTS, "the suite has %d tests" % total
    assert failed == 0
    assert passed == SUITE_TESTS


def _cli(*args):
    p = subprocess.run([harness.PETREL_BIN, "spf"] + list(args),
                       stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=CHECK_TIMEOUT)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def test_spf_check_usage_errors():
    """Exit 2 for a bad command line, before any DNS."""
    for args in (["check", "--mail-from", "a@example.com"],  # no --ip
                 ["check", "--ip", "192.0.2.1"],             # no --mail-from
                 ["check", "--ip", "192.0.2.300", "--mail-from", "a@b.c"],
                 ["check", "--ip", "192.0.2.1", "--mail-from", "a@b.c",
                  "extra"],
                 ["check", "--bogus"],
                 ["verify"],
                 []):
        rc, out, err = _cli(*args)
        assert rc == 2, (args, rc, out, err)
        assert out == "", (args, out)
        assert "usage: petrel spf check" in err or "--ip" in err, (args, err)


def test_spf_check_bad_dns_address():
    """Exit 2, a usage error as for the other commands, when the resolver
    refuses the --dns address."""
    rc, out, err = _cli("check", "--dns", "not-an-address", "--ip",
                        "192.0.2.1", "--mail-from", "a@example.com")
    assert rc == 2, (rc, out, err)
    assert out == ""
    assert "bad DNS server address" in err


def _output_zone():
    return zone_from_scenario({"zonedata": {
        "example.test": [{"TXT": "v=spf1 ip4:192.0.2.1 -all "
                          "exp=why.example.test"}],
        "why.example.test": [{"TXT": "%{i} is not %{d}'s"}],
        "helo.example.test": [{"TXT": "v=spf1 a -all"},
                              {"A": "192.0.2.7"}],
    }})


def test_spf_check_output_lines():
    """The lines of a fail and a pass through libunbound, and the null
    reverse-path checking the HELO identity."""
    with ZoneServer(_output_zone()) as server:
        rc, out, err = _cli("check", "--dns", server.addr, "--ip",
                            "192.0.2.2", "--mail-from", "u@example.test")
        assert rc == 0, err
        lines = out.splitlines()
        assert len(lines) == 3, out
        assert lines[0] == "fail"
        # The reason text itself: test_spf_check_fail_reason.
        assert lines[1].startswith("mechanism: -all; reason: ")
        assert lines[2] == "explanation: 192.0.2.2 is not example.test's"
        rc, out, err = _cli("check", "--dns", server.addr, "--ip",
                            "192.0.2.1", "--mail-from", "u@example.test")
        assert rc == 0, err
        assert out.splitlines() == [
            "pass", "mechanism: ip4:192.0.2.1; "
            "reason: example.test matched ip4:192.0.2.1"]
        for empty in ("", "<>"):
            rc, out, err = _cli("check", "--dns", server.addr, "--ip",
                                "192.0.2.7", "--mail-from", empty,
                                "--helo", "helo.example.test")
            assert rc == 0, err
            assert out.splitlines() == [
                "pass", "mechanism: a; reason: helo.example.test matched a"]
        rc, out, err = _cli("check", "--dns", server.addr, "--ip",
                            "192.0.2.7", "--mail-from", "u@nowhere.test")
        assert rc == 0, err
        assert out.splitlines() == [
            "none", "reason: no SPF record at nowhere.test"]


def test_spf_check_fail_reason():
    """The reason of a fail names the term (spf_finish() once formatted
    its own reason buffer into itself, and it came out empty)."""
    with ZoneServer(_output_zone()) as server:
        rc, out, err = _cli("check", "--dns", server.addr, "--ip",
                            "192.0.2.2", "--mail-from", "u@example.test")
        assert rc == 0, err
        assert out.splitlines()[1] == \
            "mechanism: -all; reason: example.test matched -all"
