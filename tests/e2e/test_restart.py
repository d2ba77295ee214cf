"""
test_restart.py: kill -9 at random moments loses no acknowledged message.

Client threads send messages with unique Message-IDs, as fast as they can,
while the daemon is killed with SIGKILL at a random moment and restarted,
several rounds. Every message that got "250 ... queued as" is recorded. At
the end, after a last restart and once the queue has drained, every one of
them must be in the Maildir with the right content. Duplicates (a delivery
cut short between the Maildir link and the queue update) are allowed by
the promise and are counted and printed; messages that never got a 250 may
or may not be there.

PETREL_LONG=1 runs more rounds; PETREL_SEED sets the seed (printed).
"""

import os
import random
import re
import smtplib
import socket
import threading
import time

from harness import expected_maildir_bytes, wait_until

SENDER = "loader@example.org"
ALICE = "alice@example.test"
CLIENTS = 4
ROUNDS = 20 if os.environ.get("PETREL_LONG") == "1" else 3
SEED = int(os.environ.get("PETREL_SEED", "5321"))


class Loader:
    """Client threads that send until stopped and record every 250."""

    def __init__(self, p):
        self.p = p
        self.lock = threading.Lock()
        self.acked = {}         # message id -> (bytes, queue id)
        self.attempted = 0
        self.errors = 0
        self.stop_ev = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(i,),
                                         daemon=True)
                        for i in range(CLIENTS)]

    def start(self):
        for t in self.threads:
            t.start()

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(timeout=60)
            assert not t.is_alive(), "client thread stuck"

    def count(self):
        with self.lock:
            return len(self.acked)

    def message(self, tid, seq):
        mid = "<r%d-%d-%s@restart.test>" % (tid, seq, os.urandom(4).hex())
        body = "".join("line %d of message %d/%d\r\n" % (i, tid, seq)
                       for i in range(1 + seq % 50))
        msg = ("From: <%s>\r\nTo: <%s>\r\nSubject: restart %d/%d\r\n"
               "Message-ID: %s\r\n\r\n%s" % (SENDER, ALICE, tid, seq, mid,
                                             body)).encode()
        return mid, msg

    def run(self, tid):
        seq = 0
        while not self.stop_ev.is_set():
            try:
                s = smtplib.SMTP(self.p.host, self.p.port, timeout=10,
                                 local_hostname="client.example.test")
            except (OSError, smtplib.SMTPException):
                # Daemon down: retry soon (it is being restarted).
                self.stop_ev.wait(0.02)
                continue
            try:
                s.ehlo()
                # Several transactions per connection, like a real client.
                for _ in range(5):
                    if self.stop_ev.is_set():
                        break
                    mid, msg = self.message(tid, seq)
                    seq += 1
                    with self.lock:
                        self.attempted += 1
                    code, _ = s.mail(SENDER)
                    if code != 250:
                        break
                    code, _ = s.rcpt(ALICE)
                    if code != 250:
                        s.rset()
                        continue
                    code, resp = s.data(msg)
                    if code == 250:
                        m = re.search(rb"queued as (\S+)", resp)
                        assert m, resp
                        with self.lock:
                            self.acked[mid] = (msg, m.group(1).decode())
                    else:
                        with self.lock:
                            self.errors += 1
                s.quit()
            except (OSError, smtplib.SMTPException, socket.timeout):
                pass
            finally:
                s.close()


def message_id(data):
    m = re.search(rb"(?im)^Message-ID: (<[^>]*>)", data)
    return m.group(1).decode() if m else None


def test_kill9_loses_nothing(make_petrel):
    print("test_restart: seed %d, %d rounds (PETREL_SEED, PETREL_LONG)"
          % (SEED, ROUNDS))
    rng = random.Random(SEED)
    p = make_petrel()
    loader = Loader(p)
    loader.start()
    try:
        for r in range(ROUNDS):
            # The daemon must be serving again: wait for fresh 250s.
            base = loader.count()
            wait_until(lambda: loader.count() >= base + 5, timeout=60,
                       what="messages accepted in round %d" % r)
            # The random moment: while clients send and delivery runs.
            delay = rng.uniform(0.05, 1.5)
            time.sleep(delay)
            p.kill()
            print("round %d: SIGKILL after %.3fs, %d acked so far"
                  % (r, delay, loader.count()))
            p.start()
        base = loader.count()
        wait_until(lambda: loader.count() >= base + 5, timeout=60,
                   what="messages accepted after the last kill")
    finally:
        loader.stop()

    # A last restart (clean this time), then let the queue drain.
    p.restart()
    p.wait_queue_empty(timeout=120)
    acked = dict(loader.acked)
    files = p.maildir_files(ALICE)
    seen = {}
    for path in files:
        with open(path, "rb") as f:
            data = f.read()
        seen.setdefault(message_id(data), []).append((path, data))
    missing = sorted(m for m in acked if m not in seen)
    dups = {m: len(v) for m, v in seen.items() if len(v) > 1}
    print("attempted %d, acked %d, delivered files %d, rejected %d"
          % (loader.attempted, len(acked), len(files), loader.errors))
    print("duplicates: %d %s" % (len(dups), sorted(dups.items())))
    assert not missing, "%d acknowledged message(s) lost: %s" % (
        len(missing), missing[:20])
    for mid, (msg, qid) in acked.items():
        for _path, data in seen[mid]:
            expected_maildir_bytes(SENDER, msg, data, queue_id=qid)
    unknown = [m for m in seen if m is None]
    assert not unknown, "delivered files without a Message-ID"
    assert len(acked) >= 5 * (ROUNDS + 1)
