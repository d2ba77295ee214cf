"""
test_fsync_order.py: "250 queued as ID" only after the message is durable.

The daemon runs under strace -f. For every queue ID from a 250 reply, the
trace must show, in this order: the file opened as incoming/ID is fsync'd
(fsync or fdatasync on an fd that was opened as that file), incoming/ID is
renamed to queue/ID, the queue/ directory is fsync'd after that rename, and
only then the write of "queued as ID" to the client socket.

The daemon is multithreaded: strace -f prefixes every line with the thread
id, a call may be split into "<unfinished ...>" and "<... resumed>" lines,
and file descriptors are process-wide, so one fd table serves every thread.
Order is the order of lines in the trace: strace records a thread's
syscall exit before that thread can make its next call, so a later line
cannot be the cause of an earlier one.

A second test checks group commit: 50 sessions that finish DATA at the same
moment must share directory fsyncs (the `spool: stats` line at shutdown).
"""

import os
import re
import shutil
import signal
import subprocess
import threading

import pytest

from harness import SANITIZE, queue_id_from_reply, wait_until

STRACE = shutil.which("strace") or "/usr/bin/strace"
SENDER = "sender@example.org"
ALICE = "alice@example.test"
WRITES = ("write", "writev", "sendto", "sendmsg")
SYNCS = ("fsync", "fdatasync")
RENAMES = ("rename", "renameat", "renameat2")

LINE_RE = re.compile(r"^(\d+)\s+\d\d:\d\d:\d\d\.\d+\s+(.*)$")
CALL_RE = re.compile(r"^(\w+)\((.*)\)\s+=\s+(-?\d+|\?)(.*)$", re.S)
UNFINISHED_RE = re.compile(r"^(\w+)\((.*) <unfinished \.\.\.>$", re.S)
RESUMED_RE = re.compile(r"^<\.\.\. (\w+) resumed>(.*)$", re.S)


def split_args(text):
    """Split strace's argument text at top-level commas."""
    out, cur, depth, i, n = [], [], 0, 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            cur.append(text[i:j + 1])
            i = j + 1
            continue
        if c in "[{(":
            depth += 1
        elif c in "]})":
            depth -= 1
        if c == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(c)
        i += 1
    if cur:
        out.append("".join(cur).strip())
    return out


def unquote(arg):
    m = re.match(r'^"((?:[^"\\]|\\.)*)"', arg)
    if not m:
        return None
    return re.sub(r"\\(.)", r"\1", m.group(1))


def as_int(arg):
    try:
        return int(arg)
    except (TypeError, ValueError):
        return None


class Call:
    def __init__(self, tid, name, start):
        self.tid = tid
        self.name = name
        self.start = start
        self.end = None
        self.args = []
        self.ret = None
        self.text = ""
        self.fdpath = None      # path of args[0] as an fd, at the start
        self.paths = []         # resolved path arguments


class Trace:
    """Parse an strace -f -tt log into completed calls with resolved
    paths, tracking one process-wide fd table."""

    def __init__(self, path, cwd):
        self.calls = []
        self.fds = {}           # fd -> (path, index assigned)
        self.cwd = cwd
        pending = {}
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
        for idx, line in enumerate(lines):
            m = LINE_RE.match(line)
            if not m:
                continue
            tid, rest = int(m.group(1)), m.group(2)
            if rest.startswith(("+++", "---")):
                continue
            r = RESUMED_RE.match(rest)
            if r:
                call, partial = pending.pop(tid, (None, None))
                if call is None or call.name != r.group(1):
                    continue
                self.finish(call, call.name + "(" + partial + r.group(2),
                            idx)
                continue
            u = UNFINISHED_RE.match(rest)
            if u:
                call = Call(tid, u.group(1), idx)
                self.begin(call, u.group(2))
                pending[tid] = (call, u.group(2))
                continue
            c = CALL_RE.match(rest)
            if c:
                call = Call(tid, c.group(1), idx)
                self.begin(call, c.group(2))
                self.finish(call, rest, idx)

    def lookup(self, fd):
        v = self.fds.get(fd)
        return v[0] if v else None

    def resolve(self, dirfd, path):
        if path is None:
            return None
        if path.startswith("/"):
            return os.path.normpath(path)
        if dirfd in (None, "AT_FDCWD"):
            return os.path.normpath(os.path.join(self.cwd, path))
        base = self.lookup(as_int(dirfd))
        if base is None:
            return None
        return os.path.normpath(os.path.join(base, path))

    def begin(self, call, argtext):
        args = split_args(argtext)
        call.args = args
        if args:
            fd = as_int(args[0])
            if fd is not None:
                call.fdpath = self.lookup(fd)
        n = call.name
        if n == "openat" and len(args) >= 2:
            call.paths = [self.resolve(args[0], unquote(args[1]))]
        elif n == "rename" and len(args) >= 2:
            call.paths = [self.resolve(None, unquote(args[0])),
                          self.resolve(None, unquote(args[1]))]
        elif n in ("renameat", "renameat2") and len(args) >= 4:
            call.paths = [self.resolve(args[0], unquote(args[1])),
                          self.resolve(args[2], unquote(args[3]))]

    def finish(self, call, text, idx):
        c = CALL_RE.match(text)
        call.end = idx
        call.text = text
        if c:
            call.ret = as_int(c.group(3))
        if call.name == "openat" and call.ret is not None and \
                call.ret >= 0 and call.paths and call.paths[0]:
            # Assigned when openat returns: a close of the same number
            # that began before this exit line closed the previous file.
            self.fds[call.ret] = (call.paths[0], idx)
        elif call.name == "chdir" and call.ret == 0 and call.args:
            self.cwd = self.resolve(None, unquote(call.args[0])) or self.cwd
        elif call.name == "close" and call.ret == 0 and call.args:
            fd = as_int(call.args[0])
            v = self.fds.get(fd)
            # Another thread may have been given the same number between
            # the close and its exit line: only drop a mapping made before
            # the close began.
            if v is not None and v[1] < call.start:
                del self.fds[fd]
        self.calls.append(call)


def check_durable_before_reply(trace, spool, qid):
    incoming = os.path.join(spool, "incoming", qid)
    queued = os.path.join(spool, "queue", qid)
    qdir = os.path.join(spool, "queue")
    rx = re.compile(r"queued as %s(?![0-9A-Za-z])" % re.escape(qid))
    replies = [c for c in trace.calls if c.name in WRITES and
               rx.search(c.text)]
    assert replies, "no write of 'queued as %s' in the trace" % qid
    reply = min(replies, key=lambda c: c.start)
    opens = [c for c in trace.calls if c.name == "openat" and
             c.paths and c.paths[0] == incoming and (c.ret or -1) >= 0]
    assert opens, "no openat of %s" % incoming
    first = min(opens, key=lambda c: c.start)
    opened = first.start
    # A spare file (spare/NUMBER renamed to incoming/ID, opened without
    # O_CREAT) still holds an old message: it must be cut to the new
    # length before the fsync.
    reused = "O_CREAT" not in first.text
    renames = [c for c in trace.calls if c.name in RENAMES and
               c.ret == 0 and c.paths == [incoming, queued]]
    assert renames, "no rename %s -> %s" % (incoming, queued)
    rn = min(renames, key=lambda c: c.start)
    file_syncs = [c for c in trace.calls if c.name in SYNCS and
                  c.ret == 0 and c.fdpath == incoming and
                  opened < c.start and c.end < rn.start]
    assert file_syncs, (
        "%s: no fsync of the incoming file between its open (line %d) and "
        "the rename (line %d)" % (qid, opened + 1, rn.start + 1))
    if reused:
        spare = os.path.join(spool, "spare")
        taken = [c for c in trace.calls if c.name in RENAMES and
                 c.ret == 0 and c.paths and c.paths[1] == incoming and
                 os.path.dirname(c.paths[0]) == spare and
                 c.end < opened]
        assert taken, "%s: opened without O_CREAT, but not a spare" % qid
        # Cut to length (ftruncate) unless it already had it: the
        # delivered content, checked by the caller, shows which.
    assert rn.end < reply.start, (
        "%s: the rename (line %d) ends after the reply (line %d)"
        % (qid, rn.end + 1, reply.start + 1))
    dir_syncs = [c for c in trace.calls if c.name in SYNCS and
                 c.ret == 0 and c.fdpath is not None and
                 os.path.normpath(c.fdpath) == qdir and
                 c.start > rn.end and c.end < reply.start]
    assert dir_syncs, (
        "%s: no fsync of %s after the rename (line %d) and before the "
        "reply (line %d)" % (qid, qdir, rn.end + 1, reply.start + 1))
    return reused


def traced_child(p):
    """The daemon's pid: strace's child."""
    def child():
        for tid in os.listdir("/proc/%d/task" % p.proc.pid):
            try:
                with open("/proc/%d/task/%s/children"
                          % (p.proc.pid, tid)) as f:
                    kids = f.read().split()
            except FileNotFoundError:
                continue
            if kids:
                return int(kids[0])
        return None
    return wait_until(child, timeout=10, what="the traced daemon's pid")


def make_message(tag):
    return ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n"
            "Message-ID: <%s@fsync.test>\r\n\r\nbody %s\r\n"
            % (SENDER, ALICE, tag, tag, tag)).encode()


def send_some(p, tid, count, out, lock):
    with p.smtp() as s:
        s.ehlo()
        for i in range(count):
            s.mail(SENDER)
            code, resp = s.rcpt(ALICE)
            assert code == 250, resp
            code, resp = s.data(make_message("t%d-%d" % (tid, i)))
            assert code == 250, (code, resp)
            with lock:
                out.append(queue_id_from_reply(resp.decode()))


def run_threads(target, n, *args):
    errors = []

    def wrap(i):
        try:
            target(i, *args)
        except BaseException as e:      # reported below
            errors.append(repr(e))

    ts = [threading.Thread(target=wrap, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in ts), "client threads stuck"
    assert not errors, errors


@pytest.mark.slow_under_sanitizer
def test_fsync_before_250(make_petrel, tmp_path):
    if not os.access(STRACE, os.X_OK):
        pytest.skip("no strace")
    tracefile = str(tmp_path / "petrel.strace")
    wrapper = [STRACE, "-f", "-tt", "-s", "256", "-o", tracefile, "-e",
               "trace=openat,write,fsync,fdatasync,rename,renameat,"
               "renameat2,sendto,sendmsg,writev,close,chdir,ftruncate"]
    p = make_petrel(wrapper=wrapper)
    ids, lock = [], threading.Lock()
    run_threads(lambda i: send_some(p, 100 + i, 5, ids, lock), 4)
    assert len(ids) == 20 and len(set(ids)) == 20, ids
    p.wait_delivered(ALICE, 20)
    # Delivered files become spares; a second wave of shorter messages
    # is written over them (their old tails must be cut off).
    p.wait_queue_empty()
    run_threads(lambda i: send_some(p, i, 5, ids, lock), 4)
    assert len(ids) == 40 and len(set(ids)) == 40, ids
    p.wait_delivered(ALICE, 40)
    # Stop the daemon itself; strace exits with it and flushes its log.
    os.kill(traced_child(p), signal.SIGTERM)
    try:
        rc = p.proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        raise AssertionError("traced petrel did not exit:\n" + p.log_tail())
    p.stop()
    assert rc == 0, rc
    trace = Trace(tracefile, p.tmpdir)
    assert len(trace.calls) > 100, "trace looks empty"
    reused = [check_durable_before_reply(trace, os.path.realpath(p.spool),
                                         qid) for qid in ids]
    assert any(reused[20:]), "no message of the second wave reused a file"
    # Written over spares of other lengths, every message arrived whole,
    # with nothing of an older one after it.
    bodies = sorted(open(f, "rb").read().split(b"\n\n", 1)[1]
                    for f in p.maildir_files(ALICE))
    want = sorted(b"body t%d-%d\n" % (t, i) for t in list(range(4)) +
                  list(range(100, 104)) for i in range(5))
    assert bodies == want, bodies


def stats_line(p):
    m = p.wait_log(r"spool: stats file_fsyncs=(\d+) dir_fsyncs=(\d+) "
                   r"commits=(\d+) errors=(\d+) batches=(\d+)")
    return dict(zip(("file_fsyncs", "dir_fsyncs", "commits", "errors",
                     "batches"), (int(x) for x in m.groups())))


def test_group_commit_shares_dir_fsyncs(make_petrel):
    sessions, waves = 50, 2
    p = make_petrel(extra_conf="max_connections_per_ip 200\n"
                               "max_connections 200\n")
    ids, lock = [], threading.Lock()
    for w in range(waves):
        barrier = threading.Barrier(sessions, timeout=60)

        def one(i):
            with p.smtp() as s:
                s.ehlo()
                s.mail(SENDER)
                code, resp = s.rcpt(ALICE)
                assert code == 250, resp
                code, resp = s.docmd("DATA")
                assert code == 354, (code, resp)
                msg = make_message("w%d-%d" % (w, i))
                # Everyone sends the final dot at the same moment.
                barrier.wait()
                s.send(msg + b".\r\n")
                code, resp = s.getreply()
                assert code == 250, (code, resp)
                with lock:
                    ids.append(queue_id_from_reply(resp.decode()))
                s.quit()

        run_threads(one, sessions)
    n = sessions * waves
    assert len(set(ids)) == n
    p.wait_delivered(ALICE, n, timeout=60)
    assert p.stop() == 0
    st = stats_line(p)
    print("spool stats:", st)
    assert st["errors"] == 0, st
    assert st["commits"] == n, st
    ratio = st["dir_fsyncs"] / st["commits"]
    # Without sharing every message costs one fsync of queue/ (ratio 1).
    # Under a sanitizer the loop thread is 5-15 times slower, so the 50
    # final dots reach the spool one by one rather than together and the
    # batches are smaller (0.54 seen once under ThreadSanitizer): there
    # the test only asks that fsyncs are shared at all.
    limit = 0.9 if SANITIZE else 0.5
    assert ratio < limit, "%.2f directory fsyncs per message: %s" % (ratio,
                                                                     st)
