"""
smtppeer.py: a scriptable fake SMTP/LMTP server ("remote peer") for the
end-to-end tests of Petrel's outbound delivery. Python 3.11 stdlib only;
one thread accepts, one thread per connection; every read has a timeout.

Quick start:

    from smtppeer import SMTPPeer, alloc_addr

    with SMTPPeer(chunking=True) as peer:       # random free 127.X.Y.Z:25
        ... point an MX/A record at peer.addr, run Petrel ...
        msgs = peer.wait_messages(1)
        assert msgs[0].data == b"Subject: x\\r\\n\\r\\nbody"
        peer.assert_clean()                     # no protocol violations

Addresses
    alloc_addr(port=25) -> str
        A free address from 127.0.0.0/8 (random 127.X.Y.Z outside
        127.0.0.0/24, so never 127.0.0.1 and never one of the fixed
        127.0.0.x addresses a test may hard-code). The address is reserved
        by a listening socket on (addr, port) that the next
        SMTPPeer(addr=that, port=port) takes over, so parallel test
        processes (ctest -j) never get the same address. release_addr(addr,
        port=25) drops an unused reservation (e.g. an address only used as
        Petrel's smtp_bind_address, or one handed to some other server).

    SMTPPeer(addr=None, port=25, lmtp=False, unix_path=None,
             hostname="peer.test", **options)
        addr=None allocates as alloc_addr() does; an explicit addr is bound
        as given (OSError EADDRINUSE if taken); port=0 binds a free port
        (read peer.port after start()). unix_path listens on a Unix socket
        instead (peer.addr and peer.port are then None; the socket is
        made 0777, but its directory must let the daemon's user in: use
        Petrel's 0755 work directory, not pytest's 0700 tmp_path, when
        Petrel connects to it). A stopped peer may be started again on
        the same address; what it recorded is kept. Any attribute
        below may be passed as a keyword option.
        start(), stop(), and a context manager (start on enter, stop on exit).
        stop() closes the listener and every connection (a hung client or a
        reply delayed by delay_reply is cut off at once) and joins threads.

Capabilities advertised in the EHLO/LHLO reply, in this order (attributes,
read at each EHLO; what a session negotiated stays in effect for it):
    pipelining=True, size=None (int: "SIZE n"), eightbitmime=True,
    smtputf8=True, dsn=True, chunking=False, starttls=False (not offered
    again once TLS is on), enhancedstatuscodes=True, extra_ehlo=[] (more
    keyword lines). ehlo_ok=True (False: EHLO gets ehlo_fail_reply, "502
    5.5.1 ...", so the client must fall back to HELO; HELO sessions have no
    extensions).

Behaviours (attributes; change them before or during a test):
    greeting = "220 <hostname> ESMTP" (LMTP in LMTP mode). A 421 greeting
        is sent and the connection closed; any other non-220 (e.g. "554
        no") makes the session answer 503 to everything until QUIT (RFC
        5321 3.1).
    hang_greeting = False   accept TCP, never send the greeting.
    mail_reply = "250 2.1.0 ok"
    rcpt_reply = {}         lower-case address (or "@domain") -> reply;
    rcpt_default_reply = "250 2.1.5 ok"
    data_start_reply = "354 ..."   a non-3xx value refuses DATA.
    data_reply = "250 2.0.0 ok: queued"   reply to the final dot / BDAT LAST.
    lmtp_data_reply = {}    LMTP: address -> reply after the final dot
        (default data_reply), one reply per recipient accepted at RCPT.
    starttls_reply = "220 2.0.0 ready to start TLS" (non-220: no TLS).
    tls_garbage = False     answer STARTTLS with 220, then send garbage
        instead of a TLS handshake and close.
    tls_context = None      an ssl.SSLContext to use instead of
        server_context() (e.g. with maximum_version set).
    delay_reply = 0.0       seconds before each reply (the greeting too);
        or a dict stage -> seconds, stages: greeting, ehlo (EHLO/HELO/LHLO),
        mail, rcpt, data_start (the 354), data (final reply), bdat (reply to
        a non-LAST chunk), starttls, rset, noop, quit, other.
    max_rcpts = None        int: RCPTs beyond it get "452 4.5.3 ...".
    read_timeout = 60.0     seconds any single read may wait.
    strict = True           refuse (555 5.5.4) MAIL/RCPT parameters of an
        extension not negotiated, and non-ASCII addresses without SMTPUTF8
        (553 5.6.7); violations are recorded either way.
    A reply is a str ("250 ok"; several lines joined with "\\n" become a
    multi-line reply with the right "-"/" " separators; CRLF is added; when
    enhancedstatuscodes is False a leading x.y.z is removed from every line),
    raw bytes sent verbatim, or smtppeer.DROP: close the connection instead
    of replying. A reply with code 421 is sent and the connection closed.

    fail_first(n, reply="451 4.3.0 try later", stage="data")
        The first n transactions that reach the stage get reply there, then
        normal service. Stages: "mail" (the MAIL command; no transaction is
        opened), "rcpt" (every RCPT of the transaction), "data_start" (the
        DATA command, instead of 354), "data" (the final dot / BDAT LAST: the
        body is read, then refused; LMTP: every recipient gets the reply).
        One rule per stage; calling again replaces it.
    close_in_data(n=1)
        The first n transactions reaching the body: read part of it (at
        least one octet), then drop the connection without replying.
    close_after_dot(n=1)
        The first n transactions: read the whole body including the final
        dot (or the BDAT LAST chunk), then drop without replying.

What arrived (thread-safe; the properties return copies):
    peer.messages     accepted messages (final reply 2xx, or for LMTP 2xx for
        at least one recipient), in order. Each is a Message:
        mail_from (str, "" for <>), mail_params (dict, keys upper-case, value
        str or None), rcpts [(addr, params)] accepted at RCPT, delivered
        [addr] with a 2xx final reply, data (dot-unstuffed, CRLF kept, the
        final CRLF.CRLF removed; for BDAT the chunks), raw (byte-exact wire
        bytes after the 354 up to and including the terminating CRLF.CRLF,
        still dot-stuffed; for BDAT the concatenated chunks), content (the
        message as RFC 5321 sees it: data + CRLF for DATA, i.e. every line
        with its CRLF, b"" for an empty message; the chunks for BDAT), via
        ("DATA"/"BDAT"), helo, helo_verb, tls (bool), tls_version, cipher,
        conn_id, client (the client's (ip, port)), txn_id, outcome, replies
        (the final reply lines sent).
        A message is recorded before its final reply is sent, so a client
        that saw 250 always finds it in peer.messages.
    peer.attempts     every transaction that reached the body, accepted or
        not; outcome is "accepted", "refused", "dropped_in_data" or
        "dropped_after_dot".
    peer.connections  number of connections accepted; open_connections and
        max_open_connections (the peak of simultaneous connections).
    peer.commands     [(conn_id, command line)] in arrival order (not the
        body); peer.transcript [(conn_id, "C"|"S", line)] with the replies.
    peer.violations   [(conn_id, text)]: what the client did against RFC
        5321/2920/3030/3207/6152/6531: commands pipelined without PIPELINING
        or after EHLO/DATA/STARTTLS/NOOP, text before the greeting, bare CR
        or LF, NUL, a text line over 998 octets (a stuffed dot not counted),
        8-bit data without BODY=8BITMIME, parameters of extensions not
        offered, BDAT without CHUNKING, command syntax errors, unknown
        commands. peer.errors: exceptions inside the peer (bugs);
        peer.tls_errors: failed server-side handshakes.
    peer.assert_clean()   AssertionError if violations or errors exist.
    peer.wait_messages(n, timeout=30) -> list   poll with a deadline.
    peer.wait_for(pred, timeout=30, what="...") poll pred(peer).
    peer.wait_connections(n, timeout=30)

TLS: cert_files() makes a self-signed certificate (CN and SAN peer.test)
with the openssl command once per process in a temporary directory;
server_context() is a fresh server SSLContext that uses it.
"""

import atexit
import errno
import os
import random
import re
import select
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field

__all__ = ["SMTPPeer", "Message", "DROP", "alloc_addr", "release_addr",
           "cert_files", "server_context", "format_reply"]


class _DropMarker:
    def __repr__(self):
        return "smtppeer.DROP"


DROP = _DropMarker()

DEFAULT_READ_TIMEOUT = 60.0
MAX_COMMAND_LINE = 4096          # beyond this the line is refused outright
MAX_DATA = 64 * 1024 * 1024      # beyond this the connection is dropped
STAGES = ("mail", "rcpt", "data_start", "data")

_ENH_RE = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}(?: |$)")
_BARE_RE = re.compile(rb"\r(?!\n)|(?<!\r)\n")
_PARAM_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")
_BDAT_RE = re.compile(r"^(\d{1,18})(?: (LAST))?$", re.IGNORECASE)
_MUST_END_GROUP = ("EHLO", "HELO", "LHLO", "DATA", "STARTTLS", "QUIT",
                   "NOOP", "VRFY", "EXPN")


class _Drop(Exception):
    """Close the connection now, without (further) reply."""


class _Closed(Exception):
    """The client went away, or the peer is stopping."""


@dataclass
class Message:
    mail_from: str
    mail_params: dict
    rcpts: list
    data: bytes
    raw: bytes
    helo: str
    tls: bool
    tls_version: str
    cipher: str
    conn_id: int
    content: bytes = b""
    via: str = "DATA"
    delivered: list = field(default_factory=list)
    outcome: str = "accepted"
    replies: list = field(default_factory=list)
    client: object = None
    helo_verb: str = ""
    txn_id: int = 0


# ---------------------------------------------------------------- replies

def format_reply(reply, enhanced=True):
    """The wire bytes of a reply (str or bytes, see the module doc)."""
    if isinstance(reply, (bytes, bytearray)):
        return bytes(reply)
    lines = str(reply).replace("\r\n", "\n").split("\n")
    if len(lines) > 1 and lines[-1] == "":
        lines.pop()
    out = []
    for i, line in enumerate(lines):
        if len(line) < 3 or not line[:3].isdigit() or \
                (len(line) > 3 and line[3] not in " -"):
            raise ValueError("malformed reply %r" % (reply,))
        text = line[4:]
        if not enhanced:
            text = _ENH_RE.sub("", text)
        sep = " " if i == len(lines) - 1 else "-"
        if text or sep == "-":
            out.append(line[:3] + sep + text)
        else:
            out.append(line[:3])
    return ("\r\n".join(out) + "\r\n").encode("utf-8")


def _code(reply):
    if reply is DROP:
        return 0
    if isinstance(reply, (bytes, bytearray)):
        head = bytes(reply[:3])
        return int(head) if head.isdigit() else 0
    s = str(reply)
    return int(s[:3]) if s[:3].isdigit() else 0


# -------------------------------------------------------- address allocation

_rng = random.Random(os.urandom(16))
_res_lock = threading.Lock()
_reserved = {}          # (addr, port) -> listening socket


def _bind_listen(addr, port):
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    try:
        # SO_REUSEADDR lets a test re-bind an address whose previous peer
        # left TIME_WAIT connections; Linux still refuses a second bind
        # while this socket listens, which keeps parallel tests apart.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port))
        s.listen(128)
    except BaseException:
        s.close()
        raise
    return s


def _random_loopback():
    while True:
        x, y, z = _rng.randrange(256), _rng.randrange(256), \
            _rng.randrange(1, 255)
        if (x, y) != (0, 0):
            return "127.%d.%d.%d" % (x, y, z)


def _alloc_socket(port, tries=500):
    for _ in range(tries):
        a = _random_loopback()
        try:
            return a, _bind_listen(a, port)
        except OSError as e:
            if e.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL):
                continue
            raise
    raise OSError(errno.EADDRINUSE,
                  "no free loopback address for port %d after %d tries"
                  % (port, tries))


def alloc_addr(port=25):
    """A free 127.X.Y.Z, reserved (see the module doc)."""
    a, s = _alloc_socket(port)
    with _res_lock:
        _reserved[(a, s.getsockname()[1])] = s
    return a


def release_addr(addr, port=25):
    """Drop the reservation alloc_addr() made for (addr, port), if any."""
    with _res_lock:
        s = _reserved.pop((addr, port), None)
    if s is not None:
        s.close()


def _take_reservation(addr, port):
    with _res_lock:
        if port == 0:
            for key in list(_reserved):
                if key[0] == addr:
                    return _reserved.pop(key)
            return None
        return _reserved.pop((addr, port), None)


# ---------------------------------------------------------------------- TLS

_cert_lock = threading.Lock()
_cert = None


def cert_files():
    """(cert_path, key_path) of a self-signed certificate for peer.test,
    made once per process with the openssl command."""
    global _cert
    with _cert_lock:
        if _cert is None:
            d = tempfile.mkdtemp(prefix="smtppeer-tls-")
            atexit.register(shutil.rmtree, d, True)
            cert = os.path.join(d, "cert.pem")
            key = os.path.join(d, "key.pem")
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "rsa:2048",
                 "-nodes", "-keyout", key, "-out", cert, "-days", "7",
                 "-subj", "/CN=peer.test",
                 "-addext", "subjectAltName=DNS:peer.test"],
                check=True, capture_output=True, timeout=120)
            _cert = (cert, key)
        return _cert


def server_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*cert_files())
    return ctx


# ------------------------------------------------------------------ parsing

def _parse_path(s):
    """'<addr> rest' -> (addr, rest). Quoted strings may hold '>'.
    A source route (<@a,@b:u@d>) is dropped. Raises ValueError."""
    if not s.startswith("<"):
        raise ValueError("path must start with <")
    i, quoted = 1, False
    while i < len(s):
        c = s[i]
        if quoted and c == "\\":
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif c == ">" and not quoted:
            break
        i += 1
    else:
        raise ValueError("no closing >")
    addr = s[1:i]
    if addr.startswith("@"):
        if ":" not in addr:
            raise ValueError("bad source route")
        addr = addr.split(":", 1)[1]
    if any(c in addr for c in " <\t"):
        if not addr.startswith('"'):
            raise ValueError("space or < in address")
    rest = s[i + 1:]
    if rest and not rest.startswith(" "):
        raise ValueError("junk after path")
    return addr, rest[1:]


def _parse_params(s):
    params = {}
    if s == "":
        return params
    for tok in s.split(" "):
        if tok == "":
            raise ValueError("empty parameter (double space)")
        key, eq, value = tok.partition("=")
        if not _PARAM_KEY_RE.match(key) or (eq and value == ""):
            raise ValueError("bad parameter %r" % tok)
        if key.upper() in params:
            raise ValueError("duplicate parameter %r" % key)
        params[key.upper()] = value if eq else None
    return params


def _unstuff(body):
    lines = body.split(b"\r\n")
    return b"\r\n".join(ln[1:] if ln.startswith(b".") else ln
                        for ln in lines)


# -------------------------------------------------------------- transaction

class _Txn:
    def __init__(self, txn_id, mail_from, params):
        self.id = txn_id
        self.mail_from = mail_from
        self.params = params
        self.rcpts = []
        self.rcpt_rule_checked = False
        self.rcpt_fail = None
        self.chunks = None          # list once BDAT started
        self.bdat_size = 0


# ------------------------------------------------------------------ session

class _Session:
    def __init__(self, peer, sock, conn_id, client):
        self.peer = peer
        self.sock = sock
        self.id = conn_id
        self.client = client
        self.buf = b""
        self.aborted = False
        self.tls = False
        self.tls_version = None
        self.cipher = None
        self.helo = None
        self.helo_verb = ""
        self.ext = set()
        self.txn = None
        self.refused = False

    # -- plumbing

    def abort(self):
        self.aborted = True
        try:
            # socket.socket.shutdown bypasses SSLSocket.shutdown, which
            # would tear the SSL object down under the reading thread.
            socket.socket.shutdown(self.sock, socket.SHUT_RDWR)
        except OSError:
            pass

    def violation(self, text):
        self.peer._record_violation(self.id, text)

    def recv_more(self):
        if self.aborted or self.peer._stopping.is_set():
            raise _Closed()
        self.sock.settimeout(self.peer.read_timeout)
        try:
            chunk = self.sock.recv(65536)
        except (socket.timeout, TimeoutError):
            self.peer._note(self.id, "read timeout")
            raise _Closed()
        if not chunk:
            raise _Closed()
        self.buf += chunk

    def readline(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                return line
            if len(self.buf) > MAX_COMMAND_LINE:
                self.peer._record_command(self.id, self.buf[:200] + b"...")
                self.violation("command line over %d octets without CRLF"
                               % MAX_COMMAND_LINE)
                self.send("500 5.5.2 line too long", "other")
                raise _Drop()
            self.recv_more()

    def read_exact(self, n):
        while len(self.buf) < n:
            self.recv_more()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def pending_input(self):
        """True if the client sent something we have not answered yet.
        Only a client that did not wait for our reply can make this true,
        so it never reports a compliant client."""
        if self.buf:
            return True
        if self.tls:
            return self.sock.pending() > 0
        try:
            r, _, _ = select.select([self.sock], [], [], 0)
            if not r:
                return False
            return len(self.sock.recv(1, socket.MSG_PEEK)) > 0
        except (OSError, ValueError):
            return False

    def delay(self, stage):
        d = self.peer.delay_reply
        if isinstance(d, dict):
            d = d.get(stage, 0.0)
        if d and d > 0:
            if self.peer._stopping.wait(d) or self.aborted:
                raise _Closed()

    def send(self, reply, stage):
        """Send one reply; returns its code. DROP and 421 close."""
        if reply is DROP:
            self.peer._note(self.id, "DROP instead of a %s reply" % stage)
            raise _Drop()
        data = format_reply(reply, self.peer.enhancedstatuscodes)
        self.delay(stage)
        self.sock.sendall(data)
        for ln in data.split(b"\r\n")[:-1] or [data]:
            self.peer._record_transcript(self.id, "S", ln)
        code = _code(data)
        if code == 421:
            raise _Drop()
        return code

    def reply_cmd(self, verb, reply, stage):
        """Answer a command, first checking RFC 2920 synchronisation."""
        pipelining = "PIPELINING" in self.ext
        if (not pipelining or verb in _MUST_END_GROUP) and verb != "QUIT" \
                and self.pending_input():
            if pipelining:
                self.violation("command sent after %s before its reply "
                               "(RFC 2920: it must end a group)" % verb)
            else:
                self.violation("command sent after %s before its reply "
                               "without PIPELINING" % verb)
        return self.send(reply, stage)

    # -- main loop

    def run(self):
        p = self.peer
        try:
            self._run()
        except (_Drop, _Closed):
            pass
        except (ConnectionError, OSError) as e:
            p._note(self.id, "connection error: %r" % e)
        except Exception:
            p._record_error(self.id, traceback.format_exc())
        finally:
            try:
                self.sock.close()
            except OSError:
                pass
            p._session_done(self)

    def _run(self):
        p = self.peer
        if p.hang_greeting:
            self._hang()
            return
        if self.pending_input():
            self.violation("client sent data before the greeting")
        code = self.send(p.greeting, "greeting")
        if code != 220:
            self.refused = True
        while True:
            line = self.readline()
            self.handle(line)

    def _hang(self):
        while True:
            self.recv_more()
            self.buf = b""

    def handle(self, raw):
        p = self.peer
        p._record_command(self.id, raw)
        if b"\r" in raw or b"\n" in raw:
            self.violation("bare CR or LF in a command line: %r" % raw[:80])
            self.send("500 5.5.2 bare CR or LF in command", "other")
            return
        if len(raw) > MAX_COMMAND_LINE:
            self.violation("command line of %d octets" % len(raw))
            self.send("500 5.5.2 line too long", "other")
            return
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            self.violation("command line not UTF-8: %r" % raw[:80])
            self.send("500 5.5.2 invalid octets in command", "other")
            return
        verb, _, arg = text.partition(" ")
        verb = verb.upper()
        self.check_length(verb, len(raw) + 2)
        if self.refused:
            if verb == "QUIT":
                self.send("221 2.0.0 bye", "quit")
                raise _Drop()
            self.reply_cmd(verb, "503 5.5.1 no service here", "other")
            return
        handler = getattr(self, "cmd_" + verb.lower(), None) \
            if verb.isalpha() else None
        if handler is None:
            self.violation("unknown command %r" % text[:80])
            self.reply_cmd(verb, "500 5.5.2 command unrecognized", "other")
            return
        handler(verb, arg)

    def check_length(self, verb, n):
        # RFC 5321 4.5.3.1.4: 512 octets, raised by each extension used.
        limit = 512
        if verb == "MAIL":
            limit += (26 if "SIZE" in self.ext else 0) + \
                (100 if "DSN" in self.ext else 0) + \
                (14 if "8BITMIME" in self.ext else 0) + \
                (9 if "SMTPUTF8" in self.ext else 0)
        elif verb == "RCPT" and "DSN" in self.ext:
            limit += 500
        if n > limit:
            self.violation("%s command line of %d octets (limit %d)"
                           % (verb, n, limit))

    # -- commands

    def _greet(self, verb, arg):
        self.txn = None
        self.helo = arg
        self.helo_verb = verb

    def ehlo_lines(self):
        p = self.peer
        kw = []
        if p.pipelining:
            kw.append("PIPELINING")
        if p.size is not None:
            kw.append("SIZE %d" % p.size)
        if p.eightbitmime:
            kw.append("8BITMIME")
        if p.smtputf8:
            kw.append("SMTPUTF8")
        if p.dsn:
            kw.append("DSN")
        if p.chunking:
            kw.append("CHUNKING")
        if p.starttls and not self.tls:
            kw.append("STARTTLS")
        if p.enhancedstatuscodes:
            kw.append("ENHANCEDSTATUSCODES")
        kw.extend(p.extra_ehlo)
        return kw

    def _ehlo(self, verb, arg):
        p = self.peer
        if not arg or " " in arg:
            self.violation("%s without a single domain argument" % verb)
            self.reply_cmd(verb, "501 5.5.4 syntax: %s domain" % verb, "ehlo")
            return
        kw = self.ehlo_lines()
        # The session's extensions are those of the last EHLO reply; set
        # them before replying so the sync check of this very reply uses
        # the previous state (none before the first EHLO).
        self.reply_cmd(verb, "\n".join(
            ["250 %s hello %s" % (p.hostname, arg)] +
            ["250 " + k for k in kw]), "ehlo")
        self._greet(verb, arg)
        self.ext = {k.split(" ")[0].upper() for k in kw}

    def cmd_ehlo(self, verb, arg):
        p = self.peer
        if p.lmtp:
            self.violation("EHLO in LMTP (RFC 2033 requires LHLO)")
            self.reply_cmd(verb, "500 5.5.1 use LHLO", "ehlo")
            return
        if not p.ehlo_ok:
            self.reply_cmd(verb, p.ehlo_fail_reply, "ehlo")
            return
        self._ehlo(verb, arg)

    def cmd_lhlo(self, verb, arg):
        if not self.peer.lmtp:
            self.violation("LHLO in SMTP")
            self.reply_cmd(verb, "500 5.5.1 this is SMTP", "ehlo")
            return
        self._ehlo(verb, arg)

    def cmd_helo(self, verb, arg):
        p = self.peer
        if p.lmtp:
            self.violation("HELO in LMTP (RFC 2033 requires LHLO)")
            self.reply_cmd(verb, "500 5.5.1 use LHLO", "ehlo")
            return
        if not arg or " " in arg:
            self.violation("HELO without a single domain argument")
            self.reply_cmd(verb, "501 5.5.4 syntax: HELO domain", "ehlo")
            return
        self.reply_cmd(verb, "250 %s" % p.hostname, "ehlo")
        self._greet(verb, arg)
        self.ext = set()

    def _check_params(self, verb, params, allowed):
        """Returns an error reply or None."""
        for key, value in params.items():
            need = allowed.get(key)
            if need is None or need not in self.ext:
                self.violation("%s parameter %s without the extension "
                               "being offered" % (verb, key))
                if self.peer.strict:
                    return "555 5.5.4 %s parameter %s not supported" \
                        % (verb, key)
            elif key == "BODY" and (value or "").upper() not in \
                    ("7BIT", "8BITMIME"):
                self.violation("BODY=%s" % value)
                return "501 5.5.4 bad BODY value"
            elif key == "SIZE" and not (value or "").isdigit():
                self.violation("SIZE=%s" % value)
                return "501 5.5.4 bad SIZE value"
            elif key in ("SMTPUTF8",) and value is not None:
                self.violation("SMTPUTF8 with a value")
                return "501 5.5.4 SMTPUTF8 takes no value"
        return None

    def _path_arg(self, verb, arg, prefix):
        """Parse 'FROM:<a> params' / 'TO:<a> params'; returns (addr,
        params) or sends the error reply and returns None."""
        if not arg[:len(prefix)].upper() == prefix:
            self.violation("%s syntax: %r" % (verb, arg[:80]))
            self.reply_cmd(verb, "501 5.5.4 syntax: %s %s<address>"
                           % (verb, prefix), verb.lower())
            return None
        rest = arg[len(prefix):]
        if rest.startswith(" "):
            self.violation("space after %s (RFC 5321 4.1.1.2/3)" % prefix)
            rest = rest.lstrip(" ")
        try:
            addr, ptext = _parse_path(rest)
            params = _parse_params(ptext)
        except ValueError as e:
            self.violation("%s syntax (%s): %r" % (verb, e, arg[:80]))
            self.reply_cmd(verb, "501 5.5.4 syntax error (%s)" % e,
                           verb.lower())
            return None
        return addr, params

    def cmd_mail(self, verb, arg):
        p = self.peer
        if self.helo is None:
            self.violation("MAIL before HELO/EHLO")
            self.reply_cmd(verb, "503 5.5.1 say hello first", "mail")
            return
        if self.txn is not None:
            self.violation("nested MAIL")
            self.reply_cmd(verb, "503 5.5.1 nested MAIL", "mail")
            return
        r = self._path_arg(verb, arg, "FROM:")
        if r is None:
            return
        addr, params = r
        err = self._check_params(verb, params, {
            "SIZE": "SIZE", "BODY": "8BITMIME", "SMTPUTF8": "SMTPUTF8",
            "RET": "DSN", "ENVID": "DSN", "AUTH": "AUTH"})
        if err is None and not addr.isascii() and "SMTPUTF8" not in params:
            self.violation("non-ASCII sender without SMTPUTF8")
            if p.strict:
                err = "553 5.6.7 non-ASCII address needs SMTPUTF8"
        if err is None and p.size and \
                (params.get("SIZE") or "").isdigit() and \
                int(params["SIZE"]) > p.size:
            err = "552 5.3.4 message size exceeds fixed limit"
        if err is None:
            err = p._consume_rule("mail")
        if err is not None:
            self.reply_cmd(verb, err, "mail")
            return
        reply = p.mail_reply
        if self.reply_cmd(verb, reply, "mail") // 100 == 2:
            self.txn = _Txn(p._next_txn_id(), addr, params)

    def cmd_rcpt(self, verb, arg):
        p = self.peer
        txn = self.txn
        if txn is None:
            self.violation("RCPT without MAIL")
            self.reply_cmd(verb, "503 5.5.1 need MAIL first", "rcpt")
            return
        r = self._path_arg(verb, arg, "TO:")
        if r is None:
            return
        addr, params = r
        err = self._check_params(verb, params,
                                 {"NOTIFY": "DSN", "ORCPT": "DSN"})
        if err is None and addr == "":
            self.violation("RCPT TO:<>")
            err = "501 5.1.3 empty recipient"
        if err is None and not addr.isascii() and \
                "SMTPUTF8" not in txn.params:
            self.violation("non-ASCII recipient without SMTPUTF8")
            if p.strict:
                err = "553 5.6.7 non-ASCII address needs SMTPUTF8"
        if err is None and p.max_rcpts is not None and \
                len(txn.rcpts) >= p.max_rcpts:
            err = "452 4.5.3 too many recipients"
        if err is None and not txn.rcpt_rule_checked:
            txn.rcpt_rule_checked = True
            txn.rcpt_fail = p._consume_rule("rcpt")
        if err is None:
            err = txn.rcpt_fail
        reply = err if err is not None else p._rcpt_lookup(addr)
        if self.reply_cmd(verb, reply, "rcpt") // 100 == 2:
            txn.rcpts.append((addr, params))

    def cmd_rset(self, verb, arg):
        if arg:
            self.violation("RSET with an argument")
        self.txn = None
        self.reply_cmd(verb, "250 2.0.0 ok", "rset")

    def cmd_noop(self, verb, arg):
        self.reply_cmd(verb, "250 2.0.0 ok", "noop")

    def cmd_vrfy(self, verb, arg):
        self.reply_cmd(verb, "252 2.5.2 cannot VRFY", "other")

    def cmd_quit(self, verb, arg):
        self.send("221 2.0.0 bye", "quit")
        raise _Drop()

    def cmd_starttls(self, verb, arg):
        p = self.peer
        if arg:
            self.violation("STARTTLS with an argument")
            self.reply_cmd(verb, "501 5.5.4 no arguments", "starttls")
            return
        if self.tls:
            self.violation("STARTTLS inside TLS")
            self.reply_cmd(verb, "503 5.5.1 already in TLS", "starttls")
            return
        if "STARTTLS" not in self.ext:
            self.violation("STARTTLS not offered")
            self.reply_cmd(verb, "502 5.5.1 STARTTLS not offered",
                           "starttls")
            return
        if self.pending_input():
            # RFC 3207 5 / CVE-2011-0411: plaintext after STARTTLS must
            # not survive into the TLS session.
            self.violation("data pipelined after STARTTLS (discarded)")
            self.buf = b""
        if self.send(p.starttls_reply, "starttls") != 220:
            return
        if p.tls_garbage:
            # Wait for the ClientHello first: garbage sent right behind the
            # 220 could end up in the client's buffered reply reader, and
            # the handshake would then wait instead of failing.
            self.recv_more()
            self.buf = b""
            self.sock.sendall(b"this is not a TLS handshake, sorry\r\n" * 4)
            p._note(self.id, "sent garbage instead of a TLS handshake")
            try:
                self.sock.shutdown(socket.SHUT_WR)
                self.sock.settimeout(min(p.read_timeout, 10.0))
                while self.sock.recv(65536):
                    pass
            except OSError:
                pass
            raise _Drop()
        ctx = p.tls_context or p._default_context()
        ssock = ctx.wrap_socket(self.sock, server_side=True,
                                do_handshake_on_connect=False)
        self.sock = ssock
        if self.aborted:
            raise _Closed()
        ssock.settimeout(p.read_timeout)
        try:
            ssock.do_handshake()
        except (ssl.SSLError, OSError) as e:
            p._record_tls_error(self.id, repr(e))
            raise _Drop()
        self.tls = True
        self.tls_version = ssock.version()
        self.cipher = (ssock.cipher() or (None,))[0]
        p._note(self.id, "TLS %s %s" % (self.tls_version, self.cipher))
        self.buf = b""
        self.txn = None
        self.helo = None
        self.helo_verb = ""
        self.ext = set()

    # -- message content

    def _start_body(self, via):
        """Shared start of DATA/BDAT: close_in_data."""
        p = self.peer
        if p._consume_counter("close_in_data"):
            while not self.buf:
                self.recv_more()
            self._record_attempt(self.txn, self.buf, b"", via,
                                 "dropped_in_data", [], [])
            self.txn = None
            raise _Drop()

    def cmd_data(self, verb, arg):
        p = self.peer
        txn = self.txn
        if arg:
            self.violation("DATA with an argument")
            self.reply_cmd(verb, "501 5.5.4 DATA takes no argument",
                           "data_start")
            return
        if txn is None:
            self.violation("DATA without MAIL")
            self.reply_cmd(verb, "503 5.5.1 need MAIL first", "data_start")
            return
        if txn.chunks is not None:
            self.violation("DATA after BDAT")
            self.reply_cmd(verb, "503 5.5.1 BDAT in progress", "data_start")
            return
        if not txn.rcpts:
            self.reply_cmd(verb, "554 5.5.1 no valid recipients",
                           "data_start")
            return
        err = p._consume_rule("data_start")
        reply = err if err is not None else p.data_start_reply
        if _code(reply) != 354:
            self.reply_cmd(verb, reply, "data_start")
            return
        self.reply_cmd(verb, reply, "data_start")
        self._start_body("DATA")
        raw = self._read_dot_data()
        self._finish(raw, "DATA")

    def _read_dot_data(self):
        """Everything up to and including the first CRLF "." CRLF, where
        the CRLF ending the DATA command counts as the first one."""
        acc = bytearray(self.buf)
        self.buf = b""
        scan = 0
        while True:
            end = -1
            if acc[:3] == b".\r\n":
                end = 3
            else:
                i = acc.find(b"\r\n.\r\n", scan)
                if i >= 0:
                    end = i + 5
            if end >= 0:
                self.buf = bytes(acc[end:])
                return bytes(acc[:end])
            scan = max(0, len(acc) - 4)
            if len(acc) > MAX_DATA:
                self.violation("message over %d octets" % MAX_DATA)
                raise _Drop()
            self.recv_more()
            acc += self.buf
            self.buf = b""

    def cmd_bdat(self, verb, arg):
        p = self.peer
        m = _BDAT_RE.match(arg)
        if not m:
            self.violation("BDAT syntax: %r" % arg[:80])
            self.reply_cmd(verb, "501 5.5.4 syntax: BDAT size [LAST]",
                           "bdat")
            return
        n, last = int(m.group(1)), m.group(2) is not None
        txn = self.txn
        err = None
        if "CHUNKING" not in self.ext:
            self.violation("BDAT without CHUNKING")
            err = "502 5.5.1 CHUNKING not offered"
        elif txn is None:
            self.violation("BDAT without MAIL")
            err = "503 5.5.1 need MAIL first"
        elif not txn.rcpts:
            err = "554 5.5.1 no valid recipients"
        if err is not None:
            # RFC 3030 2: the chunk is read (and dropped) anyway.
            self.read_exact(n)
            if txn is not None:
                self.txn = None
            self.reply_cmd(verb, err, "bdat")
            return
        if txn.chunks is None:
            txn.chunks = []
            if p._consume_counter("close_in_data"):
                if n:
                    while not self.buf:
                        self.recv_more()
                part = self.buf[:n]
                self._record_attempt(txn, part, b"", "BDAT",
                                     "dropped_in_data", [], [])
                self.txn = None
                raise _Drop()
        chunk = self.read_exact(n)
        txn.chunks.append(chunk)
        txn.bdat_size += n
        if not last:
            self.reply_cmd(verb, "250 2.0.0 %d octets received" % n, "bdat")
            return
        self._finish(b"".join(txn.chunks), "BDAT")

    def _content_checks(self, txn, body, via):
        params = txn.params
        if _BARE_RE.search(body):
            self.violation("bare CR or LF in the message (%s)" % via)
        if b"\0" in body:
            self.violation("NUL in the message (%s)" % via)
        if any(b >= 0x80 for b in body) and \
                (params.get("BODY") or "").upper() != "8BITMIME" and \
                "SMTPUTF8" not in params:
            self.violation("8-bit message without BODY=8BITMIME")
        for ln in body.split(b"\r\n"):
            n = len(ln)
            if via == "DATA" and ln.startswith(b"."):
                n -= 1      # RFC 5321 4.5.3.1.6: the stuffed dot is free
            if n > 998:
                self.violation("text line of %d octets (RFC 5321 "
                               "4.5.3.1.6: at most 998 + CRLF)" % n)
                break

    def _finish(self, raw, via):
        p = self.peer
        txn = self.txn
        self.txn = None
        if via == "DATA":
            if raw == b".\r\n":
                body, data, content = b"", b"", b""
            else:
                body = raw[:-3]                  # ends with CRLF
                data = _unstuff(raw[:-5])
                content = data + b"\r\n"
        else:
            body = data = content = raw
        self._content_checks(txn, body, via)
        if p._consume_counter("close_after_dot"):
            self._record_attempt(txn, raw, data, via, "dropped_after_dot",
                                 [], [], content)
            raise _Drop()
        rcpts = [a for a, _ in txn.rcpts]
        n = len(rcpts) if p.lmtp else 1
        if p.size and len(content) > p.size:
            replies = ["552 5.3.4 message too big"] * n
        else:
            err = p._consume_rule("data")
            if err is not None:
                replies = [err] * n
            elif p.lmtp:
                replies = [p._lmtp_lookup(a) for a in rcpts]
            else:
                replies = [p.data_reply]
        delivered = []
        for i, r in enumerate(replies):
            if r is DROP:
                break
            if _code(r) // 100 == 2:
                if p.lmtp:
                    delivered.append(rcpts[i])
                else:
                    delivered = list(rcpts)
        if delivered:
            outcome = "accepted"
        elif DROP in replies:
            outcome = "dropped_after_dot"
        else:
            outcome = "refused"
        sent = [r if isinstance(r, str) else repr(r) for r in replies]
        # Record before replying: a client that saw 250 finds the message.
        self._record_attempt(txn, raw, data, via, outcome, delivered, sent,
                             content)
        for r in replies:
            self.reply_cmd("." if via == "DATA" else "BDAT", r, "data")

    def _record_attempt(self, txn, raw, data, via, outcome, delivered,
                        replies, content=b""):
        m = Message(
            mail_from=txn.mail_from, mail_params=dict(txn.params),
            rcpts=list(txn.rcpts), data=data, raw=raw, helo=self.helo,
            tls=self.tls, tls_version=self.tls_version, cipher=self.cipher,
            conn_id=self.id, content=content, via=via,
            delivered=delivered, outcome=outcome, replies=replies,
            client=self.client, helo_verb=self.helo_verb, txn_id=txn.id)
        self.peer._record_message(m)


# --------------------------------------------------------------------- peer

_OPTIONS = {
    "pipelining": True, "size": None, "eightbitmime": True,
    "smtputf8": True, "dsn": True, "chunking": False, "starttls": False,
    "enhancedstatuscodes": True, "ehlo_ok": True, "extra_ehlo": (),
    "ehlo_fail_reply": "502 5.5.1 EHLO not implemented",
    "greeting": None, "hang_greeting": False,
    "mail_reply": "250 2.1.0 ok",
    "rcpt_reply": None, "rcpt_default_reply": "250 2.1.5 ok",
    "data_start_reply": "354 end data with <CR><LF>.<CR><LF>",
    "data_reply": "250 2.0.0 ok: queued",
    "lmtp_data_reply": None,
    "starttls_reply": "220 2.0.0 ready to start TLS",
    "tls_garbage": False, "tls_context": None,
    "delay_reply": 0.0, "max_rcpts": None,
    "read_timeout": DEFAULT_READ_TIMEOUT, "strict": True,
}


class SMTPPeer:
    """A fake SMTP/LMTP server; see the module documentation."""

    def __init__(self, addr=None, port=25, lmtp=False, unix_path=None,
                 hostname="peer.test", **options):
        unknown = set(options) - set(_OPTIONS)
        if unknown:
            raise TypeError("unknown SMTPPeer options: %s"
                            % ", ".join(sorted(unknown)))
        self.lmtp = lmtp
        self.unix_path = unix_path
        self.hostname = hostname
        self.addr = None if unix_path else addr
        self.port = None if unix_path else port
        for k, v in _OPTIONS.items():
            setattr(self, k, options.get(k, v))
        if self.greeting is None:
            self.greeting = "220 %s %s" % (hostname,
                                          "LMTP" if lmtp else "ESMTP")
        if self.rcpt_reply is None:
            self.rcpt_reply = {}
        if self.lmtp_data_reply is None:
            self.lmtp_data_reply = {}
        self.extra_ehlo = list(self.extra_ehlo)

        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._lsock = None
        self._accept_thread = None
        self._sessions = {}         # conn_id -> (session, thread)
        self._ctx = None
        self._rules = {}            # stage -> [remaining, reply]
        self._counters = {"close_in_data": 0, "close_after_dot": 0}
        self._txn_seq = 0
        self._conn_seq = 0
        self._open = 0
        self._max_open = 0
        self._messages = []
        self._attempts = []
        self._commands = []
        self._transcript = []
        self._violations = []
        self._errors = []
        self._tls_errors = []
        self._notes = []

    # -- lifecycle

    def start(self):
        if self._lsock is not None:
            raise RuntimeError("peer already started")
        if self.unix_path:
            try:
                if os.path.exists(self.unix_path):
                    os.unlink(self.unix_path)
            except OSError:
                pass
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind(self.unix_path)
            os.chmod(self.unix_path, 0o777)
            s.listen(128)
        elif self.addr is None:
            self.addr, s = _alloc_socket(self.port)
        else:
            s = _take_reservation(self.addr, self.port)
            if s is None:
                s = _bind_listen(self.addr, self.port)
        if not self.unix_path:
            self.port = s.getsockname()[1]
        s.settimeout(0.5)
        self._lsock = s
        self._stopping.clear()
        self._accept_thread = threading.Thread(
            target=self._accept_loop, daemon=True,
            name="smtppeer-accept-%s" % (self.unix_path or self.addr))
        self._accept_thread.start()
        return self

    def stop(self):
        self._stopping.set()
        s = self._lsock
        if s is not None:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._accept_thread is not None:
            self._accept_thread.join(5)
        if s is not None:
            s.close()
        with self._lock:
            sessions = list(self._sessions.values())
        for sess, _ in sessions:
            sess.abort()
        deadline = time.monotonic() + 10
        for _, t in sessions:
            t.join(max(0.0, deadline - time.monotonic()))
        if self.unix_path and self._lsock is not None:
            try:
                os.unlink(self.unix_path)
            except OSError:
                pass
        self._lsock = None
        self._accept_thread = None

    def __enter__(self):
        if self._lsock is None:
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        where = self.unix_path or "%s:%s" % (self.addr, self.port)
        return "<SMTPPeer %s%s>" % (where, " LMTP" if self.lmtp else "")

    def _accept_loop(self):
        while not self._stopping.is_set():
            try:
                conn, client = self._lsock.accept()
            except socket.timeout:
                continue
            except OSError as e:
                if self._stopping.is_set():
                    break
                self._note(0, "accept: %r" % e)
                time.sleep(0.05)
                continue
            with self._lock:
                self._conn_seq += 1
                cid = self._conn_seq
                self._open += 1
                self._max_open = max(self._max_open, self._open)
                sess = _Session(self, conn, cid, client or None)
                t = threading.Thread(target=sess.run, daemon=True,
                                     name="smtppeer-conn-%d" % cid)
                self._sessions[cid] = (sess, t)
            t.start()

    def _session_done(self, sess):
        with self._lock:
            self._open -= 1
            self._sessions.pop(sess.id, None)

    def _default_context(self):
        with self._lock:
            if self._ctx is None:
                self._ctx = server_context()
            return self._ctx

    # -- scripting

    def fail_first(self, n, reply="451 4.3.0 try later", stage="data"):
        if stage not in STAGES:
            raise ValueError("stage must be one of %s" % (STAGES,))
        with self._lock:
            self._rules[stage] = [n, reply]

    def close_in_data(self, n=1):
        with self._lock:
            self._counters["close_in_data"] = n

    def close_after_dot(self, n=1):
        with self._lock:
            self._counters["close_after_dot"] = n

    def _consume_rule(self, stage):
        with self._lock:
            r = self._rules.get(stage)
            if r and r[0] > 0:
                r[0] -= 1
                return r[1]
        return None

    def _consume_counter(self, name):
        with self._lock:
            if self._counters[name] > 0:
                self._counters[name] -= 1
                return True
        return False

    def _rcpt_lookup(self, addr):
        table = self.rcpt_reply
        a = addr.lower()
        r = table.get(a)
        if r is None and "@" in a:
            r = table.get("@" + a.rsplit("@", 1)[1])
        return self.rcpt_default_reply if r is None else r

    def _lmtp_lookup(self, addr):
        table = self.lmtp_data_reply
        a = addr.lower()
        r = table.get(a)
        if r is None and "@" in a:
            r = table.get("@" + a.rsplit("@", 1)[1])
        return self.data_reply if r is None else r

    def _next_txn_id(self):
        with self._lock:
            self._txn_seq += 1
            return self._txn_seq

    # -- recording

    def _record_command(self, cid, raw):
        line = raw.decode("utf-8", "surrogateescape")
        with self._lock:
            self._commands.append((cid, line))
            self._transcript.append((cid, "C", line))

    def _record_transcript(self, cid, who, raw):
        with self._lock:
            self._transcript.append(
                (cid, who, raw.decode("utf-8", "surrogateescape")))

    def _record_violation(self, cid, text):
        with self._lock:
            self._violations.append((cid, text))

    def _record_error(self, cid, text):
        with self._lock:
            self._errors.append((cid, text))

    def _record_tls_error(self, cid, text):
        with self._lock:
            self._tls_errors.append((cid, text))

    def _note(self, cid, text):
        with self._lock:
            self._notes.append((cid, text))
            self._transcript.append((cid, "-", text))

    def _record_message(self, m):
        with self._lock:
            self._attempts.append(m)
            if m.outcome == "accepted":
                self._messages.append(m)

    # -- results

    @property
    def messages(self):
        with self._lock:
            return list(self._messages)

    @property
    def attempts(self):
        with self._lock:
            return list(self._attempts)

    @property
    def commands(self):
        with self._lock:
            return list(self._commands)

    @property
    def transcript(self):
        with self._lock:
            return list(self._transcript)

    @property
    def violations(self):
        with self._lock:
            return list(self._violations)

    @property
    def errors(self):
        with self._lock:
            return list(self._errors)

    @property
    def tls_errors(self):
        with self._lock:
            return list(self._tls_errors)

    @property
    def connections(self):
        with self._lock:
            return self._conn_seq

    @property
    def open_connections(self):
        with self._lock:
            return self._open

    @property
    def max_open_connections(self):
        with self._lock:
            return self._max_open

    def transcript_text(self, last=60):
        return "\n".join("%d %s %s" % t for t in self.transcript[-last:])

    def assert_clean(self):
        v, e = self.violations, self.errors
        if v or e:
            raise AssertionError(
                "%r: violations %r errors %r\ntranscript:\n%s"
                % (self, v, e, self.transcript_text()))

    def wait_for(self, pred, timeout=30, what="condition", interval=0.02):
        deadline = time.monotonic() + timeout
        while True:
            v = pred(self)
            if v:
                return v
            if time.monotonic() >= deadline:
                raise AssertionError(
                    "%r: timed out after %ss waiting for %s\ntranscript:\n%s"
                    % (self, timeout, what, self.transcript_text()))
            time.sleep(interval)

    def wait_messages(self, n, timeout=30):
        """Poll until at least n messages were accepted; returns them."""
        got = []

        def enough(p):
            got[:] = [p.messages]
            return len(got[0]) >= n

        self.wait_for(enough, timeout, "%d message(s)" % n)
        return got[0]

    def wait_connections(self, n, timeout=30):
        return self.wait_for(lambda p: p.connections >= n and
                             p.connections, timeout,
                             "%d connection(s)" % n)
