"""
test_replies.py: every reply the SMTP server can send.

1. The command table across every session state: for each state (fresh
   after the greeting, after HELO, after EHLO, inside MAIL, after an
   accepted RCPT, after only a refused RCPT, between BDAT chunks) every
   command is sent with
   valid and invalid arguments, the code and enhanced code are checked
   against STATE_TABLE, and a probe (MAIL) checks the state the session is
   in afterwards. The same on submission and submissions listeners
   under TLS, with AUTH and sender_login (SUB_STATES, SUB_COMMANDS).
2. One test per reply in src/smtp/reply.c that a client can trigger. The
   reply table is parsed from reply.c so code, enhanced code and text are
   checked exactly. COVERAGE names the test(s) for each REPLY_ id in
   reply.h; test_every_reply_has_a_test fails when a reply is added
   without one.
   The SASL exchange's replies (src/sasl/exchange.c) are parsed and
   checked the same way.
3. docs/replies.md must list exactly the rows of reply.c, and those of
   the SASL exchange.
"""

import base64
import inspect
import os
import re
import signal
import socket
import time
import warnings

import pytest

from harness import (CLIENT_HELO, SOURCE_DIR, Petrel, RawClient,
                     expected_maildir_bytes, free_port)

HOST = "mx.example.test"
REPLY_H = os.path.join(SOURCE_DIR, "src", "smtp", "reply.h")
REPLY_C = os.path.join(SOURCE_DIR, "src", "smtp", "reply.c")
REPLIES_MD = os.path.join(SOURCE_DIR, "docs", "replies.md")
SASL_C = os.path.join(SOURCE_DIR, "src", "sasl", "exchange.c")

pytestmark = pytest.mark.timeout(300)


# ---- the reply table, from the source ----

def c_string(lit):
    body = lit[1:-1]
    return re.sub(r'\\(["\\])', r"\1", body).replace("\\n", "\n")


def parse_reply_c(path=REPLY_C):
    """{REPLY_X: (code, enhanced or None, text, when)} from reply.c."""
    src = open(path, encoding="utf-8").read()
    src = re.sub(r"/\*.*?\*/", "", src, flags=re.S)
    table = {}
    for m in re.finditer(r"^\s+\[(REPLY_\w+)\]\s*=\s*\{(.*?)\}\s*,", src,
                         re.S | re.M):
        toks = re.findall(r'"(?:[^"\\]|\\.)*"|NULL|\d+|REPLY_\w+|,',
                          m.group(2))
        fields, cur = [], None
        for t in toks:
            if t == ",":
                fields.append(cur)
                cur = None
            elif t.startswith('"'):
                cur = (cur or "") + c_string(t)
            else:
                cur = t
        if cur is not None:
            fields.append(cur)
        assert len(fields) == 5, (m.group(1), fields)
        rid, code, enh, text, when = fields
        assert rid == m.group(1), "row %s names %s" % (m.group(1), rid)
        table[rid] = (int(code), None if enh == "NULL" else enh, text, when)
    return table


def parse_reply_h(path=REPLY_H):
    src = open(path, encoding="utf-8").read()
    enum = re.search(r"enum reply_id\s*\{(.*?)\}", src, re.S).group(1)
    ids = re.findall(r"\b(REPLY_\w+)", re.sub(r"/\*.*?\*/", "", enum,
                                              flags=re.S))
    return [i for i in ids if i not in ("REPLY_NONE", "REPLY_MAX")]


REPLIES = parse_reply_c()


def parse_sasl_c(path=SASL_C):
    """{SASL_ERR_X: (code, enhanced, text)}: the replies of the SASL
    exchange (sasl_error_reply()), which are not in reply.c."""
    src = open(path, encoding="utf-8").read()
    block = re.search(r"sasl_replies\[SASL_ERR_MAX\]\s*=\s*\{(.*?)\n\};",
                      src, re.S).group(1)
    table = {}
    for m in re.finditer(r"\[(SASL_ERR_\w+)\]\s*=\s*\{\s*(\d+),\s*"
                         r'"([^"]*)",\s*((?:"(?:[^"\\]|\\.)*"\s*)+)\}',
                         block):
        text = "".join(c_string(t) for t in
                       re.findall(r'"(?:[^"\\]|\\.)*"', m.group(4)))
        table[m.group(1)] = (int(m.group(2)), m.group(3), text)
    return table


SASL_REPLIES = parse_sasl_c()


def sasl_reply_line(err):
    """The reply as RawClient.reply() returns it: (code, [line])."""
    code, enh, text = SASL_REPLIES[err]
    return code, ["%s %s" % (enh, text)]


def reply_regex(rid, *args):
    """The exact reply line for rid: %s filled with args, or with a group
    when no argument is given."""
    code, enh, text, _ = REPLIES[rid]
    parts = text.split("%s")
    rx = re.escape(parts[0])
    for i, p in enumerate(parts[1:]):
        rx += re.escape(args[i]) if i < len(args) else r"(\S+)"
        rx += re.escape(p)
    return code, enh, rx


def expect_reply(c, rid, *args):
    """Read one reply and check it is exactly rid; returns regex groups."""
    code, enh, rx = reply_regex(rid, *args)
    got, lines = c.reply()
    assert got == code, "expected %s (%s), got %s %r" % (
        rid, code, got, lines)
    first = lines[0]
    if enh is not None:
        assert first.startswith(enh + " "), "expected %s %s, got %s %r" % (
            rid, enh, got, lines)
        first = first[len(enh) + 1:]
    m = re.fullmatch(rx, first)
    assert m, "%s: text %r does not match %r" % (rid, first, rx)
    return m.groups()


def send_expect(c, line, rid, *args):
    if isinstance(line, str):
        line = line.encode("utf-8")
    c.send(line + b"\r\n")
    try:
        return expect_reply(c, rid, *args)
    except AssertionError as e:
        raise AssertionError("sent %r: %s" % (line[:200], e)) from None


def greet(c, ehlo=True):
    expect_reply(c, "REPLY_GREETING", HOST)
    c.send(("%s %s\r\n" % ("EHLO" if ehlo else "HELO", CLIENT_HELO)))
    code, lines = c.reply()
    assert code == 250 and lines[0] == HOST, lines
    return lines


def start_txn(c, sender="sender@remote.test", rcpts=("alice@example.test",)):
    greet(c)
    send_expect(c, "MAIL FROM:<%s>" % sender, "REPLY_MAIL_OK")
    for r in rcpts:
        send_expect(c, "RCPT TO:<%s>" % r, "REPLY_RCPT_OK")


def send_message(c, wire):
    """DATA, the wire bytes (dot-stuffed, CRLF-terminated), the final dot;
    returns the reply to the final dot."""
    send_expect(c, "DATA", "REPLY_DATA_GO")
    c.send(wire + b".\r\n")
    return c.reply()


def assert_in_sync(c):
    send_expect(c, "NOOP", "REPLY_OK")


# ---- 1. the command table across every state ----

STATES = ["fresh", "helo", "ehlo", "mail", "rcpt", "badrcpt", "bdat"]


def enter_state(c, state):
    expect_reply(c, "REPLY_GREETING", HOST)
    if state == "fresh":
        return
    if state == "helo":
        send_expect(c, "HELO " + CLIENT_HELO, "REPLY_HELO", HOST)
        return
    greet_lines = None
    c.send("EHLO %s\r\n" % CLIENT_HELO)
    code, greet_lines = c.reply()
    assert code == 250, greet_lines
    if state == "ehlo":
        return
    send_expect(c, "MAIL FROM:<sender@remote.test>", "REPLY_MAIL_OK")
    if state in ("rcpt", "bdat"):
        send_expect(c, "RCPT TO:<alice@example.test>", "REPLY_RCPT_OK")
    elif state == "badrcpt":
        send_expect(c, "RCPT TO:<nobody@example.test>",
                    "REPLY_UNKNOWN_USER", "nobody@example.test")
    if state == "bdat":
        # send_expect adds the CRLF that ends the 11-octet chunk
        send_expect(c, b"BDAT 11\r\nX-Walk: 1", "REPLY_BDAT_OK", "11")


OK250 = (250, None)
HELO_OK = (250, None)
SEQ = (503, "5.5.1")
SYN = (501, "5.5.4")
NOTIMPL = (502, "5.5.1")
UNKNOWN = (500, "5.5.2")
GREETED = ("helo", "ehlo")
INTXN = ("mail", "rcpt", "badrcpt")


def per_state(default=None, **kw):
    return {s: kw.get(s, default) for s in STATES}


def greeted_only(ok):
    """ok when greeted and outside a transaction, else 503."""
    return {s: ok if s in GREETED else SEQ for s in STATES}


def in_txn_only(ok):
    return {s: ok if s in INTXN else SEQ for s in STATES}


# name: (command line, {state: expected (code, enhanced) or a set of
# acceptable ones}, state afterwards: "same", "reset" (greeted, no
# transaction; fresh stays fresh), a state name, or None: the session is
# closed).
COMMANDS = {
    "EHLO": ("EHLO " + CLIENT_HELO, per_state(HELO_OK), "ehlo"),
    "EHLO-noarg": ("EHLO", per_state(SYN), "same"),
    "EHLO-bad": ("EHLO bad!host", per_state(SYN), "same"),
    "HELO": ("HELO " + CLIENT_HELO, per_state(HELO_OK), "helo"),
    "HELO-noarg": ("HELO", per_state(SYN), "same"),
    "HELO-bad": ("HELO bad!host", per_state(SYN), "same"),
    "MAIL": ("MAIL FROM:<probe0@remote.test>",
             greeted_only((250, "2.1.0")), "mail"),
    "MAIL-nobrackets": ("MAIL FROM:sender@remote.test",
                        greeted_only((501, "5.1.7")), "same"),
    "MAIL-noarg": ("MAIL", greeted_only(SYN), "same"),
    "MAIL-to": ("MAIL TO:<sender@remote.test>", greeted_only(SYN), "same"),
    "MAIL-badparam": ("MAIL FROM:<sender@remote.test> FOO=bar",
                      greeted_only((555, "5.5.4")), "same"),
    "RCPT": ("RCPT TO:<bob@example.test>", in_txn_only((250, "2.1.5")),
             "rcpt"),
    "RCPT-null": ("RCPT TO:<>", in_txn_only((501, "5.1.3")), "same"),
    "RCPT-noarg": ("RCPT", in_txn_only(SYN), "same"),
    "RCPT-unknown": ("RCPT TO:<nobody@example.test>",
                     in_txn_only((550, "5.1.1")), "same"),
    "RCPT-relay": ("RCPT TO:<someone@remote.test>",
                   in_txn_only((550, "5.7.1")), "same"),
    "DATA": ("DATA", per_state(SEQ, rcpt=(354, None),
                               badrcpt=(554, "5.5.1")), "data"),
    # Sequence or argument error first: RFC 5321 does not say.
    "DATA-arg": ("DATA now", per_state({SEQ, SYN}, rcpt=SYN,
                                       badrcpt={(554, "5.5.1"), SYN}),
                 "same"),
    "RSET": ("RSET", per_state((250, "2.0.0")), "reset"),
    "RSET-arg": ("RSET now", per_state(SYN), "same"),
    "NOOP": ("NOOP", per_state((250, "2.0.0")), "same"),
    "NOOP-arg": ("NOOP ignored string", per_state((250, "2.0.0")), "same"),
    "QUIT": ("QUIT", per_state((221, "2.0.0")), None),
    "QUIT-arg": ("QUIT now", per_state(SYN), "same"),
    "VRFY": ("VRFY alice", per_state((252, "2.0.0")), "same"),
    # VRFY takes an argument; a server may also just answer 252.
    "VRFY-noarg": ("VRFY", per_state({SYN, (252, "2.0.0")}), "same"),
    "HELP": ("HELP", per_state((214, "2.0.0")), "same"),
    "HELP-arg": ("HELP MAIL", per_state((214, "2.0.0")), "same"),
    "EXPN": ("EXPN team", per_state(NOTIMPL), "same"),
    # 220, then the handshake: the walk sends plaintext, which must not
    # be answered (the failed handshake closes the connection).
    "STARTTLS": ("STARTTLS", per_state(SEQ, helo=(220, "2.0.0"),
                                       ehlo=(220, "2.0.0")), "same"),
    "STARTTLS-arg": ("STARTTLS now", per_state({SEQ, SYN}, helo=SYN,
                                               ehlo=SYN), "same"),
    # An mx listener without mx_auth: 503 before EHLO, in a transaction
    # and once greeted.
    "AUTH": ("AUTH PLAIN AGFsaWNlAHNlY3JldA==", per_state(SEQ), "same"),
    # A message of one empty chunk (or the last, empty chunk).
    "BDAT": ("BDAT 0 LAST", per_state(SEQ, rcpt=(250, "2.0.0"),
                                      bdat=(250, "2.0.0"),
                                      badrcpt=(554, "5.5.1")), "data"),
    # The end of the chunk is unknown: 501, and the connection closes.
    "BDAT-bad": ("BDAT x", per_state(SYN), None),
    "unknown": ("FOOBAR baz", per_state(UNKNOWN), "same"),
    "empty": ("", per_state(UNKNOWN), "same"),
    "lowercase": ("noop", per_state((250, "2.0.0")), "same"),
}


def state_after(state, after):
    if after == "same":
        return state
    if after == "reset":
        return state if state in ("fresh", "helo", "ehlo") else "ehlo"
    if after == "data":
        return "ehlo" if state in ("rcpt", "bdat") else state
    if after == "ehlo" or after == "helo":
        return after
    if after in ("mail", "rcpt"):
        # only when the command succeeded, which the table says
        return after
    raise AssertionError(after)


@pytest.fixture(scope="module")
def walk_petrel(request):
    failed_before = request.session.testsfailed
    p = Petrel()
    p.start()
    try:
        yield p
    finally:
        p.finish(failed=request.session.testsfailed > failed_before)


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("name", list(COMMANDS))
def test_command_in_state(walk_petrel, state, name):
    line, table, after = COMMANDS[name]
    want = table[state]
    wants = want if isinstance(want, set) else {want}
    with walk_petrel.raw(timeout=15) as c:
        enter_state(c, state)
        c.send(line.encode() + b"\r\n")
        code, lines = c.reply()
        enh = lines[0].split(" ", 1)[0] if re.match(r"\d\.\d+\.\d+ ",
                                                    lines[0]) else None
        assert (code, enh) in wants, "%s in state %s: want %s, got %s %r" % (
            line, state, sorted(wants, key=str), code, lines)
        if code in (250, 251) and name in ("MAIL", "RCPT"):
            new = after
        elif code == 354:
            c.send(b"Subject: walk\r\n\r\nstate walk\r\n.\r\n")
            expect_reply(c, "REPLY_QUEUED")
            new = "ehlo"
        elif code == 220 and name == "STARTTLS":
            c.send(b"QUIT\r\n")
            assert c.wait_closed() == b"", "plaintext answered after 220"
            return
        elif after is None:
            c.wait_closed()
            return
        elif code >= 400:
            new = state
        else:
            new = state_after(state, after)
        # Probe the state: MAIL succeeds only when greeted and outside a
        # transaction; the answer also shows the session is in sync.
        c.send(b"MAIL FROM:<probe@remote.test>\r\n")
        if new in GREETED:
            expect_reply(c, "REPLY_MAIL_OK")
        elif new == "fresh":
            expect_reply(c, "REPLY_NEED_HELO")
        else:
            expect_reply(c, "REPLY_NESTED_MAIL")
        send_expect(c, "QUIT", "REPLY_BYE")
        c.wait_closed()


# ---- TLS and AUTH: a daemon with every listener role ----

ROLES = ("mx", "submission", "submissions")
ALICE = "alice@example.test"
PASSWORD = "secret"
# A SHA-512 crypt(3) hash of PASSWORD, made with crypt.crypt() when Python
# still has the module (3.13 has not), else a fixed one of the same.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import crypt
    except ImportError:
        crypt = None
if crypt is not None:
    ALICE_HASH = crypt.crypt(PASSWORD, crypt.mksalt(crypt.METHOD_SHA512))
else:
    ALICE_HASH = ("$6$petreltestsalt$mMCFcXh/p8oMJPXNNl5qkAf6vLe3EiVLBJO1iyl1"
                  "CkQSpsFRaENVmw0rgOnsryg1r3Z89Z90cOqskLfPqN/HN1")
# bob has no password (a mailbox that cannot log in); dave receives the
# sender_login tests' messages so that no other test's mail mixes in.
AUTH_USERS = {ALICE: ALICE_HASH, "bob@example.test": "",
              "dave@example.test": ""}
AUTH_ALIASES = "postmaster: alice\nsales: bob\n"


def b64(data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return base64.b64encode(data).decode("ascii")


def plain(user=ALICE, password=PASSWORD, authzid=""):
    """An AUTH PLAIN response (RFC 4616)."""
    return b64("%s\0%s\0%s" % (authzid, user, password))


def start_roles(make, roles=ROLES, **kw):
    """A daemon listening with each role on its own port (p.ports[role]);
    make is make_petrel or Petrel. A port taken meanwhile: new ports."""
    for attempt in range(5):
        ports = {r: free_port() for r in roles}
        listen = ["127.0.0.1:%d %s" % (ports[r], r) for r in roles]
        if make is Petrel:
            p = Petrel(listen=listen, **kw)
        else:
            p = make(start=False, listen=listen, **kw)
        p.ports = ports
        try:
            p.start()
            return p
        except AssertionError:
            taken = any("Address already in use" in l for l in p.log_lines)
            if not taken or attempt == 4:
                raise
            p.kill()
            p.cleanup()


def connect(p, role, timeout=15):
    """A client on the role's listener; for submissions (port 465) the
    TLS handshake is done first, as there it comes before the greeting."""
    c = RawClient(p.host, p.ports[role], timeout=timeout)
    if role == "submissions":
        c.starttls()
    return c


def starttls(c):
    """STARTTLS and the handshake; the session starts again at EHLO."""
    send_expect(c, "STARTTLS", "REPLY_STARTTLS_GO")
    c.starttls()


def ehlo(c):
    c.send("EHLO %s\r\n" % CLIENT_HELO)
    code, lines = c.reply()
    assert code == 250 and lines[0] == HOST, lines
    return lines[1:]


def open_tls(p, role):
    """Greeted (EHLO) under TLS on a submission or submissions listener."""
    c = connect(p, role)
    expect_reply(c, "REPLY_GREETING", HOST)
    if role != "submissions":
        ehlo(c)
        starttls(c)
    ehlo(c)
    return c


def login(c, user=ALICE, password=PASSWORD):
    send_expect(c, "AUTH PLAIN " + plain(user, password), "REPLY_AUTH_OK")


@pytest.fixture(scope="module")
def auth_petrel(request):
    """mx (without mx_auth), submission and submissions listeners with
    the default TLS and AUTH settings, but no failure delay."""
    failed_before = request.session.testsfailed
    p = start_roles(Petrel, users=AUTH_USERS, aliases=AUTH_ALIASES,
                    extra_conf="auth_fail_delay 0")
    try:
        yield p
    finally:
        p.finish(failed=request.session.testsfailed > failed_before)


# ---- 1b. the same walk on submission listeners, under TLS ----

SUB_STATES = ["fresh", "helo", "ehlo", "auth", "mail", "rcpt"]
AUTHED = ("auth", "mail", "rcpt")
AUTH_REQ = (530, "5.7.0")


def enter_sub_state(p, role, state):
    """A session under TLS (STARTTLS on submission, at once on
    submissions), then state: fresh (no EHLO since the handshake), helo,
    ehlo, auth (EHLO and AUTH), mail (and MAIL), rcpt (and RCPT)."""
    c = connect(p, role)
    expect_reply(c, "REPLY_GREETING", HOST)
    if role == "submission":
        ehlo(c)
        starttls(c)
    if state == "fresh":
        return c
    if state == "helo":
        send_expect(c, "HELO " + CLIENT_HELO, "REPLY_HELO", HOST)
        return c
    ehlo(c)
    if state == "ehlo":
        return c
    login(c)
    if state == "auth":
        return c
    send_expect(c, "MAIL FROM:<%s>" % ALICE, "REPLY_MAIL_OK")
    if state == "rcpt":
        send_expect(c, "RCPT TO:<bob@example.test>", "REPLY_RCPT_OK")
    return c


def sub_state(fresh=SEQ, greeted=SEQ, auth=SEQ, mail=SEQ, rcpt=None):
    return {"fresh": fresh, "helo": greeted, "ehlo": greeted, "auth": auth,
            "mail": mail, "rcpt": mail if rcpt is None else rcpt}


# As COMMANDS. After a successful AUTH the session stays authenticated
# through EHLO, HELO and RSET.
SUB_COMMANDS = {
    "EHLO": ("EHLO " + CLIENT_HELO, sub_state(*[HELO_OK] * 4), "ehlo"),
    "HELO": ("HELO " + CLIENT_HELO, sub_state(*[HELO_OK] * 4), "helo"),
    # RFC 6409 4.3: submission needs AUTH first.
    "MAIL": ("MAIL FROM:<%s>" % ALICE,
             sub_state(greeted=AUTH_REQ, auth=(250, "2.1.0")), "mail"),
    "MAIL-null": ("MAIL FROM:<>",
                  sub_state(greeted=AUTH_REQ, auth=(250, "2.1.0")), "mail"),
    "MAIL-other": ("MAIL FROM:<bob@example.test>",
                   sub_state(greeted=AUTH_REQ, auth=(553, "5.7.1")), "same"),
    "RCPT": ("RCPT TO:<bob@example.test>", sub_state(mail=(250, "2.1.5")),
             "rcpt"),
    # An authenticated session relays.
    "RCPT-relay": ("RCPT TO:<someone@remote.test>",
                   sub_state(mail=(250, "2.1.5")), "rcpt"),
    "DATA": ("DATA", sub_state(rcpt=(354, None)), "data"),
    "BDAT": ("BDAT 0 LAST", sub_state(rcpt=(250, "2.0.0")), "data"),
    "RSET": ("RSET", sub_state(*[(250, "2.0.0")] * 5), "reset"),
    # TLS is on already: 503 in every state.
    "STARTTLS": ("STARTTLS", sub_state(), "same"),
    "AUTH": ("AUTH PLAIN " + plain(), sub_state(greeted=(235, "2.7.0")),
             "auth"),
    "AUTH-wrong": ("AUTH PLAIN " + plain(password="wrong"),
                   sub_state(greeted=(535, "5.7.8")), "same"),
    # LOGIN asks for the user name; the walk answers "*" (cancel).
    "AUTH-login": ("AUTH LOGIN", sub_state(greeted=(334, None)), "same"),
    "AUTH-mech": ("AUTH CRAM-MD5", sub_state(greeted=(504, "5.5.4")),
                  "same"),
    "AUTH-base64": ("AUTH PLAIN !!!!", sub_state(greeted=(501, "5.5.2")),
                    "same"),
    "AUTH-noarg": ("AUTH", sub_state(greeted=SYN, auth=SYN), "same"),
    "AUTH-extra": ("AUTH PLAIN %s x" % plain(),
                   sub_state(greeted=SYN), "same"),
}


def sub_state_after(state, after):
    authed = state in AUTHED
    if after == "same":
        return state
    if after in ("ehlo", "helo", "reset"):
        if authed:
            return "auth"
        return state if after == "reset" else after
    if after == "data":
        return "auth"
    return after        # auth, mail, rcpt: the command succeeded


@pytest.mark.parametrize("role", ["submission", "submissions"])
@pytest.mark.parametrize("state", SUB_STATES)
@pytest.mark.parametrize("name", list(SUB_COMMANDS))
def test_submission_command_in_state(auth_petrel, role, state, name):
    line, table, after = SUB_COMMANDS[name]
    want = table[state]
    with enter_sub_state(auth_petrel, role, state) as c:
        c.send(line.encode() + b"\r\n")
        code, lines = c.reply()
        enh = lines[0].split(" ", 1)[0] if re.match(r"\d\.\d+\.\d+ ",
                                                    lines[0]) else None
        assert (code, enh) == want, "%s in state %s on %s: want %s, " \
            "got %s %r" % (line, state, role, want, code, lines)
        if code == 354:
            c.send(b"Subject: walk\r\n\r\nsubmission walk\r\n.\r\n")
            expect_reply(c, "REPLY_QUEUED")
        elif code == 334:
            assert lines == ["VXNlcm5hbWU6"], lines
            c.send(b"*\r\n")
            code, lines = c.reply()
            assert (code, lines) == (501, ["5.0.0 Authentication "
                                           "cancelled"]), lines
        new = sub_state_after(state, after) if code < 400 and code != 334 \
            else state
        # The probe: MAIL from the user's own address.
        c.send(("MAIL FROM:<%s>\r\n" % ALICE).encode())
        if new == "fresh":
            expect_reply(c, "REPLY_NEED_HELO")
        elif new in GREETED:
            expect_reply(c, "REPLY_AUTH_REQUIRED")
        elif new == "auth":
            expect_reply(c, "REPLY_MAIL_OK")
        else:
            expect_reply(c, "REPLY_NESTED_MAIL")
        send_expect(c, "QUIT", "REPLY_BYE")
        c.wait_closed()


# ---- 2. one test per reply ----

def test_greeting(petrel):
    with petrel.raw() as c:
        code, lines = c.reply()
        assert (code, lines) == (220, ["mx.example.test ESMTP Petrel"])
        assert reply_regex("REPLY_GREETING", HOST)[2] == \
            re.escape(lines[0])


def test_helo_reply(petrel):
    with petrel.raw() as c:
        expect_reply(c, "REPLY_GREETING", HOST)
        send_expect(c, "HELO " + CLIENT_HELO, "REPLY_HELO", HOST)
        send_expect(c, "HELO [127.0.0.1]", "REPLY_HELO", HOST)


def test_ehlo_extensions(petrel):
    with petrel.raw() as c:
        expect_reply(c, "REPLY_GREETING", HOST)
        c.send("EHLO %s\r\n" % CLIENT_HELO)
        code, lines = c.reply()
        assert code == 250
        assert lines[0] == HOST
        assert sorted(lines[1:]) == sorted([
            "PIPELINING", "SIZE 36700160", "8BITMIME", "BINARYMIME",
            "CHUNKING", "DSN", "STARTTLS", "ENHANCEDSTATUSCODES",
            "SMTPUTF8"]), lines
        # mx listener, no mx_auth: no AUTH, and never before TLS
        assert not any(l.startswith("AUTH") for l in lines), lines


def test_ehlo_size_follows_config(make_petrel):
    p = make_petrel(extra_conf="max_message_size 12345")
    with p.raw() as c:
        lines = greet(c)
        assert "SIZE 12345" in lines, lines


def test_ehlo_address_literals(petrel):
    with petrel.raw() as c:
        expect_reply(c, "REPLY_GREETING", HOST)
        for arg in ("[127.0.0.1]", "[IPv6:::1]", "a-b.example.test"):
            c.send("EHLO %s\r\n" % arg)
            code, lines = c.reply()
            assert code == 250 and lines[0] == HOST, (arg, lines)


def test_ok_mail_rcpt_data_queued_bye(petrel):
    with petrel.raw() as c:
        greet(c)
        send_expect(c, "NOOP", "REPLY_OK")
        send_expect(c, "RSET", "REPLY_OK")
        send_expect(c, "MAIL FROM:<sender@remote.test>", "REPLY_MAIL_OK")
        send_expect(c, "RCPT TO:<alice@example.test>", "REPLY_RCPT_OK")
        send_expect(c, "DATA", "REPLY_DATA_GO")
        c.send(b"Subject: replies\r\n\r\nbody\r\n.\r\n")
        [qid] = expect_reply(c, "REPLY_QUEUED")
        send_expect(c, "QUIT", "REPLY_BYE")
        c.wait_closed()
    [f] = petrel.wait_delivered("alice@example.test", 1)
    expected_maildir_bytes("sender@remote.test",
                           b"Subject: replies\r\n\r\nbody\r\n", f,
                           queue_id=qid)


def test_vrfy_help(petrel):
    with petrel.raw() as c:
        greet(c)
        send_expect(c, "VRFY alice@example.test", "REPLY_VRFY")
        send_expect(c, "VRFY nobody@example.test", "REPLY_VRFY")
        send_expect(c, "HELP", "REPLY_HELP")


def test_sequence_errors(petrel):
    with petrel.raw() as c:
        expect_reply(c, "REPLY_GREETING", HOST)
        send_expect(c, "MAIL FROM:<a@remote.test>", "REPLY_NEED_HELO")
        c.send("EHLO %s\r\n" % CLIENT_HELO)
        c.reply()
        send_expect(c, "RCPT TO:<alice@example.test>", "REPLY_NEED_MAIL")
        send_expect(c, "DATA", "REPLY_NEED_MAIL")
        send_expect(c, "MAIL FROM:<a@remote.test>", "REPLY_MAIL_OK")
        send_expect(c, "DATA", "REPLY_NEED_RCPT")
        send_expect(c, "MAIL FROM:<a@remote.test>", "REPLY_NESTED_MAIL")
        send_expect(c, "RCPT TO:<nobody@example.test>",
                    "REPLY_UNKNOWN_USER", "nobody@example.test")
        send_expect(c, "DATA", "REPLY_NO_VALID_RCPTS")
        assert_in_sync(c)
    assert petrel.queue_ids() == []


def test_syntax_errors(petrel):
    with petrel.raw() as c:
        greet(c)
        send_expect(c, "MAIL", "REPLY_SYNTAX")
        send_expect(c, "MAIL FROM", "REPLY_SYNTAX")
        send_expect(c, "MAIL TO:<a@remote.test>", "REPLY_SYNTAX")
        send_expect(c, "MAIL FROM:<a@remote.test>", "REPLY_MAIL_OK")
        send_expect(c, "RCPT", "REPLY_SYNTAX")
        send_expect(c, "RCPT FROM:<alice@example.test>", "REPLY_SYNTAX")
        send_expect(c, "HELO", "REPLY_HELO_SYNTAX")
        send_expect(c, "EHLO", "REPLY_HELO_SYNTAX")
        send_expect(c, "EHLO bad!host", "REPLY_HELO_SYNTAX")
        send_expect(c, "RSET x", "REPLY_NO_ARGS")
        send_expect(c, "QUIT x", "REPLY_NO_ARGS")
        assert_in_sync(c)


def test_bad_helo_501(petrel):
    with petrel.raw() as c:
        expect_reply(c, "REPLY_GREETING", HOST)
        wrong = []
        # A domain (letters, digits, hyphens, dots, UTF-8; '_' too, as
        # Postfix allows) or an address literal.
        for line in ("HELO", "EHLO", "HELO foo bar", "HELO -x!",
                     "HELO bad!host", "EHLO [300.1.1.1]", "EHLO <x>",
                     "EHLO a/b", "HELO [127.0.0.1"):
            try:
                send_expect(c, line, "REPLY_HELO_SYNTAX")
            except AssertionError as e:
                wrong.append(str(e))
        assert not wrong, wrong
        # still not greeted
        send_expect(c, "MAIL FROM:<a@remote.test>", "REPLY_NEED_HELO")


def test_unknown_command_and_empty_line(petrel):
    with petrel.raw() as c:
        greet(c)
        send_expect(c, "FOOBAR", "REPLY_UNKNOWN_CMD")
        send_expect(c, "", "REPLY_UNKNOWN_CMD")
        send_expect(c, "MAILFROM:<a@remote.test>", "REPLY_UNKNOWN_CMD")
        assert_in_sync(c)


def test_not_implemented(petrel):
    with petrel.raw() as c:
        greet(c)
        for line in ("EXPN team", "EXPN"):
            send_expect(c, line, "REPLY_NOT_IMPLEMENTED")
        assert_in_sync(c)


def test_bdat_replies(make_petrel):
    """RFC 3030: a chunk's reply, DATA and RCPT after BDAT, a chunk over
    max_message_size, and the chunks pipelined behind it (discarded, and
    not counted as errors: with max_errors 4, two more errors after the
    first three would end in 421). send_expect adds the CRLF that ends
    each chunk."""
    p = make_petrel(extra_conf="max_message_size 100\nmax_errors 4")
    with p.raw() as c:
        start_txn(c)
        send_expect(c, b"BDAT 17\r\nSubject: chunks", "REPLY_BDAT_OK",
                    "17")
        send_expect(c, "DATA", "REPLY_DATA_AFTER_BDAT")
        send_expect(c, "RCPT TO:<bob@example.test>",
                    "REPLY_RCPT_AFTER_BDAT")
        c.send(b"BDAT 85\r\n" + b"x" * 85 + b"BDAT 4\r\nNOOP" +
               b"BDAT 0 LAST\r\n")
        expect_reply(c, "REPLY_SIZE_EXCEEDED")
        expect_reply(c, "REPLY_BDAT_DISCARDED")
        expect_reply(c, "REPLY_BDAT_DISCARDED")
        send_expect(c, "RSET", "REPLY_OK")
        send_expect(c, "MAIL FROM:<a@remote.test>", "REPLY_MAIL_OK")
        send_expect(c, "RCPT TO:<alice@example.test>", "REPLY_RCPT_OK")
        send_expect(c, b"BDAT 16\r\nSubject: small", "REPLY_BDAT_OK",
                    "16")
        [qid] = send_expect(c, b"BDAT 8 LAST\r\n\r\nbody", "REPLY_QUEUED")
        assert_in_sync(c)
    [f] = p.wait_delivered("alice@example.test", 1)
    expected_maildir_bytes("a@remote.test",
                           b"Subject: small\r\n\r\nbody\r\n", f,
                           queue_id=qid)


def test_binarymime_data_503(petrel):
    with petrel.raw() as c:
        greet(c)
        send_expect(c, "MAIL FROM:<a@remote.test> BODY=BINARYMIME",
                    "REPLY_MAIL_OK")
        send_expect(c, "RCPT TO:<alice@example.test>", "REPLY_RCPT_OK")
        send_expect(c, "DATA", "REPLY_BINARYMIME_DATA")
        assert_in_sync(c)


def test_bdat_syntax_closes(petrel):
    with petrel.raw() as c:
        start_txn(c)
        send_expect(c, "BDAT 12x LAST", "REPLY_BDAT_SYNTAX")
        c.wait_closed()
    assert petrel.queue_ids() == []


def test_line_too_long_513(petrel):
    with petrel.raw() as c:
        greet(c)
        # 512 octets with CRLF: the longest command line.
        line = b"NOOP " + b"x" * (512 - 5 - 2)
        assert len(line) + 2 == 512
        c.send(line + b"\r\n")
        expect_reply(c, "REPLY_OK")
        line = b"NOOP " + b"x" * (513 - 5 - 2)
        assert len(line) + 2 == 513
        c.send(line + b"\r\n")
        expect_reply(c, "REPLY_LINE_TOO_LONG")
        assert_in_sync(c)


def test_line_too_long_mail_2049(petrel):
    with petrel.raw() as c:
        greet(c)
        head = b"MAIL FROM:<a@remote.test> X-PAD="
        # A 2048-octet MAIL line is not too long (the parameter is unknown).
        line = head + b"a" * (2048 - len(head) - 2)
        c.send(line + b"\r\n")
        expect_reply(c, "REPLY_PARAM_UNKNOWN")
        line = head + b"a" * (2049 - len(head) - 2)
        assert len(line) + 2 == 2049
        c.send(line + b"\r\n")
        expect_reply(c, "REPLY_LINE_TOO_LONG")
        # A 513-octet MAIL line is fine.
        line = head + b"a" * (513 - len(head) - 2)
        c.send(line + b"\r\n")
        expect_reply(c, "REPLY_PARAM_UNKNOWN")
        send_expect(c, "MAIL FROM:<a@remote.test>", "REPLY_MAIL_OK")
        line = b"RCPT TO:<alice@example.test> X-PAD="
        c.send(line + b"b" * (2049 - len(line) - 2) + b"\r\n")
        expect_reply(c, "REPLY_LINE_TOO_LONG")
        send_expect(c, "RCPT TO:<alice@example.test>", "REPLY_RCPT_OK")


def test_bad_line_nul_and_bare_lf(petrel):
    with petrel.raw() as c:
        greet(c)
        c.send(b"NOOP\x00x\r\n")
        expect_reply(c, "REPLY_BAD_LINE")
        c.send(b"NOOP\rNOOP\r\n")
        expect_reply(c, "REPLY_BAD_LINE")
        # A bare LF may end the (refused) line or be inside it: either
        # way no NOOP is answered 250 before ours.
        c.send(b"NOOP\nX\r\n")
        expect_reply(c, "REPLY_BAD_LINE")
        c.send(b"NOOP\r\n")
        code, lines = c.reply()
        if code == 500:
            assert lines == ["5.5.2 Error: command not recognized"], lines
            code, lines = c.reply()
        assert (code, lines) == (250, ["2.0.0 Ok"])
        assert_in_sync(c)


def test_local_part_65(petrel):
    with petrel.raw() as c:
        greet(c)
        send_expect(c, "MAIL FROM:<%s@remote.test>" % ("s" * 65),
                    "REPLY_BAD_SENDER")
        send_expect(c, "MAIL FROM:<%s@remote.test>" % ("s" * 64),
                    "REPLY_MAIL_OK")
        send_expect(c, "RCPT TO:<%s@example.test>" % ("a" * 65),
                    "REPLY_BAD_RCPT")
        send_expect(c, "RCPT TO:<%s@example.test>" % ("a" * 64),
                    "REPLY_UNKNOWN_USER", "a" * 64 + "@example.test")


def long_domain(n):
    """A syntactically valid domain of exactly n octets."""
    labels = []
    left = n
    while left > 0:
        size = min(63, left)
        if left - size == 1:
            size -= 1          # never leave a single dot with no label
        labels.append("d" * size)
        left -= size + 1
    d = ".".join(labels)
    if len(d) < n:
        d = d[:-1] + "ee"
    assert len(d) == n, (len(d), n)
    return d


def test_domain_256(petrel):
    with petrel.raw() as c:
        greet(c)
        send_expect(c, "MAIL FROM:<a@%s>" % long_domain(256),
                    "REPLY_BAD_SENDER")
        send_expect(c, "MAIL FROM:<a@remote.test>", "REPLY_MAIL_OK")
        send_expect(c, "RCPT TO:<a@%s>" % long_domain(256), "REPLY_BAD_RCPT")
        assert_in_sync(c)


def test_path_257(petrel):
    with petrel.raw() as c:
        greet(c)
        # "<" + "a@" + domain + ">" is 257 octets.
        send_expect(c, "MAIL FROM:<a@%s>" % long_domain(257 - 4),
                    "REPLY_BAD_SENDER")
        # 256 is the limit and is accepted.
        send_expect(c, "MAIL FROM:<a@%s>" % long_domain(256 - 4),
                    "REPLY_MAIL_OK")
        send_expect(c, "RCPT TO:<a@%s>" % long_domain(257 - 4),
                    "REPLY_BAD_RCPT")


def test_bad_sender_and_rcpt_syntax(petrel):
    with petrel.raw() as c:
        greet(c)
        for arg in ("<a@b@remote.test>", "<a b@remote.test>",
                    "<@remote.test>", "<a@>", "<a@remote.test",
                    "a@remote.test>", "<a..b@r.test>", "<a@-r.test>"):
            send_expect(c, "MAIL FROM:" + arg, "REPLY_BAD_SENDER")
        send_expect(c, "MAIL FROM:<a@remote.test>", "REPLY_MAIL_OK")
        for arg in ("<>", "<alice>", "<alice@>", "<alice@example.test",
                    "<.alice@example.test>"):
            send_expect(c, "RCPT TO:" + arg, "REPLY_BAD_RCPT")
        assert_in_sync(c)


def test_source_route_accepted(petrel):
    with petrel.raw() as c:
        greet(c)
        send_expect(c, "MAIL FROM:<@a.test,@b.test:sender@remote.test>",
                    "REPLY_MAIL_OK")
        send_expect(c, "RCPT TO:<@hop.test:alice@example.test>",
                    "REPLY_RCPT_OK")


def test_unknown_param_555(petrel):
    with petrel.raw() as c:
        greet(c)
        send_expect(c, "MAIL FROM:<a@remote.test> FOO=bar",
                    "REPLY_PARAM_UNKNOWN", "FOO")
        send_expect(c, "MAIL FROM:<a@remote.test> BODY=8BITMIME X-Y",
                    "REPLY_PARAM_UNKNOWN", "X-Y")
        send_expect(c, "MAIL FROM:<a@remote.test>", "REPLY_MAIL_OK")
        send_expect(c, "RCPT TO:<alice@example.test> BAR",
                    "REPLY_PARAM_UNKNOWN", "BAR")
        send_expect(c, "RCPT TO:<alice@example.test>", "REPLY_RCPT_OK")


def test_bad_param_values(petrel):
    with petrel.raw() as c:
        greet(c)
        send_expect(c, "MAIL FROM:<a@remote.test> SIZE=abc",
                    "REPLY_PARAM_SYNTAX", "SIZE")
        send_expect(c, "MAIL FROM:<a@remote.test> SIZE=",
                    "REPLY_PARAM_SYNTAX", "SIZE")
        send_expect(c, "MAIL FROM:<a@remote.test> SIZE=-1",
                    "REPLY_PARAM_SYNTAX", "SIZE")
        send_expect(c, "MAIL FROM:<a@remote.test> BODY=9BIT",
                    "REPLY_PARAM_SYNTAX", "BODY")
        send_expect(c, "MAIL FROM:<a@remote.test> SIZE=10 SIZE=10",
                    "REPLY_PARAM_SYNTAX", "SIZE")
        send_expect(c, "MAIL FROM:<a@remote.test> SIZE=100 BODY=7BIT",
                    "REPLY_MAIL_OK")


def test_size_over_limit_552(make_petrel):
    p = make_petrel(extra_conf="max_message_size 10000")
    with p.raw() as c:
        greet(c)
        send_expect(c, "MAIL FROM:<a@remote.test> SIZE=10001",
                    "REPLY_SIZE_EXCEEDED")
        send_expect(c, "MAIL FROM:<a@remote.test> SIZE=10000",
                    "REPLY_MAIL_OK")


def test_message_over_max_size_while_receiving(make_petrel):
    p = make_petrel(extra_conf="max_message_size 10000")
    with p.raw() as c:
        start_txn(c)
        body = b"Subject: big\r\n\r\n" + (b"x" * 98 + b"\r\n") * 200
        code, lines = send_message(c, body)
        assert code == 552 and lines[0].startswith("5.3.4 "), lines
        assert lines == ["5.3.4 " + REPLIES["REPLY_SIZE_EXCEEDED"][2]]
        assert_in_sync(c)
        # A message just under the limit goes through on the same session.
        send_expect(c, "MAIL FROM:<a@remote.test>", "REPLY_MAIL_OK")
        send_expect(c, "RCPT TO:<alice@example.test>", "REPLY_RCPT_OK")
        small = b"Subject: small\r\n\r\n" + b"y" * 9000 + b"\r\n"
        code, lines = send_message(c, small)
        assert code == 250, lines
    [f] = p.wait_delivered("alice@example.test", 1)
    expected_maildir_bytes("a@remote.test", small, f)


def test_data_line_over_max_line_length(make_petrel):
    p = make_petrel(extra_conf="max_line_length 1000")
    with p.raw() as c:
        start_txn(c)
        # 1000 octets without CRLF is allowed...
        ok = b"Subject: l\r\n\r\n" + b"k" * 1000 + b"\r\n"
        code, lines = send_message(c, ok)
        assert code == 250, lines
        send_expect(c, "MAIL FROM:<sender@remote.test>", "REPLY_MAIL_OK")
        send_expect(c, "RCPT TO:<alice@example.test>", "REPLY_RCPT_OK")
        send_expect(c, "DATA", "REPLY_DATA_GO")
        c.send(b"Subject: l\r\n\r\n" + b"k" * 1001 + b"\r\nafter\r\n.\r\n")
        expect_reply(c, "REPLY_DATA_LINE_LONG")
        assert_in_sync(c)
    [f] = p.wait_delivered("alice@example.test", 1)
    expected_maildir_bytes("sender@remote.test", ok, f)


def test_data_line_100k_default_limit(petrel):
    with petrel.raw() as c:
        start_txn(c)
        send_expect(c, "DATA", "REPLY_DATA_GO")
        c.send(b"Subject: l\r\n\r\n" + b"k" * 100000 + b"\r\n.\r\n")
        expect_reply(c, "REPLY_DATA_LINE_LONG")
        assert_in_sync(c)
    petrel.wait_queue_empty()
    assert petrel.all_maildir_files() == []


def test_too_many_recipients_452(make_petrel):
    users = {u + "@example.test": "" for u in ("alice", "bob", "carol",
                                               "dave")}
    p = make_petrel(users=users, extra_conf="max_recipients 3")
    with p.raw() as c:
        start_txn(c, rcpts=("alice@example.test", "bob@example.test",
                            "carol@example.test"))
        send_expect(c, "RCPT TO:<dave@example.test>", "REPLY_TOO_MANY_RCPTS")
        msg = b"Subject: three\r\n\r\nx\r\n"
        code, lines = send_message(c, msg)
        assert code == 250, lines
    for u in ("alice", "bob", "carol"):
        [f] = p.wait_delivered(u + "@example.test", 1)
        expected_maildir_bytes("sender@remote.test", msg, f, rcpt=False)
    assert p.maildir_messages("dave@example.test") == []


def test_too_many_recipients_after_expansion_452(make_petrel):
    """max_recipients counts RCPT commands; alias expansion is capped at
    10000 final recipients per transaction, counted after duplicates."""
    users = {"u%d@example.test" % i: "" for i in range(11000)}
    aliases = []
    for n in range(11):
        members = ["u%d" % i for i in range(n * 1000, n * 1000 + 1000)]
        aliases.append("list%d: %s" % (n, ",\n  ".join(members)))
    p = make_petrel(users=users, aliases="\n".join(aliases) + "\n")
    with p.raw() as c:
        start_txn(c, rcpts=())
        for n in range(10):
            send_expect(c, "RCPT TO:<list%d@example.test>" % n,
                        "REPLY_RCPT_OK")
        # The same list again adds nothing: still accepted.
        send_expect(c, "RCPT TO:<list3@example.test>", "REPLY_RCPT_OK")
        send_expect(c, "RCPT TO:<u5@example.test>", "REPLY_RCPT_OK")
        # 1000 more would make 11000.
        send_expect(c, "RCPT TO:<list10@example.test>",
                    "REPLY_TOO_MANY_RCPTS")
        send_expect(c, "RSET", "REPLY_OK")
        assert_in_sync(c)


def test_unknown_user_550(petrel):
    with petrel.raw() as c:
        greet(c)
        send_expect(c, "MAIL FROM:<a@remote.test>", "REPLY_MAIL_OK")
        send_expect(c, "RCPT TO:<nobody@example.test>",
                    "REPLY_UNKNOWN_USER", "nobody@example.test")
        send_expect(c, "RCPT TO:<Nobody@Example.Test>",
                    "REPLY_UNKNOWN_USER")


def test_unsafe_users_entry_refused_at_start(make_petrel):
    """REPLY_BAD_MAILBOX cannot be reached: a users entry whose Maildir
    name policy_mailbox_path() would refuse is an error in the users file,
    and the daemon does not start with it."""
    for addr in ("a/b@example.test", ".hidden@example.test"):
        p = make_petrel(start=False, users={addr: ""})
        p.start(wait=False)
        rc = p.proc.wait(timeout=20)
        p.kill()
        assert rc != 0
        p.wait_log(r"users:1: local part \S+ cannot be a Maildir name",
                   timeout=5)
        assert not any("listening addr=" in l for l in p.log_lines)


def test_unsafe_local_part_unknown_550_511(petrel):
    with petrel.raw() as c:
        greet(c)
        send_expect(c, "MAIL FROM:<a@remote.test>", "REPLY_MAIL_OK")
        send_expect(c, 'RCPT TO:<".hidden"@example.test>',
                    "REPLY_UNKNOWN_USER")
        send_expect(c, 'RCPT TO:<"a/b"@example.test>', "REPLY_UNKNOWN_USER")
    assert not os.path.exists(os.path.join(petrel.maildir_root,
                                           "example.test", "a"))


def test_alias_loop_550_546(make_petrel):
    p = make_petrel(aliases="ping: pong\npong: ping\n")
    with p.raw() as c:
        greet(c)
        send_expect(c, "MAIL FROM:<a@remote.test>", "REPLY_MAIL_OK")
        send_expect(c, "RCPT TO:<ping@example.test>", "REPLY_ALIAS_LOOP",
                    "ping@example.test")
        send_expect(c, "RCPT TO:<alice@example.test>", "REPLY_RCPT_OK")


def test_alias_expansion_limit_451(make_petrel):
    users = {"u%d@example.test" % i: "" for i in range(1001)}
    # Each list is within the loader's limit; together they are not.
    h1 = ",\n  ".join("u%d" % i for i in range(600))
    h2 = ",\n  ".join("u%d" % i for i in range(600, 1001))
    chain = "".join("d%d: d%d\n" % (i, i + 1) for i in range(11))
    p = make_petrel(users=users,
                    aliases="h1: %s\nh2: %s\nbig: h1, h2\n%sd11: u0\n"
                    % (h1, h2, chain))
    with p.raw() as c:
        greet(c)
        send_expect(c, "MAIL FROM:<a@remote.test>", "REPLY_MAIL_OK")
        send_expect(c, "RCPT TO:<big@example.test>", "REPLY_ALIAS_EXPANSION",
                    "big@example.test")
        send_expect(c, "RCPT TO:<d0@example.test>", "REPLY_ALIAS_EXPANSION")
        send_expect(c, "RCPT TO:<d2@example.test>", "REPLY_RCPT_OK")


def test_relay_denied_untrusted(petrel):
    with petrel.raw() as c:
        greet(c)
        send_expect(c, "MAIL FROM:<a@remote.test>", "REPLY_MAIL_OK")
        send_expect(c, "RCPT TO:<someone@remote.test>", "REPLY_RELAY_DENIED",
                    "someone@remote.test")
        send_expect(c, "RCPT TO:<alice@example.test.remote.test>",
                    "REPLY_RELAY_DENIED", "alice@example.test.remote.test")
        send_expect(c, "RCPT TO:<someone@[127.0.0.1]>", "REPLY_RELAY_DENIED",
                    "someone@[127.0.0.1]")
        send_expect(c, "RCPT TO:<alice@example.test>", "REPLY_RCPT_OK")


def test_relay_accepted_from_trusted(make_petrel):
    p = make_petrel(trusted=("127.0.0.0/8",))
    with p.raw() as c:
        greet(c)
        send_expect(c, "MAIL FROM:<a@remote.test>", "REPLY_MAIL_OK")
        send_expect(c, "RCPT TO:<someone@remote.test>", "REPLY_RCPT_OK")
        send_expect(c, "RSET", "REPLY_OK")


def test_relay_untrusted_network_not_matching(make_petrel):
    p = make_petrel(trusted=("10.0.0.0/8", "::1/128"))
    with p.raw() as c:
        greet(c)
        send_expect(c, "MAIL FROM:<a@remote.test>", "REPLY_MAIL_OK")
        send_expect(c, "RCPT TO:<someone@remote.test>", "REPLY_RELAY_DENIED",
                    "someone@remote.test")


def test_utf8_without_smtputf8_553(make_petrel):
    p = make_petrel(users={"jörg@example.test": ""})
    with p.raw() as c:
        greet(c)
        send_expect(c, "MAIL FROM:<andré@remote.test>", "REPLY_NEED_SMTPUTF8")
        send_expect(c, "MAIL FROM:<a@remote.test>", "REPLY_MAIL_OK")
        send_expect(c, "RCPT TO:<jörg@example.test>", "REPLY_NEED_SMTPUTF8")
        send_expect(c, "RSET", "REPLY_OK")
        send_expect(c, "MAIL FROM:<andré@remote.test> SMTPUTF8",
                    "REPLY_MAIL_OK")
        send_expect(c, "RCPT TO:<jörg@example.test>", "REPLY_RCPT_OK")


def test_too_many_errors_421(make_petrel):
    p = make_petrel(extra_conf="max_errors 3")
    with p.raw() as c:
        greet(c)
        for _ in range(3):
            send_expect(c, "FOOBAR", "REPLY_UNKNOWN_CMD")
        # The 421 comes right after the third error or as the answer to
        # the fourth bad command; either way nothing else is served.
        try:
            c.send(b"FOOBAR\r\n")
        except OSError:
            pass
        expect_reply(c, "REPLY_TOO_MANY_ERRORS", HOST)
        c.wait_closed()
    # The daemon serves the next client.
    with p.raw() as c:
        greet(c)


def test_too_many_connections_421(make_petrel):
    p = make_petrel(extra_conf="max_connections 2")
    c1, c2 = p.raw(), p.raw()
    try:
        expect_reply(c1, "REPLY_GREETING", HOST)
        expect_reply(c2, "REPLY_GREETING", HOST)
        with p.raw(source="127.0.0.2") as c3:
            expect_reply(c3, "REPLY_TOO_MANY_CONN", HOST)
            c3.wait_closed()
        c1.close()
        wait_for_greeting(p)
    finally:
        c1.close()
        c2.close()


def wait_for_greeting(p, source=None, timeout=10):
    """Connect until the server greets (it sees a close asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        with p.raw(source=source) as c:
            code, lines = c.reply()
            if code == 220:
                return
        assert code == 421, (code, lines)
        assert time.monotonic() < deadline, "no greeting after a close"
        time.sleep(0.05)


def test_too_many_connections_per_ip_421(make_petrel):
    p = make_petrel(extra_conf="max_connections_per_ip 2\n"
                    "max_connections 10")
    c1, c2 = p.raw(), p.raw()
    try:
        expect_reply(c1, "REPLY_GREETING", HOST)
        expect_reply(c2, "REPLY_GREETING", HOST)
        with p.raw() as c3:
            expect_reply(c3, "REPLY_TOO_MANY_CONN_IP", HOST)
            c3.wait_closed()
        # Another address is not limited.
        with p.raw(source="127.0.0.2") as c4:
            expect_reply(c4, "REPLY_GREETING", HOST)
            send_expect(c4, "QUIT", "REPLY_BYE")
        c2.close()
        wait_for_greeting(p)
    finally:
        c1.close()
        c2.close()


def test_early_talker_554(make_petrel):
    """With greeting_delay, a client that talks first is refused."""
    petrel = make_petrel(extra_conf="greeting_delay 3s")
    s = socket.create_connection((petrel.host, petrel.port), timeout=15)
    try:
        s.sendall(b"EHLO early.example.test\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass
    finally:
        s.close()
    code, enh, rx = reply_regex("REPLY_EARLY_TALKER")
    lines = data.split(b"\r\n")
    assert b"" == lines[-1], data
    assert not any(l.startswith(b"250") for l in lines), data
    assert any(re.fullmatch(("%d %s " % (code, enh)).encode() +
                            rx.encode(), l) for l in lines), data


def test_unauth_pipelining_554(petrel):
    with petrel.raw() as c:
        greet(c, ehlo=False)
        c.send(b"MAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.test>"
               b"\r\n")
        expect_reply(c, "REPLY_UNAUTH_PIPELINING")
        c.wait_closed()
    assert petrel.queue_ids() == []


def test_timeout_command_421(make_petrel):
    p = make_petrel(extra_conf="timeout_command 2s")
    with p.raw(timeout=20) as c:
        greet(c)
        t0 = time.monotonic()
        expect_reply(c, "REPLY_TIMEOUT", HOST)
        elapsed = time.monotonic() - t0
        assert 1.5 <= elapsed < 10, elapsed
        c.wait_closed()


def test_timeout_data_421(make_petrel):
    p = make_petrel(extra_conf="timeout_data 2s")
    with p.raw(timeout=20) as c:
        start_txn(c)
        send_expect(c, "DATA", "REPLY_DATA_GO")
        c.send(b"Subject: slow\r\n\r\npartial")
        expect_reply(c, "REPLY_TIMEOUT", HOST)
        c.wait_closed()
    assert p.queue_ids() == []
    assert p.queue_ids("incoming") == []
    assert p.all_maildir_files() == []


def test_no_valid_recipients_554(petrel):
    with petrel.raw() as c:
        greet(c)
        send_expect(c, "MAIL FROM:<a@remote.test>", "REPLY_MAIL_OK")
        send_expect(c, "RCPT TO:<nobody@example.test>",
                    "REPLY_UNKNOWN_USER", "nobody@example.test")
        send_expect(c, "RCPT TO:<x@remote.test>",
                    "REPLY_RELAY_DENIED", "x@remote.test")
        send_expect(c, "DATA", "REPLY_NO_VALID_RCPTS")
        # still in the transaction: RCPT works, then DATA
        send_expect(c, "RCPT TO:<bob@example.test>", "REPLY_RCPT_OK")
        code, lines = send_message(c, b"Subject: s\r\n\r\nx\r\n")
        assert code == 250, lines
    petrel.wait_delivered("bob@example.test", 1)


def received_lines(n):
    return b"".join(b"Received: from hop%d.example (hop%d.example "
                    b"[192.0.2.%d])\r\n\tby relay%d.example with ESMTP id "
                    b"X%d; Sat, 28 Nov 2026 10:00:0%d +0000\r\n"
                    % (i, i, i, i, i, i % 10) for i in range(n))


def test_too_many_hops_554(make_petrel):
    p = make_petrel(extra_conf="max_hops 5")
    with p.raw() as c:
        start_txn(c)
        msg6 = received_lines(6) + b"Subject: loop\r\n\r\nloop\r\n"
        code, lines = send_message(c, msg6)
        code_w, enh, rx = reply_regex("REPLY_TOO_MANY_HOPS")
        assert (code, lines) == (code_w, [enh + " " + REPLIES[
            "REPLY_TOO_MANY_HOPS"][2]]), lines
        assert_in_sync(c)
        # "received" in the body and in other headers does not count.
        send_expect(c, "MAIL FROM:<sender@remote.test>", "REPLY_MAIL_OK")
        send_expect(c, "RCPT TO:<alice@example.test>", "REPLY_RCPT_OK")
        msg5 = (received_lines(5) + b"X-Received: no\r\nSubject: ok\r\n\r\n"
                b"Received: in the body\r\n")
        code, lines = send_message(c, msg5)
        assert code == 250, lines
    [f] = p.wait_delivered("alice@example.test", 1)
    expected_maildir_bytes("sender@remote.test", msg5, f)


def test_header_too_big_552(make_petrel):
    p = make_petrel(extra_conf="max_header_size 2000")
    with p.raw() as c:
        start_txn(c)
        big = b"".join(b"X-Filler-%02d: %s\r\n" % (i, b"f" * 40)
                       for i in range(60))
        assert len(big) > 2000
        send_expect(c, "DATA", "REPLY_DATA_GO")
        c.send(b"Subject: big header\r\n" + big + b"\r\nbody\r\n.\r\n")
        expect_reply(c, "REPLY_HEADER_TOO_BIG")
        assert_in_sync(c)
        # A big body after a small header is fine.
        send_expect(c, "MAIL FROM:<sender@remote.test>", "REPLY_MAIL_OK")
        send_expect(c, "RCPT TO:<alice@example.test>", "REPLY_RCPT_OK")
        msg = b"Subject: small header\r\n\r\n" + big
        code, lines = send_message(c, msg)
        assert code == 250, lines
    [f] = p.wait_delivered("alice@example.test", 1)
    expected_maildir_bytes("sender@remote.test", msg, f)


def test_bare_lf_and_cr_rejected_by_default(petrel):
    with petrel.raw() as c:
        start_txn(c)
        send_expect(c, "DATA", "REPLY_DATA_GO")
        c.send(b"Subject: lf\r\n\r\none\ntwo\r\n.\r\n")
        expect_reply(c, "REPLY_BARE_LF")
        assert_in_sync(c)
        send_expect(c, "MAIL FROM:<sender@remote.test>", "REPLY_MAIL_OK")
        send_expect(c, "RCPT TO:<alice@example.test>", "REPLY_RCPT_OK")
        send_expect(c, "DATA", "REPLY_DATA_GO")
        c.send(b"Subject: cr\r\n\r\none\rtwo\r\n.\r\n")
        expect_reply(c, "REPLY_BARE_LF")
        assert_in_sync(c)
    assert petrel.queue_ids() == []
    assert petrel.all_maildir_files() == []


def test_bare_lf_normalized(make_petrel):
    p = make_petrel(extra_conf="bare_lf normalize")
    with p.raw() as c:
        start_txn(c)
        code, lines = send_message(c, b"Subject: lf\r\n\r\none\ntwo\rthree"
                                   b"\r\n")
        assert code == 250, lines
    [f] = p.wait_delivered("alice@example.test", 1)
    expected_maildir_bytes("sender@remote.test",
                           b"Subject: lf\r\n\r\none\r\ntwo\r\nthree\r\n", f)


def test_nul_in_data_550(petrel):
    with petrel.raw() as c:
        start_txn(c)
        send_expect(c, "DATA", "REPLY_DATA_GO")
        c.send(b"Subject: nul\r\n\r\none\x00two\r\n.\r\n")
        expect_reply(c, "REPLY_NUL")
        assert_in_sync(c)
    assert petrel.queue_ids() == []
    assert petrel.all_maildir_files() == []


def test_spool_error_451(petrel):
    """A spool error other than a full disk (here EACCES) is 451 4.3.0."""
    incoming = os.path.join(petrel.spool, "incoming")
    assert os.path.isdir(incoming)
    if petrel.user is None or os.geteuid() != 0:
        pytest.skip("needs the daemon running as an unprivileged user")
    mode = os.stat(incoming).st_mode & 0o7777
    os.chmod(incoming, 0o500)
    try:
        with petrel.raw() as c:
            start_txn(c)
            c.send(b"DATA\r\n")
            code, lines = c.reply()
            if code == 354:
                c.send(b"Subject: spool\r\n\r\nx\r\n.\r\n")
                expect_reply(c, "REPLY_LOCAL_ERROR")
            else:
                code_w, enh, _ = reply_regex("REPLY_LOCAL_ERROR")
                assert (code, lines) == (code_w, [
                    enh + " " + REPLIES["REPLY_LOCAL_ERROR"][2]]), lines
            assert_in_sync(c)
    finally:
        os.chmod(incoming, mode)
    assert petrel.queue_ids() == []
    # It works again once the directory is writable.
    with petrel.raw() as c:
        start_txn(c)
        code, lines = send_message(c, b"Subject: again\r\n\r\nx\r\n")
        assert code == 250, lines
    petrel.wait_delivered("alice@example.test", 1)


def test_spool_full_452(make_petrel):
    """A full spool (ENOSPC, a small tmpfs filled up) is 452 4.3.1."""
    from test_diskfull import fill, owner, small_tmpfs
    p = make_petrel(start=False)
    uid, gid = owner(p)
    with small_tmpfs(p.spool, "2m", uid, gid):
        try:
            p.start()
            filler = fill(os.path.join(p.spool, "filler"))
            with p.raw() as c:
                start_txn(c)
                c.send(b"DATA\r\n")
                code, lines = c.reply()
                if code == 354:
                    c.send(b"Subject: full\r\n\r\n" + b"x" * 8192 +
                           b"\r\n.\r\n")
                    expect_reply(c, "REPLY_SPOOL_ERROR")
                else:
                    code_w, enh, _ = reply_regex("REPLY_SPOOL_ERROR")
                    assert (code, lines) == (code_w, [
                        enh + " " + REPLIES["REPLY_SPOOL_ERROR"][2]]), lines
                assert_in_sync(c)
            os.unlink(filler)
            assert p.queue_ids() == []
        finally:
            if p.alive():
                assert p.stop() == 0


def test_shutdown_421(petrel):
    with petrel.raw() as c:
        greet(c)
        petrel.proc.send_signal(signal.SIGTERM)
        expect_reply(c, "REPLY_SHUTDOWN", HOST)
        c.wait_closed()
    assert petrel.stop() == 0


def test_alias_command_target_refused_at_start(make_petrel):
    """REPLY_ALIAS_REFUSED cannot be reached: a |command or /file alias
    target is an error in the aliases file, and the daemon does not start
    with it."""
    for target in ("|/bin/sh -c 'touch /tmp/pwned'", "/tmp/mbox"):
        p = make_petrel(start=False, aliases="evil: %s\n" % target)
        p.start(wait=False)
        rc = p.proc.wait(timeout=20)
        p.kill()
        assert rc != 0
        p.wait_log(r"not supported", timeout=5)
        assert not any("listening addr=" in l for l in p.log_lines)


# ---- TLS and AUTH replies ----

TLS_LOG = (r"smtp: tls session=\S+ client=127\.0\.0\.1 "
           r"protocol=TLSv1\.[23] cipher=\S+")


def test_starttls_220_restarts_the_session(auth_petrel):
    """REPLY_STARTTLS_GO on mx and submission listeners: the handshake
    follows the 220 at once, a command pipelined behind STARTTLS is
    dropped unanswered (CVE-2011-0411), and the session starts again at
    EHLO, which no longer offers STARTTLS."""
    p = auth_petrel
    for role in ("mx", "submission"):
        mark = p.log_mark()
        with connect(p, role) as c:
            expect_reply(c, "REPLY_GREETING", HOST)
            assert "STARTTLS" in ehlo(c)
            c.send(b"STARTTLS\r\nNOOP\r\n")
            expect_reply(c, "REPLY_STARTTLS_GO")
            c.starttls()
            assert c.sock.version() in ("TLSv1.2", "TLSv1.3")
            # The NOOP's 250 would come first.
            send_expect(c, "HELP", "REPLY_HELP")
            send_expect(c, "MAIL FROM:<a@remote.test>", "REPLY_NEED_HELO")
            assert "STARTTLS" not in ehlo(c)
            assert_in_sync(c)
        p.wait_log(TLS_LOG, start=mark)


def test_tls_already_active_503(auth_petrel):
    p = auth_petrel
    # after STARTTLS
    with connect(p, "submission") as c:
        expect_reply(c, "REPLY_GREETING", HOST)
        ehlo(c)
        starttls(c)
        ehlo(c)
        send_expect(c, "STARTTLS", "REPLY_TLS_ACTIVE")
        assert_in_sync(c)
    # port 465: TLS from the start, never offered
    with connect(p, "submissions") as c:
        expect_reply(c, "REPLY_GREETING", HOST)
        assert "STARTTLS" not in ehlo(c)
        send_expect(c, "STARTTLS", "REPLY_TLS_ACTIVE")
        assert_in_sync(c)


def test_starttls_and_auth_in_transaction_503(auth_petrel):
    """REPLY_IN_TXN: STARTTLS or AUTH after MAIL, or between BDAT
    chunks. RSET ends the transaction and STARTTLS works again."""
    p = auth_petrel
    with connect(p, "mx") as c:
        greet(c)
        send_expect(c, "MAIL FROM:<a@remote.test>", "REPLY_MAIL_OK")
        send_expect(c, "STARTTLS", "REPLY_IN_TXN")
        # before the check that AUTH is off on mx
        send_expect(c, "AUTH PLAIN " + plain(), "REPLY_IN_TXN")
        send_expect(c, "RCPT TO:<bob@example.test>", "REPLY_RCPT_OK")
        send_expect(c, "STARTTLS", "REPLY_IN_TXN")
        send_expect(c, b"BDAT 12\r\nSubject: x", "REPLY_BDAT_OK", "12")
        send_expect(c, "STARTTLS", "REPLY_IN_TXN")
        send_expect(c, "RSET", "REPLY_OK")
        starttls(c)
        ehlo(c)
        assert_in_sync(c)
    with open_tls(p, "submissions") as c:
        login(c)
        send_expect(c, "MAIL FROM:<%s>" % ALICE, "REPLY_MAIL_OK")
        send_expect(c, "AUTH PLAIN " + plain(), "REPLY_IN_TXN")
        send_expect(c, "STARTTLS", "REPLY_IN_TXN")
        send_expect(c, "RCPT TO:<bob@example.test>", "REPLY_RCPT_OK")
        assert_in_sync(c)


def test_tls_unavailable_never_sent(auth_petrel):
    """REPLY_TLS_UNAVAILABLE cannot be reached: the daemon always has a
    TLS context (with no tls_cert it makes a self-signed one; a bad one
    stops the start, a failed reload keeps the old one), so STARTTLS is
    offered on every mx and submission listener."""
    p = auth_petrel
    p.wait_log(r"tls: generated a self-signed certificate for "
               r"mx\.example\.test in \S+/selfsigned\.pem")
    for role in ("mx", "submission"):
        with connect(p, role) as c:
            expect_reply(c, "REPLY_GREETING", HOST)
            assert "STARTTLS" in ehlo(c), role


def test_auth_ok_235(auth_petrel):
    """REPLY_AUTH_OK for PLAIN (initial response, or after an empty 334)
    and LOGIN, on submission after STARTTLS and on submissions; AUTH is
    offered under TLS only, and no more once authenticated."""
    p = auth_petrel
    for role in ("submission", "submissions"):
        mark = p.log_mark()
        with open_tls(p, role) as c:
            send_expect(c, "AUTH PLAIN " + plain(), "REPLY_AUTH_OK")
            assert not any(l.startswith("AUTH") for l in ehlo(c))
            send_expect(c, "MAIL FROM:<%s>" % ALICE, "REPLY_MAIL_OK")
            # authenticated: relay
            send_expect(c, "RCPT TO:<someone@remote.test>", "REPLY_RCPT_OK")
            send_expect(c, "RSET", "REPLY_OK")
        p.wait_log(r"smtp: auth session=\S+ client=127\.0\.0\.1 "
                   r"user=alice@example\.test mech=PLAIN", start=mark)
    with open_tls(p, "submissions") as c:
        assert "AUTH PLAIN LOGIN" in ehlo(c)
        c.send(b"AUTH PLAIN\r\n")
        assert c.reply() == (334, [""])
        send_expect(c, plain(), "REPLY_AUTH_OK")
    with open_tls(p, "submission") as c:
        # The user name is case-insensitive.
        c.send(b"AUTH LOGIN\r\n")
        assert c.reply() == (334, ["VXNlcm5hbWU6"])
        c.send(b64("Alice@Example.Test") + "\r\n")
        assert c.reply() == (334, ["UGFzc3dvcmQ6"])
        send_expect(c, b64(PASSWORD), "REPLY_AUTH_OK")
        send_expect(c, "MAIL FROM:<%s>" % ALICE, "REPLY_MAIL_OK")
    mark = p.log_mark()
    with open_tls(p, "submission") as c:
        c.send(("AUTH LOGIN %s\r\n" % b64(ALICE)).encode())
        assert c.reply() == (334, ["UGFzc3dvcmQ6"])
        send_expect(c, b64(PASSWORD), "REPLY_AUTH_OK")
    p.wait_log(r"smtp: auth session=\S+ client=127\.0\.0\.1 "
               r"user=alice@example\.test mech=LOGIN", start=mark)


def test_auth_already_503(auth_petrel):
    with open_tls(auth_petrel, "submissions") as c:
        login(c)
        send_expect(c, "AUTH PLAIN " + plain(), "REPLY_AUTH_ALREADY")
        send_expect(c, "AUTH LOGIN", "REPLY_AUTH_ALREADY")
        # still alice
        send_expect(c, "MAIL FROM:<%s>" % ALICE, "REPLY_MAIL_OK")


def test_auth_needs_tls_538(auth_petrel, make_petrel):
    """REPLY_AUTH_NEED_TLS: AUTH in plaintext, whatever the mechanism,
    unless auth_plaintext yes; AUTH is not even offered then."""
    p = auth_petrel
    with connect(p, "submission") as c:
        expect_reply(c, "REPLY_GREETING", HOST)
        assert not any(l.startswith("AUTH") for l in ehlo(c))
        for line in ("AUTH PLAIN " + plain(), "AUTH LOGIN", "AUTH FOO"):
            send_expect(c, line, "REPLY_AUTH_NEED_TLS")
        send_expect(c, "MAIL FROM:<%s>" % ALICE, "REPLY_AUTH_REQUIRED")
        starttls(c)
        assert "AUTH PLAIN LOGIN" in ehlo(c)
        login(c)
    q = start_roles(make_petrel, roles=("submission",), users=AUTH_USERS,
                    extra_conf="auth_plaintext yes")
    with connect(q, "submission") as c:
        expect_reply(c, "REPLY_GREETING", HOST)
        assert "AUTH PLAIN LOGIN" in ehlo(c)
        login(c)
        send_expect(c, "MAIL FROM:<%s>" % ALICE, "REPLY_MAIL_OK")


def test_auth_disabled_on_mx_503(auth_petrel, make_petrel):
    """REPLY_AUTH_DISABLED: AUTH on an mx listener without mx_auth yes,
    in plaintext or under TLS, with good credentials too."""
    p = auth_petrel
    with connect(p, "mx") as c:
        greet(c)
        send_expect(c, "AUTH PLAIN " + plain(), "REPLY_AUTH_DISABLED")
        starttls(c)
        assert not any(l.startswith("AUTH") for l in ehlo(c))
        send_expect(c, "AUTH PLAIN " + plain(), "REPLY_AUTH_DISABLED")
        send_expect(c, "MAIL FROM:<%s>" % ALICE, "REPLY_MAIL_OK")
        send_expect(c, "RCPT TO:<someone@remote.test>",
                    "REPLY_RELAY_DENIED", "someone@remote.test")
    q = start_roles(make_petrel, roles=("mx",), users=AUTH_USERS,
                    extra_conf="mx_auth yes")
    with connect(q, "mx") as c:
        expect_reply(c, "REPLY_GREETING", HOST)
        ehlo(c)
        send_expect(c, "AUTH PLAIN " + plain(), "REPLY_AUTH_NEED_TLS")
        starttls(c)
        assert "AUTH PLAIN LOGIN" in ehlo(c)
        login(c)
        send_expect(c, "MAIL FROM:<%s>" % ALICE, "REPLY_MAIL_OK")
        send_expect(c, "RCPT TO:<someone@remote.test>", "REPLY_RCPT_OK")
        send_expect(c, "RSET", "REPLY_OK")


def test_auth_required_530(auth_petrel):
    """REPLY_AUTH_REQUIRED: MAIL (even MAIL FROM:<>) on submission and
    submissions before AUTH, also after a failed one; mx needs none."""
    p = auth_petrel
    with connect(p, "submission") as c:
        expect_reply(c, "REPLY_GREETING", HOST)
        ehlo(c)
        send_expect(c, "MAIL FROM:<%s>" % ALICE, "REPLY_AUTH_REQUIRED")
        starttls(c)
        ehlo(c)
        send_expect(c, "MAIL FROM:<%s>" % ALICE, "REPLY_AUTH_REQUIRED")
        send_expect(c, "MAIL FROM:<>", "REPLY_AUTH_REQUIRED")
        send_expect(c, "RCPT TO:<bob@example.test>", "REPLY_NEED_MAIL")
    with open_tls(p, "submissions") as c:
        send_expect(c, "MAIL FROM:<%s>" % ALICE, "REPLY_AUTH_REQUIRED")
        c.send(("AUTH PLAIN %s\r\n" % plain(password="wrong")).encode())
        assert c.reply() == (535, ["5.7.8 Authentication credentials "
                                   "invalid"])
        send_expect(c, "MAIL FROM:<%s>" % ALICE, "REPLY_AUTH_REQUIRED")
        login(c)
        send_expect(c, "MAIL FROM:<%s>" % ALICE, "REPLY_MAIL_OK")
    with connect(p, "mx") as c:
        greet(c)
        send_expect(c, "MAIL FROM:<%s>" % ALICE, "REPLY_MAIL_OK")


def test_auth_tempfail_454(make_petrel):
    """REPLY_AUTH_TEMPFAIL: auth dovecot and nothing at its socket. It is
    no failed login: with auth_max_failures 1 the session goes on."""
    p = start_roles(make_petrel, roles=("submissions",),
                    extra_conf="auth dovecot unix:/nonexistent/socket\n"
                    "auth_max_failures 1")
    mark = p.log_mark()
    with open_tls(p, "submissions") as c:
        assert "AUTH PLAIN LOGIN" in ehlo(c)
        send_expect(c, "AUTH PLAIN " + plain(), "REPLY_AUTH_TEMPFAIL")
        c.send(b"AUTH LOGIN\r\n")
        assert c.reply() == (334, ["VXNlcm5hbWU6"])
        c.send(b64(ALICE) + "\r\n")
        assert c.reply() == (334, ["UGFzc3dvcmQ6"])
        send_expect(c, b64(PASSWORD), "REPLY_AUTH_TEMPFAIL")
        send_expect(c, "MAIL FROM:<%s>" % ALICE, "REPLY_AUTH_REQUIRED")
        assert_in_sync(c)
    p.wait_log(r"auth: dovecot socket=/nonexistent/socket: cannot connect",
               start=mark)
    assert not any("auth failed" in l for l in p.log_lines[mark:])


def test_auth_too_many_failures_421(auth_petrel):
    """REPLY_AUTH_TOO_MANY after the 535 of the auth_max_failures-th (3)
    failure of a session: a wrong password, an unknown user, a user with
    no password. The count is per session."""
    p = auth_petrel
    bad = sasl_reply_line("SASL_ERR_BAD_CREDENTIALS")
    mark = p.log_mark()
    with open_tls(p, "submissions") as c:
        for n, (user, password) in enumerate([
                (ALICE, "wrong"), ("nobody@example.test", PASSWORD),
                ("bob@example.test", "x")], 1):
            c.send(("AUTH PLAIN %s\r\n" % plain(user, password)).encode())
            assert c.reply() == bad, (user, password)
            p.wait_log(r"smtp: auth failed client=127\.0\.0\.1 user=%s "
                       r"session=\S+ mech=PLAIN failures=%d"
                       % (re.escape(user), n), start=mark)
        expect_reply(c, "REPLY_AUTH_TOO_MANY", HOST)
        c.wait_closed()
    with open_tls(p, "submissions") as c:
        for _ in range(2):
            c.send(("AUTH PLAIN %s\r\n" % plain(password="no")).encode())
            assert c.reply() == bad
        login(c)
        send_expect(c, "MAIL FROM:<%s>" % ALICE, "REPLY_MAIL_OK")


def test_auth_line_too_long_500(auth_petrel):
    """REPLY_AUTH_TOO_LONG: an AUTH line longer than the line reader
    keeps (SASL_LINE_MAX), or a response line that is, the rest of
    which is skipped quietly. Below that, a response over 12288 octets
    is refused by the exchange itself (500 5.5.6 too), and 12288 is
    allowed (RFC 4954 4)."""
    p = auth_petrel
    with open_tls(p, "submissions") as c:
        send_expect(c, "AUTH PLAIN " + "A" * 13000, "REPLY_AUTH_TOO_LONG")
        assert_in_sync(c)
        # in two pieces, the second with the end of the line
        c.send(b"AUTH PLAIN " + b"A" * 12400)
        c.send(b"A" * 8000 + b"\r\n")
        expect_reply(c, "REPLY_AUTH_TOO_LONG")
        assert_in_sync(c)
        # a continuation line: its end comes after the 500
        c.send(b"AUTH PLAIN\r\n")
        assert c.reply() == (334, [""])
        c.send(b"A" * 13000)
        expect_reply(c, "REPLY_AUTH_TOO_LONG")
        c.send(b"AAAA\r\nNOOP\r\n")
        expect_reply(c, "REPLY_OK")
        # over the limit, within the line reader: the exchange's reply
        too_long = sasl_reply_line("SASL_ERR_TOO_LONG")[0]
        c.send(b"AUTH PLAIN " + b"A" * 12289 + b"\r\n")
        code, lines = c.reply()
        assert (code, lines[0].split(" ", 1)[0]) == (too_long, "5.5.6")
        c.send(b"AUTH PLAIN\r\n")
        assert c.reply() == (334, [""])
        c.send(b"A" * 12289 + b"\r\n")
        code, lines = c.reply()
        assert (code, lines[0].split(" ", 1)[0]) == (too_long, "5.5.6")
        # 12288 octets: read and decoded (to NULs: bad credentials)
        c.send(b"AUTH PLAIN " + b"A" * 12288 + b"\r\n")
        assert c.reply() == sasl_reply_line("SASL_ERR_BAD_CREDENTIALS")
        assert_in_sync(c)


def test_sender_not_owned_553(auth_petrel, make_petrel):
    """REPLY_SENDER_NOT_OWNED (sender_login yes, the default): MAIL FROM
    must be the user's address or an alias of it; <> is allowed."""
    p = auth_petrel
    mark = p.log_mark()
    with open_tls(p, "submissions") as c:
        login(c)
        for sender in ("bob@example.test", "sales@example.test",
                       "alice@remote.test", "someone@remote.test"):
            send_expect(c, "MAIL FROM:<%s>" % sender,
                        "REPLY_SENDER_NOT_OWNED", sender)
        p.wait_log(r"smtp: sender refused session=\S+ client=127\.0\.0\.1 "
                   r"user=alice@example\.test from=<bob@example\.test>",
                   start=mark)
        for sender in ("postmaster@example.test", "", ALICE):
            send_expect(c, "MAIL FROM:<%s>" % sender, "REPLY_MAIL_OK")
            send_expect(c, "RSET", "REPLY_OK")
    q = start_roles(make_petrel, roles=("submissions",), users=AUTH_USERS,
                    extra_conf="sender_login no")
    with open_tls(q, "submissions") as c:
        login(c)
        send_expect(c, "MAIL FROM:<bob@example.test>", "REPLY_MAIL_OK")


def submit(c, wire, bdat=False):
    """MAIL from alice, RCPT dave, the message; the final reply."""
    send_expect(c, "MAIL FROM:<%s>" % ALICE, "REPLY_MAIL_OK")
    send_expect(c, "RCPT TO:<dave@example.test>", "REPLY_RCPT_OK")
    if bdat:
        c.send(b"BDAT %d LAST\r\n" % len(wire) + wire)
        return c.reply()
    return send_message(c, wire)


def from_refused(c, wire, rid, *args):
    for bdat in (False, True):
        code, lines = submit(c, wire, bdat)
        code_w, enh, rx = reply_regex(rid, *args)
        assert code == code_w and len(lines) == 1 and \
            re.fullmatch(re.escape(enh) + " " + rx, lines[0]), \
            (rid, bdat, code, lines)
        assert_in_sync(c)


def test_from_header_not_owned_550(auth_petrel):
    """REPLY_FROM_NOT_OWNED after the final dot (or BDAT LAST): every
    address of the From: header must be the user's or an alias."""
    p = auth_petrel
    before = len(p.maildir_files("dave@example.test"))
    with open_tls(p, "submissions") as c:
        login(c)
        from_refused(c, b"From: Bob <bob@example.test>\r\nSubject: x\r\n"
                     b"\r\nbody\r\n", "REPLY_FROM_NOT_OWNED",
                     "bob@example.test")
        from_refused(c, b"From: alice@example.test, sales@example.test\r\n"
                     b"Subject: x\r\n\r\nbody\r\n", "REPLY_FROM_NOT_OWNED",
                     "sales@example.test")
        from_refused(c, b"Subject: x\r\nFROM:\r\n  <someone@remote.test>"
                     b"\r\n\r\nbody\r\n", "REPLY_FROM_NOT_OWNED",
                     "someone@remote.test")
        for wire in (b"From: Alice <alice@example.test>\r\nSubject: ok\r\n"
                     b"\r\nbody\r\n",
                     b"From: postmaster@example.test\r\n\r\nbody\r\n",
                     b"Subject: no From: at all\r\n\r\nbody\r\n"):
            code, lines = submit(c, wire)
            assert code == 250, (wire, lines)
    p.wait_delivered("dave@example.test", before + 3)


def test_from_header_malformed_550(auth_petrel):
    """REPLY_FROM_BAD: two From: fields, or one that does not parse."""
    p = auth_petrel
    before = len(p.maildir_files("dave@example.test"))
    with open_tls(p, "submissions") as c:
        login(c)
        from_refused(c, b"From: alice@example.test\r\nFrom: alice@example"
                     b".test\r\n\r\nbody\r\n", "REPLY_FROM_BAD")
        from_refused(c, b"From: <<alice@example.test\r\n\r\nbody\r\n",
                     "REPLY_FROM_BAD")
        from_refused(c, b"From: \r\n\r\nbody\r\n", "REPLY_FROM_BAD")
        # body lines are not headers
        code, lines = submit(c, b"From: alice@example.test\r\n\r\nFrom: "
                             b"x\r\nFrom: <<\r\n")
        assert code == 250, lines
    p.wait_delivered("dave@example.test", before + 1)


def test_sasl_replies(auth_petrel):
    """The SASL exchange's own replies (src/sasl/exchange.c), each as
    the table there has it."""
    with open_tls(auth_petrel, "submissions") as c:
        for line, err in (("AUTH CRAM-MD5", "SASL_ERR_UNKNOWN_MECH"),
                          ("AUTH PLAIN x y", "SASL_ERR_SYNTAX"),
                          ("AUTH PLAIN !!!!", "SASL_ERR_BAD_BASE64"),
                          ("AUTH PLAIN " + plain(password="x"),
                           "SASL_ERR_BAD_CREDENTIALS")):
            c.send(line.encode() + b"\r\n")
            assert c.reply() == sasl_reply_line(err), line
        c.send(b"AUTH LOGIN\r\n")
        assert c.reply() == (334, ["VXNlcm5hbWU6"])
        c.send(b"*\r\n")
        assert c.reply() == sasl_reply_line("SASL_ERR_CANCELLED")
        c.send(b"AUTH PLAIN\r\n")
        assert c.reply() == (334, [""])
        c.send(b"%%%\r\n")
        assert c.reply() == sasl_reply_line("SASL_ERR_BAD_BASE64")
        assert_in_sync(c)


# RFC 3207 4.2: an AUTH done in plaintext does not survive STARTTLS.
def test_starttls_forgets_plaintext_auth(make_petrel):
    p = start_roles(make_petrel, roles=("submission",), users=AUTH_USERS,
                    extra_conf="auth_plaintext yes")
    with connect(p, "submission") as c:
        expect_reply(c, "REPLY_GREETING", HOST)
        ehlo(c)
        login(c)
        starttls(c)
        assert "AUTH PLAIN LOGIN" in ehlo(c)
        send_expect(c, "MAIL FROM:<%s>" % ALICE, "REPLY_AUTH_REQUIRED")


# A response line too long to read ends at its CRLF: the next command
# is read and answered.
def test_auth_response_too_long_in_one_read(auth_petrel):
    with open_tls(auth_petrel, "submissions") as c:
        c.send(b"AUTH PLAIN\r\n")
        assert c.reply() == (334, [""])
        c.send(b"A" * 13000 + b"\r\n")
        expect_reply(c, "REPLY_AUTH_TOO_LONG")
        c.send(b"NOOP\r\nHELP\r\n")
        expect_reply(c, "REPLY_OK")
        expect_reply(c, "REPLY_HELP")


# REPLY_ id -> tests that make the server send it (each test's source
# names the id). UNREACHABLE: ids a client cannot trigger, and why.
COVERAGE = {
    "REPLY_GREETING": ["test_greeting", "test_helo_reply"],
    "REPLY_HELO": ["test_helo_reply"],
    "REPLY_OK": ["test_ok_mail_rcpt_data_queued_bye"],
    "REPLY_MAIL_OK": ["test_ok_mail_rcpt_data_queued_bye"],
    "REPLY_RCPT_OK": ["test_ok_mail_rcpt_data_queued_bye"],
    "REPLY_DATA_GO": ["test_ok_mail_rcpt_data_queued_bye"],
    "REPLY_QUEUED": ["test_ok_mail_rcpt_data_queued_bye", "test_bdat_replies"],
    "REPLY_BDAT_OK": ["test_bdat_replies"],
    "REPLY_DATA_AFTER_BDAT": ["test_bdat_replies"],
    "REPLY_RCPT_AFTER_BDAT": ["test_bdat_replies"],
    "REPLY_BINARYMIME_DATA": ["test_binarymime_data_503"],
    "REPLY_BDAT_DISCARDED": ["test_bdat_replies"],
    "REPLY_BDAT_SYNTAX": ["test_bdat_syntax_closes"],
    "REPLY_BYE": ["test_ok_mail_rcpt_data_queued_bye"],
    "REPLY_VRFY": ["test_vrfy_help"],
    "REPLY_HELP": ["test_vrfy_help"],
    "REPLY_NEED_HELO": ["test_sequence_errors"],
    "REPLY_NEED_MAIL": ["test_sequence_errors"],
    "REPLY_NEED_RCPT": ["test_sequence_errors"],
    "REPLY_NESTED_MAIL": ["test_sequence_errors"],
    "REPLY_NO_VALID_RCPTS": ["test_sequence_errors",
                             "test_no_valid_recipients_554"],
    "REPLY_SYNTAX": ["test_syntax_errors"],
    "REPLY_HELO_SYNTAX": ["test_syntax_errors", "test_bad_helo_501"],
    "REPLY_NO_ARGS": ["test_syntax_errors"],
    "REPLY_UNKNOWN_CMD": ["test_unknown_command_and_empty_line"],
    "REPLY_LINE_TOO_LONG": ["test_line_too_long_513",
                            "test_line_too_long_mail_2049"],
    "REPLY_BAD_LINE": ["test_bad_line_nul_and_bare_lf"],
    "REPLY_NOT_IMPLEMENTED": ["test_not_implemented"],
    "REPLY_BAD_SENDER": ["test_local_part_65", "test_domain_256",
                         "test_path_257", "test_bad_sender_and_rcpt_syntax"],
    "REPLY_BAD_RCPT": ["test_local_part_65", "test_domain_256",
                       "test_path_257", "test_bad_sender_and_rcpt_syntax"],
    "REPLY_PARAM_UNKNOWN": ["test_unknown_param_555"],
    "REPLY_PARAM_SYNTAX": ["test_bad_param_values"],
    "REPLY_NEED_SMTPUTF8": ["test_utf8_without_smtputf8_553"],
    "REPLY_UNKNOWN_USER": ["test_unknown_user_550"],
    "REPLY_RELAY_DENIED": ["test_relay_denied_untrusted"],
    "REPLY_ALIAS_LOOP": ["test_alias_loop_550_546"],
    "REPLY_ALIAS_EXPANSION": ["test_alias_expansion_limit_451"],
    "REPLY_TOO_MANY_RCPTS": ["test_too_many_recipients_452",
                             "test_too_many_recipients_after_expansion_452"],
    "REPLY_SIZE_EXCEEDED": ["test_size_over_limit_552",
                            "test_message_over_max_size_while_receiving",
                            "test_bdat_replies"],
    "REPLY_DATA_LINE_LONG": ["test_data_line_over_max_line_length",
                             "test_data_line_100k_default_limit"],
    "REPLY_HEADER_TOO_BIG": ["test_header_too_big_552"],
    "REPLY_BARE_LF": ["test_bare_lf_and_cr_rejected_by_default"],
    "REPLY_NUL": ["test_nul_in_data_550"],
    "REPLY_TOO_MANY_HOPS": ["test_too_many_hops_554"],
    "REPLY_SPOOL_ERROR": ["test_spool_full_452"],
    "REPLY_LOCAL_ERROR": ["test_spool_error_451"],
    "REPLY_TOO_MANY_CONN": ["test_too_many_connections_421"],
    "REPLY_TOO_MANY_CONN_IP": ["test_too_many_connections_per_ip_421"],
    "REPLY_TOO_MANY_ERRORS": ["test_too_many_errors_421"],
    "REPLY_SHUTDOWN": ["test_shutdown_421"],
    "REPLY_TIMEOUT": ["test_timeout_command_421", "test_timeout_data_421"],
    "REPLY_EARLY_TALKER": ["test_early_talker_554"],
    "REPLY_UNAUTH_PIPELINING": ["test_unauth_pipelining_554"],
    "REPLY_STARTTLS_GO": ["test_starttls_220_restarts_the_session"],
    "REPLY_TLS_ACTIVE": ["test_tls_already_active_503"],
    "REPLY_IN_TXN": ["test_starttls_and_auth_in_transaction_503"],
    "REPLY_AUTH_OK": ["test_auth_ok_235"],
    "REPLY_AUTH_NEED_TLS": ["test_auth_needs_tls_538",
                            "test_auth_disabled_on_mx_503"],
    "REPLY_AUTH_ALREADY": ["test_auth_already_503"],
    "REPLY_AUTH_DISABLED": ["test_auth_disabled_on_mx_503"],
    "REPLY_AUTH_REQUIRED": ["test_auth_required_530",
                            "test_auth_needs_tls_538",
                            "test_auth_tempfail_454"],
    "REPLY_AUTH_TEMPFAIL": ["test_auth_tempfail_454"],
    "REPLY_AUTH_TOO_MANY": ["test_auth_too_many_failures_421"],
    "REPLY_AUTH_TOO_LONG": ["test_auth_line_too_long_500"],
    "REPLY_SENDER_NOT_OWNED": ["test_sender_not_owned_553"],
    "REPLY_FROM_NOT_OWNED": ["test_from_header_not_owned_550"],
    "REPLY_FROM_BAD": ["test_from_header_malformed_550"],
    "REPLY_DMARC_REJECT": ["test_dmarc_reject_550"],
    "REPLY_SPF_FAIL": ["test_spf_reject_and_temperror_at_mail"],
    "REPLY_SPF_TEMPERROR": ["test_spf_reject_and_temperror_at_mail"],
}
UNREACHABLE = {
    "REPLY_BAD_MAILBOX": "policy_tables_load() refuses a users entry "
    "whose Maildir name would be unsafe, so no recipient resolves to one "
    "(test_unsafe_users_entry_refused_at_start); only a maildir template "
    "too long for any path could still give POLICY_RCPT_UNSAFE",
    "REPLY_ALIAS_REFUSED": "policy_tables_load() refuses |command and "
    "/file targets, so the daemon never starts with one "
    "(test_alias_command_target_refused_at_start)",
    "REPLY_TLS_UNAVAILABLE": "nothing in src/smtp sends it: STARTTLS "
    "without a TLS context would get 502 (REPLY_NOT_IMPLEMENTED), but the "
    "daemon always has one (a self-signed certificate when no tls_cert is "
    "set, a bad one stops the start, a failed reload keeps the old one: "
    "test_tls_unavailable_never_sent), and when OpenSSL cannot make the "
    "connection after the 220 the session is closed",
}


def test_dmarc_reject_550(make_petrel):
    """Issue 5's case: port 25, a client (127.0.0.5) outside trusted, a
    MAIL FROM and From: domain that publishes v=spf1 ip4:127.0.0.6 -all
    and p=reject, no signature: 550 5.7.1 after the final dot, nothing
    queued. The same message from 127.0.0.6 is accepted (the control)."""
    from dnsserver import DNSServer
    with DNSServer() as dns:
        dns.add("sender.test", "TXT", "v=spf1 ip4:127.0.0.6 -all")
        dns.add("_dmarc.sender.test", "TXT", "v=DMARC1; p=reject")
        p = make_petrel(dns="127.0.0.1:%d" % dns.port, msgauth=True)
        msg = ("From: <boss@sender.test>\r\nTo: <alice@example.test>\r\n"
               "Subject: pay this\r\n\r\nnow\r\n.\r\n")
        for source, rid in (("127.0.0.5", "REPLY_DMARC_REJECT"),
                            ("127.0.0.6", "REPLY_QUEUED")):
            with p.raw(source=source) as c:
                expect_reply(c, "REPLY_GREETING", HOST)
                greet_ehlo = c.ehlo()
                assert greet_ehlo
                send_expect(c, "MAIL FROM:<boss@sender.test>",
                            "REPLY_MAIL_OK")
                send_expect(c, "RCPT TO:<alice@example.test>",
                            "REPLY_RCPT_OK")
                send_expect(c, "DATA", "REPLY_DATA_GO")
                c.send(msg)
                if rid == "REPLY_DMARC_REJECT":
                    expect_reply(c, "REPLY_DMARC_REJECT", "sender.test")
                    assert_in_sync(c)
                else:
                    code, lines = c.reply()
                    assert code == 250, lines
        p.wait_delivered("alice@example.test", 1)
        got = p.maildir_messages("alice@example.test")
        assert len(got) == 1
        assert b"spf=pass" in got[0] and b"dmarc=pass" in got[0], got[0]


def test_spf_reject_and_temperror_at_mail(make_petrel):
    """spf_reject yes: SPF fail → 550 5.7.23 at MAIL with the domain's
    explanation; spf_temperror_defer yes: a DNS failure → 451 4.7.24;
    a pass → 250. Trusted clients are not judged."""
    from dnsserver import DNSServer
    with DNSServer() as dns:
        dns.add("sender.test", "TXT",
                "v=spf1 ip4:127.0.0.6 -all exp=why.sender.test")
        dns.add("why.sender.test", "TXT", "%{i} may not send for %{d}")
        dns.add("broken.test", "TXT", "v=spf1 -all")
        dns.fail("broken.test", "servfail")
        p = make_petrel(dns="127.0.0.1:%d" % dns.port, msgauth=True,
                        trusted=["127.0.0.7/32"],
                        extra_conf="spf_reject yes\nspf_temperror_defer yes")
        with p.raw(source="127.0.0.5") as c:
            expect_reply(c, "REPLY_GREETING", HOST)
            c.ehlo()
            send_expect(c, "MAIL FROM:<boss@sender.test>", "REPLY_SPF_FAIL",
                        "127.0.0.5 may not send for sender.test")
            send_expect(c, "MAIL FROM:<x@broken.test>",
                        "REPLY_SPF_TEMPERROR")
            assert_in_sync(c)
        for source in ("127.0.0.6", "127.0.0.7"):
            with p.raw(source=source) as c:
                expect_reply(c, "REPLY_GREETING", HOST)
                c.ehlo()
                send_expect(c, "MAIL FROM:<boss@sender.test>",
                            "REPLY_MAIL_OK")
                send_expect(c, "RCPT TO:<alice@example.test>",
                            "REPLY_RCPT_OK")
                assert_in_sync(c)


def test_every_reply_has_a_test():
    ids = parse_reply_h()
    assert len(ids) == len(set(ids))
    assert set(ids) == set(REPLIES), "reply.h and reply.c differ: %s" % (
        set(ids) ^ set(REPLIES))
    missing = [i for i in ids if i not in COVERAGE and i not in UNREACHABLE]
    assert not missing, "replies without a test: %s" % missing
    stale = (set(COVERAGE) | set(UNREACHABLE)) - set(ids)
    assert not stale, "COVERAGE names replies that do not exist: %s" % stale
    assert not set(COVERAGE) & set(UNREACHABLE)
    g = globals()
    for rid, tests in COVERAGE.items():
        for t in tests:
            assert t in g and callable(g[t]), "%s: no test %s" % (rid, t)
            assert '"%s"' % rid in inspect.getsource(g[t]), \
                "%s does not check %s" % (t, rid)


def test_reply_table_sane():
    for rid, (code, enh, text, when) in REPLIES.items():
        assert 200 <= code <= 599, rid
        if enh is not None:
            assert re.fullmatch(r"[245]\.\d{1,3}\.\d{1,3}", enh), rid
            assert enh[0] == str(code)[0], rid
        assert text.count("%s") <= 1 and "%" not in text.replace("%s", ""), \
            rid
        assert when, rid
        assert len(text) < 400, rid


# ---- 3. docs/replies.md ----

def parse_replies_md(path=REPLIES_MD):
    """Rows of the table in docs/replies.md:
    | REPLY_X | code | enhanced or - | `text` | when |"""
    rows = {}
    for line in open(path, encoding="utf-8"):
        if not line.startswith("| REPLY_"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        assert len(cells) == 5, line
        rid, code, enh, text, when = cells
        assert text.startswith("`") and text.endswith("`"), line
        assert rid not in rows, "duplicate row %s" % rid
        rows[rid] = (int(code), None if enh == "-" else enh, text[1:-1],
                     when.replace("\\|", "|"))
    return rows


def test_docs_replies_md_matches_reply_c():
    doc = parse_replies_md()
    assert set(doc) == set(REPLIES), "docs/replies.md and reply.c differ: " \
        "only in docs %s, only in reply.c %s" % (
            sorted(set(doc) - set(REPLIES)), sorted(set(REPLIES) - set(doc)))
    for rid in REPLIES:
        assert doc[rid] == REPLIES[rid], "%s: docs %r, reply.c %r" % (
            rid, doc[rid], REPLIES[rid])


def parse_sasl_md(path=REPLIES_MD):
    """Rows of the SASL table in docs/replies.md:
    | SASL_ERR_X | code | enhanced | `text` | when |"""
    rows = {}
    for line in open(path, encoding="utf-8"):
        if not line.startswith("| SASL_ERR_"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        assert len(cells) == 5, line
        err, code, enh, text, when = cells
        assert text.startswith("`") and text.endswith("`"), line
        assert err not in rows, "duplicate row %s" % err
        rows[err] = (int(code), enh, text[1:-1])
        assert when == SASL_WHEN.get(err, "").replace("|", "\\|"), line
    return rows


def test_docs_sasl_replies_match_exchange_c():
    doc = parse_sasl_md()
    assert set(SASL_WHEN) == set(SASL_REPLIES), \
        "SASL_WHEN and exchange.c differ: %s" % (
            set(SASL_WHEN) ^ set(SASL_REPLIES))
    assert doc == SASL_REPLIES, "docs/replies.md %r, exchange.c %r" % (
        doc, SASL_REPLIES)


# When each reply of the SASL exchange (src/sasl/exchange.c) is sent.
SASL_WHEN = {
    "SASL_ERR_SYNTAX": "AUTH with words after the initial response, or "
    "with a space too many (a bare AUTH gets REPLY_SYNTAX)",
    "SASL_ERR_UNKNOWN_MECH": "a mechanism other than PLAIN and LOGIN",
    "SASL_ERR_BAD_BASE64": "an initial or continuation response that is "
    "not base64",
    "SASL_ERR_CANCELLED": "the client answered a 334 with `*`",
    "SASL_ERR_TOO_LONG": "a response over 12288 octets on a line short "
    "enough for the line reader (a longer line gets REPLY_AUTH_TOO_LONG)",
    "SASL_ERR_BAD_CREDENTIALS": "a wrong password, an unknown user, a "
    "user without a password, a malformed PLAIN message; sent after "
    "auth_fail_delay, doubled for each failure from the client's address "
    "(at most 10 s), and counted towards auth_max_failures",
}

DOC_HEAD = """\
# SMTP replies

Every reply the Petrel SMTP server sends, one row per entry of the reply
table in `src/smtp/reply.c` (named by `enum reply_id` in
`src/smtp/reply.h`). Handlers never write reply text themselves: apart
from the SASL exchange's own replies (its 334 challenges and
`sasl_error_reply()` in `src/sasl/exchange.c`, listed under "TLS and
AUTH" below) and the extension lines of the EHLO reply, this is the
complete list. `%s` is filled in when the reply is sent: the server's
hostname (greeting, HELO/EHLO and the 421 replies), the queue ID
(`REPLY_QUEUED`), the chunk size (`REPLY_BDAT_OK`), the offending ESMTP
keyword (the 555 and 501 parameter replies), or the address concerned:
the recipient, the MAIL FROM address (`REPLY_SENDER_NOT_OWNED`) or the
From: header address (`REPLY_FROM_NOT_OWNED`).

Replies with code 421, the two 554 5.5.0 synchronization replies, and
`REPLY_BDAT_SYNTAX` (a BDAT whose chunk size cannot be read, so that where
its octets end is unknown) close the connection after they are sent
(`reply_closes()`).

`tests/e2e/test_replies.py` checks that this table and `reply.c` list the
same rows with the same code, enhanced code, text and trigger, and makes
the server send each reply a client can trigger. Three cannot be
triggered: `REPLY_BAD_MAILBOX`, because a users entry whose Maildir name
would be unsafe is refused at start-up; `REPLY_ALIAS_REFUSED`, because an
aliases file with a `|command` or `/file` target is refused at start-up;
and `REPLY_TLS_UNAVAILABLE`, which nothing sends, as the daemon always
has a TLS context (see "TLS and AUTH"). After
changing `reply.c` or the SASL replies, regenerate this file with
`/usr/bin/python3 tests/e2e/test_replies.py --write-docs`.

| Reply | Code | Enhanced | Text | Sent when |
|---|---|---|---|---|
"""

DOC_TAIL = """
2xx is success, 354 asks for the message, 4xx is a temporary failure (the
client retries later), 5xx a permanent one. Enhanced status codes follow
RFC 3463 and RFC 5248 and are sent on every reply except the greeting, the
HELO/EHLO reply and 354 (RFC 2034 3).

## TLS and AUTH

STARTTLS (RFC 3207) is offered on mx and submission listeners until TLS is
on. A submissions listener (port 465) does the TLS handshake before the
greeting and never offers it.

- `REPLY_STARTTLS_GO` (220) answers STARTTLS. The handshake follows at
  once; whatever the client pipelined behind STARTTLS is discarded
  unanswered, and the session starts again at EHLO.
- `REPLY_TLS_ACTIVE` (503) answers STARTTLS in a session already under
  TLS: after STARTTLS, or on port 465.
- `REPLY_IN_TXN` (503) answers STARTTLS or AUTH inside a transaction
  (after MAIL, also between BDAT chunks). Before HELO/EHLO both get
  `REPLY_NEED_HELO`.
- `REPLY_TLS_UNAVAILABLE` (454) is never sent. With no `tls_cert` the
  daemon makes a self-signed certificate, a bad certificate stops the
  start, and a failed reload keeps the certificates in use, so there is
  always a TLS context; if OpenSSL cannot set up the connection after the
  220, the connection is closed.

AUTH (RFC 4954) is offered on submission and submissions listeners, and on
mx listeners with `mx_auth yes`; only under TLS unless `auth_plaintext
yes`; and no more once the session has authenticated (which lasts through
RSET, HELO and EHLO). Before HELO/EHLO, inside a transaction and without
arguments, AUTH gets `REPLY_NEED_HELO`, `REPLY_IN_TXN` and `REPLY_SYNTAX`;
then it is refused, in this order:

- `REPLY_AUTH_ALREADY` (503) once the session has authenticated;
- `REPLY_AUTH_DISABLED` (503) on an mx listener without `mx_auth yes`;
- `REPLY_AUTH_NEED_TLS` (538) without TLS, unless `auth_plaintext yes`,
  whatever the mechanism named.

Then the SASL exchange runs. It ends with `REPLY_AUTH_OK` (235) when the
credentials check out (users file, or Dovecot with `auth dovecot`), or
`REPLY_AUTH_TEMPFAIL` (454) when Dovecot cannot be reached, does not
answer, or cannot decide; that is not a failed login. An AUTH line or a
response line longer than the line reader keeps (`SASL_LINE_MAX`
octets) gets `REPLY_AUTH_TOO_LONG` (500), and the rest of the line is
skipped. After the 535 of the `auth_max_failures`-th failed login of a
session, `REPLY_AUTH_TOO_MANY` (421) follows at once and the connection
closes.

`REPLY_AUTH_REQUIRED` (530) answers MAIL on a submission or submissions
listener before a successful AUTH. With `sender_login yes` (the default),
an authenticated session may only send as the user: MAIL FROM must be the
user's address or an alias leading to it (`<>` is allowed), else
`REPLY_SENDER_NOT_OWNED` (553). After the final dot (or BDAT LAST), an
address in the From: header that is not the user's gets
`REPLY_FROM_NOT_OWNED` (550), and two From: fields or one that does not
parse get `REPLY_FROM_BAD` (550). A message without a From: header is
accepted.

The SASL exchange's own replies do not come from the table above but from
`sasl_error_reply()` in `src/sasl` (`src/sasl/exchange.c`); the session
sends them as they are. Its challenges are `334 ` with nothing after it
for PLAIN without an initial response, and `334 VXNlcm5hbWU6`
("Username:") and `334 UGFzc3dvcmQ6` ("Password:") for LOGIN.

| Error | Code | Enhanced | Text | Sent when |
|---|---|---|---|---|
"""


def write_docs(path=REPLIES_MD):
    rows = []
    for rid in parse_reply_h():
        code, enh, text, when = REPLIES[rid]
        rows.append("| %s | %d | %s | `%s` | %s |\n" % (
            rid, code, enh or "-", text, when.replace("|", "\\|")))
    sasl = []
    for err, (code, enh, text) in SASL_REPLIES.items():
        sasl.append("| %s | %d | %s | `%s` | %s |\n" % (
            err, code, enh, text, SASL_WHEN[err].replace("|", "\\|")))
    with open(path, "w", encoding="utf-8") as f:
        f.write(DOC_HEAD + "".join(rows) + DOC_TAIL + "".join(sasl))


if __name__ == "__main__":
    import sys
    if sys.argv[1:] == ["--write-docs"]:
        write_docs()
    else:
        sys.exit("usage: test_replies.py --write-docs")
