"""
powerloss.py: what a power loss at a given moment leaves on disk, from a
log of the daemon's file-system calls (tests/powerloss/fsrecord.c), for
test_powerloss.py.

Trace(path, root, root_ino, snapshot(root)): the recorded calls under
root, as a model of its directories and files, starting from what was
there before (taken as durable). Trace.durable(cut, rng=None): the tree as a
power loss at monotonic time `cut` (nanoseconds) could leave it.
Trace.write_tree(tree, dest, names): that tree on disk.
parse_queue_file(data): a queue file checked as recovery checks it.

The crash model is the conservative POSIX one, not what ext4 happens to
do (its journal orders more than POSIX promises):

- A file's data and size survive as they were when its last fsync or
  fdatasync that ended before the cut began. With rng=None nothing
  written after that survives (the worst case); with an rng each later
  write (cut at 4096-byte boundaries: a torn write) and truncation
  survives or not at random, in order.
- A directory entry (a create, mkdir, rename, link or unlink) survives
  as it was when the directory's last fsync that ended before the cut
  began. With an rng, an entry changed after that takes any one of the
  values it had from then until the cut. A rename is two entries in two
  directories, each on its own (so a file can be left in both or
  neither).
- A directory is there only if its entry in its parent survived.
- A call that had not ended at the cut never happened; a sync only
  counts once it has ended, and only for what had ended before it began.
  A mkdir counts as ended when another mkdir of the same directory
  failed with EEXIST, if that was earlier (the one that made it may
  read the clock late).
"""

import os
import struct
import zlib

BLOCK = 4096


class Node:
    """A file or directory inode of the model."""

    def __init__(self, kind, path=None):
        self.kind = kind        # "file" or "dir"
        self.path = path        # directories: their (fixed) path
        self.events = []        # (end, change)
        self.syncs = []         # (start, end)
        self.initial = {}       # directories: entries before the run
        self.initial_data = b""  # files: content before the run

    def sync_point(self, cut):
        """Start of the last sync that ended before cut, or None."""
        best = None
        for start, end in self.syncs:
            if end < cut and (best is None or start > best):
                best = start
        return best


def snapshot(root):
    """What is under root before the daemon starts, taken as durable:
    [(relative path, "dir" or "file", inode, content)]."""
    out = []
    for d, dirs, files in os.walk(root):
        for name in sorted(dirs) + sorted(files):
            full = os.path.join(d, name)
            st = os.lstat(full)
            rel = os.path.relpath(full, root)
            if os.path.isdir(full):
                out.append((rel, "dir", st.st_ino, None))
            elif os.path.isfile(full):
                with open(full, "rb") as f:
                    out.append((rel, "file", st.st_ino, f.read()))
    return out


class Trace:
    def __init__(self, path, root, root_ino, initial=()):
        self.root = os.path.realpath(root)
        self.rootnode = Node("dir", self.root)
        self.nodes = [self.rootnode]
        self.dirs = {self.root: self.rootnode}
        self.cur = {self.root: {}}      # live names, to follow renames
        self.by_ino = {root_ino: self.rootnode}
        for rel, kind, ino, data in initial:
            full = os.path.join(self.root, rel)
            node = Node(kind, full if kind == "dir" else None)
            self.nodes.append(node)
            if kind == "dir":
                self.dirs[full] = node
                self.cur[full] = {}
            else:
                node.initial_data = data
            parent = self.dirs[os.path.dirname(full)]
            parent.initial[os.path.basename(full)] = node
            self.cur[os.path.dirname(full)][os.path.basename(full)] = node
            self.by_ino[ino] = node
        self.counts = {}
        self.first = self.last = None
        self.problems = []
        self.spare_reuses = 0
        self.exists = []        # (end, path) of mkdirs that found it
        calls = []
        with open(path, "rb") as f:
            for raw in f:
                parts = raw.decode("ascii").split()
                if len(parts) < 5:
                    self.problems.append("short line %r" % raw[:80])
                    continue
                calls.append((int(parts[1]), int(parts[0]), parts[4],
                               parts[5:]))
        # In the order the calls ended: for one name or one file that is
        # the order they took effect (a thread's next call on it starts
        # after the previous ended, and the daemon orders its threads).
        # Except mkdir, taken in the order they began: two threads race
        # to make a Maildir, and the loser (EEXIST, not recorded) goes on
        # into it, maybe before the winner reads the clock at its end.
        # (Each call keeps its end time for the crash model.)
        calls.sort(key=lambda c: c[1] if c[2] == "mkdir" else c[0])
        # A call whose name or inode is still not known waits for the
        # call that makes it.
        pending = []
        for call in calls:
            if not self.apply(call):
                pending.append(call)
                continue
            progress = True
            while pending and progress:
                progress = False
                for c in list(pending):
                    if self.apply(c):
                        pending.remove(c)
                        progress = True
        for end, _start, op, args in pending:
            self.problems.append("%s %s at %d: name or inode unknown"
                                 % (op, " ".join(
                                     self.unhex(a).decode("latin-1")
                                     if op not in ("write", "fsync",
                                                   "fdatasync", "trunc")
                                     and len(a) > 8 else a[:80]
                                     for a in args), end))
        # A mkdir that failed with EEXIST proves the directory was there
        # when it ended: the winner may have read its clock much later.
        for end, path in self.exists:
            node, _names, name = self.parent(path)
            if node is None:
                continue
            node.events = [(min(e, end) if n == name and v is not None and
                            v.kind == "dir" else e, (n, v))
                           for e, (n, v) in node.events]
        # Calls that waited went in late: back in the order they ended.
        for node in self.nodes:
            node.events.sort(key=lambda e: e[0])

    def sync_ends(self):
        """The end of every sync: in the worst case the durable tree
        changes only there, so cutting just after each covers them all."""
        return sorted({end for node in self.nodes for _s, end in node.syncs})

    def apply(self, call):
        end, start, op, args = call
        if not getattr(self, "op_" + op)(start, end, args):
            return False
        self.counts[op] = self.counts.get(op, 0) + 1
        self.first = start if self.first is None else min(self.first, start)
        self.last = end if self.last is None else max(self.last, end)
        return True

    # helpers

    @staticmethod
    def unhex(s):
        return b"" if s == "-" else bytes.fromhex(s)

    def path(self, s):
        return os.path.normpath(self.unhex(s).decode("utf-8", "replace"))

    def parent(self, path):
        d, name = os.path.split(path)
        node = self.dirs.get(d)
        if node is None:
            return None, None, name
        return node, self.cur[d], name

    def known_parent(self, path):
        return self.parent(path)[0] is not None

    def set_entry(self, path, end, value):
        node, names, name = self.parent(path)
        if value is None:
            names.pop(name, None)
        else:
            names[name] = value
        node.events.append((end, (name, value)))

    def lookup(self, path):
        node, names, name = self.parent(path)
        return names.get(name) if node is not None else None

    # the recorded calls: each returns False, changing nothing, when a
    # name or inode it needs is not known (yet)

    def op_open(self, start, end, args):
        ino, flags, path = int(args[1]), int(args[2], 16), \
            self.path(args[3])
        if path == self.root:
            return True
        if not self.known_parent(path):
            return False
        node = self.lookup(path)
        if node is None and not flags & os.O_CREAT:
            return False
        if node is None or (node.kind == "file" and
                            self.by_ino.get(ino) is not node):
            # A new file (or an inode number used again).
            node = Node("file")
            self.nodes.append(node)
            self.set_entry(path, end, node)
        self.by_ino[ino] = node
        if flags & os.O_TRUNC and node.kind == "file":
            node.events.append((end, ("trunc", 0)))
        return True

    def op_mkdirexist(self, start, end, args):
        self.exists.append((end, self.path(args[0])))
        return True

    def op_mkdir(self, start, end, args):
        ino, path = int(args[0]), self.path(args[1])
        if not self.known_parent(path):
            return False
        node = Node("dir", path)
        self.nodes.append(node)
        self.dirs[path] = node
        self.cur[path] = {}
        self.by_ino[ino] = node
        self.set_entry(path, end, node)
        return True

    def op_write(self, start, end, args):
        node = self.by_ino.get(int(args[0]))
        if node is None:
            return False
        node.events.append((end, ("write", int(args[1]),
                                  self.unhex(args[2]))))
        return True

    def op_trunc(self, start, end, args):
        node = self.by_ino.get(int(args[0]))
        if node is None:
            return False
        node.events.append((end, ("trunc", int(args[1]))))
        return True

    def op_fsync(self, start, end, args):
        node = self.by_ino.get(int(args[0]))
        if node is None:
            return False
        node.syncs.append((start, end))
        return True

    op_fdatasync = op_fsync

    def op_rename(self, start, end, args):
        old, new = self.path(args[1]), self.path(args[2])
        node = self.lookup(old)
        if node is None or not self.known_parent(new):
            return False
        self.set_entry(new, end, node)
        self.set_entry(old, end, None)
        if "/spare/" in old and "/incoming/" in new:
            self.spare_reuses += 1
        return True

    def op_link(self, start, end, args):
        old, new = self.path(args[0]), self.path(args[1])
        node = self.lookup(old)
        if node is None or not self.known_parent(new):
            return False
        self.set_entry(new, end, node)
        return True

    def op_unlink(self, start, end, args):
        path = self.path(args[0])
        if not self.known_parent(path):
            return False
        # A name never recorded (the control socket, made by bind())
        # is simply gone.
        self.set_entry(path, end, None)
        return True

    op_rmdir = op_unlink

    # a crash

    def file_data(self, node, cut, rng):
        s = node.sync_point(cut)
        data = bytearray(node.initial_data)

        def apply(change, pieces=False):
            nonlocal data
            if change[0] == "trunc":
                n = change[1]
                data = data[:n] + bytearray(max(0, n - len(data)))
                return
            off, buf = change[1], change[2]
            i = 0
            while i < len(buf):
                # One block at a time: each may or may not be there.
                j = min(len(buf), (off + i) // BLOCK * BLOCK + BLOCK - off)
                if not pieces or rng.random() < 0.5:
                    o = off + i
                    if len(data) < o:
                        data.extend(bytearray(o - len(data)))
                    data[o:o + (j - i)] = buf[i:j]
                i = j

        for end, change in node.events:
            if end >= cut:
                break
            if s is not None and end < s:
                apply(change)
            elif rng is not None and (change[0] == "write" or
                                      rng.random() < 0.5):
                apply(change, pieces=True)
        return bytes(data)

    def dir_entries(self, node, cut, rng):
        s = node.sync_point(cut)
        base, later = dict(node.initial), {}
        for end, (name, value) in node.events:
            if end >= cut:
                break
            if s is not None and end < s:
                base[name] = value
            else:
                later.setdefault(name, []).append(value)
        out = {k: v for k, v in base.items() if v is not None}
        if rng is not None:
            for name, values in later.items():
                v = rng.choice([base.get(name)] + values)
                if v is None:
                    out.pop(name, None)
                else:
                    out[name] = v
        return out

    def durable(self, cut, rng=None):
        """{relative path: bytes or None for a directory}, with a file
        under several names listed under each (the same bytes), plus
        "links": [(first name, other name)]."""
        tree, seen, links, datas = {}, {}, [], {}

        def walk(node, rel):
            for name, child in sorted(self.dir_entries(node, cut,
                                                       rng).items()):
                p = os.path.join(rel, name) if rel else name
                if child.kind == "dir":
                    if id(child) in seen:
                        continue
                    seen[id(child)] = p
                    tree[p] = None
                    walk(child, p)
                else:
                    if id(child) in seen:
                        links.append((seen[id(child)], p))
                        tree[p] = datas[id(child)]
                        continue
                    seen[id(child)] = p
                    datas[id(child)] = self.file_data(child, cut, rng)
                    tree[p] = datas[id(child)]

        walk(self.rootnode, "")
        return tree, links

    @staticmethod
    def write_tree(tree, links, dest, tops, uid, gid, skip=()):
        """Create the parts of tree under the names in tops (e.g. spool,
        mail) below dest, except the paths in skip: directories 0700,
        files 0600, owned by uid:gid; hard links kept."""
        linked = {b: a for a, b in links}
        for p in sorted(tree):
            if p.split("/", 1)[0] not in tops or p in skip:
                continue
            full = os.path.join(dest, p)
            if tree[p] is None:
                os.mkdir(full, 0o700)
            elif p in linked and linked[p].split("/", 1)[0] in tops:
                os.link(os.path.join(dest, linked[p]), full)
                continue
            else:
                fd = os.open(full, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                             0o600)
                try:
                    os.write(fd, tree[p])
                finally:
                    os.close(fd)
            os.chown(full, uid, gid)


# queue files (docs/queue-format.md), checked as spool_recover() does

HEADER, CONTENT, MAIL, CLIENT, PREPEND, RCPT, STATE, END = (
    0x01, 0x10, 0x20, 0x21, 0x22, 0x30, 0x31, 0x7F)


class Corrupt(Exception):
    pass


def parse_queue_file(data):
    """(content bytes, [(status, flags)] per recipient, the queue ID its
    HEADER names) of a queue file, or raise Corrupt where recovery would
    move it to corrupt/. A STATE record whose CRC fails is a torn write:
    that recipient reads as PENDING (0) with no flags."""
    off, recs = 0, []
    while off < len(data):
        if off + 5 > len(data):
            raise Corrupt("record cut short")
        typ = data[off]
        (n,) = struct.unpack(">I", data[off + 1:off + 5])
        if off + 9 + n > len(data):
            raise Corrupt("record cut short")
        payload = data[off + 5:off + 5 + n]
        (crc,) = struct.unpack(">I", data[off + 5 + n:off + 9 + n])
        good = zlib.crc32(data[off:off + 5 + n]) & 0xFFFFFFFF == crc
        if not good and typ != STATE:
            raise Corrupt("bad CRC in record type 0x%02x" % typ)
        recs.append((typ, payload, good, off))
        off += 9 + n
    types = [r[0] for r in recs]
    if not types or types[0] != HEADER or \
            recs[0][1][:8] != b"PETRELQF":
        raise Corrupt("no header")
    if types[-1] != END:
        raise Corrupt("no END")
    i = 1
    content = b""
    while i < len(types) and types[i] == CONTENT:
        content += recs[i][1]
        i += 1
    if types[i:i + 2] != [MAIL, CLIENT]:
        raise Corrupt("no MAIL, CLIENT")
    i += 2
    if i < len(types) and types[i] == PREPEND:
        i += 1
    nr = 0
    while i < len(types) and types[i] == RCPT:
        nr += 1
        i += 1
    states = []
    for k in range(nr):
        if i >= len(types) or types[i] != STATE:
            raise Corrupt("STATE records missing")
        payload, good = recs[i][1], recs[i][2]
        # A torn record reads as PENDING with no flags.
        states.append(struct.unpack(">II", payload[4:8] + payload[1044:1048])
                      if good else (0, 0))
        i += 1
    if i != len(types) - 1:
        raise Corrupt("records out of order")
    end = recs[-1][1]
    if len(end) != 28:
        raise Corrupt("bad END")
    csize, _env, _state, nrcpts = struct.unpack(">QQQI", end)
    if csize != len(content) or nrcpts != nr:
        raise Corrupt("END does not match")
    header = recs[0][1]
    if len(header) < 24:
        raise Corrupt("bad HEADER")
    (n,) = struct.unpack(">I", header[20:24])
    qid = header[24:24 + n].decode("ascii", "replace")
    return content, states, qid
