"""
dovecot.py: a private Dovecot for end-to-end tests (test_dovecot.py,
test_lmtp_dovecot.py).

Dovecot(mail_root, users, ...) writes a configuration into a fresh
directory under /tmp and start() runs `dovecot -F -c CONFIG` in the
foreground: its own base_dir and state_dir, IMAP (and optionally POP3) on
its own ports on 127.0.0.1, no TLS, users from a passwd-file, mail owned
by the user `petrel` (mail_uid/mail_gid). With lmtp=True it also serves
LMTP on a unix socket (base_dir/lmtp, owner petrel, mode 0600: only
Petrel's daemon, after it dropped root, and root can connect) and on a
TCP port on 127.0.0.1; with quota=True it loads the quota plugin
(Maildir++ quota) and sets quota_full_tempfail from the argument, so a
user given a quota_rule (users = {"bob@example.test":
"userdb_quota_rule=*:storage=1K"}) is over quota with the first message
larger than 1 KiB.

Everything listens on loopback only. The log (stderr) is kept in .log.
"""

import grp
import imaplib
import os
import poplib
import pwd
import shutil
import signal
import socket
import subprocess
import threading
import time

from harness import free_port, workdir

DOVECOT = "/usr/sbin/dovecot"
DOVECONF = "/usr/bin/doveconf"
LMTP_MODULE = "/usr/lib/dovecot/lmtp"
POP3_MODULE = "/usr/lib/dovecot/pop3"
PASSWORD = "imap-secret-1"


def existing_user(*names):
    for n in names:
        try:
            return pwd.getpwnam(n)
        except KeyError:
            continue
    raise AssertionError("none of the users %s exists" % (names,))


class Dovecot:
    """users: a list of addresses, or a dict address -> the passwd-file's
    extra fields for it (None: none), e.g. "userdb_quota_rule=*:storage=1K"
    (a quota) and "userdb_quota_full_tempfail=yes" (that setting for this
    user only: Dovecot applies userdb fields over the configuration)."""

    def __init__(self, mail_root, users, pop3=False, lmtp=False,
                 quota=False, quota_full_tempfail=False):
        self.dir = workdir()
        self.mail_root = mail_root
        self.port = free_port()
        self.pop3_port = free_port() if pop3 else None
        self.lmtp_port = free_port() if lmtp else None
        self.lmtp_socket = os.path.join(self.dir, "base", "lmtp") \
            if lmtp else None
        self.conf = os.path.join(self.dir, "dovecot.conf")
        self.log = []
        self.proc = None
        self.mail_user = pwd.getpwnam("petrel")
        if not isinstance(users, dict):
            users = {u: None for u in users}
        self.users = users
        self.with_pop3 = pop3
        self.with_lmtp = lmtp
        self.quota = quota
        self.quota_full_tempfail = quota_full_tempfail
        for d in ("base", "state"):
            os.mkdir(os.path.join(self.dir, d), 0o755)
        self.passwd = os.path.join(self.dir, "passwd")
        with open(self.passwd, "w") as f:
            for u, extra in users.items():
                f.write("%s:{PLAIN}%s::::::%s\n" % (u, PASSWORD,
                                                     extra or ""))
        os.chmod(self.passwd, 0o644)
        self.write_conf()

    def conf_text(self):
        mail = self.mail_user
        internal = existing_user("dovecot", "nobody")
        login = existing_user("dovenull", "nobody")
        protocols = ["imap"]
        if self.with_pop3:
            protocols.append("pop3")
        if self.with_lmtp:
            protocols.append("lmtp")
        text = """\
base_dir = {d}/base
state_dir = {d}/state
log_path = /dev/stderr
info_log_path = /dev/stderr
listen = 127.0.0.1
protocols = {protocols}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
first_valid_uid = 0
mail_uid = {uid}
mail_gid = {gid}
default_internal_user = {internal}
default_internal_group = {internal_group}
default_login_user = {login}
mail_location = maildir:{root}/%d/%n
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {passwd}
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {passwd}
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
""".format(d=self.dir, uid=mail.pw_uid, gid=mail.pw_gid,
           internal=internal.pw_name,
           internal_group=grp.getgrgid(internal.pw_gid).gr_name,
           login=login.pw_name, root=self.mail_root, passwd=self.passwd,
           port=self.port, protocols=" ".join(protocols))
        if self.with_pop3:
            text += """\
service pop3-login {{
  chroot =
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
""".format(port=self.pop3_port)
        if self.with_lmtp:
            text += """\
service lmtp {{
  unix_listener lmtp {{
    user = {user}
    group = {group}
    mode = 0600
  }}
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
}}
""".format(user=self.mail_user.pw_name,
           group=grp.getgrgid(self.mail_user.pw_gid).gr_name,
           port=self.lmtp_port)
        if self.quota:
            text += """\
mail_plugins = $mail_plugins quota
quota_full_tempfail = {tempfail}
plugin {{
  quota = maildir:User quota
}}
""".format(tempfail="yes" if self.quota_full_tempfail else "no")
        return text

    def write_conf(self):
        with open(self.conf, "w") as f:
            f.write(self.conf_text())

    def check_config(self):
        r = subprocess.run([DOVECONF, "-n", "-c", self.conf],
                           capture_output=True, timeout=30)
        assert r.returncode == 0, r.stderr.decode()

    def _read(self, stream):
        for line in iter(stream.readline, b""):
            self.log.append(line.decode("utf-8", "replace").rstrip("\n"))

    def _listening(self):
        try:
            m = imaplib.IMAP4("127.0.0.1", self.port, timeout=5)
            m.logout()
        except OSError:
            return False
        if self.with_lmtp:
            # Connectable, not only there: a stopped Dovecot leaves its
            # socket files behind.
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(self.lmtp_socket)
            except OSError:
                return False
            finally:
                s.close()
        return True

    def start(self, timeout=20):
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", self.conf],
                                     stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        threading.Thread(target=self._read, args=(self.proc.stdout,),
                         daemon=True).start()
        deadline = time.monotonic() + timeout
        while not self._listening():
            assert self.proc.poll() is None, \
                "dovecot exited:\n" + "\n".join(self.log)
            assert time.monotonic() < deadline, \
                "dovecot not listening:\n" + "\n".join(self.log)
            time.sleep(0.05)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """SIGTERM and wait. Dovecot leaves its socket files behind."""
        if self.running():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def errors(self):
        return [l for l in self.log if "Error:" in l or "Panic:" in l or
                "Fatal:" in l]

    def finish(self, ok):
        """Stop; keep the directory and print the log unless ok."""
        self.stop()
        if not ok:
            print("---- dovecot log (%s) ----\n%s"
                  % (self.dir, "\n".join(self.log)))
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def imap(self, user="alice@example.test"):
        m = imaplib.IMAP4("127.0.0.1", self.port, timeout=30)
        typ, _ = m.login(user, PASSWORD)
        assert typ == "OK"
        return m

    def pop3(self, user="alice@example.test"):
        p = poplib.POP3("127.0.0.1", self.pop3_port, timeout=30)
        p.user(user)
        p.pass_(PASSWORD)
        return p
