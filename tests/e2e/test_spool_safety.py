"""
test_spool_safety.py: `petrel serve`, started as root, refuses to run on a
spool that other users could write to or replace (src/daemon/safedir.c),
before it creates or chowns anything, and runs where the rules allow:

- a world-writable directory above the spool: refused (the spool is not
  even created); with the sticky bit (as /tmp): accepted, and the spool is
  made mode 0700 for the daemon's user;
- a world-writable spool: refused;
- a directory above the spool owned by another user: refused;
- a spool reached through a symbolic link into a world-writable
  directory: refused (the link is followed);
- `petrel check-config` reports what serve would refuse (exit 1).
"""
import os
import pwd
import re
import stat
import subprocess

from harness import PETREL_BIN


def refused(p, regex):
    """Start p, which must exit 1 before listening with regex logged."""
    mark = p.log_mark()
    p.start(wait=False)
    try:
        rc = p.proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        raise AssertionError("petrel kept running:\n%s" % p.log_tail())
    p.stop()
    assert rc == 1, "exit %s:\n%s" % (rc, p.log_tail())
    p.wait_log(r"error: daemon: refusing to run: spool " + regex, timeout=10,
               start=mark)
    assert not any("listening addr=" in l for l in p.log_lines[mark:])


def test_world_writable_parent_refused(make_petrel):
    p = make_petrel(start=False)
    os.chmod(p.tmpdir, 0o777)
    refused(p, r"\S+: %s is writable by every user \(mode 0777\)"
            % p.tmpdir)
    # Refused before anything was made or chowned.
    assert not os.path.exists(p.spool)


def test_sticky_world_writable_parent_accepted(make_petrel):
    p = make_petrel(start=False)
    os.chmod(p.tmpdir, 0o1777)
    p.start()
    st = os.stat(p.spool)
    assert stat.S_IMODE(st.st_mode) == 0o700, oct(st.st_mode)
    assert st.st_uid == pwd.getpwnam("petrel").pw_uid
    with p.smtp() as c:
        c.sendmail("someone@example.org", ["alice@example.test"],
                   b"Subject: sticky\r\n\r\nhello\r\n")
    p.wait_delivered("alice@example.test", 1)
    assert p.stop() == 0


def test_world_writable_spool_refused(make_petrel):
    p = make_petrel()
    assert p.stop() == 0
    os.chmod(p.spool, 0o777)
    refused(p, r"%s: %s is writable by every user \(mode 0777\): "
            r"chmod 0700 " % (p.spool, p.spool))
    os.chmod(p.spool, 0o1777)     # the sticky bit does not help here
    refused(p, r"%s: %s is writable by every user \(mode 1777\)"
            % (p.spool, p.spool))


def test_parent_owned_by_another_user_refused(make_petrel):
    p = make_petrel(start=False)
    nobody = pwd.getpwnam("nobody").pw_uid
    os.chown(p.tmpdir, nobody, -1)
    refused(p, r"\S+: %s belongs to uid %d, who could replace the spool"
            % (p.tmpdir, nobody))
    assert not os.path.exists(p.spool)


def test_link_into_world_writable_directory_refused(make_petrel):
    p = make_petrel(start=False)
    open_dir = os.path.join(p.tmpdir, "open")
    os.makedirs(os.path.join(open_dir, "real"))
    os.chmod(open_dir, 0o777)
    # tmpdir/link -> tmpdir/open/real: only the resolved path is unsafe.
    os.symlink(os.path.join(open_dir, "real"),
               os.path.join(p.tmpdir, "link"))
    p.spool = os.path.join(p.tmpdir, "link", "spool")
    p.write_conf()
    refused(p, r"\S+: %s is writable by every user" % open_dir)


def check_config(p):
    r = subprocess.run([PETREL_BIN, "check-config", "-c", p.conf_path],
                       capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout, r.stderr


def test_check_config_refuses_what_serve_refuses(make_petrel):
    p = make_petrel(start=False)
    rc, out, err = check_config(p)
    assert rc == 0 and "configuration is valid" in out, (rc, out, err)

    os.chmod(p.tmpdir, 0o777)
    rc, out, err = check_config(p)
    assert rc == 1 and out == "", (rc, out, err)
    assert re.search(r"error: daemon: serve would refuse to run: spool "
                     r"\S+: %s is writable by every user \(mode 0777\)"
                     % re.escape(p.tmpdir), err), err
    os.chmod(p.tmpdir, 0o755)

    # A spool root made (as systemd's ExecStartPre does): serve gives it
    # to its user, so check-config does not hold the owner against it.
    os.mkdir(p.spool, 0o700)
    rc, out, err = check_config(p)
    assert rc == 0, (rc, out, err)
    os.chmod(p.spool, 0o777)
    rc, out, err = check_config(p)
    assert rc == 1, (rc, out, err)
    assert "%s is writable by every user (mode 0777)" % p.spool in err, err
