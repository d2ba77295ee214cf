#!/usr/bin/python3
"""bench/idle.py: the SMTP client of bench/idle.sh (Debian's python3 only).

    idle.py hold HOST PORT COUNT [--sources N] [--first ADDR]
                 [--timeout SECS] [--batch N]
        Opens COUNT connections to HOST:PORT without blocking (epoll, at
        most --batch connects in flight), reads each one's greeting, then
        keeps every connection open and idle until SIGTERM or SIGINT.
        --sources N binds the connections in turn to N source addresses,
        --first (default 127.0.0.2) and the N-1 following it (127.0.0.2,
        127.0.0.3, ...); N=0 (the default) leaves the source to the kernel.
        Once every connection got its greeting, a refusal or an error (or
        --timeout seconds passed, default 300), prints one line:
          connections=N greeted=G refused=R failed=F seconds=S
        (greeted: a "220 " line; refused: another reply, e.g. 421; failed:
        connect error, a close before the greeting, or the timeout), and
        the first refusal or error on stderr. While holding, a connection
        the server closes or writes to counts as dropped. On SIGTERM or
        SIGINT it prints
          held=H dropped=D
        and exits 0 if every connection was greeted and none dropped,
        else 1.

    idle.py probe HOST PORT [--count N] [--gap MS] [--timeout SECS]
        N times (default 20), one after the other: connect, read the
        greeting, send NOOP, read its reply, QUIT, close. Prints one line
        per probe (greet_ms: from the start of connect(2) to the whole 220
        line; noop_ms: from writing NOOP to its whole 250 reply) and then
          probes=N ok=K greet_p50=MS greet_max=MS noop_p50=MS noop_max=MS
        with 3 decimals. Exits 0 if every probe got its 220 and 250.

Exit status 2: usage error.
"""
import argparse
import errno
import ipaddress
import resource
import selectors
import signal
import socket
import sys
import time

# Linux: bind the address only; the port is chosen at connect(2), per
# 4-tuple, so that one source address is not limited to one port range.
IP_BIND_ADDRESS_NO_PORT = 24


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= need:
        return
    want = need if hard == resource.RLIM_INFINITY else min(need, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, soft), hard))
    except (ValueError, OSError):
        pass


class Conn:
    __slots__ = ("sock", "state", "buf")

    def __init__(self, sock):
        self.sock = sock
        self.state = "connecting"
        self.buf = b""


def hold(args):
    count = args.count
    raise_nofile(count + 64)
    sel = selectors.EpollSelector()
    first = ipaddress.IPv4Address(args.first)
    started = 0
    pending = 0              # connects and greetings in flight
    greeted = refused = failed = 0
    first_error = None
    t0 = time.monotonic()
    deadline = t0 + args.timeout
    stop = [False]

    def on_signal(signum, frame):
        stop[0] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def fail(c, why):
        nonlocal failed, pending, first_error
        failed += 1
        pending -= 1
        if first_error is None:
            first_error = why
        sel.unregister(c.sock)
        c.sock.close()
        c.state = "done"

    def start_one(i):
        nonlocal started, pending, failed, first_error
        started += 1
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            if args.sources > 0:
                src = str(first + (i % args.sources))
                s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                s.bind((src, 0))
            e = s.connect_ex((args.host, args.port))
        except OSError as ex:
            e = ex.errno
        if e not in (0, errno.EINPROGRESS):
            failed += 1
            if first_error is None:
                first_error = "connect: %s" % errno.errorcode.get(e, e)
            s.close()
            return
        c = Conn(s)
        pending += 1
        sel.register(s, selectors.EVENT_WRITE, c)

    held = []
    while (started < count or pending > 0) and not stop[0]:
        while started < count and pending < args.batch:
            start_one(started)
        now = time.monotonic()
        if now >= deadline:
            break
        for key, ev in sel.select(min(1.0, deadline - now)):
            c = key.data
            if c.state == "connecting":
                e = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if e != 0:
                    fail(c, "connect: %s" % errno.errorcode.get(e, e))
                    continue
                c.state = "greeting"
                sel.modify(c.sock, selectors.EVENT_READ, c)
                continue
            try:
                data = c.sock.recv(4096)
            except BlockingIOError:
                continue
            except OSError as ex:
                fail(c, "recv: %s" % ex)
                continue
            if not data:
                fail(c, "closed before the greeting")
                continue
            c.buf += data
            while b"\n" in c.buf and c.state == "greeting":
                line, c.buf = c.buf.split(b"\n", 1)
                if line.startswith(b"220-"):
                    continue
                pending -= 1
                if line.startswith(b"220 "):
                    greeted += 1
                    c.state = "held"
                    c.buf = b""
                    held.append(c)
                else:
                    refused += 1
                    if first_error is None:
                        first_error = "refused: %r" % line.rstrip()
                    sel.unregister(c.sock)
                    c.sock.close()
                    c.state = "done"
    # Whatever is still in flight has run out of time.
    for key in list(sel.get_map().values()):
        c = key.data
        if c.state in ("connecting", "greeting"):
            fail(c, "no greeting within %g s" % args.timeout)
    failed += count - started
    print("connections=%d greeted=%d refused=%d failed=%d seconds=%.3f" %
          (count, greeted, refused, failed, time.monotonic() - t0),
          flush=True)
    if first_error is not None:
        print("idle.py: first failure: %s" % first_error, file=sys.stderr,
              flush=True)

    # Hold: a connection the server closes or talks on is dropped.
    dropped = 0
    while not stop[0]:
        for key, ev in sel.select(1.0):
            c = key.data
            if c.state != "held":
                continue
            try:
                data = c.sock.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            dropped += 1
            c.state = "dropped"
            sel.unregister(c.sock)
            if data:
                print("idle.py: server wrote on an idle connection: %r" %
                      data[:80], file=sys.stderr, flush=True)
            c.sock.close()
    still = sum(1 for c in held if c.state == "held")
    print("held=%d dropped=%d" % (still, dropped), flush=True)
    for c in held:
        if c.state == "held":
            c.sock.close()
    return 0 if greeted == count and dropped == 0 else 1


def read_reply(f):
    """The last line of one (possibly multi-line) reply, or b"" on EOF."""
    while True:
        line = f.readline()
        if not line or line[3:4] != b"-":
            return line


def pct(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def probe(args):
    greets, noops = [], []
    ok = 0
    for i in range(args.count):
        if i > 0 and args.gap > 0:
            time.sleep(args.gap / 1000.0)
        g = n = None
        why = ""
        try:
            t0 = time.perf_counter()
            s = socket.create_connection((args.host, args.port),
                                         timeout=args.timeout)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            f = s.makefile("rb")
            line = read_reply(f)
            t1 = time.perf_counter()
            if line.startswith(b"220 "):
                g = (t1 - t0) * 1000.0
                s.sendall(b"NOOP\r\n")
                t2 = time.perf_counter()
                line = read_reply(f)
                t3 = time.perf_counter()
                if line.startswith(b"250"):
                    n = (t3 - t2) * 1000.0
                else:
                    why = "NOOP: %r" % line.rstrip()
                s.sendall(b"QUIT\r\n")
                read_reply(f)
            else:
                why = "greeting: %r" % line.rstrip()
            f.close()
            s.close()
        except OSError as ex:
            why = str(ex)
        if g is not None:
            greets.append(g)
        if n is not None:
            noops.append(n)
            ok += 1
        print("probe %d greet_ms=%s noop_ms=%s%s" %
              (i + 1, "-" if g is None else "%.3f" % g,
               "-" if n is None else "%.3f" % n,
               " error=\"%s\"" % why if why else ""), flush=True)
    print("probes=%d ok=%d greet_p50=%.3f greet_max=%.3f noop_p50=%.3f "
          "noop_max=%.3f" % (args.count, ok, pct(greets, 50),
                             max(greets) if greets else float("nan"),
                             pct(noops, 50),
                             max(noops) if noops else float("nan")),
          flush=True)
    return 0 if ok == args.count else 1


def main():
    ap = argparse.ArgumentParser(prog="idle.py")
    sub = ap.add_subparsers(dest="mode", required=True)
    h = sub.add_parser("hold")
    h.add_argument("host")
    h.add_argument("port", type=int)
    h.add_argument("count", type=int)
    h.add_argument("--sources", type=int, default=0)
    h.add_argument("--first", default="127.0.0.2")
    h.add_argument("--timeout", type=float, default=300.0)
    h.add_argument("--batch", type=int, default=256)
    p = sub.add_parser("probe")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--count", type=int, default=20)
    p.add_argument("--gap", type=float, default=50.0)
    p.add_argument("--timeout", type=float, default=10.0)
    args = ap.parse_args()
    if args.mode == "hold":
        if args.count < 1 or args.sources < 0 or args.batch < 1:
            ap.error("count and batch must be >= 1, sources >= 0")
        return hold(args)
    if args.count < 1:
        ap.error("count must be >= 1")
    return probe(args)


if __name__ == "__main__":
    sys.exit(main())
