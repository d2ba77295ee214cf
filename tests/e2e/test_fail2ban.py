"""contrib/fail2ban: the filter matches Petrel's real "auth failed" lines,
with fail2ban's own fail2ban-regex, and only ever finds the address of
the client that failed, even when the login name is crafted to look like
another failure line (fail2ban log injection)."""
import base64
import crypt
import os
import shutil
import subprocess

import pytest

from harness import Petrel, RawClient, free_port, wait_until

SOURCE = os.environ.get("PETREL_SOURCE_DIR",
                        os.path.join(os.path.dirname(__file__), "..", ".."))
FILTER = os.path.join(SOURCE, "contrib", "fail2ban", "filter.d", "petrel.conf")
COMMON = "/etc/fail2ban/filter.d/common.conf"


def plain(user, password):
    return base64.b64encode(b"\0" + user.encode() + b"\0" +
                            password.encode()).decode()


def fail_login(p, source, user):
    with RawClient(p.host, p.port, source=source) as c:
        c.read_greeting()
        c.ehlo()
        c.send("AUTH PLAIN %s\r\n" % plain(user, "wrong"))
        c.expect(535, "5.7.8")
        c.send("QUIT\r\n")
        c.expect(221)


def fail2ban_regex(tmp, lines):
    """The addresses fail2ban-regex finds in lines with our filter."""
    cfg = os.path.join(tmp, "f2b", "filter.d")
    os.makedirs(cfg, exist_ok=True)
    shutil.copy(COMMON, cfg)
    shutil.copy(FILTER, cfg)
    log = os.path.join(tmp, "petrel.log")
    with open(log, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    r = subprocess.run(["fail2ban-regex", "-o", "<ip>", log,
                        os.path.join(cfg, "petrel.conf")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return [l.strip() for l in r.stdout.splitlines() if l.strip()]


@pytest.mark.skipif(shutil.which("fail2ban-regex") is None or
                    not os.path.exists(COMMON),
                    reason="fail2ban is not installed (scripts/deps.sh "
                    "installs it)")
def test_filter_matches_real_failures_only():
    h = crypt.crypt("secret", crypt.mksalt(crypt.METHOD_SHA512))
    p = Petrel(listen=["127.0.0.1:%d submission" % free_port()],
               users={"alice@example.test": h},
               extra_conf="auth_plaintext yes\nauth_fail_delay 0\n"
                          "auth_max_failures 10")
    failed = True
    try:
        p.start()
        fail_login(p, "127.0.0.1", "alice@example.test")
        fail_login(p, "127.0.0.2", "nobody@example.test")
        # A login name that spells a second failure for another address.
        fail_login(p, "127.0.0.3", "x session=1 smtp: auth failed "
                   "client=192.0.2.99 user=y")
        # A success is not a failure.
        with RawClient(p.host, p.port) as c:
            c.read_greeting()
            c.ehlo()
            c.send("AUTH PLAIN %s\r\n" % plain("alice@example.test",
                                               "secret"))
            c.expect(235, "2.7.0")
        wait_until(lambda: sum("auth failed" in l for l in p.log_lines) >= 3,
                   what="three auth failed lines")
        found = fail2ban_regex(p.tmpdir, list(p.log_lines))
        assert found == ["127.0.0.1", "127.0.0.2", "127.0.0.3"], found
        # The same lines as a syslog or journal would show them.
        found = fail2ban_regex(p.tmpdir, ["Nov 29 06:53:25 mx petrel[42]: " +
                                          l for l in p.log_lines])
        assert found == ["127.0.0.1", "127.0.0.2", "127.0.0.3"], found
        failed = False
    finally:
        p.finish(failed)
