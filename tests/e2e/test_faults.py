"""
test_faults.py: local faults (issue 8): a failing fsync, write, truncate
or rename in the spool or the Maildir, a read-only spool, and damaged
queue files.

Faults are injected by faultshim.c (beside this file; built here with cc
into the test's tmp dir, LD_PRELOADed into the daemon): a rule "CALL
SUBSTRING ERRNO" in a shared control file fails CALL on the paths that
contain SUBSTRING, from the next call on, until the rule is removed.
libfiu's posix preload (Debian fiu-utils) was not enough: it cannot tell
the spool's fdatasync from the Maildir's, does not wrap renameat, and a
write fault would also hit the daemon's pipes and log.

Tests: a spool fault per call and errno, by DATA and by BDAT, then
recovery (test_spool_fault_never_acknowledged, test_spool_fault_bdat);
parallel sessions under a failing fsync (test_fsync_error_other_sessions);
a fault while a spare file is reused (test_reused_spare_fault); Maildir
faults (test_maildir_fault_retried); a failing STATE update
(test_state_update_fault_never_loses); a read-only spool while running
and at start; every truncation and byte change of a queue file at start
(test_damaged_queue_files_at_startup) and a file damaged while queued
(test_damaged_while_queued). The disk-full cases are in test_diskfull.py.

What Petrel promises (docs/queue-format.md, docs/replies.md):
- a failed fsync, write or truncate of the message file, or a failed
  rename or fsync of queue/, is never retried and then acknowledged: the
  client gets 451 4.3.0 (452 4.3.1 when the errno is ENOSPC or EDQUOT),
  and the file is unlinked wherever it is: nothing is delivered;
- once the fault is gone the next message is accepted and delivered,
  without a restart;
- a Maildir write, fsync or link error defers the delivery: the message
  stays in queue/ and is delivered exactly once when the fault is gone;
- a read-only spool gets 451 4.3.0 while running and recovers when it is
  writable again; starting on one fails with a clear message, exit 1;
- a queue file cut at any offset or with any byte changed never crashes
  the daemon: it goes to corrupt/, and the rest of the queue is delivered.
"""

import contextlib
import mmap
import os
import pwd
import random
import re
import signal
import struct
import subprocess
import threading

import pytest

from harness import (SANITIZE, SOURCE_DIR, expected_maildir_bytes,
                     queue_id_from_reply, wait_until)
from queuefile import block_maildir

SENDER = "sender@example.org"
ALICE = "alice@example.test"
BOB = "bob@example.test"
CTL_SIZE = 4096
SHIM_SRC = os.path.join(SOURCE_DIR, "tests", "e2e", "faultshim.c")
# Generous: sanitizer builds are several times slower.
SLOW = 4 if SANITIZE else 1


# ---- helpers ----

@pytest.fixture(scope="module")
def shim(tmp_path_factory):
    d = tmp_path_factory.mktemp("faultshim")
    so = str(d / "faultshim.so")
    cc = os.environ.get("CC_FOR_SHIM", "cc")
    r = subprocess.run([cc, "-shared", "-fPIC", "-O1", "-Wall", "-Werror",
                        "-o", so, SHIM_SRC, "-ldl"],
                       capture_output=True, text=True)
    assert r.returncode == 0, "cannot build faultshim.so: %s" % r.stderr
    os.chmod(str(d), 0o755)
    os.chmod(so, 0o755)
    return so


class Faults:
    """The control and log files of one daemon's faultshim."""

    def __init__(self, tmpdir):
        self.ctl = os.path.join(tmpdir, "faults.ctl")
        self.log = os.path.join(tmpdir, "faults.log")
        with open(self.ctl, "wb") as f:
            f.write(b"\0" * CTL_SIZE)
        with open(self.log, "wb"):
            pass
        os.chmod(self.ctl, 0o644)
        os.chmod(self.log, 0o666)

    def set(self, *rules):
        text = "".join(r + "\n" for r in rules).encode()
        assert len(text) < CTL_SIZE
        with open(self.ctl, "r+b") as f:
            with mmap.mmap(f.fileno(), CTL_SIZE) as m:
                m[:] = text + b"\0" * (CTL_SIZE - len(text))

    def clear(self):
        self.set()

    def hits(self):
        with open(self.log, encoding="utf-8", errors="replace") as f:
            return [l.split(" ", 2) for l in f.read().splitlines()]


def faulty_petrel(make_petrel, shim, **kw):
    p = make_petrel(start=False, **kw)
    f = Faults(p.tmpdir)
    env = {"LD_PRELOAD": shim, "FAULTSHIM_CTL": f.ctl,
           "FAULTSHIM_LOG": f.log}
    # gcc's ASan wants its runtime first in the library list; the shim
    # goes first and passes every call on (dlsym RTLD_NEXT).
    asan = os.environ.get("ASAN_OPTIONS", "")
    env["ASAN_OPTIONS"] = (asan + ":" if asan else "") + \
        "verify_asan_link_order=0"
    p.env = dict(p.env or {}, **env)
    p.start()
    return p, f


def make_message(tag, kib=0):
    body = "".join("%s line %05d %s\r\n" % (tag, i, "x" * 50)
                   for i in range(kib * 1024 // 70))
    return ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n"
            "Message-ID: <%s@faults.test>\r\n\r\nbody of %s\r\n%s"
            % (SENDER, ALICE, tag, tag, tag, body)).encode()


def transaction(p, msg, rcpt=ALICE):
    """One transaction; returns (code, last line) of the reply that
    ended it (DATA's own reply when the spool could not open a file)."""
    with p.raw() as c:
        c.read_greeting()
        c.ehlo()
        rcpts = [rcpt] if isinstance(rcpt, str) else rcpt
        for cmd, want in ([("MAIL FROM:<%s>" % SENDER, 250)] +
                          [("RCPT TO:<%s>" % r, 250) for r in rcpts] +
                          [("DATA", 354)]):
            c.send(cmd + "\r\n")
            code, lines = c.reply()
            if code != want:
                return code, lines[-1]
        c.send(msg + b".\r\n")
        code, lines = c.reply()
        # The session goes on: a NOOP answers (no crash, in sync).
        c.send("NOOP\r\n")
        ncode, _ = c.reply()
        assert ncode == 250, "NOOP after %s: %s" % (code, ncode)
        c.send("QUIT\r\n")
        return code, lines[-1]


def owner(p):
    pw = pwd.getpwnam(p.user or "root")
    return pw.pw_uid, pw.pw_gid


def spool_files(p):
    """Every name in queue/ and incoming/."""
    return p.queue_ids("queue") + p.queue_ids("incoming")


def spool_bytes(p, subs=("queue", "incoming")):
    out = b""
    for sub in subs:
        d = os.path.join(p.spool, sub)
        for n in p.queue_ids(sub):
            try:
                with open(os.path.join(d, n), "rb") as f:
                    out += f.read()
            except FileNotFoundError:
                pass
    return out


def assert_refused(code, text, want):
    assert (code, text.split()[0]) == want, \
        "want %s %s, got %s %s" % (want[0], want[1], code, text)


@contextlib.contextmanager
def tmpfs(path, opts, uid, gid):
    os.makedirs(path, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o",
                        "%s,mode=0700,uid=%d,gid=%d" % (opts, uid, gid),
                        "tmpfs", path], capture_output=True, text=True)
    if r.returncode != 0:
        if re.search(r"(?i)permission denied|not permitted|must be "
                     r"superuser", r.stderr):
            pytest.skip("cannot mount tmpfs: %s" % r.stderr.strip())
        raise AssertionError("mount tmpfs on %s: %s" % (path, r.stderr))
    try:
        yield path
    finally:
        if subprocess.run(["umount", path],
                          capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", path], capture_output=True)


def remount(path, mode):
    r = subprocess.run(["mount", "-o", "remount,%s" % mode, path],
                       capture_output=True, text=True)
    assert r.returncode == 0, "remount %s %s: %s" % (mode, path, r.stderr)


def delivered_subjects(p, address=ALICE):
    out = []
    for name in p.maildir_files(address):
        with open(name, "rb") as f:
            m = re.search(rb"(?m)^Subject: (\S+)", f.read())
            out.append(m.group(1).decode() if m else None)
    return sorted(out)


# ---- 1. the spool: fsync, write, truncate and rename errors ----

SPOOL_FAULTS = [
    # (rule, expected reply): the message file's fdatasync, the queue/
    # directory's fsync, the write of the file, the rename into queue/.
    ("fdatasync spool/incoming/ EIO", (451, "4.3.0")),
    ("fdatasync spool/incoming/ ENOSPC", (452, "4.3.1")),
    ("fsync spool/queue EIO", (451, "4.3.0")),
    ("write spool/incoming/ EIO", (451, "4.3.0")),
    ("write spool/incoming/ ENOSPC", (452, "4.3.1")),
    ("write spool/incoming/ EDQUOT", (452, "4.3.1")),
    ("renameat spool/queue/ EIO", (451, "4.3.0")),
]


@pytest.mark.parametrize("rule,want", SPOOL_FAULTS,
                         ids=[r[0].split()[0] + "-" + r[0].split()[2] +
                              ("-dir" if "queue" in r[0] else "")
                              for r in SPOOL_FAULTS])
def test_spool_fault_never_acknowledged(make_petrel, shim, rule, want):
    p, f = faulty_petrel(make_petrel, shim)
    pid = p.proc.pid
    # A message before the fault: queued and delivered.
    code, text = transaction(p, make_message("before"))
    assert code == 250, (code, text)
    p.wait_delivered(ALICE, 1)
    p.wait_queue_empty()

    f.set(rule)
    mark = p.log_mark()
    # Twice: a large message too (several CONTENT records, written by
    # the sync thread while the client still sends).
    for tag, kib in (("faulted", 0), ("faultedbig", 300)):
        code, text = transaction(p, make_message(tag, kib))
        assert_refused(code, text, want)
    call = rule.split()[0]
    assert any(h[0] == call for h in f.hits()), \
        "the fault was never injected: %s" % f.hits()
    p.wait_log(r"spool: (error queue=\S+ |fsync of queue/ )|"
               r"smtp: spool error session=", start=mark)
    # Nothing of it stays anywhere in the spool, and it is never
    # delivered (checked below, after a later message got through).
    wait_until(lambda: not spool_files(p), what="the spool to be empty "
               "(left: %s)" % spool_files(p))
    assert b"faulted" not in spool_bytes(p)

    f.clear()
    msg = make_message("after")
    code, text = transaction(p, msg)
    assert code == 250, "after the fault: %s %s" % (code, text)
    qid = queue_id_from_reply(text)
    wait_until(lambda: len(p.maildir_files(ALICE)) >= 2,
               what="the message after the fault")
    p.wait_queue_empty()
    assert delivered_subjects(p) == ["after", "before"]
    got = [x for x in p.maildir_messages(ALICE) if b"body of after" in x]
    expected_maildir_bytes(SENDER, msg, got[0], queue_id=qid)
    assert p.alive() and p.proc.pid == pid


@pytest.mark.parametrize("rule,want", [
    ("fdatasync spool/incoming/ EIO", (451, "4.3.0")),
    ("write spool/incoming/ ENOSPC", (452, "4.3.1")),
], ids=["fdatasync-EIO", "write-ENOSPC"])
def test_spool_fault_bdat(make_petrel, shim, rule, want):
    """The same over BDAT (RFC 3030): two chunks, the reply to the LAST
    one is the 4xx; the session stays in sync; later messages go."""
    p, f = faulty_petrel(make_petrel, shim)
    f.set(rule)
    msg = make_message("bdat", kib=100)
    half = len(msg) // 2
    with p.raw() as c:
        c.read_greeting()
        c.ehlo()
        c.send("MAIL FROM:<%s>\r\n" % SENDER)
        assert c.reply()[0] == 250
        c.send("RCPT TO:<%s>\r\n" % ALICE)
        assert c.reply()[0] == 250
        c.send(b"BDAT %d\r\n" % half + msg[:half])
        code, lines = c.reply()
        if code == 250:
            c.send(b"BDAT %d LAST\r\n" % (len(msg) - half) + msg[half:])
            code, lines = c.reply()
        assert_refused(code, lines[-1], want)
        f.clear()
        c.send("RSET\r\n")
        assert c.reply()[0] == 250
        c.send("MAIL FROM:<%s>\r\n" % SENDER)
        assert c.reply()[0] == 250
        c.send("RCPT TO:<%s>\r\n" % ALICE)
        assert c.reply()[0] == 250
        c.send(b"BDAT %d LAST\r\n" % len(msg) + msg)
        code, lines = c.reply()
        assert code == 250, lines
        c.send("QUIT\r\n")
    (got,) = p.wait_delivered(ALICE, 1)
    assert b"body of bdat" in got
    assert not spool_files(p)


def test_fsync_error_other_sessions(make_petrel, shim):
    """While the message file's fsync fails, every session gets 451 (none
    a 250 for a file whose data may be gone), in parallel too; the daemon
    serves NOOP throughout, and all succeed once the fault is off."""
    p, f = faulty_petrel(make_petrel, shim)
    f.set("fdatasync spool/incoming/ EIO")
    results = []

    def one(i):
        results.append(transaction(p, make_message("par%d" % i)))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60 * SLOW)
    assert len(results) == 6
    for code, text in results:
        assert_refused(code, text, (451, "4.3.0"))
    assert not spool_files(p)
    f.clear()
    results.clear()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60 * SLOW)
    assert [c for c, _ in results] == [250] * 6, results
    p.wait_delivered(ALICE, 6, timeout=60 * SLOW)
    p.wait_queue_empty()


def stats_reused(p):
    m = None
    for l in p.log_lines:
        m = re.search(r"files_reused=(\d+)", l) or m
    return int(m.group(1)) if m else None


@pytest.mark.parametrize("rule", ["ftruncate spool/incoming/ EIO",
                                  "fdatasync spool/incoming/ EIO"])
def test_reused_spare_fault(make_petrel, shim, rule):
    """A fault while a message is written over a reused spare (a
    delivered message's file): the old content never reaches queue/, the
    old message is not delivered again, the new one gets 451."""
    p, f = faulty_petrel(make_petrel, shim)
    # OLD: a large message, delivered: its file becomes a spare. Then a
    # small one whose commit (queue/ fsync) makes that spare usable.
    old = make_message("oldbig", kib=200)
    assert transaction(p, old)[0] == 250
    p.wait_delivered(ALICE, 1)
    p.wait_queue_empty()
    wait_until(lambda: os.listdir(os.path.join(p.spool, "spare")),
               what="a spare file")
    assert transaction(p, make_message("second"))[0] == 250
    p.wait_delivered(ALICE, 2)
    p.wait_queue_empty()

    f.set(rule)
    code, text = transaction(p, make_message("new"))
    assert_refused(code, text, (451, "4.3.0"))
    hits = [h for h in f.hits() if h[0] == rule.split()[0]]
    assert hits, "no fault injected"
    f.clear()
    wait_until(lambda: not spool_files(p), what="an empty spool")
    # The old content is reachable from no name in queue/ or incoming/.
    assert b"oldbig" not in spool_bytes(p)

    assert transaction(p, make_message("last"))[0] == 250
    wait_until(lambda: len(p.maildir_files(ALICE)) >= 3, what="last")
    p.wait_queue_empty()
    assert delivered_subjects(p) == ["last", "oldbig", "second"]
    assert p.stop() == 0
    # The faulted message really was written over a spare.
    reused = stats_reused(p)
    assert reused is not None and reused >= 1, \
        "no spare was reused (files_reused=%s)" % reused


# ---- 1b. faults during delivery ----

DELIVERY_FAULTS = [
    "write /mail/ EIO",
    "fsync /mail/ EIO",
    # After the link into new/: the fsync of new/ fails, the link is
    # undone (or the retry would deliver it twice).
    "fsync alice/new EIO",
    "link /mail/ EIO",
    "write /mail/ ENOSPC",
]


@pytest.mark.parametrize("rule", DELIVERY_FAULTS,
                         ids=[r.split()[0] + "-" + r.split()[2] +
                              ("-dir" if "new" in r else "")
                              for r in DELIVERY_FAULTS])
def test_maildir_fault_retried(make_petrel, shim, rule):
    p, f = faulty_petrel(make_petrel, shim, extra_conf="retry_initial 1s")
    f.set(rule)
    msg = make_message("deferred", kib=20)
    code, text = transaction(p, msg)
    assert code == 250, (code, text)
    qid = queue_id_from_reply(text)
    # Tried and deferred: the queue file keeps it, with a 4xx reply.
    wait_until(lambda: [h for h in f.hits() if h[0] == rule.split()[0]],
               timeout=30 * SLOW, what="the Maildir fault")
    p.wait_log(r"queue=%s.*(deferred|status=deferred|4\.[23]\.)" % qid,
               timeout=30 * SLOW)
    assert p.queue_ids() == [qid]
    assert p.maildir_files(ALICE) == []
    f.clear()
    (got,) = p.wait_delivered(ALICE, 1, timeout=60 * SLOW)
    expected_maildir_bytes(SENDER, msg, got, queue_id=qid)
    p.wait_queue_empty()
    tmp = os.path.join(p.maildir_path(ALICE), "tmp")
    assert not os.listdir(tmp), "left in tmp/: %s" % os.listdir(tmp)
    # Exactly once, also after a restart (nothing left to deliver).
    p.restart()
    p.signal(signal.SIGUSR1)
    assert len(p.maildir_files(ALICE)) == 1


def test_state_update_fault_never_loses(make_petrel, shim):
    """The spool's in-place STATE update (pwrite + fdatasync on
    queue/ID) fails after a round where one recipient was delivered and
    one deferred: the message stays queued, the deferred recipient is
    delivered once the faults are gone, and the delivered one is not
    delivered again (the daemon keeps its state), never lost."""
    p, f = faulty_petrel(make_petrel, shim, extra_conf="retry_initial 1s")
    blocked = block_maildir(p, BOB)
    f.set("fdatasync spool/queue/ EIO", "pwrite spool/queue/ EIO")
    msg = make_message("stateupd")
    code, text = transaction(p, msg, rcpt=[ALICE, BOB])
    assert code == 250, (code, text)
    qid = queue_id_from_reply(text)
    wait_until(lambda: f.hits(), timeout=30 * SLOW,
               what="a failed STATE update")
    p.wait_log(r"queue=%s.*cannot update" % qid, timeout=30 * SLOW)
    assert len(p.maildir_files(ALICE)) == 1
    assert p.queue_ids() == [qid]
    f.clear()
    os.unlink(blocked)
    p.signal(signal.SIGUSR1)
    (got,) = p.wait_delivered(BOB, 1, timeout=60 * SLOW)
    expected_maildir_bytes(SENDER, msg, got, queue_id=qid)
    p.wait_queue_empty()
    p.restart()
    p.signal(signal.SIGUSR1)
    assert len(p.maildir_files(ALICE)) == 1
    assert len(p.maildir_files(BOB)) == 1


# ---- 3. a read-only spool ----

def test_readonly_spool_while_running(make_petrel):
    p = make_petrel(start=False, extra_conf="retry_initial 1s")
    uid, gid = owner(p)
    with tmpfs(p.spool, "size=8m", uid, gid):
        try:
            p.start()
            pid = p.proc.pid
            code, text = transaction(p, make_message("rw1"))
            assert code == 250, (code, text)
            p.wait_delivered(ALICE, 1)
            p.wait_queue_empty()
            # Queued, not deliverable yet (BOB's Maildir is blocked).
            blocked = block_maildir(p, BOB)
            code, text = transaction(p, make_message("held"), rcpt=BOB)
            assert code == 250, (code, text)
            qid = queue_id_from_reply(text)

            remount(p.spool, "ro")
            mark = p.log_mark()
            for i in range(3):
                code, text = transaction(p, make_message("ro%d" % i))
                assert_refused(code, text, (451, "4.3.0"))
            p.wait_log(r"Read-only file system", start=mark)
            # Delivery while read-only: the Maildir gets it, the spool
            # cannot record it (a duplicate later is allowed, a loss not).
            os.unlink(blocked)
            p.signal(signal.SIGUSR1)
            wait_until(lambda: p.maildir_files(BOB), timeout=30 * SLOW,
                       what="the held message delivered")
            p.wait_log(r"queue=%s cannot remove queue file: Read-only"
                       % qid, timeout=30 * SLOW)
            assert p.queue_ids() == [qid]
            assert p.alive() and p.proc.pid == pid

            remount(p.spool, "rw")
            msg = make_message("rw2")
            code, text = transaction(p, msg)
            assert code == 250, "writable again: %s %s" % (code, text)
            wait_until(lambda: "rw2" in delivered_subjects(p),
                       timeout=30 * SLOW, what="rw2 delivered")
            p.wait_queue_empty(timeout=60 * SLOW)
            assert delivered_subjects(p) == ["rw1", "rw2"]
            # Removed once writable, and not delivered a second time.
            assert delivered_subjects(p, BOB) == ["held"]
            assert qid not in p.queue_ids()
            assert p.proc.pid == pid
        finally:
            if p.alive():
                assert p.stop() == 0


def test_readonly_spool_at_start(make_petrel):
    p = make_petrel(start=False)
    uid, gid = owner(p)
    with tmpfs(p.spool, "size=4m", uid, gid):
        # A spool made by an earlier run, then mounted read-only.
        p.start()
        assert p.stop() == 0
        remount(p.spool, "ro")
        try:
            mark = p.log_mark()
            p.start(wait=False)
            rc = p.proc.wait(timeout=30 * SLOW)
            p._reader.join(timeout=10)
            p.stopped = True
            out = "\n".join(p.log_lines[mark:])
            assert rc == 1, "exit %s on a read-only spool:\n%s" % (rc, out)
            assert "daemon: %s is on a read-only file system: it must be "\
                "writable" % p.spool in out, out
        finally:
            remount(p.spool, "rw")


# ---- 4. damaged queue files ----

def record_spans(data):
    """[(type, start, end)] of the records of a queue file."""
    out, off = [], 0
    while off + 5 <= len(data):
        (n,) = struct.unpack(">I", data[off + 1:off + 5])
        out.append((data[off], off, off + 5 + n + 4))
        off += 5 + n + 4
    assert off == len(data)
    return out


SEED = 8008


def damaged_copies(data):
    """{name: (bytes, expect)}: every truncation, and one byte changed
    (XOR with a random non-zero value, fixed seed) at every offset.
    expect is "corrupt", or "deliver" for a change inside a STATE
    record's payload or CRC (read as a torn write: PENDING, delivered)."""
    rnd = random.Random(SEED)
    out = {}
    for n in range(len(data)):
        out["T%05d" % n] = (data[:n], "corrupt")
    torn = set()
    for typ, start, end in record_spans(data):
        if typ == 0x31:
            torn.update(range(start + 5, end))
    for off in range(len(data)):
        b = bytearray(data)
        b[off] ^= rnd.randrange(1, 256)
        out["F%05d" % off] = (bytes(b), "deliver" if off in torn
                              else "corrupt")
    return out


def test_damaged_queue_files_at_startup(make_petrel):
    """Every truncation and every one-byte change of a real
    queue file, all in one spool, recovered in one start: no crash,
    each damaged file moved byte for byte to corrupt/ with a log line,
    the intact ones delivered. `petrel queue list` reads them too."""
    p = make_petrel(start=False)
    uid, gid = owner(p)
    os.makedirs(p.maildir_root, exist_ok=True)
    with tmpfs(p.spool, "size=256m", uid, gid), \
            tmpfs(p.maildir_root, "size=64m", uid, gid):
        try:
            p.start()
            blocked = block_maildir(p, ALICE)
            msg = make_message("orig")
            code, text = transaction(p, msg)
            assert code == 250, (code, text)
            qid = queue_id_from_reply(text)
            assert p.stop() == 0
            os.unlink(blocked)
            with open(os.path.join(p.spool, "queue", qid), "rb") as fh:
                data = fh.read()
            copies = damaged_copies(data)
            print("queue file of %d bytes, %d damaged copies, seed %d"
                  % (len(data), len(copies), SEED))
            qdir = os.path.join(p.spool, "queue")
            for name, (b, _) in copies.items():
                path = os.path.join(qdir, name)
                with open(path, "wb") as fh:
                    fh.write(b)
                os.chown(path, uid, gid)
                os.chmod(path, 0o600)

            r = subprocess.run([p.command()[0], "queue", "list", "-c",
                                p.conf_path], capture_output=True,
                               timeout=120 * SLOW)
            err = r.stderr.decode("utf-8", "replace")
            print("petrel queue list: exit %d, %s" % (r.returncode,
                                                      err.strip()[-200:]))
            assert r.returncode == 0, "petrel queue list: exit %s: %s" % (
                r.returncode, err[-2000:])
            assert "Sanitizer" not in err and "runtime error" not in err, \
                err[-2000:]
            want_corrupt = {n for n, (_, e) in copies.items()
                            if e == "corrupt"}
            # It reads envelopes, not the content (cheap on a big
            # queue): a change inside a CONTENT record's payload or CRC
            # is found by the daemon's recovery, not by the list.
            in_content = set()
            for typ, start, end in record_spans(data):
                if typ == 0x10:
                    in_content.update("F%05d" % o
                                      for o in range(start + 5, end))
            assert "%d queue files could not be read" % len(
                want_corrupt - in_content) in err, err[-2000:]
            assert qid.encode() in r.stdout

            mark = p.log_mark()
            p.start(timeout=120 * SLOW)
            want_deliver = 1 + sum(1 for _, e in copies.values()
                                   if e == "deliver")
            p.wait_delivered(ALICE, want_deliver, timeout=300 * SLOW)
            p.wait_queue_empty(timeout=60 * SLOW)
            corrupt = set(p.queue_ids("corrupt"))
            assert corrupt == want_corrupt, (
                "unexpected in corrupt/: %s; missing: %s"
                % (sorted(corrupt - want_corrupt)[:20],
                   sorted(want_corrupt - corrupt)[:20]))
            for n in want_corrupt:
                with open(os.path.join(p.spool, "corrupt", n), "rb") as fh:
                    assert fh.read() == copies[n][0], n
            logged = {m.group(1) for l in p.log_lines[mark:]
                      for m in [re.search(r"spool: corrupt queue=(\S+) "
                                          r"moved to corrupt/", l)] if m}
            assert logged == want_corrupt
            for got in p.maildir_messages(ALICE):
                assert b"body of orig" in got
            assert p.alive()
        finally:
            if p.alive():
                assert p.stop() == 0


def state_attempts(path):
    """The attempts field of the first STATE record (docs/queue-format.md:
    index, status, attempts as u32 BE)."""
    with open(path, "rb") as fh:
        data = fh.read()
    for typ, start, end in record_spans(data):
        if typ == 0x31:
            return struct.unpack(">I", data[start + 13:start + 17])[0]
    return 0


def content_span(data):
    for typ, start, end in record_spans(data):
        if typ == 0x10:
            return start, end
    raise AssertionError("no CONTENT record")


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_damaged_while_queued(make_petrel, damage):
    """A queue file that goes bad after start-up (its CONTENT changed, or
    the file cut), found when delivery reads it: moved to corrupt/, the
    daemon goes on and delivers the other messages."""
    # The default retry interval (minutes): no attempt but the first
    # and the one SIGUSR1 asks for, so nothing rewrites the file while
    # the test damages it.
    p = make_petrel()
    blocked = block_maildir(p, ALICE)
    code, text = transaction(p, make_message("victim", kib=8))
    assert code == 250
    qid = queue_id_from_reply(text)
    path = os.path.join(p.spool, "queue", qid)
    wait_until(lambda: state_attempts(path) >= 1, timeout=30 * SLOW,
               what="the first attempt recorded in queue/%s" % qid)
    with open(path, "r+b") as fh:
        data = fh.read()
        start, end = content_span(data)
        if damage == "flip":
            fh.seek(start + 5 + 100)
            fh.write(bytes([data[start + 5 + 100] ^ 0x20]))
        else:
            fh.truncate(start + 5 + 100)
    with open(path, "rb") as fh:
        bad = fh.read()
    os.unlink(blocked)
    p.signal(signal.SIGUSR1)
    p.wait_log(r"spool: corrupt queue=%s moved to corrupt/" % qid,
               timeout=60 * SLOW)
    with open(os.path.join(p.spool, "corrupt", qid), "rb") as fh:
        assert fh.read() == bad
    # The daemon goes on: a new message is delivered.
    code, text = transaction(p, make_message("other", kib=1), rcpt=BOB)
    assert code == 250
    p.wait_delivered(BOB, 1, timeout=30 * SLOW)
    p.wait_queue_empty()
    assert p.maildir_files(ALICE) == []
