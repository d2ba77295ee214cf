"""
test_diskfull.py: a full disk never turns into a lost or half message.

Spool full: the spool is a 2 MiB tmpfs, filled up. A message gets 452 4.3.1
(never 250), nothing of it is left in the spool or delivered; once space is
freed the next message gets 250 and is delivered, with no restart.

Maildir full: the Maildir root is a small full tmpfs. The message is
accepted (250: the spool has room), delivery is deferred, and once space
returns it is delivered, exactly once, with nothing left in tmp/.
"""

import contextlib
import errno
import os
import pwd
import re
import subprocess

import pytest

from harness import (expected_maildir_bytes, queue_id_from_reply,
                     wait_until)

SENDER = "sender@example.org"
ALICE = "alice@example.test"


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
    with p.raw() as c:
        c.read_greeting()
        c.ehlo()
        c.send("MAIL FROM:<%s>\r\n" % SENDER)
        code, lines = c.reply()
        if code != 250:
            return code, lines[-1]
        c.send("RCPT TO:<%s>\r\n" % ALICE)
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
