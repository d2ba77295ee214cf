"""
dnsserver.py: a small authoritative DNS server on loopback for the
end-to-end tests (UDP and TCP on the same port), built on Debian's
python3-dnslib for the wire format.

    from dnsserver import DNSServer

    with DNSServer() as srv:                 # host="127.0.0.1", port=0
        srv.add("example.test", "MX", "10 mx1.example.test.")
        srv.add("mx1.example.test", "A", "127.0.0.2")
        srv.add("example.test", "TXT", "v=spf1 -all")
        conf = "dns %s\\n" % srv.addr        # "127.0.0.1:PORT"
        ...
        assert srv.count("example.test", "MX") == 1

API
    DNSServer(host="127.0.0.1", port=0)
        port 0 picks a free port; UDP and TCP always share the port.
    start(), stop(); or use it as a context manager.
    addr            "127.0.0.1:PORT" ("[::1]:PORT" for IPv6), the value of
                    Petrel's `dns` directive. Also .host and .port.
    add(name, rtype, value, ttl=0)
                    rtype is "A", "AAAA", "MX", "TXT", "CNAME", "PTR",
                    "TLSA", "NS", "SOA", ... and value the record data in
                    zone-file form ("10 mx1.example.test.", "127.0.0.2",
                    "3 1 1 abcdef..."). Names are case-insensitive; a
                    trailing dot is optional everywhere. For TXT the value
                    is the text itself (str, or bytes for any octets), split
                    into 255-octet character-strings; a list or tuple gives
                    the character-strings one by one.
    zone(text)      load zone-file text (dnslib's RR.fromZone: $ORIGIN and
                    $TTL work; names without a trailing dot are relative
                    to $ORIGIN, else to the root).
    remove(name, rtype=None)   drop the name's records (of one type).
    clear()         drop every record and every failure mode.
    fail(name, mode)           mode "servfail", "refused" or "timeout" (no
                    answer at all, over UDP and TCP) for every query about
                    name; unfail(name) ends it.
    queries         a copy of the list of (name, type) seen, in order: name
                    in lower case without the trailing dot, type as a string
                    ("MX", "TYPE65" for an unknown one).
    transcript      the same with the transport: (name, type, "udp"|"tcp").
    count(name, rtype=None)    how many queries asked about name (and type).
    reset_queries() forget the queries seen so far.

Semantics, those of an authoritative server for every name it holds:
    - NXDOMAIN for a name that has no record at all, NOERROR with an empty
      answer (NODATA) when the name has records of other types; both carry
      an SOA (TTL 0, minimum 0) in the authority section for the parent
      zone of the name (its last two labels), so resolvers cache nothing.
    - AA and RA set, RD copied; opcodes other than QUERY get NOTIMP.
    - A query for a name that has a CNAME (and is not itself a CNAME query)
      gets the CNAME and, when the server holds the target, the target's
      records, following up to 8 CNAMEs; the rcode is that of the last
      name (RFC 6604).
    - EDNS (RFC 6891): a query with an OPT record gets one back (UDP size
      1232); over UDP a reply larger than the client's size (512 without
      EDNS, at most 1232 with it) is sent truncated (TC set, no records
      except the OPT), and the client must ask again over TCP, where the
      whole answer goes out.
    - Default TTL 0, so that every lookup reaches the server.
"""

import errno
import selectors
import socket
import struct
import threading

from dnslib import (CLASS, EDNS0, OPCODE, QTYPE, RCODE, RR, SOA, TXT,
                    DNSHeader, DNSRecord)

__all__ = ["DNSServer"]

UDP_MAX_EDNS = 1232     # the DNS flag day 2020 size, what unbound offers
MAX_CNAME_CHAIN = 8


def _key(name):
    """Canonical dictionary key for a domain name."""
    name = str(name)
    if name.endswith(".") and name != ".":
        name = name[:-1]
    return name.lower()


def _type_name(qtype):
    try:
        return QTYPE[qtype]
    except Exception:       # dnslib's Bimap raises its own error type
        return "TYPE%d" % qtype


def _type_code(rtype):
    if isinstance(rtype, int):
        return rtype
    return getattr(QTYPE, rtype.upper())


class DNSServer:
    def __init__(self, host="127.0.0.1", port=0):
        self.host = host
        self.port = port
        self.family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._lock = threading.Lock()
        self._records = {}      # key -> [RR, ...] in the order added
        self._fails = {}        # key -> mode
        self._transcript = []   # (name, type, proto)
        self._udp = None
        self._tcp = None
        self._stopping = False
        self._threads = []
        self._conns = set()
        self._wake_r = self._wake_w = None

    # configuration

    def add(self, name, rtype, value, ttl=0):
        rtype = rtype.upper()
        rname = _key(name) + "."
        if rtype == "TXT":
            if isinstance(value, (list, tuple)):
                chunks = [v.encode("utf-8") if isinstance(v, str) else v
                          for v in value]
            else:
                data = value.encode("utf-8") if isinstance(value, str) \
                    else bytes(value)
                chunks = [data[i:i + 255] for i in range(0, len(data), 255)]
                if not chunks:
                    chunks = [b""]
            rrs = [RR(rname, QTYPE.TXT, CLASS.IN, ttl, TXT(chunks))]
        else:
            rrs = RR.fromZone("%s %d IN %s %s" % (rname, ttl, rtype, value))
        with self._lock:
            for rr in rrs:
                self._records.setdefault(_key(rr.rname), []).append(rr)

    def zone(self, text):
        rrs = RR.fromZone(text)
        with self._lock:
            for rr in rrs:
                self._records.setdefault(_key(rr.rname), []).append(rr)

    def remove(self, name, rtype=None):
        k = _key(name)
        with self._lock:
            if rtype is None:
                self._records.pop(k, None)
                return
            code = _type_code(rtype)
            left = [rr for rr in self._records.get(k, []) if rr.rtype != code]
            if left:
                self._records[k] = left
            else:
                self._records.pop(k, None)

    def clear(self):
        with self._lock:
            self._records.clear()
            self._fails.clear()

    def fail(self, name, mode):
        if mode not in ("servfail", "refused", "timeout"):
            raise ValueError("unknown failure mode %r" % mode)
        with self._lock:
            self._fails[_key(name)] = mode

    def unfail(self, name):
        with self._lock:
            self._fails.pop(_key(name), None)

    # what was asked

    @property
    def queries(self):
        with self._lock:
            return [(n, t) for n, t, _ in self._transcript]

    @property
    def transcript(self):
        with self._lock:
            return list(self._transcript)

    def count(self, name, rtype=None):
        k = _key(name)
        t = None if rtype is None else rtype.upper()
        with self._lock:
            return sum(1 for n, qt, _ in self._transcript
                       if n == k and (t is None or qt == t))

    def reset_queries(self):
        with self._lock:
            self._transcript.clear()

    @property
    def addr(self):
        if self.family == socket.AF_INET6:
            return "[%s]:%d" % (self.host, self.port)
        return "%s:%d" % (self.host, self.port)

    # life cycle

    def start(self):
        self._bind()
        self._stopping = False
        self._wake_r, self._wake_w = socket.socketpair()
        t = threading.Thread(target=self._serve, name="dnsserver",
                             daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self):
        if self._udp is None:
            return
        self._stopping = True
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self._threads:
            t.join(timeout=10)
        self._threads = []
        for s in (self._udp, self._tcp, self._wake_r, self._wake_w):
            s.close()
        self._udp = self._tcp = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _bind(self):
        """TCP and UDP on one port: with port 0, retry until the port the
        kernel picked for TCP is free for UDP too."""
        for _ in range(50):
            tcp = socket.socket(self.family, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            udp = socket.socket(self.family, socket.SOCK_DGRAM)
            try:
                tcp.bind((self.host, self.port))
                port = tcp.getsockname()[1]
                udp.bind((self.host, port))
            except OSError as e:
                tcp.close()
                udp.close()
                if self.port == 0 and e.errno == errno.EADDRINUSE:
                    continue
                raise
            tcp.listen(64)
            self.port = port
            self._tcp, self._udp = tcp, udp
            return
        raise OSError(errno.EADDRINUSE, "no free port for UDP and TCP")

    # serving

    def _serve(self):
        sel = selectors.DefaultSelector()
        sel.register(self._udp, selectors.EVENT_READ, "udp")
        sel.register(self._tcp, selectors.EVENT_READ, "tcp")
        sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        try:
            while not self._stopping:
                for key, _ in sel.select():
                    if key.data == "udp":
                        self._serve_udp()
                    elif key.data == "tcp":
                        self._accept()
        finally:
            sel.close()

    def _serve_udp(self):
        try:
            data, peer = self._udp.recvfrom(65535)
        except OSError:
            return
        out = self._handle(data, "udp")
        if out is not None:
            try:
                self._udp.sendto(out, peer)
            except OSError:
                pass

    def _accept(self):
        try:
            conn, _ = self._tcp.accept()
        except OSError:
            return
        with self._lock:
            self._conns.add(conn)
        t = threading.Thread(target=self._serve_tcp, args=(conn,),
                             daemon=True)
        t.start()
        self._threads.append(t)

    @staticmethod
    def _recv_exact(conn, n):
        buf = b""
        while len(buf) < n:
            chunk = conn.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf

    def _serve_tcp(self, conn):
        try:
            while not self._stopping:
                hdr = self._recv_exact(conn, 2)
                if hdr is None:
                    break
                data = self._recv_exact(conn, struct.unpack("!H", hdr)[0])
                if data is None:
                    break
                out = self._handle(data, "tcp")
                if out is not None:
                    conn.sendall(struct.pack("!H", len(out)) + out)
        except OSError:
            pass
        finally:
            with self._lock:
                self._conns.discard(conn)
            conn.close()

    def _handle(self, data, proto):
        """The reply to one query packet (bytes), or None for no reply."""
        try:
            req = DNSRecord.parse(data)
        except Exception:
            return None         # not even a header: say nothing
        if req.header.qr or not req.questions:
            return None
        q = req.q
        name = _key(q.qname)
        with self._lock:
            self._transcript.append((name, _type_name(q.qtype), proto))
            mode = self._fails.get(name)
        if mode == "timeout":
            return None
        reply = DNSRecord(DNSHeader(id=req.header.id, qr=1, aa=1, ra=1,
                                    rd=req.header.rd,
                                    opcode=req.header.opcode), q=q)
        opt = [rr for rr in req.ar if rr.rtype == QTYPE.OPT]
        if opt:
            reply.add_ar(EDNS0(udp_len=UDP_MAX_EDNS))
        if req.header.opcode != OPCODE.QUERY:
            reply.header.rcode = RCODE.NOTIMP
        elif mode == "servfail":
            reply.header.rcode = RCODE.SERVFAIL
        elif mode == "refused":
            reply.header.rcode = RCODE.REFUSED
        else:
            self._resolve(reply, name, q.qtype)
        out = reply.pack()
        if proto == "udp":
            limit = 512
            if opt:
                limit = max(512, min(opt[0].rclass, UDP_MAX_EDNS))
            if len(out) > limit:
                reply.rr = []
                reply.auth = []
                reply.ar = [rr for rr in reply.ar if rr.rtype == QTYPE.OPT]
                reply.header.tc = 1
                out = reply.pack()
        return out

    def _resolve(self, reply, name, qtype):
        seen = set()
        with self._lock:
            while True:
                rrs = self._records.get(name)
                if rrs is None:
                    reply.header.rcode = RCODE.NXDOMAIN
                    break
                match = [rr for rr in rrs
                         if rr.rtype == qtype or qtype == QTYPE.ANY]
                if match:
                    for rr in match:
                        reply.add_answer(rr)
                    return
                cname = [rr for rr in rrs if rr.rtype == QTYPE.CNAME]
                if not cname or qtype == QTYPE.CNAME:
                    break       # NODATA
                reply.add_answer(cname[0])
                seen.add(name)
                name = _key(cname[0].rdata.label)
                if name in seen or len(seen) >= MAX_CNAME_CHAIN:
                    return
        labels = name.split(".")
        zone = ".".join(labels[-2:]) + "." if name else "."
        reply.add_auth(RR(zone, QTYPE.SOA, CLASS.IN, 0,
                          SOA("ns." + zone if zone != "." else "ns.",
                              "hostmaster." + zone if zone != "." else
                              "hostmaster.",
                              (1, 3600, 600, 86400, 0))))
