"""
test_sendmail.py: local injection (issue 6): `petrel sendmail` over the
daemon's RUN_DIR/sendmail socket, and petrel-postdrop plus the maildrop
pickup while the daemon is down.

The sendmail command line as cron, PHP and scripts use it: -t with To, Cc
and Bcc (all three delivered, Bcc gone), recipients as arguments, -f by
root (no warning) and by an ordinary user (X-Authentication-Warning and a
log line), the "." line and -i, -F, -bs driven through a pipe, DSN flags
in the queue file, the size limit (exit 65 and the daemon's reply), an
unknown flag (64), the historic flags ignored, newaliases / -bi (0), the
program invoked through a `sendmail` symlink. Daemon down: a message
dropped by nobody and one by root (a setgid petreldrop copy of
petrel-postdrop beside a copy of petrel), the maildrop's permissions
(nobody cannot list it or read root's file), both delivered once
`petrel serve` starts; a corrupt maildrop file and one whose recorded uid
is not its owner's go to maildrop/corrupt/.
"""

import grp
import os
import pwd
import shutil
import stat
import subprocess

import pytest

from harness import PETREL_BIN, Petrel, wait_until
from queuefile import block_maildir
from test_dsn_params import queue_envelope

pytestmark = pytest.mark.timeout(300)

ALICE = "alice@example.test"
BOB = "bob@example.test"
CAROL = "carol@example.test"
HOST = "mx.example.test"
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def sendmail(p, args, data=b"", user=None, argv0=None, binary=None,
             env=None):
    """Run `petrel sendmail -C CONF ARGS` (or binary, e.g. a symlink
    named sendmail) with data on stdin; returns the CompletedProcess."""
    binary = binary or PETREL_BIN
    cmd = [binary] if argv0 else [binary, "sendmail"]
    cmd += ["-C", p.conf_path] + list(args)
    if user == "nobody":
        cmd = NOBODY + cmd
    return subprocess.run(cmd, input=data, capture_output=True, timeout=60,
                          env=env)


def headers(msg):
    head = msg.split(b"\n\n", 1)[0]
    return head.decode("utf-8", "replace")


def body(msg):
    return msg.split(b"\n\n", 1)[1]


@pytest.fixture
def p():
    x = Petrel(users={ALICE: "", BOB: "", CAROL: ""})
    try:
        x.start()
    except BaseException:
        x.finish(failed=True)
        raise
    with x:
        yield x


def test_t_to_cc_bcc_all_delivered_bcc_removed(p):
    """cron-like -t: To, Cc and Bcc each get one copy; no copy shows Bcc."""
    msg = (b"To: Alice <alice@example.test>\n"
           b"Cc: bob@example.test\n"
           b"Bcc: carol@example.test\n"
           b"Subject: report\n\nall fine\n")
    r = sendmail(p, ["-t", "-i"], msg)
    assert r.returncode == 0, r.stderr
    for a in (ALICE, BOB, CAROL):
        m = p.wait_delivered(a, 1)[0]
        h = headers(m)
        assert "Bcc" not in h and "carol@" not in h, h
        assert "To: Alice <alice@example.test>" in h, h
        assert "Cc: bob@example.test" in h, h
        assert body(m) == b"all fine\n"
        # Added: From, Date, Message-ID; Received names the uid.
        assert "From: root <root@%s>" % HOST in h or \
            "From: root@%s" % HOST in h, h
        assert "\nDate: " in h and "\nMessage-ID: <" in h, h
        assert "Received: by %s (Petrel, from userid 0)" % HOST in h, h


def test_recipients_as_arguments_and_bare_login(p):
    r = sendmail(p, [ALICE, "bob"], b"Subject: args\n\nhi\n")
    assert r.returncode == 0, r.stderr
    p.wait_delivered(ALICE, 1)
    p.wait_delivered(BOB, 1)
    p.wait_log(r"client=local listener=sendmail uid=0 user=root")


def test_f_by_root_no_warning(p):
    r = sendmail(p, ["-f", "boss@example.test", ALICE],
                 b"Subject: root f\n\nx\n")
    assert r.returncode == 0, r.stderr
    m = p.wait_delivered(ALICE, 1)[0]
    assert m.startswith(b"Return-Path: <boss@example.test>"), m[:80]
    assert b"X-Authentication-Warning" not in m


def test_f_by_user_warning_and_log(p):
    mark = p.log_mark()
    r = sendmail(p, ["-fboss@example.test", ALICE],
                 b"Subject: nobody f\n\nx\n", user="nobody")
    assert r.returncode == 0, r.stderr
    m = p.wait_delivered(ALICE, 1)[0]
    assert m.startswith(b"Return-Path: <boss@example.test>"), m[:80]
    assert ("X-Authentication-Warning: %s: nobody set sender to "
            "boss@example.test using -f" % HOST) in headers(m)
    assert "Received: by %s (Petrel, from userid 65534)" % HOST in \
        headers(m)
    p.wait_log(r"sender set session=\S+ client=local uid=65534 "
               r"user=nobody from=<boss@example.test>", start=mark)
    # Its own address (the default sender) is no warning.
    r = sendmail(p, [BOB], b"Subject: own\n\nx\n", user="nobody")
    assert r.returncode == 0, r.stderr
    m = p.wait_delivered(BOB, 1)[0]
    assert m.startswith(b"Return-Path: <nobody@%s>" % HOST.encode())
    assert b"X-Authentication-Warning" not in m


def test_dot_line_ends_input_unless_i(p):
    r = sendmail(p, [ALICE], b"Subject: dot\n\nbefore\n.\nafter\n")
    assert r.returncode == 0, r.stderr
    m = p.wait_delivered(ALICE, 1)[0]
    assert body(m) == b"before\n", body(m)
    r = sendmail(p, ["-i", BOB],
                 b"Subject: dot -i\n\nbefore\n.\n..two\nafter\n")
    assert r.returncode == 0, r.stderr
    m = p.wait_delivered(BOB, 1)[0]
    assert body(m) == b"before\n.\n..two\nafter\n", body(m)
    r = sendmail(p, ["-oi", CAROL], b"Subject: dot -oi\n\na\n.\nb\n")
    assert r.returncode == 0, r.stderr
    assert body(p.wait_delivered(CAROL, 1)[0]) == b"a\n.\nb\n"


def test_F_full_name_in_added_from(p):
    r = sendmail(p, ["-FCron Daemon", ALICE], b"Subject: F\n\nx\n")
    assert r.returncode == 0, r.stderr
    h = headers(p.wait_delivered(ALICE, 1)[0])
    assert "From: Cron Daemon <root@%s>" % HOST in h, h
    # A From: of its own is kept, and nothing added.
    r = sendmail(p, ["-F", "Ignored", BOB],
                 b"From: me@example.test\nSubject: F2\n\nx\n")
    assert r.returncode == 0, r.stderr
    h = headers(p.wait_delivered(BOB, 1)[0])
    assert "From: me@example.test" in h and "Ignored" not in h, h


def test_bs_smtp_through_a_pipe(p):
    script = (
        "import subprocess, sys\n"
        "p = subprocess.Popen(sys.argv[1:], stdin=subprocess.PIPE,\n"
        "                     stdout=subprocess.PIPE)\n"
        "def reply():\n"
        "    out = []\n"
        "    while True:\n"
        "        l = p.stdout.readline().decode()\n"
        "        out.append(l)\n"
        "        if len(l) < 4 or l[3] != '-':\n"
        "            return out\n"
        "def cmd(s):\n"
        "    p.stdin.write(s.encode() + b'\\r\\n'); p.stdin.flush()\n"
        "    return reply()\n"
        "assert reply()[0].startswith('220'), 'greeting'\n"
        "assert cmd('EHLO me')[-1].startswith('250 ')\n"
        "assert cmd('MAIL FROM:<>')[0].startswith('250')\n"
        "assert cmd('RCPT TO:<%s>')[0].startswith('250')\n"
        "assert cmd('DATA')[0].startswith('354')\n"
        "r = cmd('Subject: bs\\r\\n\\r\\nvia -bs\\r\\n.')\n"
        "assert r[0].startswith('250'), r\n"
        "assert cmd('QUIT')[0].startswith('221')\n"
        "p.stdin.close()\n"
        "sys.exit(p.wait())\n" % ALICE)
    r = subprocess.run(["/usr/bin/python3", "-c", script, PETREL_BIN,
                        "sendmail", "-C", p.conf_path, "-bs"],
                       capture_output=True, timeout=60)
    assert r.returncode == 0, (r.stdout, r.stderr)
    m = p.wait_delivered(ALICE, 1)[0]
    assert body(m) == b"via -bs\n"
    assert m.startswith(b"Return-Path: <>")


def test_dsn_flags_reach_the_queue_file(p):
    blocker = block_maildir(p, ALICE)
    r = sendmail(p, ["-N", "success,delay", "-R", "hdrs", "-V", "env+1",
                     ALICE], b"Subject: dsn\n\nx\n")
    assert r.returncode == 0, r.stderr
    wait_until(lambda: p.queue_ids(), what="the message in the queue")
    mail, rcpts = queue_envelope(os.path.join(p.spool, "queue",
                                              p.queue_ids()[0]))
    assert (mail["ret"], mail["envid"]) == ("HDRS", "env+2B1"), mail
    assert [(x["addr"], x["notify"]) for x in rcpts] == \
        [(ALICE, "SUCCESS,DELAY")], rcpts
    os.unlink(blocker)
    r = sendmail(p, ["-N", "never,success", ALICE], b"x\n")
    assert r.returncode == 64 and b"-N" in r.stderr, r


def test_size_limit_refused():
    with Petrel(extra_conf="max_message_size 2k") as p:
        r = sendmail(p, [ALICE], b"Subject: big\n\n" + b"y" * 70 + b"\n" *
                     1 + (b"z" * 70 + b"\n") * 100)
        assert r.returncode == 65, r
        assert b"552" in r.stderr and b"sendmail:" in r.stderr, r.stderr
        assert p.all_maildir_files() == []


def test_unknown_recipient_exit_67(p):
    r = sendmail(p, ["nosuchuser@example.test"], b"Subject: x\n\nx\n")
    assert r.returncode == 67, r
    assert b"550" in r.stderr, r.stderr


def test_unknown_and_unsupported_flags_refused(p):
    for args in (["-Z", ALICE], ["-oX", ALICE], ["-bv", ALICE],
                 ["-f"], ["-R", "all", ALICE]):
        r = sendmail(p, args, b"x\n")
        assert r.returncode == 64, (args, r)
        assert r.stderr.startswith(b"sendmail: "), r.stderr
    r = sendmail(p, [], b"Subject: none\n\nx\n")
    assert r.returncode == 64 and b"no recipients" in r.stderr, r
    assert p.all_maildir_files() == []


def test_historic_flags_ignored(p):
    # Debian cron's command line, mutt's, and the rest of Postfix's list.
    r = sendmail(p, ["-FCronDaemon", "-i", "-B8BITMIME", "-oem", ALICE],
                 b"Subject: cron\n\nx\n")
    assert r.returncode == 0, r.stderr
    r = sendmail(p, ["-odi", "-odb", "-oee", "-om", "-v", "-U", "-obq",
                     "-Am", "-n", "-G", "-h", "5", "-L", "x", "-O", "a=b",
                     "-o7", "-q30m", "-ti", ALICE],
                 b"To: bob@example.test\nSubject: old\n\nx\n")
    assert r.returncode == 0, r.stderr
    p.wait_delivered(ALICE, 2)
    p.wait_delivered(BOB, 1)


def test_newaliases_bi_and_symlinks(p, tmp_path):
    for args in (["-bi"], ["-I"]):
        assert sendmail(p, args).returncode == 0
    d = tmp_path / "bin"
    d.mkdir()
    for name in ("sendmail", "newaliases"):
        os.symlink(PETREL_BIN, d / name)
    r = subprocess.run([str(d / "newaliases")], capture_output=True)
    assert r.returncode == 0, r
    r = sendmail(p, [ALICE], b"Subject: via symlink\n\nx\n", argv0=True,
                 binary=str(d / "sendmail"))
    assert r.returncode == 0, r.stderr
    p.wait_delivered(ALICE, 1)
    # -bp is mailq (Postfix's format; the queue is empty now) and -q a
    # flush through the control socket.
    p.wait_queue_empty()
    r = sendmail(p, ["-bp"])
    assert r.returncode == 0, r
    assert r.stdout == b"Mail queue is empty\n", r.stdout
    r = sendmail(p, ["-q"])
    assert r.returncode == 0, r


# ---- daemon down: petrel-postdrop and the pickup ----

def setgid_copies(tmpdir):
    """petrel and a setgid petreldrop petrel-postdrop side by side (as
    `make install` puts them), reachable by nobody."""
    d = os.path.join(tmpdir, "bin")
    os.mkdir(d)
    os.chmod(d, 0o755)
    shutil.copy(PETREL_BIN, os.path.join(d, "petrel"))
    pd = os.path.join(d, "petrel-postdrop")
    shutil.copy(os.path.join(os.path.dirname(PETREL_BIN),
                             "petrel-postdrop"), pd)
    os.chown(pd, 0, grp.getgrnam("petreldrop").gr_gid)
    os.chmod(pd, 0o2755)
    os.chmod(os.path.join(d, "petrel"), 0o755)
    return os.path.join(d, "petrel")


def test_daemon_down_maildrop_then_pickup():
    with Petrel(users={ALICE: "", BOB: ""}) as p:
        # Started once (by `with`) so that it makes the maildrop (1730
        # petrel:petreldrop), then stopped.
        p.stop()
        # -bs with the daemon down: a 421 on stdout, exit 75.
        r = sendmail(p, ["-bs"], b"EHLO x\r\n")
        assert r.returncode == 75 and r.stdout.startswith(b"421 4.3.0 "), r
        petrel_copy = setgid_copies(p.tmpdir)
        md = os.path.join(p.tmpdir, "maildrop")
        st = os.stat(md)
        assert stat.S_IMODE(st.st_mode) == 0o1730, oct(st.st_mode)
        assert st.st_uid == pwd.getpwnam("petrel").pw_uid
        assert st.st_gid == grp.getgrnam("petreldrop").gr_gid

        r = sendmail(p, ["-f", "boss@example.test", ALICE],
                     b"Subject: dropped by nobody\n\nn\n", user="nobody",
                     binary=petrel_copy)
        assert r.returncode == 0, r.stderr
        r = sendmail(p, [BOB], b"Subject: dropped by root\n\nr\n",
                     binary=petrel_copy)
        assert r.returncode == 0, r.stderr
        files = sorted(os.listdir(md))
        drops = [f for f in files if f.startswith("m")]
        assert len(drops) == 2, files
        owners = {os.stat(os.path.join(md, f)).st_uid: f for f in drops}
        assert set(owners) == {0, 65534}, owners
        # nobody can neither list the maildrop nor read root's file.
        r = subprocess.run(NOBODY + ["ls", md], capture_output=True)
        assert r.returncode != 0, r
        r = subprocess.run(NOBODY + ["cat", os.path.join(md, owners[0])],
                           capture_output=True)
        assert r.returncode != 0, r

        mark = p.log_mark()
        p.start()
        a = p.wait_delivered(ALICE, 1)[0]
        b = p.wait_delivered(BOB, 1)[0]
        assert a.startswith(b"Return-Path: <boss@example.test>")
        assert ("X-Authentication-Warning: %s: nobody set sender to "
                "boss@example.test using -f" % HOST) in headers(a)
        assert "from userid 65534" in headers(a)
        assert b"X-Authentication-Warning" not in b
        assert "from userid 0" in headers(b)
        assert body(a) == b"n\n" and body(b) == b"r\n"
        p.wait_log(r"pickup: file=m\S+ uid=65534 user=nobody nrcpt=1",
                   start=mark)
        wait_until(lambda: [f for f in os.listdir(md) if f != "corrupt"]
                   == [], what="the maildrop to empty")


def test_corrupt_maildrop_files_moved_aside():
    with Petrel() as p:
        p.stop()
        md = os.path.join(p.tmpdir, "maildrop")
        with open(os.path.join(md, "m0123456789abcdef"), "wb") as f:
            f.write(b"garbage\n")
        # A well-formed file whose recorded uid is not its owner's.
        with open(os.path.join(md, "m00000000000000aa"), "wb") as f:
            f.write(b"PETREL-MAILDROP 1\nuid 65534\nsize %020d\n"
                    b"sender <x@example.test>\nrcpt <alice@example.test>\n"
                    b"data\nx\r\n" % 3)
        mark = p.log_mark()
        p.start()
        p.wait_log(r"pickup: file=m0123456789abcdef malformed .*moved to",
                   start=mark)
        p.wait_log(r"pickup: file=m00000000000000aa records uid 65534 but "
                   r"belongs to uid 0: moved to", start=mark)
        assert sorted(os.listdir(os.path.join(md, "corrupt"))) == \
            ["m00000000000000aa", "m0123456789abcdef"]
        assert p.all_maildir_files() == []
        # Still serving.
        r = sendmail(p, [ALICE], b"Subject: after\n\nx\n")
        assert r.returncode == 0, r.stderr
        p.wait_delivered(ALICE, 1)


def test_pickup_returns_refusals_to_the_sender():
    """The sender of a dropped message had its exit 0: a recipient the
    daemon refuses at pickup is reported back to it, the others get the
    message; a message no recipient takes is returned and removed; one
    from <> that nobody takes goes to corrupt/."""
    with Petrel() as p:
        p.stop()
        md = os.path.join(p.tmpdir, "maildrop")
        # As root, who may write the maildrop with the build's
        # petrel-postdrop (not setgid).
        drops = [
            (["-f", BOB, ALICE, "nosuch@example.test"], b"Subject: one\n\n1\n"),
            (["-f", BOB, "nobody2@example.test"], b"Subject: two\n\n2\n"),
            (["-f", "<>", "nobody3@example.test"], b"Subject: three\n\n3\n"),
        ]
        for args, msg in drops:
            r = sendmail(p, args, msg)
            assert r.returncode == 0, r.stderr
        mark = p.log_mark()
        p.start()
        a = p.wait_delivered(ALICE, 1)[0]
        assert body(a) == b"1\n"
        notices = p.wait_delivered(BOB, 2)
        first = [m for m in notices if b"Subject: one" in m]
        second = [m for m in notices if b"Subject: two" in m]
        assert len(first) == 1 and len(second) == 1, notices
        for m, who in ((first[0], b"nosuch"), (second[0], b"nobody2")):
            assert m.startswith(b"Return-Path: <>"), m[:60]
            assert b"Subject: Undelivered Mail Returned to Sender" in m
            assert b"<" + who + b"@example.test>: 550 5.1.1" in m, m
            assert b"alice@example.test>: 550" not in m
        p.wait_log(r"pickup: file=m\S+ uid=0 refused for good \(no "
                   r"recipient accepted\): returned to <bob@example.test>",
                   start=mark)
        p.wait_log(r"pickup: file=m\S+ refused for good .*moved to",
                   start=mark)
        wait_until(lambda: len(os.listdir(os.path.join(md, "corrupt"))) == 1
                   and [f for f in os.listdir(md) if f != "corrupt"] == [],
                   what="one file in corrupt/, none left")
