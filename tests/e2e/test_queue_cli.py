"""
test_queue_cli.py: queue control (issue 6): `petrel queue ...` and `mailq`
over the daemon's control socket (src/daemon/control.c), and on the spool
directly when no daemon runs; the spool lock.

Every daemon relays for 127.0.0.0/8 through a relayhost, an SMTPPeer that
answers RCPT with 451 until a test lets it accept: messages stay queued
(retry_initial 1h, so only a flush or a restart retries them).

The mailq text is compared with what a real Postfix 3.7 printed for the
same kind of queue (tests/data/postfix-mailq/, captured by capture.sh in
that directory: Postfix in its own network namespace, messages deferred
with "Network is unreachable", one on hold): the same heading byte for
byte, and every line of ours of one of the shapes Postfix's lines have,
in the same columns.
"""

import json
import os
import pwd
import re
import signal
import stat
import subprocess
import time

import pytest

from harness import PETREL_BIN, SOURCE_DIR, Petrel, wait_until
from smtppeer import SMTPPeer

SENDER = "alice@example.test"
DEFER = "451 4.3.0 try again later"
POSTFIX_DIR = os.path.join(SOURCE_DIR, "tests", "data", "postfix-mailq")
HEADING = ("----Queue ID----- --Size-- ---Arrival Time---- "
           "--Sender/Recipient------")

# The shapes of Postfix's long-queue-ID layout (postqueue -p), by line.
ID_LINE = re.compile(r"^(?P<id>[0-9A-Za-z]{16,17})(?P<st>[*!]?) +"
                     r"(?P<size>\d+) (?P<date>[A-Z][a-z]{2} [A-Z][a-z]{2} "
                     r"[ \d]\d \d\d:\d\d:\d\d) (?P<sender>\S+)$")
REASON_LINE = re.compile(r"^ *\((?P<why>.*)\)$")
RCPT_LINE = re.compile(r"^ {47}(?P<rcpt>\S+)$")
TOTAL_LINE = re.compile(r"^-- (?P<kb>\d+) Kbytes in (?P<n>\d+) "
                        r"Requests?\.$")


@pytest.fixture
def peer():
    with SMTPPeer(port=0) as srv:
        srv.rcpt_default_reply = DEFER
        yield srv


def start(make_petrel, peer, **kw):
    conf = ("relayhost [%s]:%d\nretry_initial 1h\nretry_max 2h\n"
            "delay_warning 0\nclient_timeout_connect 3s\n"
            "client_timeout_command 3s\n" % (peer.addr, peer.port))
    kw.setdefault("trusted", ("127.0.0.0/8",))
    return make_petrel(extra_conf=conf, **kw)


def send(p, rcpts, body=b"Subject: queued\r\n\r\nhello\r\n", sender=SENDER):
    with p.smtp() as s:
        s.ehlo()
        assert s.mail(sender)[0] == 250
        for r in rcpts:
            assert s.rcpt(r)[0] == 250
        code, resp = s.data(body)
        assert code == 250, (code, resp)
    m = re.search(r"queued as (\S+)", resp.decode())
    return m.group(1)


def wait_deferred(p, qid, n=1):
    wait_until(lambda: sum(1 for l in p.log_lines
                           if "queue=%s " % qid in l and
                           "status=deferred" in l) >= n,
               what="%s deferred" % qid)


def queue(p, *args, user=None, conf=True):
    cmd = [PETREL_BIN, "queue"] + list(args)
    if conf:
        cmd += ["-c", p.conf_path]
    if user is not None:
        pw = pwd.getpwnam(user)
        cmd = ["setpriv", "--reuid", str(pw.pw_uid), "--regid",
               str(pw.pw_gid), "--clear-groups"] + cmd
    return subprocess.run(cmd, capture_output=True, timeout=120)


def mailq(p, via="petrel"):
    if via == "link":
        link = os.path.join(p.tmpdir, "mailq")
        if not os.path.exists(link):
            os.symlink(PETREL_BIN, link)
        cmd = [link, "-C", p.conf_path]
    else:
        cmd = [PETREL_BIN, "mailq", "-c", p.conf_path]
    r = subprocess.run(cmd, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.decode()


def listing(p):
    r = queue(p, "list", "--json")
    assert r.returncode == 0, r.stderr
    return {m["queue_id"]: m for m in map(json.loads,
                                          r.stdout.decode().splitlines())}


def parse_mailq(text):
    """{id: (status, size, sender, [(reason, rcpt)])} from mailq text,
    checking every line against Postfix's shapes as it goes."""
    lines = text.split("\n")
    assert lines[-1] == "", "no final newline"
    lines = lines[:-1]
    if lines == ["Mail queue is empty"]:
        return {}
    assert lines[0] == HEADING
    assert lines[-2] == ""
    total = TOTAL_LINE.match(lines[-1])
    assert total, lines[-1]
    out, cur, why, sizes = {}, None, None, 0
    for line in lines[1:-2]:
        if line == "":
            assert cur is not None
            cur = None
            continue
        m = ID_LINE.match(line)
        if m:
            assert cur is None, "no blank line before %r" % line
            # Postfix's columns: ID 17 wide, size right-aligned in 8.
            assert line[17] == " " and line[26] == " " and line[46] == " "
            assert line[:17].rstrip() == m.group("id") + m.group("st")
            assert line[18:26].strip() == m.group("size")
            cur = m.group("id")
            out[cur] = (m.group("st"), int(m.group("size")),
                        m.group("sender"), [])
            sizes += int(m.group("size"))
            why = None
            continue
        m = REASON_LINE.match(line)
        if m:
            assert cur is not None
            # "(...)" ends in column 78 unless the reason is longer.
            assert len(line) == 78 or line.startswith("(")
            why = m.group("why")
            continue
        m = RCPT_LINE.match(line)
        assert m, "line of no Postfix shape: %r" % line
        assert cur is not None
        out[cur][3].append((why, m.group("rcpt")))
    assert int(total.group("n")) == len(out)
    assert int(total.group("kb")) == sizes // 1024
    assert total.group(0).endswith("Request.") == (len(out) == 1)
    return out


def test_postfix_reference_parses():
    """The checker itself: Postfix's own output passes it, and it refuses
    the short-ID layout (its columns differ)."""
    with open(os.path.join(POSTFIX_DIR, "long-ids.txt")) as f:
        got = parse_mailq(f.read())
    assert len(got) == 3
    assert sum(1 for v in got.values() if v[0] == "!") == 1
    assert any(v[2] == "MAILER-DAEMON" and len(v[3]) == 2
               for v in got.values())
    with open(os.path.join(POSTFIX_DIR, "empty.txt")) as f:
        assert parse_mailq(f.read()) == {}
    with open(os.path.join(POSTFIX_DIR, "short-ids.txt")) as f:
        with pytest.raises(AssertionError):
            parse_mailq(f.read())


def test_mailq_format(make_petrel, peer):
    """Two deferred messages (one from <> with two recipients), one held:
    mailq prints them in Postfix's layout; `mailq` as a link and `petrel
    queue list` print the same."""
    p = start(make_petrel, peer)
    assert mailq(p) == "Mail queue is empty\n"
    a = send(p, ["bob@remote.test"])
    b = send(p, ["carol@remote.test", "dave@other.test"], sender="")
    c = send(p, ["erin@remote.test"], sender="held@example.test")
    for qid, n in ((a, 1), (b, 2), (c, 1)):
        wait_deferred(p, qid, n)
    r = queue(p, "hold", c)
    assert r.returncode == 0, r.stderr
    text = mailq(p)
    got = parse_mailq(text)
    assert set(got) == {a, b, c}
    assert got[a][0] == "" and got[b][0] == "" and got[c][0] == "!"
    assert got[a][2] == SENDER and got[b][2] == "MAILER-DAEMON"
    assert [r for _, r in got[b][3]] == ["carol@remote.test",
                                         "dave@other.test"]
    # The reason once per run of equal reasons, as Postfix prints it.
    assert text.count("(%s" % DEFER) == 3, text
    assert all(why.startswith(DEFER) for _, rc in got.items()
               for why, _ in rc[3])
    js = listing(p)
    for qid in (a, b, c):
        assert got[qid][1] == js[qid]["message_size"]
    assert mailq(p, via="link") == text
    r = queue(p, "list")
    assert r.returncode == 0 and r.stdout.decode() == text
    # The heading is Postfix's, byte for byte.
    with open(os.path.join(POSTFIX_DIR, "long-ids.txt")) as f:
        assert text.splitlines()[0] == f.readline().rstrip("\n")


def test_json_and_show(make_petrel, peer):
    p = start(make_petrel, peer)
    qid = send(p, ["bob@remote.test"],
               body=b"Subject: show me\r\n\r\nthe body\r\n")
    wait_deferred(p, qid)
    now = time.time()
    js = listing(p)
    m = js[qid]
    assert m["queue_name"] == "deferred"
    assert m["sender"] == SENDER
    assert abs(m["arrival_time"] - now) < 600
    [r] = m["recipients"]
    assert r["address"] == "bob@remote.test"
    assert r["delay_reason"].startswith(DEFER)
    assert r["waiting"] == "retry"
    assert r["attempts"] == 1
    assert r["next_attempt"] > now + 600
    assert r["last_attempt"] > 0
    s = queue(p, "show", qid)
    assert s.returncode == 0, s.stderr
    out = s.stdout.decode()
    assert "Queue ID:   %s" % qid in out
    assert "Sender:     <%s>" % SENDER in out
    assert "Recipient:  <bob@remote.test>" in out
    assert "Client:     127.0.0.1\n" in out and "HELO:       " in out
    assert "waiting: retry" in out and DEFER in out
    assert "\nSubject: show me\n\nthe body\n" in out
    bad = queue(p, "show", "NOSUCHMESSAGE00")
    assert bad.returncode == 1 and b"no message" in bad.stderr


def test_flush(make_petrel, peer):
    """flush ID and flush --domain retry now; the peer then accepts."""
    p = start(make_petrel, peer)
    a = send(p, ["bob@remote.test"])
    b = send(p, ["carol@other.test"])
    wait_deferred(p, a)
    wait_deferred(p, b)
    peer.rcpt_default_reply = "250 2.1.5 ok"
    r = queue(p, "flush", a)
    assert r.returncode == 0, r.stderr
    peer.wait_messages(1)
    wait_until(lambda: a not in p.queue_ids(), what="a delivered")
    assert b in p.queue_ids()
    r = queue(p, "flush", "--domain", "other.test")
    assert r.returncode == 0, r.stderr
    peer.wait_messages(2)
    p.wait_queue_empty()
    assert mailq(p) == "Mail queue is empty\n"


def test_hold_release_across_restart(make_petrel, peer):
    p = start(make_petrel, peer)
    qid = send(p, ["bob@remote.test"])
    wait_deferred(p, qid)
    r = queue(p, "hold", qid)
    assert r.returncode == 0, r.stderr
    assert listing(p)[qid]["queue_name"] == "hold"
    assert listing(p)[qid]["recipients"][0]["waiting"] == "hold"
    p.wait_log(r"info: queue: held queue=%s \(by the administrator\)$" %
               qid)
    peer.rcpt_default_reply = "250 2.1.5 ok"
    mark = p.log_mark()
    p.restart()
    # Held: not tried at start-up, nor by a flush.
    p.wait_log(r"queue: held queue=%s \(on hold since before the start\)"
               % qid, start=mark)
    assert queue(p, "flush").returncode == 0
    r = queue(p, "flush", qid)
    assert r.returncode == 1 and b"on hold" in r.stderr
    assert parse_mailq(mailq(p))[qid][0] == "!"
    assert peer.messages == []
    r = queue(p, "release", qid)
    assert r.returncode == 0, r.stderr
    p.wait_log(r"info: queue: released queue=%s \(by the administrator\)$"
               % qid)
    peer.wait_messages(1)
    p.wait_queue_empty()
    r = queue(p, "release", qid)
    assert r.returncode == 1


def test_delete(make_petrel, peer):
    p = start(make_petrel, peer)
    a = send(p, ["bob@remote.test"])
    b = send(p, ["carol@remote.test"], sender="other@example.test")
    c = send(p, ["dave@remote.test"])
    d = send(p, ["erin@remote.test"])
    for qid in (a, b, c, d):
        wait_deferred(p, qid)
    r = queue(p, "delete", a)
    assert r.returncode == 0, r.stderr
    assert a not in p.queue_ids()
    r = queue(p, "delete", "--sender", "other@example.test")
    assert r.returncode == 0, r.stderr
    r = queue(p, "delete", "--recipient", "DAVE@remote.test")
    assert r.returncode == 0, r.stderr
    assert p.queue_ids() == [d]
    e = send(p, ["fred@remote.test"], sender="")
    wait_deferred(p, e)
    r = queue(p, "delete", "--sender", "<>")
    assert r.returncode == 0 and b"1 message deleted" in r.stdout, r
    assert p.queue_ids() == [d]
    p.restart()
    assert set(parse_mailq(mailq(p))) == {d}
    r = queue(p, "delete", "--all")
    assert r.returncode == 0, r.stderr
    assert p.queue_ids() == []
    r = queue(p, "delete", a)
    assert r.returncode == 1 and b"no message" in r.stderr
    assert peer.messages == []


def test_bounce(make_petrel, peer):
    """bounce ID: the local sender gets a failure report naming the
    administrator; the message leaves the queue."""
    p = start(make_petrel, peer)
    qid = send(p, ["bob@remote.test"])
    wait_deferred(p, qid)
    r = queue(p, "bounce", qid)
    assert r.returncode == 0, r.stderr
    p.wait_log(r"info: queue: bounced queue=%s recipients=1 \(by the "
               r"administrator\)$" % qid)
    p.wait_delivered(SENDER, 1)
    [raw] = p.maildir_messages(SENDER)
    assert b"delivery cancelled by the administrator" in raw
    assert b"bob@remote.test" in raw
    assert mailq(p) == "Mail queue is empty\n"


def test_permissions(make_petrel, peer):
    """The socket is 0660 petrel:petrel: nobody cannot connect; with the
    file opened up, the daemon itself refuses nobody (SO_PEERCRED) and
    logs it; the daemon's user may."""
    p = start(make_petrel, peer)
    sock = os.path.join(p.tmpdir, "run", "control")
    st = os.stat(sock)
    assert stat.S_IMODE(st.st_mode) == 0o660
    assert st.st_uid == pwd.getpwnam("petrel").pw_uid
    r = queue(p, "list", user="nobody")
    assert r.returncode == 4, (r.returncode, r.stderr)
    assert b"Permission denied" in r.stderr
    os.chmod(sock, 0o666)
    mark = p.log_mark()
    r = queue(p, "list", user="nobody")
    assert r.returncode == 4, (r.returncode, r.stderr)
    assert b"only root" in r.stderr
    p.wait_log(r"control: refused uid=%d" % pwd.getpwnam("nobody").pw_uid,
               start=mark)
    r = queue(p, "list", user="petrel")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"Mail queue is empty\n"


def test_offline_list_and_delete(make_petrel, peer):
    p = start(make_petrel, peer)
    a = send(p, ["bob@remote.test"])
    b = send(p, ["carol@remote.test"])
    wait_deferred(p, a)
    wait_deferred(p, b)
    r = queue(p, "hold", b)
    assert r.returncode == 0
    online = parse_mailq(mailq(p))
    assert p.stop() == 0
    assert not os.path.exists(os.path.join(p.tmpdir, "run", "control"))
    offline = parse_mailq(mailq(p))
    assert offline == online
    js = listing(p)
    assert js[b]["queue_name"] == "hold"
    r = queue(p, "flush")
    assert r.returncode == 3 and b"not running" in r.stderr
    r = queue(p, "delete", a)
    assert r.returncode == 0, r.stderr
    assert p.queue_ids() == [b]
    p.start()
    assert set(parse_mailq(mailq(p))) == {b}


def test_two_daemons_one_spool(make_petrel, peer):
    p = start(make_petrel, peer)
    p2 = start(make_petrel, peer, start=False)
    p2.spool = p.spool
    p2.write_conf()
    mark = p2.log_mark()
    p2.start(wait=False)
    assert p2.proc.wait(timeout=60) == 1
    p2.stopped = True
    p2.wait_log(r"spool %s is in use by another petrel serve \(pid %d\)"
                % (re.escape(p.spool), p.proc.pid), start=mark)
    assert p.alive()
    assert mailq(p) == "Mail queue is empty\n"


def test_active_message_waits_for_its_round(make_petrel, peer):
    """A message in a delivery round is listed with "*" (queue_name
    active); a delete waits for the round to end, then removes it."""
    p = start(make_petrel, peer)
    qid = send(p, ["bob@remote.test"])
    wait_deferred(p, qid)
    peer.delay_reply = {"rcpt": 4}
    assert queue(p, "flush", qid).returncode == 0
    wait_until(lambda: listing(p).get(qid, {}).get("queue_name") ==
               "active", what="an active round")
    got = parse_mailq(mailq(p))
    assert got[qid][0] == "*"
    r = queue(p, "delete", qid)
    assert r.returncode == 0, r.stderr
    assert qid not in p.queue_ids()
    # The round ran to its end (the delayed RCPT answered, the deferral
    # recorded) before the deletion.
    deferred = p.wait_log(r"queue=%s .*attempts=2 .*status=deferred" % qid)
    deleted = p.wait_log(r"queue: deleted queue=%s \(by the administrator\)"
                         % qid)
    lines = p.log_lines
    assert lines.index(deferred.string) < lines.index(deleted.string)


def raw_control(p):
    import socket
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(os.path.join(p.tmpdir, "run", "control"))
    return s


def read_all(s):
    out = b""
    while True:
        b = s.recv(65536)
        if not b:
            return out
        out += b


def test_control_protocol_limits(make_petrel, peer):
    """A silent client does not stall the others and is dropped after its
    timeout; an endless line and an unknown command get clear errors."""
    p = start(make_petrel, peer)
    mark = p.log_mark()
    idle = raw_control(p)
    assert mailq(p) == "Mail queue is empty\n"
    with raw_control(p) as s:
        s.sendall(b"x" * 1024)
        assert read_all(s) == b"err bad request too long\n"
    with raw_control(p) as s:
        s.sendall(b"frobnicate\n")
        assert read_all(s) == b"err bad unknown command\n"
    with raw_control(p) as s:
        s.sendall(b"hold ../../etc/passwd\n")
        assert read_all(s) == b"err bad bad queue ID\n"
    with raw_control(p) as s:
        s.sendall(b"list\n")
        assert read_all(s) == b"ok 0 listed\n"
    # The idle one is cut off by the daemon (10 s), not by us.
    assert read_all(idle) == b""
    idle.close()
    p.wait_log(r"control: uid=0 pid=\d+ timed out", start=mark)


def test_live_postfix_same_shapes(make_petrel, peer, tmp_path):
    """Run a real Postfix (in its own network namespace) on a queue of
    the same shape as ours, and compare the two mailq outputs line kind
    by line kind, message by message."""
    import shutil
    import tempfile
    if os.geteuid() != 0 or not shutil.which("postfix") or \
            not shutil.which("unshare"):
        pytest.skip("needs root, unshare and Postfix")
    d = tempfile.mkdtemp(dir="/tmp", prefix="petrel-pfx-")
    os.chmod(d, 0o755)
    try:
        r = subprocess.run(["unshare", "-n", "env", "D=" + d, "LONG=yes",
                            "sh", os.path.join(POSTFIX_DIR, "capture.sh")],
                           capture_output=True, timeout=120)
        out = os.path.join(d, "out-yes.txt")
        if not os.path.exists(out) or os.path.getsize(out) == 0:
            pytest.skip("Postfix did not run here: %s" % r.stderr[-500:])
        with open(out) as f:
            theirs = f.read()
    finally:
        shutil.rmtree(d, ignore_errors=True)

    peer.rcpt_reply = {"dave@other.test": "451 4.4.1 other reason"}
    p = start(make_petrel, peer)
    a = send(p, ["bob@remote.test"])
    b = send(p, ["carol@remote.test", "dave@other.test"], sender="")
    c = send(p, ["erin@remote.test"], sender="held@example.test")
    for qid, n in ((a, 1), (b, 2), (c, 1)):
        wait_deferred(p, qid, n)
    assert queue(p, "hold", c).returncode == 0
    ours = mailq(p)

    def kinds(text):
        """Per message, the kinds of its lines; plus the heading."""
        lines = text.splitlines()
        msgs, cur = [], None
        for line in lines[1:]:
            if ID_LINE.match(line):
                # "*" (a delivery running now) is a moment in Postfix's
                # retry cycle, not a shape: seen once in CI, where the
                # capture caught Postfix retrying. Held ("!") stays.
                st = ID_LINE.match(line).group("st").replace("*", "")
                cur = [("id", st)]
                msgs.append(cur)
            elif REASON_LINE.match(line):
                cur.append(("reason", len(line) if len(line) <= 78
                            else "long"))
            elif RCPT_LINE.match(line):
                cur.append(("rcpt",))
            elif line == "":
                cur = None
            else:
                assert TOTAL_LINE.match(line), line
        return lines[0], sorted(map(tuple, msgs))

    assert parse_mailq(theirs) and parse_mailq(ours)
    assert kinds(ours) == kinds(theirs), (ours, theirs)


def test_daemon_waits_for_a_queue_command(make_petrel, peer):
    """While a queue command holds the spool lock, a starting daemon
    waits for it (and then starts); a daemon's lock is not waited for."""
    import fcntl
    p = start(make_petrel, peer, start=False)
    os.makedirs(p.spool, exist_ok=True)
    with open(os.path.join(p.spool, "lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write("%d queue\n" % os.getpid())
        f.flush()
        mark = p.log_mark()
        p.start(wait=False)
        p.wait_log(r"waiting for the spool lock held by pid %d \(queue\)"
                   % os.getpid(), start=mark)
        assert p.alive()
    p.wait_listening(start=mark)
    assert mailq(p) == "Mail queue is empty\n"
