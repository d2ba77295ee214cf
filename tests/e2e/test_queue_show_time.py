"""
test_queue_show_time.py: `petrel queue show` of a message whose times
localtime() cannot represent (issue 8, found by clang-tidy's review of
unchecked strftime() calls: localtime() returned NULL and the CLI passed it
to strftime(), a crash). The arrival comes from the queue file's CLIENT
record; this test rewrites it, with its CRC, while the daemon is stopped.
"""

import os
import struct
import zlib

from test_queue_cli import peer, queue, send, start, wait_deferred  # noqa: F401

REC_CLIENT = 0x21
# Past year 2^31: glibc's localtime() fails with EOVERFLOW.
HUGE = 1 << 62


def set_arrival(path, arrival):
    """Rewrite the arrival (the first u64 of the CLIENT record) of the queue
    file at path, with a good CRC: type u8, length u32 BE, payload, CRC32
    over the three (docs/queue-format.md)."""
    with open(path, "rb") as f:
        data = bytearray(f.read())
    off = 0
    while off + 5 <= len(data):
        typ = data[off]
        (n,) = struct.unpack(">I", data[off + 1:off + 5])
        if typ == REC_CLIENT:
            data[off + 5:off + 13] = struct.pack(">Q", arrival)
            crc = zlib.crc32(bytes(data[off:off + 5 + n])) & 0xFFFFFFFF
            data[off + 5 + n:off + 9 + n] = struct.pack(">I", crc)
            break
        off += 5 + n + 4
    else:
        raise AssertionError("no CLIENT record in %s" % path)
    with open(path, "r+b") as f:
        f.write(data)


def test_show_arrival_past_localtime(make_petrel, peer):  # noqa: F811
    p = start(make_petrel, peer)
    qid = send(p, ["bob@remote.test"])
    wait_deferred(p, qid)
    p.stop()
    set_arrival(os.path.join(p.spool, "queue", qid), HUGE)
    p.start()
    r = queue(p, "show", qid)
    assert r.returncode == 0, (r.returncode, r.stderr)
    out = r.stdout.decode()
    # The number instead of a date it cannot have.
    assert "Arrival:    %d (%d)\n" % (HUGE, HUGE) in out, out
    assert "Recipient:  <bob@remote.test>" in out
