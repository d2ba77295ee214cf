"""
test_user_cli.py: `petrel user add|del|passwd` against a temporary
configuration and users file: the hashes it writes verify with crypt(3),
every other line survives byte for byte, the file is replaced atomically
(new inode, same mode and owner, no temporary file left), duplicates and
unknown users are refused without touching the file, the password comes
from --stdin or twice from a terminal with echo off, and the daemon's own
loader (`petrel check-config`) accepts every result.
"""

import os
import pty
import pwd
import select
import shutil
import subprocess
import termios
import time
import warnings

import pytest

from harness import PETREL_BIN, workdir

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import crypt
    except ImportError:  # Python 3.13 has none; check-config still runs
        crypt = None


def write(path, text, mode=None):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    if mode is not None:
        os.chmod(path, mode)


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


class Env:
    """A work dir with petrel.conf naming users (created by the test)."""

    def __init__(self, users_line=True):
        self.dir = workdir()
        self.conf = os.path.join(self.dir, "petrel.conf")
        self.users = os.path.join(self.dir, "users")
        text = ("hostname mx.example.test\n"
                "spool %s/spool\n"
                "listen 127.0.0.1:2599 mx\n"
                "domain example.test\n"
                "maildir %s/mail/%%d/%%u\n" % (self.dir, self.dir))
        if users_line:
            text += "users %s\n" % self.users
        write(self.conf, text)

    def run(self, *args, stdin=b"", timeout=60):
        e = dict(os.environ)
        e.pop("PETREL_CONFIG", None)
        return subprocess.run([PETREL_BIN] + list(args), input=stdin,
                              capture_output=True, timeout=timeout, env=e)

    def user(self, op, addr, password=None, extra=()):
        args = ["user", op, "-c", self.conf, addr] + list(extra)
        if password is None:
            return self.run(*args, stdin=b"")
        if isinstance(password, str):
            password = password.encode()
        return self.run(*(args + ["--stdin"]), stdin=password)

    def check_config(self):
        r = self.run("check-config", "-c", self.conf)
        assert r.returncode == 0, (r.stdout, r.stderr)

    def hash_of(self, addr):
        for line in read_bytes(self.users).decode().splitlines():
            if line.strip().startswith("#") or ":" not in line:
                continue
            a, h = line.split(":", 1)
            if a.strip().lower() == addr.lower():
                return h.strip()
        return None

    def leftovers(self):
        return [n for n in os.listdir(os.path.dirname(
            os.path.realpath(self.users))) if n.startswith(".users.")]

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def env():
    e = Env()
    yield e
    e.close()


def out(r):
    return (r.stdout + r.stderr).decode("utf-8", "replace")


def assert_verifies(h, password, other="not-the-password"):
    """The hash is yescrypt and matches password, and only password."""
    assert h is not None and h.startswith("$y$"), h
    if crypt is None:
        return
    assert crypt.crypt(password, h) == h, (password, h)
    assert crypt.crypt(other, h) != h


def assert_unchanged(env, before, stat_before):
    assert read_bytes(env.users) == before
    st = os.stat(env.users)
    assert st.st_ino == stat_before.st_ino
    assert env.leftovers() == []


# ---- add ----


def test_add_stdin_appends_a_verifiable_hash(env):
    original = ("# users of example.test\r\n"
                "\n"
                "bob@example.test:\n"
                "  # indented comment\n"
                "carol@example.test : %s\n" % crypt_hash("carolpw"))
    write(env.users, original, 0o640)
    ino = os.stat(env.users).st_ino
    r = env.user("add", "alice@example.test", "s3cret horse\n")
    assert r.returncode == 0, out(r)
    assert "added alice@example.test" in out(r)
    data = read_bytes(env.users).decode()
    # Every old byte kept, one line appended.
    assert data.startswith(original), data
    added = data[len(original):]
    assert added.startswith("alice@example.test:$y$"), added
    assert added.endswith("\n") and added.count("\n") == 1
    assert_verifies(env.hash_of("alice@example.test"), "s3cret horse")
    # Replaced, not edited in place; mode kept; nothing left behind.
    st = os.stat(env.users)
    assert st.st_ino != ino
    assert st.st_mode & 0o7777 == 0o640
    assert env.leftovers() == []
    env.check_config()


def crypt_hash(password):
    """A SHA-512 hash made outside Petrel (or a fixed one)."""
    if crypt is not None:
        return crypt.crypt(password, crypt.mksalt(crypt.METHOD_SHA512))
    return "$6$saltsalt$abcdefghijklmnopqrstuvwxyz"


def test_add_without_final_newline_and_new_file(env):
    write(env.users, "bob@example.test:")  # no newline at the end
    r = env.user("add", "alice@example.test", "pw1")
    assert r.returncode == 0, out(r)
    lines = read_bytes(env.users).decode().split("\n")
    assert lines[0] == "bob@example.test:"
    assert lines[1].startswith("alice@example.test:$y$")
    assert lines[2] == ""
    env.check_config()
    # A users file that does not exist yet is created, 0640.
    os.unlink(env.users)
    r = env.user("add", "alice@example.test", "pw2")
    assert r.returncode == 0, out(r)
    assert os.stat(env.users).st_mode & 0o7777 == 0o640
    assert_verifies(env.hash_of("alice@example.test"), "pw2")
    env.check_config()


def test_stdin_line_endings_and_spaces(env):
    cases = [
        (b"pw-crlf\r\n", "pw-crlf"),
        (b"no-newline", "no-newline"),
        (b"  spaces inside  \n", "  spaces inside  "),
        (b"first line\nsecond line\n", "first line"),
        ("p\u00e4ssw\u00f6rd\n".encode(), "p\u00e4ssw\u00f6rd"),
    ]
    for i, (raw, want) in enumerate(cases):
        addr = "user%d@example.test" % i
        r = env.user("add", addr, raw)
        assert r.returncode == 0, (raw, out(r))
        h = env.hash_of(addr)
        assert_verifies(h, want)
        if crypt is not None and raw.decode() != want:
            # The line ending (or the next line) is not part of it.
            assert crypt.crypt(raw.decode(), h) != h, raw
    env.check_config()


def test_add_refuses_duplicates_in_any_case(env):
    write(env.users, "# x\nalice@example.test:$y$j9T$abc$def\n", 0o600)
    before, st = read_bytes(env.users), os.stat(env.users)
    for addr in ("alice@example.test", "ALICE@Example.Test"):
        r = env.user("add", addr, "pw")
        assert r.returncode == 1, out(r)
        assert "already a user" in out(r)
        assert_unchanged(env, before, st)


def test_add_refuses_empty_or_bad_password(env):
    write(env.users, "bob@example.test:\n")
    before, st = read_bytes(env.users), os.stat(env.users)
    for raw, msg in ((b"", "empty password"), (b"\n", "empty password"),
                     (b"\r\n", "empty password"),
                     (b"a\x00b\n", "NUL"),
                     (b"x" * 5000 + b"\n", "longer than")):
        r = env.user("add", "alice@example.test", raw)
        assert r.returncode == 1, (raw, out(r))
        assert msg in out(r), out(r)
        assert_unchanged(env, before, st)


@pytest.mark.parametrize("addr", [
    "alice", "@example.test", "alice@", "a@b@example.test",
    "al ice@example.test", "al:ice@example.test", "\"al\"@example.test",
    "al\\ice@example.test", ".alice@example.test", "alice@.example.test",
    "al/ice@example.test", "alice@exa/mple.test", "#alice@example.test",
    "alice\t@example.test", "a" * 65 + "@example.test",
])
def test_add_refuses_bad_addresses(env, addr):
    write(env.users, "bob@example.test:\n")
    before, st = read_bytes(env.users), os.stat(env.users)
    r = env.user("add", addr, "pw")
    assert r.returncode == 1, out(r)
    assert "invalid address" in out(r)
    assert_unchanged(env, before, st)


def test_add_outside_local_domains_warns(env):
    write(env.users, "")
    r = env.user("add", "dave@elsewhere.test", "pw")
    assert r.returncode == 0, out(r)
    assert "not a local domain" in out(r)
    assert env.hash_of("dave@elsewhere.test") is not None
    env.check_config()


def test_add_refuses_when_the_daemon_would_refuse_the_file(env):
    # A line the loader rejects: the result would not load, so the file
    # stays as it is and the error names the real file and line.
    write(env.users, "bob@example.test:\nbroken line without colon\n")
    before, st = read_bytes(env.users), os.stat(env.users)
    r = env.user("add", "alice@example.test", "pw")
    assert r.returncode == 1, out(r)
    assert "%s:2: missing ':'" % os.path.realpath(env.users) in out(r), \
        out(r)
    assert "left unchanged" in out(r)
    assert_unchanged(env, before, st)


# ---- del and passwd ----


def test_del_removes_only_that_line(env):
    r = env.user("add", "alice@example.test", "pw")
    assert r.returncode == 0, out(r)
    tail = "# after\ncarol@example.test:\n"
    with open(env.users, "a", encoding="utf-8") as f:
        f.write(tail)
    head = "# head\nbob@example.test:\n"
    data = read_bytes(env.users).decode()
    write(env.users, head + data)
    r = env.user("del", "Alice@EXAMPLE.test")
    assert r.returncode == 0, out(r)
    assert "deleted" in out(r)
    assert read_bytes(env.users).decode() == head + tail
    assert env.leftovers() == []
    env.check_config()
    # Gone: a second del and a passwd are refused, file untouched.
    before, st = read_bytes(env.users), os.stat(env.users)
    r = env.user("del", "alice@example.test")
    assert r.returncode == 1 and "not a user" in out(r), out(r)
    r = env.user("passwd", "alice@example.test", "pw")
    assert r.returncode == 1 and "not a user" in out(r), out(r)
    assert_unchanged(env, before, st)
    # A comment that mentions the address is not its line.
    write(env.users, "#alice@example.test:\n")
    r = env.user("del", "alice@example.test")
    assert r.returncode == 1, out(r)


def test_del_and_passwd_without_a_file(env):
    for op, pw in (("del", None), ("passwd", "pw")):
        r = env.user(op, "alice@example.test", pw)
        assert r.returncode == 1, out(r)
        assert "not a user" in out(r)
    assert not os.path.exists(env.users)


def test_passwd_replaces_the_hash(env):
    write(env.users, "# c\n  Alice@Example.test : $y$j9T$old$old \r\n"
                     "bob@example.test:\n")
    r = env.user("passwd", "alice@example.test", "n3w\n")
    assert r.returncode == 0, out(r)
    lines = read_bytes(env.users).decode().split("\n")
    assert lines[0] == "# c"
    # The address as it was written, the new hash, a plain LF.
    assert lines[1].startswith("Alice@Example.test:$y$"), lines[1]
    assert lines[2] == "bob@example.test:"
    assert_verifies(env.hash_of("alice@example.test"), "n3w")
    old = env.hash_of("alice@example.test")
    r = env.user("passwd", "alice@example.test", "newer")
    assert r.returncode == 0, out(r)
    h = env.hash_of("alice@example.test")
    assert h != old
    assert_verifies(h, "newer", other="n3w")
    env.check_config()


# ---- file handling ----


def test_mode_and_owner_are_kept(env):
    if os.geteuid() != 0:
        pytest.skip("needs root to give the file another owner")
    nobody = pwd.getpwnam("nobody")
    write(env.users, "bob@example.test:\n", 0o604)
    os.chown(env.users, nobody.pw_uid, nobody.pw_gid)
    for op, pw in (("add", "pw"), ("passwd", "pw2"), ("del", None)):
        ino = os.stat(env.users).st_ino
        r = env.user(op, "alice@example.test", pw)
        assert r.returncode == 0, (op, out(r))
        st = os.stat(env.users)
        assert st.st_ino != ino, op
        assert (st.st_uid, st.st_gid) == (nobody.pw_uid, nobody.pw_gid), op
        assert st.st_mode & 0o7777 == 0o604, (op, oct(st.st_mode))
    assert env.leftovers() == []


def test_new_file_is_readable_by_the_daemon_user(env):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    nobody = pwd.getpwnam("nobody")
    with open(env.conf, "a", encoding="utf-8") as f:
        f.write("user nobody\n")
    r = env.user("add", "alice@example.test", "pw")
    assert r.returncode == 0, out(r)
    st = os.stat(env.users)
    assert st.st_gid == nobody.pw_gid
    assert st.st_mode & 0o7777 == 0o640


def test_symlink_target_is_replaced(env):
    real_dir = os.path.join(env.dir, "real")
    os.mkdir(real_dir)
    real = os.path.join(real_dir, "users.db")
    write(real, "bob@example.test:\n")
    os.symlink(real, env.users)
    r = env.user("add", "alice@example.test", "pw")
    assert r.returncode == 0, out(r)
    assert os.path.islink(env.users)
    assert env.hash_of("alice@example.test") is not None
    assert [n for n in os.listdir(real_dir) if n != "users.db"] == []
    env.check_config()


def test_concurrent_adds_lose_nothing(env):
    write(env.users, "")
    addrs = ["u%02d@example.test" % i for i in range(12)]
    procs = []
    e = dict(os.environ)
    e.pop("PETREL_CONFIG", None)
    for a in addrs:
        p = subprocess.Popen([PETREL_BIN, "user", "add", "-c", env.conf, a,
                              "--stdin"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=e)
        procs.append(p)
    for p, a in zip(procs, addrs):
        o, err = p.communicate(("pw-" + a + "\n").encode(), timeout=120)
        assert p.returncode == 0, (a, o, err)
    for a in addrs:
        assert_verifies(env.hash_of(a), "pw-" + a)
    assert len(read_bytes(env.users).decode().splitlines()) == len(addrs)
    assert env.leftovers() == []
    env.check_config()


# ---- the terminal ----


def run_on_pty(env, args, answers, timeout=60):
    """Run petrel with a pty as stdin/stdout/stderr; type each answer
    after each prompt (a new "password" in the output), once the terminal's
    echo is off (Linux shares the termios of both ends of a pty). Returns
    (exit code, transcript)."""
    pid, fd = pty.fork()
    if pid == 0:
        os.environ.pop("PETREL_CONFIG", None)
        os.execv(PETREL_BIN, [PETREL_BIN] + args)
    transcript = b""
    pending = list(answers)
    deadline = time.monotonic() + timeout
    prompts = 0
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 0.1)
            if r:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                transcript += chunk
            if pending and transcript.lower().count(b"password") > prompts:
                if termios.tcgetattr(fd)[3] & termios.ECHO:
                    continue    # not yet: typed now, it would be echoed
                prompts += 1
                os.write(fd, pending.pop(0) + b"\n")
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    return os.waitstatus_to_exitcode(status), transcript.decode(
        "utf-8", "replace")


def test_tty_prompts_twice_without_echo(env):
    write(env.users, "")
    rc, t = run_on_pty(env, ["user", "add", "-c", env.conf,
                             "alice@example.test"],
                       [b"Tty-Secret-1", b"Tty-Secret-1"])
    assert rc == 0, t
    assert t.lower().count("password") == 2, t
    assert "Tty-Secret-1" not in t, t      # never echoed
    assert_verifies(env.hash_of("alice@example.test"), "Tty-Secret-1")
    # passwd the same way
    rc, t = run_on_pty(env, ["user", "passwd", "-c", env.conf,
                             "alice@example.test"],
                       [b"Tty-Secret-2", b"Tty-Secret-2"])
    assert rc == 0, t
    assert_verifies(env.hash_of("alice@example.test"), "Tty-Secret-2",
                    other="Tty-Secret-1")
    env.check_config()


def test_tty_mismatch_is_refused(env):
    write(env.users, "bob@example.test:\n")
    before, st = read_bytes(env.users), os.stat(env.users)
    rc, t = run_on_pty(env, ["user", "add", "-c", env.conf,
                             "alice@example.test"],
                       [b"one-password", b"another-password"])
    assert rc == 1, t
    assert "do not match" in t, t
    assert "one-password" not in t and "another-password" not in t
    assert_unchanged(env, before, st)


def test_no_tty_without_stdin_flag(env):
    write(env.users, "")
    r = env.user("add", "alice@example.test")  # stdin is a pipe
    assert r.returncode == 1, out(r)
    assert "--stdin" in out(r)
    assert read_bytes(env.users) == b""


# ---- usage and configuration ----


@pytest.mark.parametrize("args", [
    ["user"], ["user", "frob", "a@example.test"], ["user", "add"],
    ["user", "add", "a@example.test", "b@example.test"],
    ["user", "del", "a@example.test", "--stdin"],
    ["user", "add", "--bogus", "a@example.test"],
])
def test_usage_errors(env, args):
    r = env.run(*args)
    assert r.returncode == 2, out(r)
    assert "usage:" in out(r)


def test_no_users_file_configured():
    e = Env(users_line=False)
    try:
        r = e.user("add", "alice@example.test", "pw")
        assert r.returncode == 1, out(r)
        assert "users" in out(r)
        assert not os.path.exists(e.users)
    finally:
        e.close()


def test_config_from_environment(env):
    write(env.users, "")
    e = dict(os.environ, PETREL_CONFIG=env.conf)
    r = subprocess.run([PETREL_BIN, "user", "add", "alice@example.test",
                        "--stdin"], input=b"pw\n", capture_output=True,
                       env=e, timeout=60)
    assert r.returncode == 0, out(r)
    assert env.hash_of("alice@example.test") is not None

