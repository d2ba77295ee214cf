"""
test_smuggling.py: SMTP smuggling (CVE-2023-51764 and friends). Only
CRLF "." CRLF ends DATA; none of the fake end-of-data sequences that the
public scanners use (smuggling-eod-variants.json from the shared
conformance set, or its unchanged copy in tests/data/conformance/smtp/:
harness.smuggling_variants()) may end the message.

Each variant is sent inside a message, followed by a smuggled transaction
to bob, in both bare_lf modes:
  reject (the default): the whole transaction is refused with 550 5.6.0;
  normalize: exactly one message reaches alice, holding the smuggled text
  as content (bare CR/LF written as line ends), and nothing reaches bob.
A variant with a NUL is refused with 550 5.6.0 in both modes. In every
case the session stays in sync: the next NOOP gets 250.

Two shapes of the payload:
  "single-end": ...DATA\\r\\nSMUGGLED\\r\\n then the real \\r\\n.\\r\\n, so the
    stream holds exactly one genuine end of data (at the very end);
  "scanner": ...DATA\\r\\nSMUGGLED\\r\\n.\\r\\n then \\r\\n.\\r\\n, as the
    scanners send it: the genuine end is after SMUGGLED, and the
    trailing "\\r\\n" and ".\\r\\n" arrive as two (unknown, 500) commands.
"""

import os

import pytest

from harness import (SMUGGLING_VARIANTS_REL, SOURCE_DIR, Petrel,
                     smuggling_variants, split_delivered)

pytestmark = pytest.mark.timeout(300)

VARIANTS = smuggling_variants()

HEAD = b"Subject: t\r\n\r\nhello"
SMUGGLED = (b"MAIL FROM:<spoof@evil.test>\r\nRCPT TO:<bob@example.test>\r\n"
            b"DATA\r\nSMUGGLED\r\n")


def payload(variant, shape):
    if shape == "single-end":
        return HEAD + variant + SMUGGLED + b"\r\n.\r\n"
    return HEAD + variant + SMUGGLED + b".\r\n" + b"\r\n.\r\n"


def model(wire):
    """What RFC 5321 and src/smtp/data.h say the message is, in normalize
    mode: lines are what lies between CRLFs; the first line that is just
    "." ends the data; a leading "." is removed; a bare CR or LF inside a
    line becomes a line end. Returns (content with CRLF, bytes consumed)."""
    out = []
    pos = 0
    while True:
        end = wire.index(b"\r\n", pos)
        line = wire[pos:end]
        pos = end + 2
        if line == b".":
            break
        if line.startswith(b"."):
            line = line[1:]
        line = line.replace(b"\r", b"\n").replace(b"\n", b"\r\n")
        out.append(line + b"\r\n")
    return b"".join(out), pos


def test_variants_loaded():
    vs = dict(VARIANTS)
    assert len(VARIANTS) >= 12
    for must in (b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r\n.\r",
                 b"\r\n.\r\r\n", b"\r\r\n.\r\r\n", b"\r\n\x00.\r\n"):
        assert must in vs.values(), must
    assert os.path.exists(os.path.join(SOURCE_DIR, "tests", "data",
                                       SMUGGLING_VARIANTS_REL)), \
        "the copy in tests/data is missing"


def test_model_self_check():
    content, used = model(payload(b"\n.\n", "single-end"))
    assert content == (b"Subject: t\r\n\r\nhello\r\n.\r\nMAIL FROM:"
                       b"<spoof@evil.test>\r\nRCPT TO:<bob@example.test>"
                       b"\r\nDATA\r\nSMUGGLED\r\n\r\n")
    wire = payload(b"\r\n.\r", "scanner")
    content, used = model(wire)
    assert wire[used:] == b"\r\n.\r\n"
    assert b"\r\nMAIL FROM:<spoof@evil.test>" in content


@pytest.fixture(scope="module", params=["reject", "normalize"])
def mode_petrel(request):
    p = Petrel(extra_conf="bare_lf %s" % request.param)
    p.mode = request.param
    failed_before = request.session.testsfailed
    p.start()
    try:
        yield p
    finally:
        p.finish(failed=request.session.testsfailed > failed_before)


@pytest.mark.parametrize("shape", ["single-end", "scanner"])
@pytest.mark.parametrize("name,variant", VARIANTS,
                         ids=[n for n, _ in VARIANTS])
def test_smuggling_variant(mode_petrel, name, variant, shape):
    p = mode_petrel
    before_alice = p.maildir_files("alice@example.test")
    before_bob = p.maildir_files("bob@example.test")
    before_all = p.all_maildir_files()
    wire = payload(variant, shape)
    content, used = model(wire)
    with p.raw(timeout=20) as c:
        c.read_greeting()
        c.ehlo()
        c.send(b"MAIL FROM:<sender@remote.test>\r\n")
        c.expect(250, "2.1.0")
        c.send(b"RCPT TO:<alice@example.test>\r\n")
        c.expect(250, "2.1.5")
        c.send(b"DATA\r\n")
        c.expect(354)
        c.send(wire)
        code, lines = c.reply()
        has_nul = b"\x00" in variant
        if p.mode == "reject" or has_nul:
            assert code == 550 and lines[0].startswith("5.6.0 "), (
                "%s in %s mode: want 550 5.6.0, got %s %r"
                % (name, p.mode, code, lines))
        else:
            assert code == 250 and lines[0].startswith(
                "2.0.0 Ok: queued as "), (name, code, lines)
        # What follows the genuine end arrives as commands.
        rest = wire[used:]
        if rest:
            assert rest == b"\r\n.\r\n"
            c.expect(500, "5.5.2")
            c.expect(500, "5.5.2")
        # Never a second reply for a smuggled message: the session is in
        # sync and the next command gets its own answer.
        c.send(b"NOOP\r\n")
        c.expect(250, "2.0.0")
        c.send(b"QUIT\r\n")
        c.expect(221, "2.0.0")
    p.wait_queue_empty()
    assert p.maildir_files("bob@example.test") == before_bob, \
        "%s: a message reached bob" % name
    new = [f for f in p.maildir_files("alice@example.test")
           if f not in before_alice]
    after_all = p.all_maildir_files()
    assert len(after_all) - len(before_all) == len(new)
    if code != 250:
        assert new == [], "%s: rejected but delivered" % name
        return
    assert len(new) == 1, "%s: %d messages for alice" % (name, len(new))
    with open(new[0], "rb") as f:
        data = f.read()
    rp, received, body = split_delivered(data)
    assert rp == b"Return-Path: <sender@remote.test>\n"
    assert b"spoof@evil.test" not in rp + received
    assert body == content.replace(b"\r\n", b"\n"), (name, body, content)
    assert b"SMUGGLED" in body and b"MAIL FROM:<spoof@evil.test>" in body
