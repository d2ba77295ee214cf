"""
test_install.py: `make install` (cmake/PetrelInstall.cmake) into a
temporary DESTDIR: every file, link and mode, nothing outside PREFIX, the
unit's ExecStart= pointing at the installed program, a reinstall over an
existing tree, the default PREFIX (/usr/local), and the installed pieces
working: the program runs, `mailq` resolves to it, man finds the pages,
and `systemd-analyze verify` accepts the installed unit.
"""
import grp
import os
import shutil
import stat
import subprocess
import tempfile

import pytest

from harness import PETREL_BIN, SOURCE_DIR

BUILD = os.path.dirname(os.path.abspath(PETREL_BIN))
CONTRIB = ["petrel.service", "README.md", "logrotate/petrel",
           "fail2ban/README.md", "fail2ban/filter.d/petrel.conf",
           "fail2ban/jail.d/petrel.conf"]


@pytest.fixture
def tmp():
    d = tempfile.mkdtemp(dir="/tmp", prefix="petrel-install-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def make_install(destdir=None, prefix=None):
    """`make install` with this test's build directory; its output."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "DESTDIR",
                        "PREFIX")}
    args = ["make", "-s", "-C", SOURCE_DIR, "install", "BUILD=" + BUILD]
    if destdir is not None:
        args.append("DESTDIR=" + destdir)
    if prefix is not None:
        args.append("PREFIX=" + prefix)
    r = subprocess.run(args, capture_output=True, text=True, timeout=600,
                       env=env)
    assert r.returncode == 0, "make install failed:\n%s\n%s" % (r.stdout,
                                                                r.stderr)
    return r.stdout


def has_postdrop():
    return os.path.exists(os.path.join(BUILD, "petrel-postdrop"))


def expected_tree(prefix):
    """Every path make install creates (files and links), under prefix."""
    p = prefix.rstrip("/")
    out = {p + "/sbin/petrel", p + "/sbin/sendmail", p + "/sbin/mailq",
           p + "/sbin/newaliases", p + "/share/man/man8/petrel.8",
           p + "/share/man/man5/petrel.conf.5",
           p + "/lib/systemd/system/petrel.service"}
    out |= {p + "/share/petrel/contrib/" + c for c in CONTRIB}
    if has_postdrop():
        out.add(p + "/sbin/petrel-postdrop")
    return out


def installed(dest, prefix):
    """Every file and link under dest (under dest + prefix when dest is
    empty), as absolute paths without dest."""
    out = set()
    for root, dirs, files in os.walk(dest or prefix):
        for name in files + [d for d in dirs
                             if os.path.islink(os.path.join(root, d))]:
            out.add(os.path.join(root, name)[len(dest):])
    return out


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def same_bytes(a, b):
    with open(a, "rb") as f, open(b, "rb") as g:
        return f.read() == g.read()


def check_tree(dest, prefix):
    root = dest + prefix
    got, want = installed(dest, prefix), expected_tree(prefix)
    assert got == want, "missing: %s; unexpected: %s" % (
        sorted(want - got), sorted(got - want))

    prog = root + "/sbin/petrel"
    assert stat.S_ISREG(os.lstat(prog).st_mode)
    assert mode(prog) == 0o755, oct(mode(prog))
    r = subprocess.run([prog, "version"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0 and r.stdout == "petrel 0.1.0\n", r
    for name in ("sendmail", "mailq", "newaliases"):
        link = root + "/sbin/" + name
        assert os.path.islink(link), "%s is not a symbolic link" % link
        # Relative, so that the tree works wherever it is moved.
        assert os.readlink(link) == "petrel", os.readlink(link)
        assert os.path.realpath(link) == os.path.realpath(prog)

    for src, dst in (("man/petrel.8", "/share/man/man8/petrel.8"),
                     ("man/petrel.conf.5", "/share/man/man5/petrel.conf.5")):
        assert same_bytes(os.path.join(SOURCE_DIR, src), root + dst), dst
        assert mode(root + dst) == 0o644, (dst, oct(mode(root + dst)))
    for c in CONTRIB:
        path = root + "/share/petrel/contrib/" + c
        assert same_bytes(os.path.join(SOURCE_DIR, "contrib", c), path), c
        assert mode(path) == 0o644, (c, oct(mode(path)))

    unit = root + "/lib/systemd/system/petrel.service"
    assert mode(unit) == 0o644, oct(mode(unit))
    with open(os.path.join(SOURCE_DIR, "contrib", "petrel.service"),
              encoding="utf-8") as f:
        shipped = f.read()
    with open(unit, encoding="utf-8") as f:
        text = f.read()
    assert "ExecStart=%s/sbin/petrel serve\n" % prefix.rstrip("/") in text
    # Only the program's path differs from the shipped unit.
    assert text == shipped.replace("/usr/local/sbin/petrel",
                                   prefix.rstrip("/") + "/sbin/petrel")

    if has_postdrop():
        pd = root + "/sbin/petrel-postdrop"
        assert mode(pd) == 0o2755, oct(mode(pd))
        try:
            gid = grp.getgrnam("petreldrop").gr_gid
        except KeyError:
            gid = None
        if gid is not None and os.geteuid() == 0:
            assert os.lstat(pd).st_gid == gid


def test_destdir_prefix_usr(tmp):
    dest = os.path.join(tmp, "dest")
    out = make_install(destdir=dest, prefix="/usr")
    assert "%s/usr/sbin/mailq -> petrel" % dest in out, out
    check_tree(dest, "/usr")
    # Again over the installed tree: the links are replaced, not refused.
    make_install(destdir=dest, prefix="/usr")
    check_tree(dest, "/usr")


def test_default_prefix_is_usr_local(tmp):
    dest = os.path.join(tmp, "dest")
    make_install(destdir=dest)
    check_tree(dest, "/usr/local")


def test_installed_pages_and_unit_work(tmp):
    """Installed for real under a PREFIX (no DESTDIR): man finds the
    pages there, and systemd-analyze verify accepts the unit, whose
    ExecStart= and man: links now exist."""
    prefix = os.path.join(tmp, "usr")
    make_install(prefix=prefix)
    check_tree("", prefix)
    mandir = os.path.join(prefix, "share", "man")
    for page, section in (("petrel", "8"), ("petrel.conf", "5")):
        r = subprocess.run(["man", "-M", mandir, "-w", section, page],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip().startswith(mandir), r.stdout
    unit = os.path.join(prefix, "lib", "systemd", "system",
                        "petrel.service")
    r = subprocess.run(["systemd-analyze", "verify", unit],
                       capture_output=True, text=True, timeout=120, cwd=tmp,
                       env=dict(os.environ, MANPATH=mandir))
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", \
        "systemd-analyze verify:\n%s%s" % (r.stdout, r.stderr)
