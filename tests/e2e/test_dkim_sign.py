"""
test_dkim_sign.py: Petrel signs mail from trusted clients with the
dkim_sign keys of the From: domain (issue 5): both an RSA and an Ed25519
signature, put in front of the message (queue format v3 PREPEND) and
delivered with it; dkimpy and `petrel dkim verify` verify the delivered
message against the published keys; a From: of another domain is not
signed; an untrusted client's mail is not signed.
"""
import os
import re
import smtplib
import subprocess

import dkim

from dnsserver import DNSServer
from harness import PETREL_BIN, Petrel, workdir


def keygen(d, selector, ktype):
    path = os.path.join(d, "%s.key" % selector)
    r = subprocess.run([PETREL_BIN, "dkim", "keygen", "--domain",
                        "example.test", "--selector", selector, "--out", path,
                        "--type", ktype], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    line = r.stdout.decode().splitlines()[0]
    text = "".join(re.findall(r'"([^"]*)"', line))
    return path, text


def send(p, sender, from_hdr, source="127.0.0.1"):
    s = smtplib.SMTP(p.host, p.port, source_address=(source, 0))
    s.sendmail(sender, ["alice@example.test"],
               ("From: <%s>\r\nTo: <alice@example.test>\r\n"
                "Subject: signed?\r\nDate: Sun, 29 Nov 2026 09:00:00 +0000\r\n"
                "\r\nhello\r\n" % from_hdr).encode())
    s.quit()


def test_trusted_mail_is_signed_with_every_key_of_its_domain():
    d = workdir()
    rsa_path, rsa_txt = keygen(d, "r1", "rsa")
    ed_path, ed_txt = keygen(d, "e1", "ed25519")
    records = {b"r1._domainkey.example.test.": rsa_txt.encode(),
               b"e1._domainkey.example.test.": ed_txt.encode()}
    with DNSServer() as dns:
        dns.add("r1._domainkey.example.test", "TXT", rsa_txt)
        dns.add("e1._domainkey.example.test", "TXT", ed_txt)
        p = Petrel(trusted=["127.0.0.1/32"], dns="127.0.0.1:%d" % dns.port,
                   extra_conf="dkim_sign example.test r1 %s\n"
                   "dkim_sign example.test e1 %s\n" % (rsa_path, ed_path))
        failed = True
        try:
            p.start()
            send(p, "bob@example.test", "bob@example.test")
            send(p, "x@other.test", "x@other.test")
            send(p, "bob@example.test", "bob@example.test",
                 source="127.0.0.2")
            got = p.wait_delivered("alice@example.test", 3)
            signed = [m for m in got if b"DKIM-Signature:" in m]
            assert len(signed) == 1, got
            msg = signed[0]
            assert msg.count(b"DKIM-Signature:") == 2, msg
            assert b"a=rsa-sha256" in msg and b"a=ed25519-sha256" in msg
            # Maildir files have LF ends; verifiers want the wire form.
            wire = msg.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            # Return-Path: and Received: added by delivery are not signed.
            def dnsfunc(name, timeout=5):
                return records.get(name if isinstance(name, bytes)
                                   else name.encode())

            for i in range(2):
                assert dkim.DKIM(wire).verify(idx=i, dnsfunc=dnsfunc), \
                    "dkimpy: signature %d" % i
            r = subprocess.run([PETREL_BIN, "dkim", "verify", "--dns",
                                "127.0.0.1:%d" % dns.port], input=wire,
                               capture_output=True, timeout=60)
            out = r.stdout.decode()
            assert r.returncode == 0, (out, r.stderr)
            assert out.count("dkim=pass") == 2, out
            assert any("dkim signed" in l and "signatures=2" in l
                       for l in p.log_lines), p.log_tail()
            failed = False
        finally:
            p.finish(failed)


def test_signed_mail_passes_dkim_and_dmarc_at_a_second_petrel():
    """Issue 5: a message Petrel signs and relays to a second Petrel
    passes DKIM and DMARC there (p=reject published): the second one
    delivers it with dkim=pass and dmarc=pass in Authentication-Results.
    The control: the same message unsigned is refused there (550 5.7.1)
    and comes back to the sender as a bounce."""
    from harness import free_port
    d = workdir()
    rsa_path, rsa_txt = keygen(d, "r1", "rsa")
    with DNSServer() as dns:
        dns.add("r1._domainkey.example.test", "TXT", rsa_txt)
        dns.add("_dmarc.example.test", "TXT", "v=DMARC1; p=reject")
        dnsaddr = "127.0.0.1:%d" % dns.port
        b_port = free_port()
        b = Petrel(listen=["127.0.0.1:%d mx" % b_port],
                   domains=("other.test",), hostname="mx.other.test",
                   users={"bob@other.test": ""}, dns=dnsaddr, msgauth=True)
        a_signed = Petrel(trusted=["127.0.0.1/32"], dns=dnsaddr,
                          extra_conf="dkim_sign example.test r1 %s\n"
                          "relayhost [127.0.0.1]:%d\n" % (rsa_path, b_port))
        a_plain = Petrel(trusted=["127.0.0.1/32"], dns=dnsaddr,
                         extra_conf="relayhost [127.0.0.1]:%d\n" % b_port)
        failed = True
        try:
            for p in (b, a_signed, a_plain):
                p.start()
            for a in (a_signed, a_plain):
                s = smtplib.SMTP(a.host, a.port)
                s.sendmail("alice@example.test", ["bob@other.test"],
                           b"From: <alice@example.test>\r\n"
                           b"To: <bob@other.test>\r\nSubject: relayed\r\n"
                           b"Date: Sun, 29 Nov 2026 09:00:00 +0000\r\n"
                           b"\r\nhello over there\r\n")
                s.quit()
            got = b.wait_delivered("bob@other.test", 1)
            ar = re.search(rb"Authentication-Results: mx\.other\.test;"
                           rb"[^\n]*(?:\n[ \t][^\n]*)*", got[0])
            assert ar, got[0]
            text = re.sub(rb"\s+", b" ", ar.group(0))
            assert b"dkim=pass" in text and b"header.d=example.test" in text
            assert b"dmarc=pass" in text, text
            # The unsigned one: refused at the second, bounced at the first.
            a_plain.wait_log(r"status=bounced")
            assert any("550 5.7.1" in l for l in a_plain.log_lines)
            assert any("REPLY" not in l and "dmarc" in l.lower()
                       for l in b.log_lines)
            failed = False
        finally:
            for p in (a_plain, a_signed, b):
                p.finish(failed)


def test_unloadable_key_refused_by_check_config_and_serve():
    d = workdir()
    conf = os.path.join(d, "petrel.conf")
    with open(conf, "w") as f:
        f.write("hostname mx.example.test\ndomain example.test\n"
                "spool %s/spool\nmaildir %s/mail/%%d/%%u\n"
                "listen 127.0.0.1:1 mx\n"
                "dkim_sign example.test s1 %s/missing.key\n" % (d, d, d))
    r = subprocess.run([PETREL_BIN, "check-config", "-c", conf],
                       capture_output=True, timeout=60)
    assert r.returncode == 1, r
    assert b"dkim_sign example.test s1" in r.stderr and \
        b"missing.key: No such file or directory" in r.stderr, r.stderr
    # A key file that is not a key.
    with open(os.path.join(d, "missing.key"), "w") as f:
        f.write("not a key\n")
    r = subprocess.run([PETREL_BIN, "check-config", "-c", conf],
                       capture_output=True, timeout=60)
    assert r.returncode == 1 and b"dkim_sign example.test s1" in r.stderr, r
    r = subprocess.run([PETREL_BIN, "serve", "-c", conf],
                       capture_output=True, timeout=60)
    assert r.returncode != 0 and b"dkim_sign example.test s1" in r.stderr, r
    # A good key that only root can read: `petrel serve`, started as
    # root, refuses it, because a reload (SIGHUP, after the privilege
    # drop) would have to read it as the daemon's user.
    key, _ = keygen(d, "s2", "ed25519")
    os.chown(key, 0, 0)
    with open(conf, "w") as f:
        f.write("hostname mx.example.test\ndomain example.test\n"
                "spool %s/spool\nmaildir %s/mail/%%d/%%u\n"
                "listen 127.0.0.1:1 mx\n"
                "dkim_sign example.test s2 %s\n" % (d, d, key))
    want = ("dkim_sign example.test s2: %s is not readable by user petrel"
            % key).encode()
    # check-config, run as root, refuses what serve would refuse.
    r = subprocess.run([PETREL_BIN, "check-config", "-c", conf],
                       capture_output=True, timeout=60)
    assert r.returncode == 1 and want in r.stderr, r
    r = subprocess.run([PETREL_BIN, "serve", "-c", conf],
                       capture_output=True, timeout=60)
    assert r.returncode != 0 and want in r.stderr, r
    # Once the daemon's user owns it, both accept it.
    import pwd
    pw = pwd.getpwnam("petrel")
    os.chown(key, pw.pw_uid, pw.pw_gid)
    r = subprocess.run([PETREL_BIN, "check-config", "-c", conf],
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r
    # Several bad keys: check-config names every one in one run.
    with open(conf, "a") as f:
        f.write("dkim_sign example.test s3 %s/none3.key\n"
                "dkim_sign example.test s4 %s/none4.key\n" % (d, d))
    r = subprocess.run([PETREL_BIN, "check-config", "-c", conf],
                       capture_output=True, timeout=60)
    assert r.returncode == 1, r
    assert b"dkim_sign example.test s3" in r.stderr and \
        b"dkim_sign example.test s4" in r.stderr, r.stderr


def test_signed_8bit_mail_to_a_7bit_peer_bounces_unchanged():
    """Issue 5, order with outbound delivery: Petrel never rewrites a
    message after signing it. A signed 8-bit message for a peer that does
    not offer 8BITMIME is not converted (that would break the signature):
    it bounces, and the peer never sees it. The control: the same message
    to a peer with 8BITMIME arrives byte for byte and its signature
    verifies."""
    from smtppeer import SMTPPeer
    d = workdir()
    key, txt = keygen(d, "e1", "ed25519")
    body = "caf\u00e9 na\u00efve\r\n".encode()
    msg = (b"From: <alice@example.test>\r\nTo: <bob@remote.test>\r\n"
           b"Subject: 8-bit\r\nDate: Sun, 29 Nov 2026 09:00:00 +0000\r\n"
           b"MIME-Version: 1.0\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\n"
           b"Content-Transfer-Encoding: 8bit\r\n\r\n" + body)
    with DNSServer() as dns:
        dns.add("e1._domainkey.example.test", "TXT", txt)
        for eight in (False, True):
            with SMTPPeer(port=0, eightbitmime=eight) as peer:
                p = Petrel(trusted=["127.0.0.1/32"],
                           dns="127.0.0.1:%d" % dns.port,
                           extra_conf="dkim_sign example.test e1 %s\n"
                           "relayhost [%s]:%d\n" % (key, peer.addr,
                                                    peer.port))
                failed = True
                try:
                    p.start()
                    s = smtplib.SMTP(p.host, p.port)
                    s.sendmail("alice@example.test", ["bob@remote.test"],
                               msg, mail_options=["BODY=8BITMIME"])
                    s.quit()
                    if eight:
                        [m] = peer.wait_messages(1)
                        # The peer keeps the data without its last CRLF.
                        data = m.data + b"\r\n"
                        assert data.endswith(msg), data
                        assert dkim.verify(
                            data, dnsfunc=lambda name, timeout=5:
                            txt.encode() if name.startswith(b"e1.")
                            else None)
                    else:
                        p.wait_log(r"status=bounced")
                        assert any("8BITMIME" in l for l in p.log_lines)
                        assert peer.messages == []
                    failed = False
                finally:
                    p.finish(failed)


def test_shutdown_while_signing_is_clean():
    """SIGTERM (timeout_shutdown 0) while a message is being signed: the
    session is closed with 421 before its 250, and the signing job still
    running on a worker finishes after the SMTP server is freed. It must
    not touch the freed server (a use-after-free that ASan reports, seen
    in review); the daemon exits 0 and nothing was acknowledged. Sixteen
    selectors on one RSA-4096 key make the signing last long enough to be
    caught in flight; the log shows whether it was, and the test retries
    until it is."""
    import socket
    import time
    d = workdir()
    key, _ = keygen_bits(d, "big", 4096)
    conf = "".join("dkim_sign example.test s%d %s\n" % (i, key)
                   for i in range(16)) + "timeout_shutdown 0\n"
    caught = False
    for attempt in range(5):
        p = Petrel(trusted=["127.0.0.1/32"], extra_conf=conf)
        failed = True
        try:
            p.start()
            c = socket.create_connection((p.host, p.port), timeout=30)
            f = c.makefile("rb")
            f.readline()
            c.sendall(b"EHLO client.test\r\n")
            while f.readline()[3:4] == b"-":
                pass
            c.sendall(b"MAIL FROM:<alice@example.test>\r\n"
                      b"RCPT TO:<alice@example.test>\r\nDATA\r\n")
            for _ in range(3):
                assert f.readline()[:1] in (b"2", b"3")
            c.sendall(b"From: <alice@example.test>\r\nSubject: x\r\n\r\n"
                      b"body\r\n.\r\n")
            time.sleep(0.02)    # let the loop take the dot first
            rc = p.stop()       # SIGTERM, and the exit status
            reply = f.readline()
            c.close()
            signed = any("dkim signed" in l for l in p.log_lines)
            assert rc == 0, p.log_tail()
            assert not any("AddressSanitizer" in l or "runtime error" in l
                           for l in p.log_lines), p.log_tail()
            if reply.startswith(b"250"):
                assert signed     # acknowledged only once signed
            else:
                # Closed unanswered at the deadline (or told 421), and
                # nothing queued: the client will send it again.
                assert reply == b"" or reply.startswith(b"421"), reply
                assert not any("smtp: queued" in l for l in p.log_lines)
                caught = not signed and any(
                    "closing 1 sessions" in l for l in p.log_lines)
            failed = False
        finally:
            p.finish(failed)
        if caught:
            break
    assert caught, "the signing was never caught in flight"


def keygen_bits(d, selector, bits):
    path = os.path.join(d, "%s.key" % selector)
    r = subprocess.run([PETREL_BIN, "dkim", "keygen", "--domain",
                        "example.test", "--selector", selector, "--out", path,
                        "--bits", str(bits)], capture_output=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    return path, r.stdout
