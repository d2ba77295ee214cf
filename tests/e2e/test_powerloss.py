"""
test_powerloss.py: nothing acknowledged with 250 is lost in a power loss.

SIGKILL cannot show this: the page cache survives a killed process. So
the daemon runs with tests/powerloss/fsrecord.so preloaded, which logs
every file-system call under the work directory (writes with their
bytes, fsyncs, renames, links, unlinks, mkdirs, each with monotonic start
and end times), while several clients send messages at once and local
delivery empties the queue behind them (files become spares and are
written over by later messages). Every third message also goes to bob,
whose Maildir is blocked: those stay queued, their recipient states
rewritten in place. Each client reads the monotonic clock right after
each 250.

Then, for many cut points (every 250, random moments from a seed that
is printed, and just after every fsync ended), powerloss.py rebuilds the
spool and the Maildirs as a power loss at that moment could leave them:
a file holds only what its last completed fsync covered, a directory
entry only what the directory's last completed fsync covered (the worst
case; plus, for the first two kinds, variants where a random part of the
rest survived, torn writes included). Every message acknowledged before
the cut must be recoverable from that tree: in a Maildir's new/ (byte
for byte), or in a queue file that recovery accepts with that recipient
still pending. Duplicates are allowed and counted; a corrupt queue file,
or one that holds another message than its name says, is not.

For some cut points the real recovery runs too: the rebuilt tree is put
back in place (bob unblocked), petrel starts on it, delivers what is
queued, and the Maildirs must then hold exactly the messages predicted.

test_powerloss_eatmydata_loses runs the same under libeatmydata (fsync a
no-op, loaded before the recorder so that the recorder never sees an
fsync): the checker must then find acknowledged messages lost, and the
real recovery must lose one too. That is the proof that the test can
fail. test_powerloss_half_fsyncs_lose does the same without only the
directory fsyncs, or only the queue files' fdatasync.

PETREL_LONG=1 sends and checks more; PETREL_POWERLOSS_SEED sets the
seed. Sanitizer builds: the recorder is not sanitized and is preloaded
after the sanitizer runtime (verify_asan_link_order=0 for ASan).
"""
import collections
import glob
import os
import pickle
import pwd
import random
import re
import shutil
import signal
import threading
import time

import pytest

from harness import PETREL_BIN, SANITIZE, queue_id_from_reply, wait_until
from powerloss import Corrupt, Trace, parse_queue_file, snapshot
from dnsserver import DNSServer
from queuefile import block_maildir

SENDER = "sender@example.org"
ALICE = "alice@example.test"
BOB = "bob@example.test"
NOMAIL = "x@nomail.test"        # null MX (RFC 7505): bounces at once
LONG = os.environ.get("PETREL_LONG") == "1"
SEED = int(os.environ.get("PETREL_POWERLOSS_SEED", "0") or 0) or \
    random.SystemRandom().randrange(1, 1 << 31)
RECORDER = os.path.join(os.path.dirname(PETREL_BIN), "fsrecord.so")
EATMYDATA = (sorted(glob.glob("/usr/lib/*/libeatmydata.so")) +
             ["/usr/lib/x86_64-linux-gnu/libeatmydata.so"])[0]
CLIENTS = 4
PER_CLIENT = 30 if LONG else 12
RANDOM_CUTS = 120 if LONG else 30
VARIANTS = 4 if LONG else 2         # random-survival variants per cut
DAEMON_CUTS = 40 if LONG else 6     # cuts also checked by real recovery
TAG_RE = re.compile(rb"Message-ID: <(pl-[0-9]+-[0-9]+)@powerloss\.test>")


def make_message(tag, size):
    head = ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n"
            "Message-ID: <%s@powerloss.test>\r\n\r\n" % (SENDER, ALICE, tag,
                                                         tag)).encode()
    line = ("%s %s\r\n" % (tag, "x" * 60)).encode()
    return head + line * max(1, size // len(line))


def sizes(rng):
    # Mostly small; some over 64 KiB (several CONTENT records), so that
    # spares of other lengths are written over and cut.
    return [rng.choice((300, 900, 2500, 9000, 70000, 140000))
            for _ in range(CLIENTS * PER_CLIENT)]


def send_all(p, msgs, acks, lock):
    """CLIENTS sessions at once, each sending PER_CLIENT messages; acks
    gets (tag, queue id, monotonic ns right after the 250)."""
    errors = []

    def client(c):
        try:
            with p.smtp() as s:
                s.ehlo()
                for i in range(PER_CLIENT):
                    tag = "pl-%d-%d" % (c, i)
                    s.mail(sender_of(tag))
                    for r in rcpts_of(tag):
                        code, resp = s.rcpt(r)
                        assert code == 250, resp
                    code, resp = s.data(msgs[tag])
                    t = time.monotonic_ns()
                    assert code == 250, (code, resp)
                    with lock:
                        acks.append((tag, queue_id_from_reply(resp), t))
        except BaseException as e:     # reported below
            errors.append(repr(e))

    ts = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in ts), "client threads stuck"
    assert not errors, errors


def rcpts_of(tag):
    """Every third message goes to bob too (two STATE records); a few
    others to NOMAIL, from alice, who gets the failure report."""
    i = int(tag.rsplit("-", 1)[1])
    if i % 3 == 0:
        return [ALICE, BOB]
    return [ALICE, NOMAIL] if i % 4 == 1 else [ALICE]


def sender_of(tag):
    return ALICE if NOMAIL in rcpts_of(tag) else SENDER


def keys_of(tag):
    """What each recipient of tag must end up as: (user, tag) for a copy
    in user's Maildir, ("alice", "bounce TAG") for the failure report."""
    return [("alice", "bounce " + tag) if r == NOMAIL else
            (r.split("@")[0], tag) for r in rcpts_of(tag)]


def maildir_tag(data, msgs):
    """The tag of a delivered file if it holds that message whole, or
    "bounce TAG" for a failure report that returns its header."""
    m = TAG_RE.search(data)
    if not m:
        return None
    tag = m.group(1).decode()
    if tag not in msgs:
        return None
    if data.startswith(b"Return-Path: <>\n"):
        return "bounce " + tag if b"multipart/report" in data else None
    want = msgs[tag].replace(b"\r\n", b"\n")
    _head, sep, rest = data.partition(b"\nFrom: ")
    return tag if sep and b"From: " + rest == want else None


def recoverable(tree, msgs):
    """Counter of (user, tag) that the Maildirs will hold after recovery
    of a rebuilt tree: the copies already there plus one per pending
    recipient of a queue file that recovery accepts; and the number of
    queue files that are corrupt (recovery moves them to corrupt/) or
    hold another message than their name says."""
    found, corrupt, misnamed = collections.Counter(), 0, 0
    for path, data in tree.items():
        if data is None:
            continue
        parts = path.split("/")
        # mail/example.test/USER/new/NAME
        if parts[0] == "mail" and len(parts) == 5 and \
                parts[3] in ("new", "cur"):
            tag = maildir_tag(data, msgs)
            if tag is not None:
                found[(parts[2], tag)] += 1
        elif parts[:2] == ["spool", "queue"] and len(parts) == 3:
            try:
                content, states, qid = parse_queue_file(data)
            except Corrupt:
                corrupt += 1
                continue
            # A name that came back after its file was reused as a spare
            # for another message (the hazard the spare tickets avoid).
            misnamed += qid != parts[2]
            m = TAG_RE.search(content)
            tag = m.group(1).decode() if m else None
            if tag is None or tag not in msgs:
                continue
            # The content is Petrel's Received header, then the message.
            _head, sep, rest = content.partition(b"\r\nFrom: ")
            if not sep or b"From: " + rest != msgs[tag]:
                # A failure report for alice, waiting for delivery.
                if b"multipart/report" in content and states[0][0] == 0:
                    found[("alice", "bounce " + tag)] += 1
                continue
            for key, (status, flags) in zip(keys_of(tag), states):
                # PENDING is delivered (or bounced); FAILED without the
                # "report queued" flag gets its report at start-up.
                if status == 0 or (key[1].startswith("bounce ") and
                                   status == 2 and not flags & 0x01):
                    found[key] += 1
    return found, corrupt + misnamed


def delivered_counts(p, msgs):
    found = collections.Counter()
    for f in p.all_maildir_files():
        with open(f, "rb") as fh:
            tag = maildir_tag(fh.read(), msgs)
        if tag is not None:
            user = os.path.basename(os.path.dirname(os.path.dirname(f)))
            found[(user, tag)] += 1
    return found


@pytest.fixture
def dns():
    with DNSServer() as srv:
        srv.add("nomail.test", "MX", "0 .")
        yield srv


def wanted(acks, cut):
    """keys_of() every message acknowledged before cut."""
    return {k for tag, _q, t in acks if t <= cut for k in keys_of(tag)}


def deferred_to_bob(p):
    rx = re.compile(r"delivery: rcpt queue=(\S+) to=<%s>.*status=deferred"
                    % re.escape(BOB))
    with p._cond:
        return {m.group(1) for m in map(rx.search, p.log_lines) if m}


def record_run(make_petrel, tmp_path, dns, preload, drop=None):
    log = str(tmp_path / "fs.log")
    env = {"LD_PRELOAD": preload, "FSRECORD_LOG": log}
    if drop is not None:
        env["FSRECORD_DROP"] = drop
    if SANITIZE:
        env["ASAN_OPTIONS"] = (os.environ.get("ASAN_OPTIONS", "") +
                               ":verify_asan_link_order=0").lstrip(":")
    # Trusted: the clients relay to nomail.test.
    p = make_petrel(start=False, env=env, dns=dns.addr,
                    trusted=("127.0.0.0/8",),
                    extra_conf="max_connections_per_ip 50\n")
    env["FSRECORD_ROOT"] = p.tmpdir
    # bob's Maildir cannot be made: his copies stay queued, and their
    # recipient states are rewritten in place (alice delivered, bob
    # deferred) while the rest of the spool turns over.
    block_maildir(p, BOB)
    root_ino = os.stat(p.tmpdir).st_ino
    before = snapshot(p.tmpdir)
    p.start()
    rng = random.Random(SEED)
    tags = ["pl-%d-%d" % (c, i) for c in range(CLIENTS)
            for i in range(PER_CLIENT)]
    msgs = {t: make_message(t, n) for t, n in zip(tags, sizes(rng))}
    acks, lock = [], threading.Lock()
    send_all(p, msgs, acks, lock)
    assert len(acks) == len(tags)
    for_bob = [t for t in tags if BOB in rcpts_of(t)]
    bounced = [t for t in tags if NOMAIL in rcpts_of(t)]
    assert bounced and for_bob
    wait_until(lambda: len(p.maildir_files(ALICE)) >= len(tags) +
               len(bounced) and
               len(p.queue_ids()) == len(for_bob) and
               len(deferred_to_bob(p)) >= len(for_bob), timeout=120,
               what="alice's copies and reports delivered, bob's deferred")
    assert p.stop() == 0
    # Everything to replay it by hand: Trace(fs.log, *run.pickle[:3]).
    with open(str(tmp_path / "run.pickle"), "wb") as f:
        pickle.dump((p.tmpdir, root_ino, before, msgs, acks), f)
    trace = Trace(log, p.tmpdir, root_ino, before)
    assert not trace.problems, trace.problems[:10]
    return p, trace, msgs, acks


def cut_points(trace, acks, rng):
    cuts = [("ack %s" % tag, t) for tag, _qid, t in sorted(
        acks, key=lambda a: a[2])]
    for i in range(RANDOM_CUTS):
        cuts.append(("random %d" % i, rng.randrange(trace.first,
                                                    trace.last + 1)))
    return cuts


def check_cuts(trace, msgs, acks, rng, variants=VARIANTS):
    """Check every cut point (with random variants) and, in the worst
    case only, the moment just after every sync ended; returns (cuts,
    losses, stats)."""
    losses, dups, corrupt, checked, most, with_dups = [], 0, 0, 0, 0, 0
    cuts = cut_points(trace, acks, rng)
    syncs = [("after sync %d" % i, end + 1)
             for i, end in enumerate(trace.sync_ends())]
    todo = [(n, c, variants) for n, c in cuts] + [(n, c, 0) for n, c in syncs]
    for name, cut, nvariants in todo:
        acked = wanted(acks, cut)
        for v in range(nvariants + 1):
            vr = None if v == 0 else random.Random(rng.random())
            tree, _links = trace.durable(cut, vr)
            found, bad = recoverable(tree, msgs)
            checked += 1
            corrupt += bad
            d = sum(k - 1 for k in found.values() if k > 1)
            dups += d
            most = max(most, d)
            with_dups += d > 0
            for key in sorted(acked - set(found)):
                losses.append((name, cut, v, key))
    return cuts, losses, {"cuts": len(todo), "trees": checked,
                          "duplicates": dups, "trees_with_duplicates":
                          with_dups, "most_duplicates_in_a_tree": most,
                          "corrupt": corrupt}


def recover_for_real(p, trace, cut, variant_seed, msgs):
    """Put the tree of that cut in place, run petrel on it until its
    queue is empty, and return what the Maildirs hold."""
    vr = None if variant_seed is None else random.Random(variant_seed)
    tree, links = trace.durable(cut, vr)
    shutil.rmtree(p.spool, ignore_errors=True)
    shutil.rmtree(p.maildir_root, ignore_errors=True)
    pw = pwd.getpwnam(p.user)
    # Without the file that blocked bob's Maildir: everything drains.
    block = os.path.relpath(p.maildir_path(BOB), p.tmpdir)
    Trace.write_tree(tree, links, p.tmpdir, ("spool", "mail"), pw.pw_uid,
                     pw.pw_gid, skip={block})
    predicted, _bad = recoverable(tree, msgs)
    p.env = None
    p.start()

    def drained():
        # Deferred recipients wait for their retry time: ask again.
        p.signal(signal.SIGUSR1)
        return not p.queue_ids()
    wait_until(drained, timeout=60, interval=0.2, what="the queue to drain")
    assert p.stop() == 0
    return predicted, delivered_counts(p, msgs)


def need_recorder():
    if not os.path.exists(RECORDER):
        pytest.skip("no %s (build it: make)" % RECORDER)


def test_powerloss(make_petrel, tmp_path, dns):
    need_recorder()
    started = time.monotonic()
    print("test_powerloss: seed %d (PETREL_POWERLOSS_SEED), PETREL_LONG=%s"
          % (SEED, LONG))
    p, trace, msgs, acks = record_run(make_petrel, tmp_path, dns, RECORDER)
    print("recorded calls:", sorted(trace.counts.items()))
    # The run must have exercised what it is meant to: group commits
    # and spare files written over by later messages.
    assert trace.spare_reuses > 0, \
        "no spare file was reused: the test lost its point"
    assert trace.counts.get("fdatasync", 0) > 0
    rng = random.Random(SEED)
    cuts, losses, st = check_cuts(trace, msgs, acks, rng)
    # After the last call every message is there (the last ones maybe
    # twice: their names left queue/ without a fsync of queue/).
    tree, _ = trace.durable(trace.last + 1)
    found, _ = recoverable(tree, msgs)
    assert set(found) == wanted(acks, trace.last + 1), \
        "the model of the whole run disagrees with what was delivered"
    print("power-loss check:", st, "spares reused:", trace.spare_reuses)
    assert not losses, "acknowledged messages lost (cut, variant, " \
        "(user, tag)), seed %d: %s" % (SEED, losses[:20])
    # Only a torn STATE record may differ from what was written; a queue
    # file is never cut short, and a name never points at another
    # message's file.
    assert st["corrupt"] == 0, "corrupt or misnamed queue files: %s, " \
        "seed %d" % (st, SEED)
    # The real recovery path agrees with the model on some cuts.
    pick = random.Random(SEED + 1)
    chosen = pick.sample(cuts, min(DAEMON_CUTS, len(cuts)))
    for name, cut in chosen:
        vseed = pick.random() if pick.random() < 0.5 else None
        predicted, got = recover_for_real(p, trace, cut, vseed, msgs)
        acked = wanted(acks, cut)
        assert acked <= set(got), (name, sorted(acked - set(got)))
        assert got == predicted, (name, "recovery delivered", got,
                                  "model predicted", predicted)
        print("real recovery at %s: %d acknowledged, %d in the Maildirs"
              % (name, len(acked), sum(got.values())))
    print("test_powerloss: %d cut points, %d trees, %d messages, %d "
          "duplicates, %d real recoveries, %.1f s"
          % (st["cuts"], st["trees"], len(msgs), st["duplicates"],
             len(chosen), time.monotonic() - started))


def check_finds_loss(make_petrel, tmp_path, dns, preload, drop=None):
    """Record with fsyncs (some or all) not done: the checker must find
    acknowledged messages lost, and the real recovery of the first such
    cut must lose one too."""
    p, trace, msgs, acks = record_run(make_petrel, tmp_path, dns, preload,
                                      drop)
    print("recorded calls:", sorted(trace.counts.items()))
    cuts, losses, st = check_cuts(trace, msgs, acks, random.Random(SEED),
                                  variants=0)
    print("power-loss check:", st, "losses:", len(losses))
    assert losses, "the checker found no loss although fsyncs were skipped"
    name, cut, _v, _key = losses[0]
    predicted, got = recover_for_real(p, trace, cut, None, msgs)
    assert got == predicted, (name, got, predicted)
    assert not wanted(acks, cut) <= set(got), \
        "the real recovery lost nothing at %s" % name
    return trace


def test_powerloss_eatmydata_loses(make_petrel, tmp_path, dns):
    """Under libeatmydata (fsync and fdatasync succeed without doing
    anything) acknowledged messages are lost: the test can fail. The
    eatmydata wrapper would append its library after ours, so that we
    would record fsyncs it then drops: we put it first ourselves."""
    need_recorder()
    if not os.path.exists(EATMYDATA):
        pytest.skip("no %s (apt-get install eatmydata)" % EATMYDATA)
    trace = check_finds_loss(make_petrel, tmp_path, dns,
                             EATMYDATA + " " + RECORDER)
    assert trace.counts.get("fsync", 0) == 0 and \
        trace.counts.get("fdatasync", 0) == 0, trace.counts


@pytest.mark.parametrize("drop", ["dirs", "fdatasync"])
def test_powerloss_half_fsyncs_lose(make_petrel, tmp_path, dns, drop):
    """Without the directory fsyncs alone, or the queue files' fdatasync
    alone, messages are lost too: the checker sees each half of the
    protocol."""
    need_recorder()
    check_finds_loss(make_petrel, tmp_path, dns, RECORDER, drop)
