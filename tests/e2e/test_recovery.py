"""
test_recovery.py: start-up recovery of the spool and delivery retries.

Recovery: with the daemon stopped, spool/queue/ gets a truncated copy of a
real queue file, a garbage file and a valid file, and spool/incoming/ a
half-written file. After a restart the valid message is delivered, the
truncated and garbage files sit byte-identical in spool/corrupt/ with a log
line, incoming/ is empty and the daemon keeps running.

Retry: a message queued while its Maildir cannot be created (the Maildir
path is a regular file) is deferred, and delivered by the scheduler once
the obstacle is gone, without a restart.
"""

import os
import pwd
import re
import struct

from harness import (expected_maildir_bytes, queue_id_from_reply,
                     wait_until)
from queuefile import block_maildir

SENDER = "sender@example.org"
ALICE = "alice@example.test"

# docs/queue-format.md: records of type (1) | length (4, BE) | payload | CRC
# (4); a STATE record (0x31) holds index, status, attempts (u32 BE each),
# next_attempt (u64 BE) and the last reply (256 bytes, NUL-padded).
REC_STATE = 0x31


def queue_file_states(path):
    """[(index, status, attempts, last_reply)] of a queue file, or None
    when the file is gone."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    out = []
    off = 0
    while off + 5 <= len(data):
        typ = data[off]
        (n,) = struct.unpack(">I", data[off + 1:off + 5])
        payload = data[off + 5:off + 5 + n]
        if len(payload) != n:
            break
        if typ == REC_STATE and n >= 20:
            idx, status, attempts = struct.unpack(">III", payload[:12])
            reply = payload[20:].split(b"\0", 1)[0].decode("utf-8",
                                                          "replace")
            out.append((idx, status, attempts, reply))
        off += 5 + n + 4
    return out


def wait_deferred(p, qid, timeout=30):
    """Wait until the queue file of qid records a failed attempt with a
    4xx reply: the delivery was tried and deferred, and the scheduler wrote
    it back to the spool."""
    path = os.path.join(p.spool, "queue", qid)

    def deferred():
        st = queue_file_states(path)
        assert st is not None, (
            "queue file %s vanished while delivery was impossible (treated "
            "as a permanent failure?):\n%s" % (qid, p.log_tail()))
        return [s for s in st if s[2] >= 1 and s[3][:1] == "4"]

    return wait_until(deferred, timeout=timeout,
                      what="a deferred attempt recorded in queue/%s" % qid)


def owner(p):
    pw = pwd.getpwnam(p.user or "root")
    return pw.pw_uid, pw.pw_gid


def make_message(tag):
    return ("From: <%s>\r\nTo: <%s>\r\nSubject: recovery %s\r\n"
            "Message-ID: <%s@recovery.test>\r\n\r\nbody of %s\r\n"
            % (SENDER, ALICE, tag, tag, tag)).encode()


def send(p, msg, rcpt=ALICE):
    with p.smtp() as s:
        s.ehlo()
        code, resp = s.mail(SENDER)
        assert code == 250, (code, resp)
        code, resp = s.rcpt(rcpt)
        assert code == 250, (code, resp)
        code, resp = s.data(msg)
        assert code == 250, (code, resp)
        return queue_id_from_reply(resp.decode())


def sibling_id(qid, taken):
    """A name like qid (same length, same alphabet) that is not taken."""
    for c in qid:
        cand = qid[:-1] + c
        if cand != qid and cand not in taken:
            return cand
    for c in "0123456789ABCDEFGHJKMNPQRSTVWXYZ":
        cand = qid[:-1] + c
        if cand not in taken:
            return cand
    raise AssertionError("no sibling for %s" % qid)


def plant(path, data, uid, gid):
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)
    os.chown(path, uid, gid)


def message_id(data):
    m = re.search(rb"(?im)^Message-ID: (<[^>]*>)", data)
    return m.group(1).decode() if m else None


def test_startup_recovery(make_petrel):
    p = make_petrel(start=False)
    blocked = block_maildir(p, ALICE)
    p.start()
    msgs = [make_message("m%d" % i) for i in range(3)]
    ids = [send(p, m) for m in msgs]
    for qid in ids:
        wait_deferred(p, qid)
    assert p.stop() == 0
    assert set(ids) <= set(p.queue_ids()), (ids, p.queue_ids())

    uid, gid = owner(p)
    valid, trunc, garbage = ids
    qdir = os.path.join(p.spool, "queue")
    with open(os.path.join(qdir, trunc), "rb") as f:
        whole = f.read()
    planted_trunc = whole[:len(whole) // 2]
    plant(os.path.join(qdir, trunc), planted_trunc, uid, gid)
    planted_garbage = b"this is not a queue file\n" * 40
    plant(os.path.join(qdir, garbage), planted_garbage, uid, gid)
    with open(os.path.join(qdir, valid), "rb") as f:
        whole = f.read()
    inc_name = sibling_id(valid, set(ids))
    inc_path = os.path.join(p.spool, "incoming", inc_name)
    plant(inc_path, whole[:len(whole) // 3], uid, gid)

    os.unlink(blocked)
    mark = p.log_mark()
    p.start()

    # The valid message is delivered, the two bad ones are not.
    (got,) = p.wait_delivered(ALICE, 1)
    expected_maildir_bytes(SENDER, msgs[0], got, queue_id=valid)

    corrupt = os.path.join(p.spool, "corrupt")
    for qid, planted in ((trunc, planted_trunc), (garbage, planted_garbage)):
        path = os.path.join(corrupt, qid)
        assert os.path.exists(path), "%s not in corrupt/ (%s)" % (
            qid, os.listdir(corrupt))
        with open(path, "rb") as f:
            assert f.read() == planted, "corrupt/%s was modified" % qid
        p.wait_log(r"(?i)(%s.*corrupt|corrupt.*%s)" % (qid, qid),
                   start=mark)
    wait_until(lambda: not os.listdir(os.path.join(p.spool, "incoming")),
               what="spool/incoming/ to be emptied")
    assert not os.path.exists(inc_path)
    assert p.alive(), "petrel died during recovery:\n" + p.log_tail()

    # Still serving: a new message is accepted and delivered.
    last = make_message("after-recovery")
    qid = send(p, last)
    got = p.wait_delivered(ALICE, 2)
    by_id = {message_id(g): g for g in got}
    assert set(by_id) == {"<m0@recovery.test>",
                          "<after-recovery@recovery.test>"}, list(by_id)
    expected_maildir_bytes(SENDER, last,
                           by_id["<after-recovery@recovery.test>"],
                           queue_id=qid)
    assert sorted(os.listdir(corrupt)) == sorted([trunc, garbage])


def test_retry_after_block_removed(make_petrel):
    p = make_petrel(start=False, extra_conf="retry_initial 1s")
    blocked = block_maildir(p, ALICE)
    p.start()
    msg = make_message("retry")
    qid = send(p, msg)
    wait_deferred(p, qid)
    assert os.path.isfile(blocked)
    assert qid in p.queue_ids()
    os.unlink(blocked)
    (got,) = p.wait_delivered(ALICE, 1, timeout=60)
    expected_maildir_bytes(SENDER, msg, got, queue_id=qid)
    assert p.alive()


def test_failed_mail_is_bounced(make_petrel):
    """A recipient that fails for good must not cost the message: past
    queue_lifetime the sender gets a bounce (RFC 3464), and only then
    does the queue file go. Here the recipient is remote (a trusted
    client relays) and its domain cannot be resolved (no DNS server
    answers), the sender is local; alice is delivered."""
    p = make_petrel(start=False, trusted=("127.0.0.0/8",),
                    extra_conf="queue_lifetime 2s\nretry_initial 1s\n"
                               "delay_warning 0")
    p.start()
    with p.smtp() as s:
        s.sendmail("bob@example.test",
                   ["alice@example.test", "someone@remote.test"],
                   b"Subject: kept\r\n\r\nkeep me\r\n")
    [delivered] = p.wait_delivered("alice@example.test", 1)
    assert b"keep me" in delivered
    [bounce] = p.wait_delivered("bob@example.test", 1, timeout=40)
    assert b"Return-Path: <>" in bounce
    assert b"someone@remote.test" in bounce
    assert b"Action: failed" in bounce
    assert b"Subject: kept" in bounce
    assert p.queue_ids() == []
    assert p.queue_ids("failed") == []
    p.wait_log(r"to=<someone@remote.test> .*status=bounced")
    p.wait_log(r"report=failure to=<bob@example.test>")
    assert p.alive()


