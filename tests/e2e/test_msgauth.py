"""
test_msgauth.py: incoming mail and Authentication-Results (RFC 8601 5):
fields that name our host (any case, a trailing dot, a version, folded)
are removed from the message whether or not SPF/DKIM/DMARC run; fields of
other hosts stay byte for byte; with msgauth on, ours is added on top.
"""
import re
import smtplib

import pytest

from dnsserver import DNSServer

FORGED = [
    b"Authentication-Results: mx.example.test; spf=pass\r\n",
    b"Authentication-Results: MX.EXAMPLE.TEST. 1; dkim=pass\r\n"
    b"\theader.d=bank.test\r\n",
    b"authentication-results :mx.example.test;\r\n dmarc=pass\r\n",
]
KEPT = [
    b"Authentication-Results: relay.other.test; spf=fail\r\n"
    b" smtp.mailfrom=x@other.test\r\n",
    b"X-Authentication-Results: mx.example.test; none\r\n",
]


def message():
    return (b"From: <x@sender.test>\r\n" + FORGED[0] + KEPT[0] + FORGED[1] +
            b"Subject: forged\r\n" + KEPT[1] + FORGED[2] +
            b"\r\nbody\r\nAuthentication-Results: mx.example.test; in body"
            b"\r\n")


@pytest.mark.parametrize("msgauth", [False, True])
def test_forged_authres_removed(make_petrel, msgauth):
    with DNSServer() as dns:
        p = make_petrel(dns="127.0.0.1:%d" % dns.port, msgauth=msgauth)
        s = smtplib.SMTP(p.host, p.port)
        s.sendmail("x@sender.test", ["alice@example.test"], message())
        s.quit()
        got = p.wait_delivered("alice@example.test", 1)[0]
        wire = got.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        for f in FORGED:
            assert f not in wire, f
        for f in KEPT:
            assert f in wire, f
        # The body is not the header section: left alone.
        assert b"\r\nAuthentication-Results: mx.example.test; in body" in wire
        # Lines that start with ours: the body's, and the one we add.
        ours = len(re.findall(rb"(?m)^Authentication-Results: "
                              rb"mx\.example\.test;", wire))
        assert ours == (2 if msgauth else 1), wire
        assert any("removed 3 Authentication-Results" in l
                   for l in p.log_lines), p.log_tail()
