"""
queuefile.py: the spool's queue files for the e2e tests that look inside
them (test_chunking.py, test_dsn_params.py, test_recovery.py).

records(path): the records of a queue file (docs/queue-format.md).
block_maildir(p, address): keep a message for address in spool/queue by
making its Maildir path a regular file, so that delivery defers.
"""

import os
import pwd
import struct


def records(path):
    """[(type, payload)] of a queue file: type u8, length u32 BE,
    payload, CRC u32; the file must end after its last record."""
    with open(path, "rb") as f:
        data = f.read()
    out, off = [], 0
    while off + 5 <= len(data):
        typ = data[off]
        (n,) = struct.unpack(">I", data[off + 1:off + 5])
        out.append((typ, data[off + 5:off + 5 + n]))
        off += 5 + n + 4
    assert off == len(data), "trailing bytes in %s" % path
    return out


def block_maildir(p, address):
    """Make the Maildir path of address a regular file so that delivery
    cannot create it: delivery defers and the message stays in
    spool/queue. The directories above belong to the daemon's user, as if
    it had made them. Returns the path (remove it to unblock)."""
    pw = pwd.getpwnam(p.user or "root")
    path = p.maildir_path(address)
    d = os.path.dirname(path)
    os.makedirs(d, exist_ok=True)
    for x in (p.maildir_root, d):
        os.chown(x, pw.pw_uid, pw.pw_gid)
    with open(path, "wb") as f:
        f.write(b"not a maildir\n")
    return path
