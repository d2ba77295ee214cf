"""
test_dovecot.py: Petrel's Maildir is what Dovecot reads. Petrel delivers,
a private Dovecot (its own base_dir, state_dir and port, IMAP only, no
TLS) serves the same Maildir, and imaplib fetches the message: the bytes
must be exactly Return-Path, Received and the message as sent, with the
CRLF line ends IMAP uses. The S= size in the file name must be right, or
Dovecot reports a broken message.
"""

import grp
import imaplib
import os
import pwd
import signal
import subprocess
import threading
import time

import pytest

from harness import (expected_maildir_bytes, free_port, queue_id_from_reply,
                     split_delivered, workdir)

DOVECOT = "/usr/sbin/dovecot"
DOVECONF = "/usr/bin/doveconf"
PASSWORD = "imap-secret-1"

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(not os.path.exists(DOVECOT),
                       reason="%s is missing (scripts/deps.sh installs "
                       "dovecot-imapd)" % DOVECOT),
]


def existing_user(*names):
    for n in names:
        try:
            return pwd.getpwnam(n)
        except KeyError:
            continue
    raise AssertionError("none of the users %s exists" % (names,))


class Dovecot:
    def __init__(self, maildir_root, users):
        self.dir = workdir()
        self.port = free_port()
        self.conf = os.path.join(self.dir, "dovecot.conf")
        self.log = []
        self.proc = None
        mail = pwd.getpwnam("petrel")
        internal = existing_user("dovecot", "nobody")
        login = existing_user("dovenull", "nobody")
        for d in ("base", "state"):
            os.mkdir(os.path.join(self.dir, d), 0o755)
        passwd = os.path.join(self.dir, "passwd")
        with open(passwd, "w") as f:
            for u in users:
                f.write("%s:{PLAIN}%s::::::\n" % (u, PASSWORD))
        os.chmod(passwd, 0o644)
        with open(self.conf, "w") as f:
            f.write("""\
base_dir = {d}/base
state_dir = {d}/state
log_path = /dev/stderr
info_log_path = /dev/stderr
listen = 127.0.0.1
protocols = imap
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
           login=login.pw_name, root=maildir_root, passwd=passwd,
           port=self.port))

    def check_config(self):
        r = subprocess.run([DOVECONF, "-n", "-c", self.conf],
                           capture_output=True, timeout=30)
        assert r.returncode == 0, r.stderr.decode()

    def _read(self, stream):
        for line in iter(stream.readline, b""):
            self.log.append(line.decode("utf-8", "replace").rstrip("\n"))

    def start(self, timeout=20):
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", self.conf],
                                     stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        threading.Thread(target=self._read, args=(self.proc.stdout,),
                         daemon=True).start()
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc.poll() is None, \
                "dovecot exited:\n" + "\n".join(self.log)
            try:
                m = imaplib.IMAP4("127.0.0.1", self.port, timeout=5)
                m.logout()
                return
            except (ConnectionRefusedError, OSError):
                pass
            assert time.monotonic() < deadline, \
                "dovecot not listening:\n" + "\n".join(self.log)
            time.sleep(0.05)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def imap(self):
        m = imaplib.IMAP4("127.0.0.1", self.port, timeout=30)
        typ, _ = m.login("alice@example.test", PASSWORD)
        assert typ == "OK"
        return m


def send(p, msg, sender="sender@remote.test"):
    with p.smtp() as s:
        s.ehlo()
        assert s.mail(sender, ["BODY=8BITMIME"]) == (250, b"2.1.0 Ok")
        assert s.rcpt("alice@example.test") == (250, b"2.1.5 Ok")
        code, text = s.data(msg)
        assert code == 250, text
    return queue_id_from_reply(text)


def fetch(m, n):
    typ, data = m.fetch(str(n), "(RFC822.SIZE BODY.PEEK[])")
    assert typ == "OK", data
    head, body = data[0]
    size = int(head.split(b"RFC822.SIZE ")[1].split()[0].rstrip(b")"))
    return size, body


def test_dovecot_reads_petrel_maildir(petrel):
    msg1 = (b"From: <sender@remote.test>\r\nTo: <alice@example.test>\r\n"
            b"Subject: for dovecot\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
            b"Gr\xc3\xbc\xc3\x9fe,\r\n.leading dot\r\n\r\nend\r\n")
    msg2 = b"Subject: second\r\n\r\nwhile dovecot runs\r\n"
    q1 = send(petrel, msg1)
    [f1] = petrel.wait_delivered("alice@example.test", 1)
    expected_maildir_bytes("sender@remote.test", msg1, f1, queue_id=q1)

    dv = Dovecot(petrel.maildir_root, ["alice@example.test"])
    ok = False
    try:
        dv.check_config()
        dv.start()
        m = dv.imap()
        try:
            typ, data = m.select("INBOX")
            assert (typ, data) == ("OK", [b"1"]), data
            size, got = fetch(m, 1)
            want = f1.replace(b"\n", b"\r\n")
            assert got == want
            assert size == len(want)
            rp, received, rest = split_delivered(f1)
            assert got == (rp.replace(b"\n", b"\r\n") +
                           received.replace(b"\n", b"\r\n") + msg1)

            # A message delivered while Dovecot has the mailbox open.
            q2 = send(petrel, msg2, sender="second@remote.test")
            files = petrel.wait_delivered("alice@example.test", 2)
            [f2] = [f for f in files if f != f1]
            expected_maildir_bytes("second@remote.test", msg2, f2,
                                   queue_id=q2)
            deadline = time.monotonic() + 20
            while True:
                typ, data = m.noop()
                typ, data = m.select("INBOX", readonly=True)
                if data == [b"2"]:
                    break
                assert time.monotonic() < deadline, data
                time.sleep(0.1)
            size, got = fetch(m, 2)
            assert got == f2.replace(b"\n", b"\r\n")
            assert size == len(got)
            m.close()
        finally:
            m.logout()
        errors = [l for l in dv.log if "Error:" in l or "Panic:" in l or
                  "Fatal:" in l]
        assert not errors, errors
        ok = True
    finally:
        dv.stop()
        if not ok:
            print("---- dovecot log ----\n" + "\n".join(dv.log))
        else:
            import shutil
            shutil.rmtree(dv.dir, ignore_errors=True)
