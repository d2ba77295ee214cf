"""
test_service.py: running Petrel as a service (contrib/).

- sd_notify: `petrel serve` with NOTIFY_SOCKET set (a Python datagram
  socket standing in for systemd) sends READY=1 once its listeners accept
  connections, RELOADING=1 (with MONOTONIC_USEC) and READY=1 around a
  SIGHUP reload, good or refused, STOPPING=1 on SIGTERM; an abstract
  socket (@name) works too; a NOTIFY_SOCKET it cannot use is a warning,
  never a failure to start.
- contrib/petrel.service's CapabilityBoundingSet: the daemon started as
  root with exactly that bounding set (and no_new_privs, as the unit's
  NoNewPrivileges=yes) binds a port below 1024, makes its spool and
  self-signed certificate, drops to its user and delivers; without any
  one of those capabilities it refuses to start, naming what failed.
- contrib/logrotate/petrel rotates a log kept open in append mode, as a
  daemon keeps log_file: after copytruncate the next line starts the file.
(`systemd-analyze verify` of the installed unit is in test_install.py.)
"""
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from harness import SOURCE_DIR, free_port

UNIT = os.path.join(SOURCE_DIR, "contrib", "petrel.service")
LOGROTATE = os.path.join(SOURCE_DIR, "contrib", "logrotate", "petrel")


def unit_settings():
    """The unit's Key=Value lines (the last one wins, as in systemd)."""
    out = {}
    with open(UNIT, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith(("#", "[")) and "=" in line:
                k, v = line.split("=", 1)
                out[k] = v
    return out


def unit_caps():
    """CapabilityBoundingSet as setpriv names: net_bind_service, ..."""
    caps = unit_settings()["CapabilityBoundingSet"].split()
    assert caps and all(c.startswith("CAP_") for c in caps), caps
    return [c[4:].lower() for c in caps]


def setpriv(caps):
    return ["setpriv", "--bounding-set",
            ",".join(["-all"] + ["+" + c for c in caps]),
            "--no-new-privs", "--"]


def privileged_port():
    """A free port below 1024 on 127.0.0.1 (we are root)."""
    ports = list(range(600, 1024))
    random.shuffle(ports)
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below 1024")


class Notify:
    """A datagram socket playing systemd's NOTIFY_SOCKET."""

    def __init__(self, tmpdir, abstract=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = "petrel-test-notify-%d-%d" % (os.getpid(),
                                                 random.randrange(1 << 30))
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            self.address = os.path.join(tmpdir, "notify")
            self.sock.bind(self.address)
            # The reload and stop notices come after the privilege drop.
            os.chmod(self.address, 0o777)
        self.sock.settimeout(30)

    def recv(self):
        try:
            return self.sock.recv(4096).decode()
        except socket.timeout:
            raise AssertionError("no sd_notify message within 30s")

    def pending(self):
        self.sock.setblocking(False)
        try:
            return self.sock.recv(4096).decode()
        except BlockingIOError:
            return None
        finally:
            self.sock.settimeout(30)

    def close(self):
        self.sock.close()


def greets(host, port):
    with socket.create_connection((host, port), timeout=30) as s:
        return s.recv(512).startswith(b"220 ")


def expect_reload(n):
    msg = n.recv()
    m = re.fullmatch(r"RELOADING=1\nMONOTONIC_USEC=(\d+)", msg)
    assert m, "want RELOADING=1 with MONOTONIC_USEC, got %r" % msg
    # CLOCK_MONOTONIC, the clock systemd compares it with.
    assert 0 < int(m.group(1)) <= time.monotonic_ns() // 1000
    msg = n.recv()
    assert msg == "READY=1", "want READY=1 after the reload, got %r" % msg


def test_sd_notify_ready_reload_stop(make_petrel):
    ports = [free_port(), free_port()]
    p = make_petrel(start=False, listen=["127.0.0.1:%d mx" % ports[0],
                                         "127.0.0.1:%d submission"
                                         % ports[1]])
    n = Notify(p.tmpdir)
    try:
        p.env = {"NOTIFY_SOCKET": n.address}
        p.start(wait=False)
        assert n.recv() == "READY=1"
        # Ready means every listener accepts connections.
        for port in ports:
            assert greets("127.0.0.1", port)
        p.wait_listening()

        mark = p.log_mark()
        p.signal(signal.SIGHUP)
        expect_reload(n)
        p.wait_log(r"config: reloaded", start=mark)

        # A refused reload still ends in READY=1: the daemon runs on.
        with open(p.conf_path, encoding="utf-8") as f:
            good = f.read()
        with open(p.conf_path, "a", encoding="utf-8") as f:
            f.write("lisen 127.0.0.1:1\n")
        mark = p.log_mark()
        p.signal(signal.SIGHUP)
        expect_reload(n)
        p.wait_log(r"config: reload failed", start=mark)
        with open(p.conf_path, "w", encoding="utf-8") as f:
            f.write(good)
        assert greets("127.0.0.1", ports[0])

        assert p.stop() == 0
        assert n.recv() == "STOPPING=1"
        assert n.pending() is None
    finally:
        n.close()


def test_sd_notify_abstract_socket(make_petrel):
    p = make_petrel(start=False)
    n = Notify(p.tmpdir, abstract=True)
    try:
        p.env = {"NOTIFY_SOCKET": n.address}
        p.start()
        assert n.recv() == "READY=1"
        assert p.stop() == 0
        assert n.recv() == "STOPPING=1"
    finally:
        n.close()


@pytest.mark.parametrize("value", ["relative/notify", "/nonexistent/notify"])
def test_sd_notify_unusable_socket_is_only_a_warning(make_petrel, value):
    p = make_petrel(start=False)
    p.env = {"NOTIFY_SOCKET": value}
    p.start()
    p.wait_log(r"warn: sdnotify: ")
    assert greets(p.host, p.port)
    assert p.stop() == 0


def test_unit_settings():
    """What the comments in the unit promise, and what the tests below
    rely on."""
    s = unit_settings()
    assert s["Type"] == "notify"
    assert s["ExecStart"] == "/usr/local/sbin/petrel serve"
    # SIGHUP reloads; SIGUSR1 would retry the whole queue instead.
    assert s["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert s["NoNewPrivileges"] == "yes"
    assert s["ProtectSystem"] == "strict"
    assert s["RuntimeDirectory"] == "petrel"
    for path in ("/var/spool/petrel", "/var/spool/petrel-maildrop"):
        assert path in s["ReadWritePaths"].split()
        assert path in s["ExecStartPre"]
    assert "net_bind_service" in unit_caps()


def test_unit_capabilities_suffice(make_petrel):
    port = privileged_port()
    p = make_petrel(start=False, listen="127.0.0.1:%d mx" % port,
                    wrapper=setpriv(unit_caps()))
    p.start()
    p.wait_log(r"daemon: running as user=petrel ")
    p.wait_log(r"tls: generated a self-signed certificate")
    with p.smtp() as c:
        c.sendmail("someone@example.org", ["alice@example.test"],
                   b"Subject: caps\r\n\r\nhello\r\n")
    p.wait_delivered("alice@example.test", 1)
    assert p.stop() == 0


# What fails first without each capability, on a first start (no spool
# yet, no certificate, a port below 1024).
NEEDED = {
    "net_bind_service": r"daemon: cannot listen on 127\.0\.0\.1:\d+: "
                        r"Permission denied",
    "setuid": r"daemon: cannot drop privileges to petrel: "
              r"Operation not permitted",
    "setgid": r"daemon: cannot drop privileges to petrel: "
              r"Operation not permitted",
    "chown": r"daemon: cannot chown \S+/spool: Operation not permitted",
    # root opening the spool lock in the daemon user's 0700 spool
    "dac_override": r"daemon: cannot lock \S+/spool/lock: Permission denied",
}


@pytest.mark.parametrize("cap", sorted(NEEDED))
def test_each_unit_capability_is_needed(make_petrel, cap):
    caps = unit_caps()
    assert sorted(caps) == sorted(NEEDED), \
        "the unit's capabilities changed: update NEEDED with why each is needed"
    port = privileged_port()
    p = make_petrel(start=False, listen="127.0.0.1:%d mx" % port,
                    wrapper=setpriv([c for c in caps if c != cap]))
    p.start(wait=False)
    try:
        rc = p.proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        raise AssertionError("petrel started without %s:\n%s"
                             % (cap, p.log_tail()))
    p.stop()
    assert rc == 1, p.log_tail()
    p.wait_log(NEEDED[cap], timeout=10)
    assert not any("listening addr=" in l for l in p.log_lines)


def test_logrotate_snippet(tmp_path_factory):
    with open(LOGROTATE, encoding="utf-8") as f:
        text = f.read()
    assert "\n/var/log/petrel/petrel.log {\n" in text
    assert re.search(r"^\s*copytruncate$", text, re.M)
    d = tempfile.mkdtemp(dir="/tmp", prefix="petrel-logrotate-")
    try:
        log = os.path.join(d, "petrel.log")
        conf = os.path.join(d, "petrel")
        with open(conf, "w", encoding="utf-8") as f:
            f.write(text.replace("/var/log/petrel/petrel.log", log))
        os.chmod(conf, 0o644)

        def rotate():
            r = subprocess.run(["logrotate", "-f", "-s",
                                os.path.join(d, "state"), conf],
                               capture_output=True, text=True, timeout=120)
            assert r.returncode == 0 and r.stderr == "", r.stderr

        def content(path):
            with open(path, "rb") as f:
                return f.read()

        # Held open in append mode across rotations, as log_file is.
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        try:
            os.write(fd, b"line one\n")
            rotate()
            assert content(log + ".1") == b"line one\n"
            assert content(log) == b""
            os.write(fd, b"line two\n")
            assert content(log) == b"line two\n"
            rotate()
            assert content(log + ".1") == b"line two\n"
            assert os.path.exists(log + ".2.gz")    # delaycompress
            os.write(fd, b"line three\n")
            assert content(log) == b"line three\n"
        finally:
            os.close(fd)
    finally:
        shutil.rmtree(d, ignore_errors=True)
