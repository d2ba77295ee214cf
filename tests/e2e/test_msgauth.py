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


def test_auth_check_cli(tmp_path):
    """`petrel auth check` prints the field Petrel would add, the
    disposition and the log line, with --dns replacing the config's."""
    import subprocess
    from harness import PETREL_BIN
    conf = tmp_path / "petrel.conf"
    conf.write_text("hostname mx.example.test\ndns 127.0.0.1:1\n")
    msg = (b"From: <boss@sender.test>\nTo: <a@example.test>\n"
           b"Subject: x\n\nbody\n")
    with DNSServer() as dns:
        dns.add("sender.test", "TXT", "v=spf1 ip4:127.0.0.6 -all")
        dns.add("_dmarc.sender.test", "TXT", "v=DMARC1; p=reject")
        for ip, spf, dmarc, disp in (("127.0.0.5", "fail", "fail", "reject"),
                                     ("127.0.0.6", "pass", "pass",
                                      "accept")):
            r = subprocess.run([PETREL_BIN, "auth", "check", "-c",
                                str(conf), "--dns",
                                "127.0.0.1:%d" % dns.port, "--ip", ip,
                                "--helo", "client.test", "--mail-from",
                                "boss@sender.test"], input=msg,
                               capture_output=True, timeout=60)
            assert r.returncode == 0, r.stderr
            assert b"\r" not in r.stdout, r.stdout   # LF line ends only
            out = re.sub(r"\r?\n[ \t]+", " ", r.stdout.decode())
            assert out.startswith("Authentication-Results: "
                                  "mx.example.test;"), out
            assert "spf=%s smtp.mailfrom=boss@sender.test" % spf in out, out
            assert "dkim=none" in out, out
            assert "dmarc=%s" % dmarc in out and \
                "header.from=sender.test" in out, out
            assert "disposition: %s" % disp in out, out
    r = subprocess.run([PETREL_BIN, "auth", "check", "--ip", "x"],
                       capture_output=True, timeout=60)
    assert r.returncode == 2
    r = subprocess.run([PETREL_BIN, "auth", "frob"], capture_output=True,
                       timeout=60)
    assert r.returncode == 2
    assert b'unknown auth command "frob"' in r.stderr, r.stderr


def test_dns_commands_refuse_a_bad_dns_address_alike(tmp_path):
    """A --dns address the resolver refuses is a usage error (exit 2) for
    every command that looks up DNS, with the resolver's reason."""
    import subprocess
    from harness import PETREL_BIN
    conf = tmp_path / "petrel.conf"
    conf.write_text("hostname mx.example.test\n")
    msg = b"From: <boss@sender.test>\nSubject: x\n\nbody\n"
    # Signed, so that `dkim verify` has a key to look up.
    key = str(tmp_path / "k.pem")
    r = subprocess.run([PETREL_BIN, "dkim", "keygen", "-c", str(conf),
                        "--domain", "sender.test", "--selector", "s",
                        "--out", key, "--type", "ed25519"],
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([PETREL_BIN, "dkim", "sign", "--domain",
                        "sender.test", "--selector", "s", "--key", key],
                       input=msg, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    msg = r.stdout
    for args in (["spf", "check", "--ip", "192.0.2.1", "--mail-from",
                  "a@sender.test"],
                 ["auth", "check", "--ip", "192.0.2.1", "--helo", "h.test",
                  "--mail-from", "a@sender.test"],
                 ["dkim", "verify"]):
        r = subprocess.run([PETREL_BIN] + args + ["-c", str(conf), "--dns",
                                                  "not-an-address"],
                           input=msg, capture_output=True, timeout=60)
        assert r.returncode == 2, (args, r)
        assert b"dns" in r.stderr, (args, r.stderr)


@pytest.mark.parametrize("folder", [None, "Junk"])
def test_dmarc_quarantine(make_petrel, folder):
    """p=quarantine and a failing message: delivered, marked with
    X-Spam-Flag: YES and X-Petrel-Quarantine, and with quarantine_folder
    Junk into the Maildir++ folder .Junk of the mailbox."""
    import glob
    import os
    with DNSServer() as dns:
        dns.add("sender.test", "TXT", "v=spf1 ip4:127.0.0.6 -all")
        dns.add("_dmarc.sender.test", "TXT", "v=DMARC1; p=quarantine")
        p = make_petrel(dns="127.0.0.1:%d" % dns.port, msgauth=True,
                        extra_conf="quarantine_folder %s" % folder
                        if folder else "")
        s = smtplib.SMTP(p.host, p.port, source_address=("127.0.0.5", 0))
        s.sendmail("boss@sender.test", ["alice@example.test"],
                   b"From: <boss@sender.test>\r\nSubject: q\r\n\r\nx\r\n")
        s.quit()
        p.wait_queue_empty()
        box = p.maildir_path("alice@example.test")
        sub = os.path.join(box, "." + folder) if folder else box
        files = glob.glob(os.path.join(sub, "new", "*"))
        assert len(files) == 1, (sub, os.listdir(box) if
                                 os.path.isdir(box) else None)
        if folder:
            assert not glob.glob(os.path.join(box, "new", "*"))
        data = open(files[0], "rb").read()
        assert b"\nX-Spam-Flag: YES\n" in data, data
        assert b"X-Petrel-Quarantine: DMARC policy of sender.test" in data
        assert b"dmarc=fail" in data
        # The per-message verdict line later aggregate reports (rua)
        # need: client, From: domain, policy found, result, disposition,
        # and SPF's domain, result and alignment.
        line = p.wait_log(r"msgauth: queue=\S+ session=\S+ client=127\.0\.0\.5 .*")
        want = ("spf=fail dkim=none dmarc from=sender.test "
                "policy_domain=sender.test p=quarantine sp=- pct=100 "
                "adkim=r aspf=r result=fail disposition=quarantine "
                "sampled_out=0 spf=sender.test/fail/unaligned")
        assert line.group(0).endswith(want), line.group(0)
