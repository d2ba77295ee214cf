"""
test_dkim_cli.py: `petrel dkim keygen|sign|verify` (src/cli/dkim.c).

keygen: the key file is new, 0600, never written over an existing file or
through a symbolic link, and holds the private half of the key whose public
half the printed TXT record publishes (checked with dkimpy's and PyNaCl's
own key parsers, not with Petrel's). sign: a small corpus signed with RSA
and Ed25519 keys verifies with dkimpy (its dnsfunc answering with the
published record) and with `petrel dkim verify` against a loopback DNS
server (dnsserver.py) serving that record. Tampering fails; messages that
dkimpy signed verify with Petrel; a missing key, several key records, a
revoked key, a failing and an unreachable DNS server give the results the
command documents, with exit statuses 0 (a pass), 1 (none) and 2 (usage).
"""

import base64
import os
import re
import shutil
import stat
import subprocess

import pytest

import dkim
import dkim.crypto

from dnsserver import DNSServer
from harness import PETREL_BIN, free_port, workdir

DOMAIN = "example.org"

RECORD_RE = re.compile(
    r'^(?P<name>[A-Za-z0-9_.-]+\._domainkey\.[A-Za-z0-9.-]+\.) IN TXT'
    r'(?P<strings>( "[^"\\]{1,255}")+)$')

CORPUS = {
    "lf": b"From: Alice <alice@example.org>\n"
          b"To: bob@example.net\n"
          b"Subject: plain LF message\n"
          b"Date: Sun, 29 Nov 2026 08:00:00 +0000\n"
          b"Message-ID: <lf@example.org>\n"
          b"\n"
          b"Hello Bob,\n"
          b"  this line has   inner and trailing space   \n"
          b"\n"
          b"\n",
    "crlf": b"From: alice@example.org\r\n"
            b"To: bob@example.net,\r\n"
            b"\tcarol@example.net\r\n"
            b"Cc: dave@example.net\r\n"
            b"Subject: folded\r\n"
            b" subject line\r\n"
            b"MIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: 8bit\r\n"
            b"\r\n"
            b"caf\xc3\xa9 \xe2\x82\xac\r\n"
            b"last line without end",
    "empty-body": b"From: alice@example.org\r\n"
                  b"Subject: nothing\r\n"
                  b"\r\n",
}


def run(args, data=b"", timeout=60):
    return subprocess.run([PETREL_BIN, "dkim"] + args, input=data,
                          capture_output=True, timeout=timeout)


def record_parts(stdout):
    """(owner name, joined text, strings) of keygen's record line."""
    lines = stdout.decode("ascii").splitlines()
    m = RECORD_RE.match(lines[0])
    assert m, lines[0]
    strings = re.findall(r'"([^"]*)"', m.group("strings"))
    return m.group("name"), "".join(strings), strings, lines


def tags(text):
    return {k.decode(): v.decode()
            for k, v in dkim.util.parse_tag_value(text.encode()).items()}


def to_crlf(msg):
    return re.sub(rb"(?<!\r)\n", b"\r\n", msg)


class Keys:
    def __init__(self, d, server):
        self.dir = d
        self.server = server
        self.records = {}       # owner name (no dot, lower) -> bytes

    def keygen(self, selector, ktype=None, bits=None, name=None,
               publish=True):
        path = os.path.join(self.dir, name or selector + ".pem")
        args = ["keygen", "--domain", DOMAIN, "--selector", selector,
                "--out", path]
        if ktype:
            args += ["--type", ktype]
        if bits:
            args += ["--bits", str(bits)]
        r = run(args)
        assert r.returncode == 0, r.stderr
        owner, text, strings, lines = record_parts(r.stdout)
        assert owner == "%s._domainkey.%s." % (selector, DOMAIN)
        if publish:
            self.publish(owner, text)
        return path, text, strings, lines

    def publish(self, owner, text):
        self.server.add(owner, "TXT", text)
        self.records[owner.rstrip(".").lower()] = text.encode()

    def dnsfunc(self, name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode()
        return self.records.get(name.rstrip(".").lower())


@pytest.fixture(scope="module")
def env():
    d = workdir()
    with DNSServer() as server:
        k = Keys(d, server)
        k.rsa = k.keygen("rsa1")
        k.ed = k.keygen("ed1", ktype="ed25519")
        yield k
    shutil.rmtree(d, ignore_errors=True)


def sign(env, msg, selector, key, extra=()):
    r = run(["sign", "--domain", DOMAIN, "--selector", selector,
             "--key", key] + list(extra), msg)
    assert r.returncode == 0, r.stderr
    return r.stdout


def verify(env, msg, dns=None):
    r = run(["verify", "--dns", dns or env.server.addr], msg)
    return r.returncode, r.stdout.decode().splitlines(), r.stderr


def pem_der(path):
    with open(path, "rb") as f:
        text = f.read().decode("ascii")
    m = re.search(r"-----BEGIN PRIVATE KEY-----(.*)-----END PRIVATE KEY-----",
                  text, re.S)
    assert m, text
    return base64.b64decode("".join(m.group(1).split()))


# keygen

def test_keygen_rsa_file_and_record(env):
    path, text, strings, lines = env.rsa
    st = os.lstat(path)
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    t = tags(text)
    assert text.startswith("v=DKIM1; ")
    assert t["v"] == "DKIM1" and t["k"] == "rsa"
    # 2048-bit SPKI is ~392 base64 characters: more than one string.
    assert len(strings) >= 2 and all(len(s) <= 255 for s in strings)
    pub = dkim.crypto.parse_public_key(base64.b64decode(t["p"]))
    priv = dkim.crypto.parse_private_key(pem_der(path))
    assert pub["modulus"] == priv["modulus"]
    assert pub["modulus"].bit_length() == 2048
    assert lines[1] == "; petrel.conf: dkim_sign %s rsa1 %s" % (
        DOMAIN, os.path.realpath(path))


def test_keygen_ed25519_file_and_record(env):
    nacl_signing = pytest.importorskip("nacl.signing")
    path, text, strings, lines = env.ed
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
    t = tags(text)
    assert t["v"] == "DKIM1" and t["k"] == "ed25519"
    raw = base64.b64decode(t["p"])
    assert len(raw) == 32 and len(strings) == 1
    # PKCS#8 Ed25519 (RFC 8410): the 32-octet seed ends the DER.
    der = pem_der(path)
    assert len(der) == 48
    vk = nacl_signing.SigningKey(der[-32:]).verify_key.encode()
    assert vk == raw


def test_keygen_bits_and_type(env):
    path, text, _, _ = env.keygen("small", bits=1024, publish=False)
    pub = dkim.crypto.parse_public_key(base64.b64decode(tags(text)["p"]))
    assert pub["modulus"].bit_length() == 1024
    for args in (["--bits", "512"], ["--bits", "x"], ["--type", "dsa"],
                 ["--type", "ed25519", "--bits", "2048"]):
        out = os.path.join(env.dir, "bad.pem")
        r = run(["keygen", "--domain", DOMAIN, "--selector", "b",
                 "--out", out] + args)
        assert r.returncode == 2, args
        assert not os.path.exists(out)
    r = run(["keygen", "--domain", "bad domain", "--selector", "b",
             "--out", os.path.join(env.dir, "bad.pem")])
    assert r.returncode == 2


def test_keygen_as_root_gives_the_key_to_the_daemon_user(env):
    """Run as root (as the tests are), keygen gives the new key to the
    configuration's `user` (it reads the key again at every SIGHUP, after
    dropping root), keeps it 0600 and says so; with a `user` that does
    not exist, the key stays root's and a warning says what to do."""
    import pwd
    assert os.geteuid() == 0, "the e2e tests run as root"
    petrel = pwd.getpwnam("petrel")
    conf = os.path.join(env.dir, "owner.conf")
    with open(conf, "w") as f:
        f.write("user petrel\n")
    path = os.path.join(env.dir, "owned.pem")
    r = run(["keygen", "-c", conf, "--domain", DOMAIN, "--selector", "own",
             "--out", path, "--type", "ed25519"])
    assert r.returncode == 0, r.stderr
    st = os.lstat(path)
    assert (st.st_uid, st.st_gid) == (petrel.pw_uid, petrel.pw_gid)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert b"belongs to user petrel" in r.stderr, r.stderr

    with open(conf, "w") as f:
        f.write("user no-such-user-here\n")
    path = os.path.join(env.dir, "rootkey.pem")
    r = run(["keygen", "-c", conf, "--domain", DOMAIN, "--selector", "rk",
             "--out", path, "--type", "ed25519"])
    assert r.returncode == 0, r.stderr
    assert os.lstat(path).st_uid == 0
    assert b"no-such-user-here does not exist" in r.stderr, r.stderr


def test_keygen_refuses_to_overwrite(env):
    path = env.rsa[0]
    with open(path, "rb") as f:
        before = f.read()
    r = run(["keygen", "--domain", DOMAIN, "--selector", "rsa1",
             "--out", path])
    assert r.returncode == 1 and b"exists" in r.stderr
    assert r.stdout == b""
    with open(path, "rb") as f:
        assert f.read() == before
    # A symbolic link, even a dangling one, is not followed.
    link = os.path.join(env.dir, "link.pem")
    target = os.path.join(env.dir, "target.pem")
    os.symlink(target, link)
    r = run(["keygen", "--domain", DOMAIN, "--selector", "x",
             "--out", link, "--type", "ed25519"])
    assert r.returncode == 1
    assert not os.path.exists(target)


# sign, then verify with dkimpy and with Petrel

@pytest.mark.parametrize("which", ["rsa", "ed"])
@pytest.mark.parametrize("name", sorted(CORPUS))
def test_sign_verifies(env, which, name):
    selector, key = ("rsa1", env.rsa[0]) if which == "rsa" else \
        ("ed1", env.ed[0])
    msg = CORPUS[name]
    out = sign(env, msg, selector, key)
    field, rest = out.split(b"\r\n", 1)
    assert field.startswith(b"DKIM-Signature: ")
    # The field (folded) then the message, LF made CRLF, as passed on.
    m = re.match(rb"DKIM-Signature: (?:[^\r]*\r\n[ \t])*[^\r]*\r\n", out)
    assert m and out[m.end():] == to_crlf(msg)
    sig = tags(m.group(0)[len(b"DKIM-Signature:"):].decode()
               .replace("\r\n", ""))
    assert sig["c"] == "relaxed/relaxed" and sig["d"] == DOMAIN
    assert sig["s"] == selector
    assert "from" in sig["h"].lower().split(":")
    assert dkim.verify(out, dnsfunc=env.dnsfunc) is True
    rc, lines, err = verify(env, out)
    alg = "rsa-sha256" if which == "rsa" else "ed25519-sha256"
    assert rc == 0, err
    assert lines == ["dkim=pass header.d=%s header.s=%s header.a=%s"
                     % (DOMAIN, selector, alg)]


def test_sign_headers_option(env):
    out = sign(env, CORPUS["crlf"], "rsa1", env.rsa[0],
               ["--headers", "from:subject:from"])
    assert re.search(rb"h=from:subject:from;", out.replace(b"\r\n ", b""))
    assert dkim.verify(out, dnsfunc=env.dnsfunc) is True
    assert verify(env, out)[0] == 0
    for bad in ("from::to", "from:to;x", "from:x y", ":from"):
        r = run(["sign", "--domain", DOMAIN, "--selector", "rsa1", "--key",
                 env.rsa[0], "--headers", bad], CORPUS["lf"])
        assert r.returncode == 2 and r.stdout == b"", bad


def test_sign_errors(env):
    r = run(["sign", "--domain", DOMAIN, "--selector", "rsa1", "--key",
             os.path.join(env.dir, "missing.pem")], CORPUS["lf"])
    assert r.returncode == 1 and r.stdout == b""
    r = run(["sign", "--domain", DOMAIN, "--selector", "rsa1", "--key",
             env.rsa[0]], b"Subject: no from\r\n\r\nbody\r\n")
    assert r.returncode == 1 and r.stdout == b""
    assert run(["sign", "--domain", DOMAIN, "--key", env.rsa[0]],
               CORPUS["lf"]).returncode == 2


def test_tampered_fails(env):
    signed = sign(env, CORPUS["lf"], "rsa1", env.rsa[0])
    body = signed.replace(b"Hello Bob", b"Hello Eve")
    assert body != signed
    assert dkim.verify(body, dnsfunc=env.dnsfunc) is False
    rc, lines, _ = verify(env, body)
    assert rc == 1
    assert lines == ["dkim=fail (body hash did not verify) header.d=%s "
                     "header.s=rsa1 header.a=rsa-sha256" % DOMAIN]
    hdr = signed.replace(b"Subject: plain LF", b"Subject: plain XX")
    assert hdr != signed
    assert dkim.verify(hdr, dnsfunc=env.dnsfunc) is False
    rc, lines, _ = verify(env, hdr)
    assert rc == 1 and lines[0].startswith(
        "dkim=fail (signature did not verify) ")


def test_two_signatures_one_fails(env):
    once = sign(env, CORPUS["lf"], "ed1", env.ed[0])
    twice = sign(env, once, "rsa1", env.rsa[0])
    rc, lines, _ = verify(env, twice)
    assert rc == 0 and len(lines) == 2
    assert all(line.startswith("dkim=pass ") for line in lines)
    # A header added after the Ed25519 signature but signed by the RSA one
    # would break neither; breaking the Ed25519 field's b= breaks only it.
    broken = re.sub(rb"(a=ed25519-sha256;.*?b=)([A-Za-z0-9+/])",
                    lambda m: m.group(1) + (b"A" if m.group(2) != b"A"
                                            else b"B"),
                    twice, count=1, flags=re.S)
    assert broken != twice
    rc, lines, _ = verify(env, broken)
    assert rc == 0
    assert sorted(line.split()[0] for line in lines) == \
        ["dkim=fail", "dkim=pass"]


# messages signed by dkimpy

@pytest.mark.parametrize("canon", [(b"relaxed", b"simple"),
                                   (b"simple", b"simple"),
                                   (b"relaxed", b"relaxed")])
def test_dkimpy_signed_rsa(env, canon):
    with open(env.rsa[0], "rb") as f:
        pem = f.read()
    for name in sorted(CORPUS):
        msg = to_crlf(CORPUS[name])
        sig = dkim.sign(msg, b"rsa1", DOMAIN.encode(), pem,
                        canonicalize=canon)
        rc, lines, err = verify(env, sig + msg)
        assert rc == 0, (name, lines, err)
        assert lines == ["dkim=pass header.d=%s header.s=rsa1 "
                         "header.a=rsa-sha256" % DOMAIN]


def test_dkimpy_signed_ed25519(env):
    pytest.importorskip("nacl.signing")
    seed = base64.b64encode(pem_der(env.ed[0])[-32:])
    for name in sorted(CORPUS):
        msg = to_crlf(CORPUS[name])
        sig = dkim.sign(msg, b"ed1", DOMAIN.encode(), seed,
                        signature_algorithm=b"ed25519-sha256",
                        canonicalize=(b"relaxed", b"relaxed"))
        rc, lines, err = verify(env, sig + msg)
        assert rc == 0, (name, lines, err)
        assert lines == ["dkim=pass header.d=%s header.s=ed1 "
                         "header.a=ed25519-sha256" % DOMAIN]


# key lookups

def test_missing_key_permerror(env):
    path = env.keygen("nokey", ktype="ed25519", publish=False)[0]
    out = sign(env, CORPUS["lf"], "nokey", path)
    rc, lines, _ = verify(env, out)
    assert rc == 1
    assert lines == ["dkim=permerror (no key for signature) header.d=%s "
                     "header.s=nokey header.a=ed25519-sha256" % DOMAIN]
    assert env.server.count("nokey._domainkey.%s" % DOMAIN, "TXT") >= 1


def test_several_records_permerror(env):
    path, text, _, _ = env.keygen("twice", ktype="ed25519")
    env.server.add("twice._domainkey." + DOMAIN, "TXT", text)
    out = sign(env, CORPUS["lf"], "twice", path)
    rc, lines, _ = verify(env, out)
    assert rc == 1
    assert lines == ["dkim=permerror (several key records) header.d=%s "
                     "header.s=twice header.a=ed25519-sha256" % DOMAIN]


def test_revoked_and_split_records(env):
    path = env.keygen("revoked", ktype="ed25519", publish=False)[0]
    env.server.add("revoked._domainkey." + DOMAIN, "TXT",
                   "v=DKIM1; k=ed25519; p=")
    out = sign(env, CORPUS["lf"], "revoked", path)
    rc, lines, _ = verify(env, out)
    assert rc == 1 and lines[0].startswith("dkim=fail (key revoked) ")
    # The record exactly as keygen printed it, string by string.
    path, text, strings, _ = env.keygen("split", publish=False)
    assert len(strings) >= 2
    env.server.add("split._domainkey." + DOMAIN, "TXT", strings)
    out = sign(env, CORPUS["crlf"], "split", path)
    assert verify(env, out)[0] == 0


def test_dns_failure_temperror(env):
    out = sign(env, CORPUS["lf"], "ed1", env.ed[0])
    env.server.fail("ed1._domainkey." + DOMAIN, "servfail")
    try:
        rc, lines, _ = verify(env, out)
    finally:
        env.server.unfail("ed1._domainkey." + DOMAIN)
    assert rc == 1
    assert lines == ["dkim=temperror (key unavailable) header.d=%s "
                     "header.s=ed1 header.a=ed25519-sha256" % DOMAIN]
    # Nothing listens there: the server is down.
    rc, lines, _ = verify(env, out, dns="127.0.0.1:%d" % free_port())
    assert rc == 1
    assert lines == ["dkim=temperror (key unavailable) header.d=%s "
                     "header.s=ed1 header.a=ed25519-sha256" % DOMAIN]
    assert verify(env, out)[0] == 0


def test_verify_no_signature_and_usage(env):
    rc, lines, _ = verify(env, CORPUS["lf"])
    assert rc == 1 and lines == ["dkim=none"]
    bad = b"DKIM-Signature: v=1; a=rsa-sha256; d=example.org\r\n" + \
        to_crlf(CORPUS["lf"])
    rc, lines, _ = verify(env, bad)
    assert rc == 1 and lines[0].startswith("dkim=permerror (")
    assert run(["verify", "extra"]).returncode == 2
    assert run(["verify", "--nope"]).returncode == 2
    assert run(["frobnicate"]).returncode == 2
    r = run([])
    assert r.returncode == 2 and b"usage: petrel dkim keygen" in r.stderr


def test_at_most_five_signatures(env):
    msg = CORPUS["lf"]
    for _ in range(6):
        msg = sign(env, msg, "ed1", env.ed[0])
    assert msg.count(b"DKIM-Signature:") == 6
    env.server.reset_queries()
    rc, lines, err = verify(env, msg)
    assert rc == 0 and len(lines) == 5
    assert all(line.startswith("dkim=pass ") for line in lines)
    assert b"1 more DKIM-Signature field not checked" in err
    assert env.server.count("ed1._domainkey." + DOMAIN, "TXT") <= 5


def test_bad_dns_address_is_usage_error(env):
    out = sign(env, CORPUS["lf"], "ed1", env.ed[0])
    rc, lines, err = verify(env, out, dns="not an address")
    assert rc == 2 and lines == []


def test_configuration_dns_and_max_signatures(env):
    msg = CORPUS["crlf"]
    for _ in range(3):
        msg = sign(env, msg, "rsa1", env.rsa[0])
    conf = os.path.join(env.dir, "petrel.conf")
    with open(conf, "w") as f:
        f.write("dns %s\ndkim_max_signatures 2\n" % env.server.addr)
    r = run(["verify", "-c", conf], msg)
    lines = r.stdout.decode().splitlines()
    assert r.returncode == 0 and len(lines) == 2, r.stderr
    assert all(line.startswith("dkim=pass ") for line in lines)
    assert b"1 more DKIM-Signature field not checked (at most 2)" in r.stderr
    with open(conf, "w") as f:
        f.write("dkim_max_signatures 99\n")
    assert run(["verify", "-c", conf], msg).returncode == 2


def test_names_the_configuration_accepts(env):
    # conf.c's dkim_sign refuses these, so keygen and sign do too.
    for sel in ("s_1", "-a", "a-", "a..b", ""):
        out = os.path.join(env.dir, "name.pem")
        r = run(["keygen", "--domain", DOMAIN, "--selector", sel,
                 "--out", out, "--type", "ed25519"])
        assert r.returncode == 2, sel
        assert not os.path.exists(out)
    env.keygen("Mail.2026-a", ktype="ed25519", publish=False)
