"""
test_diskfull.py: a full disk never turns into a lost or half message.

Spool full: the spool is a 2 MiB tmpfs, filled up. A message gets 452 4.3.1
(never 250), nothing of it is left in the spool or delivered; once space is
freed the next message gets 250 and is delivered, with no restart.

Maildir full: the Maildir root is a small full tmpfs. The message is
accepted (250: the spool has room), delivery is deferred, and once space
returns it is delivered, exactly once, with nothing left in tmp/.

Inodes exhausted: the spool is a tmpfs with few inodes, all used up. A new
message gets 452 4.3.1; a message queued before is still delivered; once
inodes are freed, new messages are accepted and delivered, no restart.

Starting on a full spool (no block, no inode left): the daemon starts,
delivers what was queued and refuses new messages with 452 4.3.1 until
space returns.

Spare files: delivered messages' files kept in spare/ for reuse hold disk
space. When the spool is full they are released (unlinked), so the next
message fits: spares never make a full disk permanent.
"""

import contextlib
import errno
import os
import pwd
import re
import signal
import subprocess

import pytest

from harness import (SANITIZE, expected_maildir_bytes, queue_id_from_reply,
                     wait_until)
from queuefile import block_maildir

SENDER = "sender@example.org"
ALICE = "alice@example.test"
BOB = "bob@example.test"
SLOW = 4 if SANITIZE else 1


@contextlib.contextmanager
def small_tmpfs(path, size, uid, gid):
    os.makedirs(path, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o",
                        "size=%s,mode=0700,uid=%d,gid=%d" % (size, uid, gid),
                        "tmpfs", path], capture_output=True, text=True)
    if r.returncode != 0:
        if re.search(r"(?i)permission denied|not permitted|must be "
                     r"superuser", r.stderr):
            pytest.skip("cannot mount tmpfs: %s" % r.stderr.strip())
        raise AssertionError("mount tmpfs on %s failed: %s"
                             % (path, r.stderr))
    try:
        yield path
    finally:
        r = subprocess.run(["umount", path], capture_output=True, text=True)
        if r.returncode != 0:
            subprocess.run(["umount", "-l", path], capture_output=True)


def fill(path):
    """Write a file at path until the file system is full; return it."""
    chunk = b"\0" * 65536
    with open(path, "wb", buffering=0) as f:
        for size in (65536, 4096, 512, 1):
            while True:
                try:
                    f.write(chunk[:size])
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
    st = os.statvfs(os.path.dirname(path))
    assert st.f_bavail * st.f_frsize < 4096, "file system not full"
    return path


def owner(p):
    pw = pwd.getpwnam(p.user or "root")
    return pw.pw_uid, pw.pw_gid


def make_message(tag, kib=64):
    body = "".join("%s line %05d %s\r\n" % (tag, i, "x" * 50)
                   for i in range(kib * 1024 // 70))
    return ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n"
            "Message-ID: <%s@diskfull.test>\r\n\r\n%s"
            % (SENDER, ALICE, tag, tag, body)).encode()


def transaction(p, msg):
    """One transaction; returns the (code, text) that ended it."""
    return transaction_to(p, msg, ALICE)


def transaction_to(p, msg, rcpt):
    with p.raw() as c:
        c.read_greeting()
        c.ehlo()
        c.send("MAIL FROM:<%s>\r\n" % SENDER)
        code, lines = c.reply()
        if code != 250:
            return code, lines[-1]
        c.send("RCPT TO:<%s>\r\n" % rcpt)
        code, lines = c.reply()
        if code != 250:
            return code, lines[-1]
        c.send("DATA\r\n")
        code, lines = c.reply()
        if code != 354:
            return code, lines[-1]
        c.send(msg + b".\r\n")
        code, lines = c.reply()
        c.send("QUIT\r\n")
        return code, lines[-1]


def test_spool_full(make_petrel):
    p = make_petrel(start=False)
    uid, gid = owner(p)
    with small_tmpfs(p.spool, "2m", uid, gid):
        try:
            p.start()
            pid = p.proc.pid
            filler = fill(os.path.join(p.spool, "filler"))
            for i in range(3):
                code, text = transaction(p, make_message("full%d" % i))
                assert (code, text.split()[0]) == (452, "4.3.1"), \
                    "with the spool full: %s %s" % (code, text)
            wait_until(lambda: not p.queue_ids("incoming"),
                       what="incoming/ to be cleaned (left: %s)"
                       % p.queue_ids("incoming"))
            assert not p.queue_ids("queue"), p.queue_ids("queue")

            os.unlink(filler)
            msg = make_message("after")
            code, text = transaction(p, msg)
            assert code == 250, "after freeing space: %s %s" % (code, text)
            qid = queue_id_from_reply(text)
            (got,) = p.wait_delivered(ALICE, 1)
            expected_maildir_bytes(SENDER, msg, got, queue_id=qid)
            assert p.alive() and p.proc.pid == pid, "petrel restarted"
        finally:
            if p.alive():
                assert p.stop() == 0


def test_maildir_full(make_petrel):
    p = make_petrel(start=False, extra_conf="retry_initial 1s")
    uid, gid = owner(p)
    with small_tmpfs(p.maildir_root, "1m", uid, gid):
        try:
            p.start()
            filler = fill(os.path.join(p.maildir_root, "filler"))
            msg = make_message("deferred", kib=128)
            code, text = transaction(p, msg)
            assert code == 250, "Maildir full, spool not: %s %s" % (
                code, text)
            qid = queue_id_from_reply(text)
            # The delivery is tried and deferred: the queue file records
            # an attempt with a 4xx reply, and nothing is in the Maildir.
            qfile = os.path.join(p.spool, "queue", qid)
            wait_until(lambda: deferred_attempts(qfile, p), timeout=30,
                       what="a deferred attempt recorded in queue/%s" % qid)
            assert p.maildir_files(ALICE) == []
            os.unlink(filler)
            (got,) = p.wait_delivered(ALICE, 1, timeout=60)
            expected_maildir_bytes(SENDER, msg, got, queue_id=qid)
            tmp = os.path.join(p.maildir_path(ALICE), "tmp")
            assert not os.listdir(tmp), "left in tmp/: %s" % os.listdir(tmp)
        finally:
            if p.alive():
                assert p.stop() == 0


def fill_inodes(d):
    """Create empty files in d until the file system has no inode left;
    return their paths."""
    os.makedirs(d, exist_ok=True)
    made = []
    while True:
        path = os.path.join(d, "i%06d" % len(made))
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
            break
        os.close(fd)
        made.append(path)
        assert len(made) < 100000, "no inode limit?"
    assert os.statvfs(d).f_favail == 0, "inodes left"
    return made


def test_spool_inodes_exhausted(make_petrel):
    p = make_petrel(start=False, extra_conf="retry_initial 1s")
    uid, gid = owner(p)
    with small_tmpfs(p.spool, "16m,nr_inodes=256", uid, gid):
        try:
            p.start()
            pid = p.proc.pid
            # Acknowledged before the spool fills; not deliverable yet.
            blocked = block_maildir(p, BOB)
            held = make_message("held", kib=4)
            code, text = transaction_to(p, held, BOB)
            assert code == 250, (code, text)
            held_id = queue_id_from_reply(text)

            fillers = fill_inodes(os.path.join(p.spool, "fill"))
            for i in range(3):
                code, text = transaction(p, make_message("noinode%d" % i))
                assert (code, text.split()[0]) == (452, "4.3.1"), \
                    "with no inode left: %s %s" % (code, text)
            assert p.queue_ids("queue") == [held_id]
            assert not p.queue_ids("incoming")

            # Delivered while the spool has no inode left: nothing lost.
            os.unlink(blocked)
            p.signal(signal.SIGUSR1)
            (got,) = p.wait_delivered(BOB, 1, timeout=30 * SLOW)
            expected_maildir_bytes(SENDER, held, got, queue_id=held_id,
                                   rcpt=BOB)

            for f in fillers:
                os.unlink(f)
            msg = make_message("after")
            code, text = transaction(p, msg)
            assert code == 250, "inodes freed: %s %s" % (code, text)
            (got,) = p.wait_delivered(ALICE, 1, timeout=30 * SLOW)
            expected_maildir_bytes(SENDER, msg, got,
                                   queue_id=queue_id_from_reply(text))
            assert p.alive() and p.proc.pid == pid, "petrel restarted"
        finally:
            if p.alive():
                assert p.stop() == 0


def test_spares_released_when_full(make_petrel):
    p = make_petrel(start=False, extra_conf="retry_initial 1s")
    uid, gid = owner(p)
    with small_tmpfs(p.spool, "4m", uid, gid):
        try:
            p.start()
            pid = p.proc.pid
            # Eight messages of 128 KiB queued at once (delivery held
            # back, so none reuses another's file), then delivered: their
            # files stay in spare/ (1 MiB).
            blocked = block_maildir(p, ALICE)
            for i in range(8):
                code, text = transaction(p, make_message("spare%d" % i,
                                                         kib=128))
                assert code == 250, (code, text)
            os.unlink(blocked)
            p.signal(signal.SIGUSR1)
            p.wait_delivered(ALICE, 8, timeout=30 * SLOW)
            spare = os.path.join(p.spool, "spare")
            wait_until(lambda: len(os.listdir(spare)) == 8,
                       what="8 spare files (have %s)" % os.listdir(spare))
            filler = fill(os.path.join(p.spool, "filler"))

            # 512 KiB do not fit: 452, and the spares are released...
            mark = p.log_mark()
            big = make_message("big", kib=512)
            code, text = transaction(p, big)
            assert (code, text.split()[0]) == (452, "4.3.1"), (code, text)
            p.wait_log(r"spool: No space left on device: released \d+ "
                       r"spare files", start=mark)
            assert os.listdir(spare) == []
            assert not p.queue_ids("incoming")
            # ... so the same message fits now, with the filler still
            # there: the full disk was not permanent.
            code, text = transaction(p, big)
            assert code == 250, "after the release: %s %s" % (code, text)
            got = p.wait_delivered(ALICE, 9, timeout=30 * SLOW)
            assert any(b"body of big" in g or b"Subject: big" in g
                       for g in got)
            os.unlink(filler)
            assert p.alive() and p.proc.pid == pid
        finally:
            if p.alive():
                assert p.stop() == 0


def test_start_on_full_spool(make_petrel):
    """Started on a spool with no block and no inode left (a message
    queued before): it starts, delivers the queued message, answers new
    ones 452 4.3.1, and takes them once space returns."""
    p = make_petrel(start=False)
    uid, gid = owner(p)
    with small_tmpfs(p.spool, "2m,nr_inodes=128", uid, gid):
        try:
            p.start()
            blocked = block_maildir(p, ALICE)
            queued = make_message("queued")
            code, text = transaction(p, queued)
            assert code == 250, (code, text)
            qid = queue_id_from_reply(text)
            assert p.stop() == 0
            os.unlink(blocked)
            filler = fill(os.path.join(p.spool, "filler"))
            inodes = fill_inodes(os.path.join(p.spool, "fill"))

            p.start()
            (got,) = p.wait_delivered(ALICE, 1, timeout=30 * SLOW)
            expected_maildir_bytes(SENDER, queued, got, queue_id=qid)
            code, text = transaction(p, make_message("refused", kib=64))
            assert (code, text.split()[0]) == (452, "4.3.1"), (code, text)
            os.unlink(filler)
            for f in inodes:
                os.unlink(f)
            code, text = transaction(p, make_message("later"))
            assert code == 250, (code, text)
            p.wait_delivered(ALICE, 2, timeout=30 * SLOW)
        finally:
            if p.alive():
                assert p.stop() == 0


def deferred_attempts(path, p):
    """Attempts recorded with a 4xx reply in the STATE records of a queue
    file (docs/queue-format.md: type 0x31; index, status, attempts as u32
    BE, next_attempt u64 BE, last reply 256 bytes)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise AssertionError("queue file %s vanished while the Maildir was "
                             "full (treated as permanent?):\n%s"
                             % (path, p.log_tail()))
    off, found = 0, []
    while off + 5 <= len(data):
        typ, n = data[off], int.from_bytes(data[off + 1:off + 5], "big")
        payload = data[off + 5:off + 5 + n]
        if len(payload) != n:
            break
        if typ == 0x31 and n >= 20:
            attempts = int.from_bytes(payload[8:12], "big")
            reply = payload[20:].split(b"\0", 1)[0]
            if attempts >= 1 and reply[:1] == b"4":
                found.append((attempts, reply))
        off += 5 + n + 4
    return found
