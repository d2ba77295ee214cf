"""
test_sandbox.py: issue 8, "Privileges". After binding, `petrel serve` runs
as the unprivileged `user` in every thread, with no capabilities, and its
spool is that user's, mode 0700; a seccomp allow-list (src/daemon/
sandbox.c) is on in every thread by default (Seccomp: 2 in
/proc/PID/task/*/status), off with `petrel serve --no-sandbox` or
`sandbox no`; `sandbox log` installs the list in log mode. Under the
filter a whole day's work still runs: local delivery, STARTTLS and AUTH,
relaying through a smarthost, MX delivery through libunbound, SIGHUP
reloads, the control socket and the metrics endpoint. (The unit test
tests/unit/test_daemon_sandbox.c shows that a forbidden call kills.)
"""

import os
import pwd
import shutil
import signal
import smtplib
import ssl
import stat
import subprocess
import urllib.request
import warnings

import pytest

from dnsserver import DNSServer
from harness import PETREL_BIN, Petrel, free_port, wait_until
from smtppeer import SMTPPeer

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import crypt
    except ImportError:  # Python 3.13 has none
        crypt = None

BASE_CONF = """retry_initial 1s
retry_max 4s
client_timeout_connect 3s
client_timeout_command 3s
client_timeout_data 5s
delay_warning 0
"""


class ArgsPetrel(Petrel):
    """A Petrel started with extra arguments after `serve -c FILE`."""

    def __init__(self, serve_args=(), **kw):
        self.serve_args = list(serve_args)
        super().__init__(**kw)

    def command(self):
        return super().command() + self.serve_args


@pytest.fixture
def make(request):
    made = []

    def make_one(start=True, **kw):
        p = ArgsPetrel(**kw)
        made.append(p)
        if start:
            p.start()
        return p

    yield make_one
    failed = any(getattr(request.node, "rep_" + w, None) is not None and
                 getattr(request.node, "rep_" + w).failed
                 for w in ("setup", "call"))
    errors = []
    for p in made:
        try:
            p.finish(failed=failed)
        except AssertionError as e:
            errors.append(str(e))
    if errors:
        raise AssertionError("; ".join(errors))


@pytest.fixture
def dns():
    with DNSServer() as srv:
        yield srv


def task_status(pid):
    """{tid: {field: text}} from /proc/PID/task/*/status."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        fields = {}
        try:
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                for line in f:
                    k, _, v = line.partition(":")
                    fields[k] = v.strip()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        out[int(tid)] = fields
    return out


def seccomp_modes(pid):
    return {tid: int(f["Seccomp"]) for tid, f in task_status(pid).items()}


def send(p, rcpts, body, sender="alice@example.test", **kw):
    with p.smtp(**kw) as s:
        s.sendmail(sender, rcpts, body)


MSG = (b"From: <alice@example.test>\r\nTo: <bob@example.test>\r\n"
       b"Subject: sandbox\r\nMessage-ID: <sandbox@test>\r\n\r\nbody\r\n")


# ------------------------------------------------------------ privileges


def test_every_thread_runs_as_user_without_capabilities(make):
    """uid, gid and groups are the user's in every thread (not only the
    main one), and no thread keeps a capability."""
    pw = pwd.getpwnam("petrel")
    p = make(user="petrel")
    send(p, ["bob@example.test"], MSG)      # start the delivery threads
    p.wait_delivered("bob@example.test", 1)
    tasks = task_status(p.proc.pid)
    assert len(tasks) > 3, "only %d threads" % len(tasks)
    want_groups = sorted(os.getgrouplist("petrel", pw.pw_gid))
    for tid, f in tasks.items():
        uids = [int(x) for x in f["Uid"].split()]
        gids = [int(x) for x in f["Gid"].split()]
        groups = sorted(int(x) for x in f["Groups"].split())
        assert uids == [pw.pw_uid] * 4, "thread %d: Uid %s" % (tid, uids)
        assert gids == [pw.pw_gid] * 4, "thread %d: Gid %s" % (tid, gids)
        assert groups == want_groups, "thread %d: Groups %s, want %s" % (
            tid, groups, want_groups)
        for cap in ("CapEff", "CapPrm", "CapAmb"):
            assert int(f[cap], 16) == 0, "thread %d: %s %s" % (
                tid, cap, f[cap])
        assert f["NoNewPrivs"] == "1", "thread %d: NoNewPrivs %s" % (
            tid, f["NoNewPrivs"])


def test_spool_is_the_users_mode_0700(make):
    """The spool, created by the daemon as root, belongs to `user` and
    is 0700; a spool that existed with another mode is refused rather
    than used (safedir.c checks writability; 0700 is what serve makes)."""
    pw = pwd.getpwnam("petrel")
    p = make(user="petrel")
    st = os.stat(p.spool)
    assert (st.st_uid, st.st_gid) == (pw.pw_uid, pw.pw_gid), \
        "spool owned by %d:%d" % (st.st_uid, st.st_gid)
    assert stat.S_IMODE(st.st_mode) == 0o700, \
        "spool mode %o, want 700" % stat.S_IMODE(st.st_mode)
    send(p, ["bob@example.test"], MSG)
    p.wait_delivered("bob@example.test", 1)
    for sub in ("incoming", "queue", "corrupt"):
        st = os.stat(os.path.join(p.spool, sub))
        assert st.st_uid == pw.pw_uid, "%s owned by %d" % (sub, st.st_uid)
        assert stat.S_IMODE(st.st_mode) & 0o077 == 0, \
            "spool/%s mode %o is open to others" % (
                sub, stat.S_IMODE(st.st_mode))


# ------------------------------------------------------------ the filter


def test_sandbox_on_by_default_in_every_thread(make):
    p = make()
    p.wait_log(r"daemon: sandbox=yes")
    send(p, ["bob@example.test"], MSG)
    p.wait_delivered("bob@example.test", 1)
    modes = seccomp_modes(p.proc.pid)
    assert len(modes) > 3, modes
    assert set(modes.values()) == {2}, "Seccomp per thread: %s" % modes


def test_no_sandbox_option(make):
    p = make(serve_args=["--no-sandbox"])
    p.wait_log(r"daemon: sandbox=no: no seccomp allow-list")
    send(p, ["bob@example.test"], MSG)
    p.wait_delivered("bob@example.test", 1)
    modes = seccomp_modes(p.proc.pid)
    assert set(modes.values()) == {0}, "Seccomp per thread: %s" % modes


def test_sandbox_no_directive(make):
    p = make(extra_conf="sandbox no\n")
    p.wait_log(r"daemon: sandbox=no")
    assert set(seccomp_modes(p.proc.pid).values()) == {0}


def test_sandbox_log_directive(make):
    """`sandbox log`: a filter is installed (Seccomp 2) that only logs."""
    p = make(extra_conf="sandbox log\n")
    p.wait_log(r"daemon: sandbox=log: no seccomp allow-list \(the kernel "
               r"logs each call outside it\)")
    assert set(seccomp_modes(p.proc.pid).values()) == {2}
    send(p, ["bob@example.test"], MSG)
    p.wait_delivered("bob@example.test", 1)


def test_sandbox_bad_value_and_option_errors(tmp_path):
    conf = tmp_path / "petrel.conf"
    conf.write_text("sandbox maybe\n")
    r = subprocess.run([PETREL_BIN, "check-config", "-c", str(conf)],
                       capture_output=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert r.returncode != 0
    assert b'sandbox: invalid value "maybe" (yes, no or log)' in r.stderr, \
        r.stderr
    # --no-sandbox belongs to serve only
    r = subprocess.run([PETREL_BIN, "check-config", "--no-sandbox", "-c",
                        str(conf)], capture_output=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 2 and b"usage" in r.stderr, r.stderr


def test_reload_keeps_the_sandbox_and_warns_on_change(make):
    """A SIGHUP under the filter: the configuration and tables are read
    again, and the self-signed certificate, removed meanwhile, is made
    anew (mkdirat, openat, fchmod, fsync, renameat in the spool)."""
    p = make()
    mark = p.log_mark()
    p.extra_conf = "sandbox no\n"
    p.write_conf()
    shutil.rmtree(os.path.join(p.spool, "tls"))
    p.signal(signal.SIGHUP)
    p.wait_log(r"config: sandbox changed; it stays as it is until a "
               r"restart", start=mark)
    p.wait_log(r"tls: generated a self-signed certificate", start=mark)
    p.wait_log(r"tls: certificates reloaded", start=mark)
    p.wait_log(r"config: reloaded", start=mark)
    assert os.path.exists(os.path.join(p.spool, "tls", "selfsigned.pem"))
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with p.smtp() as s:
        s.starttls(context=ctx)
        s.sendmail("alice@example.test", ["alice@example.test"], MSG)
    p.wait_delivered("alice@example.test", 1)
    assert set(seccomp_modes(p.proc.pid).values()) == {2}
    send(p, ["bob@example.test"], MSG)
    p.wait_delivered("bob@example.test", 1)


@pytest.mark.skipif(crypt is None, reason="no crypt module to make a hash")
def test_a_days_work_under_the_sandbox(make, dns):
    """Two sandboxed daemons: `sender` takes mail from a trusted client,
    delivers locally, sends one message by MX (libunbound) to a peer, one
    by LMTP over a Unix socket, and one through its relayhost `relay` with STARTTLS and AUTH PLAIN;
    `relay` delivers to its Maildir. A client does STARTTLS and AUTH on
    relay's submission port itself; both daemons reload on SIGHUP and
    keep working; the control socket and the metrics endpoint answer.
    Every thread of both still has Seccomp 2 at the end."""
    password = "sandboxed pw"
    login = "relay@b.test"
    h = crypt.crypt(password, crypt.mksalt(crypt.METHOD_SHA512))
    relay = make(listen=["127.0.0.2:%d submission" % free_port()],
                 domains=("b.test",), hostname="relay.b.test",
                 dns=dns.addr, users={login: h, "bob@b.test": ""},
                 extra_conf=BASE_CONF + "auth_plaintext no\n"
                 "auth_fail_delay 0\n")
    metrics_port = free_port()
    lmtp_path = os.path.join(relay.tmpdir, "lmtp.sock")
    with SMTPPeer() as peer, SMTPPeer(lmtp=True, unix_path=lmtp_path) as lp:
        dns.add("remote.test", "MX", "10 mx.remote.test.")
        dns.add("mx.remote.test", "A", peer.addr)
        sender = make(start=False, domains=("example.test",),
                      dns=dns.addr, trusted=("127.0.0.1/32",))
        pwfile = os.path.join(sender.tmpdir, "relay-password")
        with open(pwfile, "w") as f:
            f.write(password + "\n")
        os.chmod(pwfile, 0o600)
        pw = pwd.getpwnam("petrel")     # read again, as petrel, on SIGHUP
        os.chown(pwfile, pw.pw_uid, pw.pw_gid)
        sender.extra_conf = (BASE_CONF +
                             "transport %s/transport\n" % sender.tmpdir +
                             "relayhost [127.0.0.2]:%d\n" % relay.port +
                             "relayhost_auth %s %s\n" % (login, pwfile) +
                             "metrics 127.0.0.1:%d\n" % metrics_port)
        with open(os.path.join(sender.tmpdir, "transport"), "w") as f:
            f.write("remote.test smtp:remote.test\n"
                    "lmtp.test lmtp:unix:%s\n" % lmtp_path)
        os.chmod(os.path.join(sender.tmpdir, "transport"), 0o644)
        sender.write_conf()
        sender.start()

        for round_ in range(2):
            body = (b"From: <relay@b.test>\r\nSubject: round %d\r\n"
                    b"\r\nbody %d\r\n" % (round_, round_))
            send(sender, ["bob@example.test", "carol@remote.test",
                          "dave@lmtp.test", "bob@b.test"], body,
                 sender=login)   # sender_login on the relay
            sender.wait_delivered("bob@example.test", round_ + 1)
            got = peer.wait_messages(round_ + 1)
            assert got[round_].data.endswith(b"body %d" % round_)
            assert lp.wait_messages(round_ + 1)[round_].data.endswith(
                b"body %d" % round_)
            relay.wait_delivered("bob@b.test", 2 * round_ + 1)
            # a client's own STARTTLS and AUTH on the relay
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            with relay.smtp() as s:
                s.starttls(context=ctx)
                s.login(login, password)
                s.sendmail(login, ["bob@b.test"],
                           b"Subject: direct %d\r\n\r\nhi\r\n" % round_)
            relay.wait_delivered("bob@b.test", 2 * round_ + 2)
            # the control socket and the metrics endpoint
            r = subprocess.run([PETREL_BIN, "queue", "list", "-c",
                                sender.conf_path], capture_output=True,
                               timeout=60, stdin=subprocess.DEVNULL)
            assert r.returncode == 0, r.stderr
            with urllib.request.urlopen("http://127.0.0.1:%d/metrics"
                                        % metrics_port, timeout=30) as resp:
                assert b"petrel_" in resp.read()
            if round_ == 0:
                for p in (sender, relay):
                    mark = p.log_mark()
                    p.signal(signal.SIGHUP)
                    p.wait_log(r"config: reloaded", start=mark)
                    p.wait_log(r"tls: certificates reloaded", start=mark)
        peer.assert_clean()
        lp.assert_clean()
    assert "with ESMTPSA" in relay.maildir_messages("bob@b.test")[0] \
        .decode("utf-8", "replace")
    for p in (sender, relay):
        assert p.alive(), p.log_tail()
        modes = seccomp_modes(p.proc.pid)
        assert set(modes.values()) == {2}, modes
        assert not any("sandbox: forbidden" in l for l in p.log_lines)
