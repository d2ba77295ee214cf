#!/usr/bin/python3
"""bench/compare_run.py: one timed run of bench/compare.sh.

Starts the load generator (petrel-smtpload, or smtp-source as a fallback),
samples the server's processes in /proc every 50 ms (the sum of their
resident set sizes and how many there are), waits until the run is
complete, checks that every message arrived exactly once, and prints one
line of key=value fields on stdout:

    ok=1 seconds=S rate=R sent=N count=N rss_kb=K pss_kb=K procs=P
    lat_p50=MS lat_p99=MS gen_rate=R sampler_cpu=S reason=-

ok=0 with reason=TEXT (underscores for spaces) when a check failed; the
details then go to stderr. Exit status 0 when ok=1, else 1.

Usage:
  compare_run.py --mode accept|maildir|sink --expect N --root-pid PID
      [--maildir DIR] [--sink-out FILE] [--log FILE --log-regex RE]
      [--queue DIR]... [--timeout SECS] [--drain SECS] -- GENERATOR ARGS...

Modes (when the run's clock stops):
  accept   when the generator exits: every message was accepted (durably,
           for a real server). Afterwards: the queue directories drain and
           the log has exactly N lines matching --log-regex, or, with
           --sink-out, a smtp-sink -c counter rose by exactly N.
  maildir  when DIR/new holds N files (polled every 10 ms); then the queue
           drains and the count must still be exactly N.
  sink     when the smtp-sink -c counter in --sink-out rose by N (polled
           every 10 ms); then the queue drains and the rise must be
           exactly N.

Peak RSS: the maximum over the samples of the sum of VmRSS over the root
process and all its descendants (read from /proc/PID/task/TID/children),
and at least the root's own VmHWM read at the end (which catches a peak of
a single-process server between two samples). Shared pages (libc, the
executable) count once per process, as ps would add them up. Peak PSS:
the same sum of proportional set sizes (shared pages divided among the
processes that map them: what the tree really occupies), sampled every
500 ms and once more at the end.
"""

import argparse
import os
import re
import signal
import subprocess
import sys
import time

PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
SAMPLE_EVERY = 0.05
PSS_EVERY = 0.5
POLL_EVERY = 0.01
SINK_RECORD = re.compile(rb"mesg=(\d+)$")
GEN_LINE = re.compile(r"^sent=\d+ ")


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def tree(root):
    """The root PID and every descendant that is alive now. Every thread
    of the root is asked for its children; below the root only the main
    thread (Postfix's daemons and smtp-sink are single-threaded, and
    Petrel forks nothing): this runs 20 times a second over 100 or more
    Postfix processes, on the same cores as the servers."""
    pids, todo = [root], []
    try:
        tasks = os.listdir(f"/proc/{root}/task")
    except OSError:
        tasks = []
    for tid in tasks:
        kids = read(f"/proc/{root}/task/{tid}/children")
        if kids:
            todo.extend(int(k) for k in kids.split())
    while todo:
        pid = todo.pop()
        pids.append(pid)
        kids = read(f"/proc/{pid}/task/{pid}/children")
        if kids:
            todo.extend(int(k) for k in kids.split())
    return pids


def sample(root):
    """(sum of resident KiB, number of processes) of the tree at root."""
    total, n = 0, 0
    for pid in tree(root):
        statm = read(f"/proc/{pid}/statm")
        if statm is None:
            continue  # exited meanwhile
        total += int(statm.split()[1]) * PAGE_KB
        n += 1
    return total, n


def sample_pss(root):
    """Sum of proportional set sizes (KiB) of the tree at root: shared
    pages divided among the processes that map them (smaps_rollup; dearer
    to read than statm, so sampled less often)."""
    total = 0
    for pid in tree(root):
        data = read(f"/proc/{pid}/smaps_rollup")
        if data:
            m = re.search(rb"^Pss:\s+(\d+) kB", data, re.M)
            if m:
                total += int(m.group(1))
    return total


def hwm(pid):
    status = read(f"/proc/{pid}/status")
    if status:
        m = re.search(rb"^VmHWM:\s+(\d+) kB", status, re.M)
        if m:
            return int(m.group(1))
    return 0


def sink_count(path):
    """Messages a smtp-sink -c has counted: its last complete record."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 512))
            data = f.read()
    except OSError:
        return 0
    for rec in reversed(data.split(b"\r")[:-1]):
        m = SINK_RECORD.search(rec)
        if m:
            return int(m.group(1))
    return 0


def maildir_count(path):
    try:
        return len(os.listdir(os.path.join(path, "new")))
    except OSError:
        return 0


def log_count(path, regex):
    data = read(path) or b""
    return len(regex.findall(data))


def queue_files(dirs):
    n = 0
    for d in dirs:
        for _, _, files in os.walk(d):
            n += len(files)
    return n


def parse_generator(out):
    """The key=value fields of petrel-smtpload's last line, or of an
    smtp-source run (no latency: '-')."""
    for line in reversed(out.splitlines()):
        if GEN_LINE.match(line):
            return dict(kv.split("=", 1) for kv in line.split())
    return {}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", required=True,
                    choices=("accept", "maildir", "sink"))
    ap.add_argument("--expect", type=int, required=True)
    ap.add_argument("--root-pid", type=int, required=True)
    ap.add_argument("--maildir")
    ap.add_argument("--sink-out")
    ap.add_argument("--log")
    ap.add_argument("--log-regex")
    ap.add_argument("--queue", action="append", default=[])
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--drain", type=float, default=60)
    ap.add_argument("--gen-out", required=True,
                    help="file for the generator's stdout and stderr")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd[:1] == ["--"] else a.cmd
    n = a.expect
    regex = re.compile(a.log_regex.encode(), re.M) if a.log_regex else None
    is_source = os.path.basename(cmd[0]) == "smtp-source"

    gen = None
    result = {"ok": "0", "seconds": "-", "rate": "-", "sent": "-",
              "count": "-", "rss_kb": "-", "pss_kb": "-", "procs": "-",
              "lat_p50": "-", "lat_p99": "-", "gen_rate": "-",
              "sampler_cpu": "-", "reason": "-"}

    def finish(reason=None):
        if reason:
            print(f"compare_run: {reason}", file=sys.stderr)
            result["reason"] = reason.replace(" ", "_")
            result["ok"] = "0"
        else:
            result["ok"] = "1"
        print(" ".join(f"{k}={v}" for k, v in result.items()))
        sys.exit(0 if result["ok"] == "1" else 1)

    def on_term(signum, frame):
        if gen is not None and gen.poll() is None:
            gen.kill()
            gen.wait()
        sys.exit(1)

    signal.signal(signal.SIGTERM, on_term)

    def counted():
        if a.mode == "maildir":
            return maildir_count(a.maildir)
        if a.sink_out:
            return sink_count(a.sink_out) - base
        return log_count(a.log, regex)

    base = sink_count(a.sink_out) if a.sink_out else 0
    peak_rss, peak_procs, peak_pss = 0, 0, 0
    out = open(a.gen_out, "wb")
    t0 = time.monotonic()
    gen = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    next_sample = next_pss = t0
    t_gen = t_done = None
    while t_done is None:
        now = time.monotonic()
        if now >= next_sample:
            rss, procs = sample(a.root_pid)
            peak_rss = max(peak_rss, rss)
            peak_procs = max(peak_procs, procs)
            next_sample = now + SAMPLE_EVERY
        if now >= next_pss:
            peak_pss = max(peak_pss, sample_pss(a.root_pid))
            next_pss = now + PSS_EVERY
        if t_gen is None and gen.poll() is not None:
            t_gen = now
            if a.mode == "accept":
                t_done = now
            if gen.returncode != 0:
                break
        if (t_done is None and a.mode != "accept" and
                counted() >= n):
            t_done = now
        if t_done is None and now - t0 > a.timeout:
            break
        time.sleep(POLL_EVERY)
    # Every message arrived before the generator exited (it was still
    # reading its last replies or saying QUIT): wait for it, within the
    # timeout, so that its output line is complete.
    if t_gen is None and t_done is not None:
        try:
            gen.wait(timeout=max(1.0, a.timeout - (time.monotonic() - t0)))
            t_gen = time.monotonic()
        except subprocess.TimeoutExpired:
            pass
    # The root's own high-water mark (a single-process server's peak may
    # fall between two samples); read before the caller stops it.
    peak_rss = max(peak_rss, hwm(a.root_pid))
    peak_pss = max(peak_pss, sample_pss(a.root_pid))
    # This process's own CPU time so far: the price of the sampling and
    # polling, paid on the same 2 cores as the servers.
    t = os.times()
    result["sampler_cpu"] = f"{t.user + t.system:.3f}"
    result["rss_kb"] = str(peak_rss)
    result["pss_kb"] = str(peak_pss)
    result["procs"] = str(peak_procs)
    out.close()
    with open(a.gen_out, "rb") as f:
        gen_text = f.read().decode(errors="replace").replace("\r", "\n")
    tail = " / ".join(gen_text.strip().splitlines()[-3:])

    if t_gen is None:
        gen.kill()
        gen.wait()
        finish(f"generator still running after {a.timeout:.0f} s, "
               f"{counted()}/{n} arrived: {tail}")
    if gen.returncode != 0:
        finish(f"generator failed (exit {gen.returncode}): {tail}")
    if is_source:
        result["sent"] = str(n)
    else:
        kv = parse_generator(gen_text)
        if not kv:
            finish(f"no result line from the generator: {tail}")
        result["sent"] = kv.get("sent", "-")
        result["lat_p50"] = kv.get("lat_p50", "-")
        result["lat_p99"] = kv.get("lat_p99", "-")
        result["gen_rate"] = kv.get("rate", "-")
        if kv.get("sent") != str(n) or kv.get("failed") != "0":
            finish(f"generator: sent={kv.get('sent')} "
                   f"failed={kv.get('failed')}, expected sent={n}")
    if t_done is None:
        finish(f"{counted()}/{n} arrived after {a.timeout:.0f} s")
    secs = t_done - t0
    result["seconds"] = f"{secs:.3f}"
    result["rate"] = f"{n / secs:.1f}"

    # Exactness: once the queue is empty nothing more can arrive, so the
    # count is final (more than N would be duplicates).
    end = time.monotonic() + a.drain
    while True:
        left = queue_files(a.queue)
        got = counted()
        if left == 0 and got >= n:
            break
        if time.monotonic() > end:
            finish(f"after {a.drain:.0f} s more: {got}/{n} arrived, "
                   f"{left} files still queued")
        time.sleep(0.05)
    if a.mode == "accept" and regex is not None:
        # The log writer may trail the queue by a moment.
        time.sleep(0.2)
    got = counted()
    result["count"] = str(got)
    if got != n:
        finish(f"{got} arrived, expected exactly {n}")
    finish()


if __name__ == "__main__":
    main()
