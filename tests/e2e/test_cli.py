"""
test_cli.py: the petrel command line: check-config, where `serve` finds its
configuration (-c, then $PETREL_CONFIG, then /etc/petrel/petrel.conf), the
privilege drop to `user`, and usage errors.
"""

import os
import pwd
import re
import shutil
import subprocess

import pytest

from harness import PETREL_BIN, Petrel, workdir

SYSTEM_DIR = "/etc/petrel"
SYSTEM_CONF = os.path.join(SYSTEM_DIR, "petrel.conf")


def run_cli(*args, env=None, timeout=30):
    e = dict(os.environ)
    e.pop("PETREL_CONFIG", None)
    if env:
        e.update(env)
    return subprocess.run([PETREL_BIN] + list(args), stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=timeout, env=e)


def write(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def valid_conf_text(d):
    return ("hostname mx.example.test\n"
            "spool %s/spool\n"
            "listen 127.0.0.1:2599 mx\n"
            "domain example.test\n"
            "maildir %s/mail/%%d/%%u\n"
            "dns 127.0.0.1:5353\n"
            "max_message_size 10M\n"
            "user petrel\n" % (d, d))


class ServePetrel(Petrel):
    """A Petrel started with an explicit argument list after `serve`
    (instead of the harness's `serve -c conf_path`), to test how the
    daemon locates its configuration."""

    serve_args = []

    def command(self):
        return self.wrapper + [PETREL_BIN, "serve"] + list(self.serve_args)


def config_line(p, start=0):
    m = p.wait_log(r"config: file=(\S+) source=(.+?)\s*$", start=start)
    return m.group(1), m.group(2)


# ---- check-config ----


def test_check_config_valid():
    d = workdir()
    try:
        conf = os.path.join(d, "petrel.conf")
        write(conf, valid_conf_text(d))
        r = run_cli("check-config", "-c", conf)
        assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
        out = (r.stdout + r.stderr).decode("utf-8", "replace")
        assert not re.search(r"(?m)^%s:\d+: " % re.escape(conf), out), out
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_check_config_reports_every_error():
    d = workdir()
    try:
        conf = os.path.join(d, "broken.conf")
        lines = valid_conf_text(d).splitlines()
        # Errors on lines 3, 6 and 10 (1-based), the rest valid.
        lines.insert(2, "no_such_directive yes")
        lines.insert(5, "max_recipients lots")
        lines.insert(9, "bare_lf sometimes")
        write(conf, "\n".join(lines) + "\n")
        r = run_cli("check-config", "-c", conf)
        out = (r.stdout + r.stderr).decode("utf-8", "replace")
        assert r.returncode == 1, (r.returncode, out)
        errs = [l for l in out.splitlines() if l.startswith(conf + ":")]
        assert len(errs) == 3, "expected 3 error lines, got:\n%s" % out
        nums = []
        for l in errs:
            m = re.match(re.escape(conf) + r":(\d+): \S", l)
            assert m, "not FILE:LINE: message: %r" % l
            nums.append(int(m.group(1)))
        assert sorted(nums) == [3, 6, 10], out
        assert "no_such_directive" in errs[nums.index(3)], errs
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---- configuration discovery ----


def _test_failed(request):
    rep = getattr(request.node, "rep_call", None)
    return rep is not None and rep.failed


@pytest.fixture
def two_configs(request):
    a = ServePetrel()
    b = ServePetrel()
    yield a, b
    for p in (a, b):
        p.finish(failed=_test_failed(request))


def test_dash_c_beats_env(two_configs):
    a, b = two_configs
    a.serve_args = ["-c", a.conf_path]
    a.env = {"PETREL_CONFIG": b.conf_path}
    a.start()
    f, src = config_line(a)
    assert f == a.conf_path and src == "command line", (f, src)
    a.wait_log(r"listening addr=127\.0\.0\.1 port=%d " % a.port)
    assert a.stop() == 0


def test_env_beats_system_file(two_configs, monkeypatch):
    a, b = two_configs
    # Whatever the machine has in /etc/petrel, PETREL_CONFIG wins.
    monkeypatch.setenv("PETREL_CONFIG", b.conf_path)
    a.start()
    f, src = config_line(a)
    assert f == b.conf_path and src == "PETREL_CONFIG", (f, src)
    a.wait_log(r"listening addr=127\.0\.0\.1 port=%d " % b.port)
    assert a.stop() == 0


def test_system_file_used_last(two_configs, monkeypatch):
    if os.path.lexists(SYSTEM_DIR):
        pytest.skip("%s exists already; not touching it" % SYSTEM_DIR)
    monkeypatch.delenv("PETREL_CONFIG", raising=False)
    p, q = two_configs
    os.mkdir(SYSTEM_DIR, 0o755)
    try:
        shutil.copyfile(p.conf_path, SYSTEM_CONF)
        # Neither -c nor PETREL_CONFIG: the system file.
        p.start()
        f, src = config_line(p)
        assert f == SYSTEM_CONF and src != "PETREL_CONFIG", (f, src)
        assert src and src != "command line", src
        p.wait_log(r"listening addr=127\.0\.0\.1 port=%d " % p.port)
        assert p.stop() == 0
        # The system file exists, but PETREL_CONFIG beats it.
        mark = p.log_mark()
        p.env = {"PETREL_CONFIG": q.conf_path}
        p.start(wait=False)
        f, src = config_line(p, start=mark)
        assert f == q.conf_path and src == "PETREL_CONFIG", (f, src)
        p.wait_log(r"listening addr=127\.0\.0\.1 port=%d " % q.port,
                   start=mark)
        assert p.stop() == 0
    finally:
        shutil.rmtree(SYSTEM_DIR, ignore_errors=True)


# ---- privileges ----


def proc_ids(pid):
    uids = gids = None
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                uids = [int(x) for x in line.split()[1:]]
            elif line.startswith("Gid:"):
                gids = [int(x) for x in line.split()[1:]]
    return uids, gids


def test_serve_drops_to_user_petrel(make_petrel):
    pw = pwd.getpwnam("petrel")
    p = make_petrel(user="petrel")
    uids, gids = proc_ids(p.proc.pid)
    assert uids == [pw.pw_uid] * 4, "daemon uids %s, petrel is %d" % (
        uids, pw.pw_uid)
    assert gids == [pw.pw_gid] * 4, "daemon gids %s" % gids
    msg = (b"From: <s@example.org>\r\nTo: <alice@example.test>\r\n"
           b"Subject: owner\r\nMessage-ID: <owner@test>\r\n\r\nbody\r\n")
    with p.smtp() as s:
        s.sendmail("s@example.org", ["alice@example.test"], msg)
    p.wait_delivered("alice@example.test", 1)
    files = p.maildir_files("alice@example.test")
    for path in files + [os.path.dirname(files[0]),
                         p.maildir_path("alice@example.test")]:
        st = os.stat(path)
        assert st.st_uid == pw.pw_uid, "%s owned by uid %d" % (
            path, st.st_uid)
    for sub in ("", "incoming", "queue", "corrupt"):
        path = os.path.join(p.spool, sub)
        st = os.stat(path)
        assert st.st_uid == pw.pw_uid, "%s owned by uid %d" % (
            path, st.st_uid)


def test_unknown_user_fails_at_start():
    p = Petrel(user="nosuchuser")
    try:
        p.start(wait=False)
        try:
            rc = p.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            raise AssertionError("petrel kept running with user nosuchuser:"
                                 "\n%s" % p.log_tail())
        p.stop()
        assert rc != 0, "exit status 0 with an unknown user"
        p._reader.join(timeout=10)
        log = "\n".join(p.log_lines)
        assert "nosuchuser" in log, "error does not name the user:\n" + log
        assert not re.search(r"listening addr=", log), log
        p.finish(failed=False)
    except BaseException:
        p.finish(failed=True)
        raise


def test_unknown_subcommand_prints_usage():
    r = run_cli("frobnicate")
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert re.search(rb"(?i)usage", r.stderr), r.stderr
    assert r.stdout == b"", r.stdout
