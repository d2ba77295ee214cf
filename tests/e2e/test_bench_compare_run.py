"""bench/compare_run.py, the run driver of bench/compare.sh: its counts,
its result line and its exit status, with fake generators (no server, no
root, no timing assertion)."""

import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest

SOURCE_DIR = os.environ.get(
    "PETREL_SOURCE_DIR",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
RUNNER = os.path.join(SOURCE_DIR, "bench", "compare_run.py")
LINE = ("sent={n} failed=0 connections={n} seconds=0.100 rate=10.0 "
        "lat_p50=1.250 lat_p90=2.000 lat_p99=3.500 lat_max=4.000")


def fake_generator(tmp_path, body):
    """A generator: a Python script running body (with n, d in scope)."""
    path = tmp_path / "gen.py"
    path.write_text("import os, sys\n" + textwrap.dedent(body))
    return [sys.executable, str(path)]


def run(tmp_path, args, gen, root_pid=None):
    cmd = [sys.executable, RUNNER, "--root-pid",
           str(root_pid or os.getpid()), "--gen-out",
           str(tmp_path / "gen.out"), "--timeout", "20", "--drain", "1"]
    p = subprocess.run(cmd + args + ["--"] + gen, capture_output=True,
                       text=True, timeout=60)
    lines = p.stdout.strip().splitlines()
    assert len(lines) == 1, p.stdout + p.stderr
    fields = dict(kv.split("=", 1) for kv in lines[0].split())
    return p.returncode, fields, p.stderr


def maildir_gen(tmp_path, files, n):
    return fake_generator(tmp_path, f"""
        d = {str(tmp_path / "md" / "new")!r}
        os.makedirs(d, exist_ok=True)
        for i in range({files}):
            open(os.path.join(d, "m%d" % i), "w").close()
        print({LINE.format(n=n)!r})
        """)


def test_maildir_exact_count(tmp_path):
    rc, f, err = run(tmp_path, ["--mode", "maildir", "--expect", "7",
                                "--maildir", str(tmp_path / "md")],
                     maildir_gen(tmp_path, 7, 7))
    assert rc == 0, err
    assert f["ok"] == "1" and f["count"] == "7" and f["sent"] == "7"
    assert f["lat_p50"] == "1.250" and f["lat_p99"] == "3.500"
    assert f["gen_rate"] == "10.0"
    assert float(f["seconds"]) > 0 and float(f["rate"]) > 0
    keys = list(f)
    assert keys[:3] == ["ok", "seconds", "rate"] and keys[-1] == "reason"


def test_maildir_duplicate_fails(tmp_path):
    rc, f, err = run(tmp_path, ["--mode", "maildir", "--expect", "7",
                                "--maildir", str(tmp_path / "md")],
                     maildir_gen(tmp_path, 8, 7))
    assert rc == 1
    assert f["ok"] == "0" and "expected_exactly_7" in f["reason"]
    assert "8 arrived" in err


def test_maildir_missing_times_out(tmp_path):
    cmd = [sys.executable, RUNNER, "--root-pid", str(os.getpid()),
           "--gen-out", str(tmp_path / "gen.out"), "--timeout", "1",
           "--mode", "maildir", "--expect", "5", "--maildir",
           str(tmp_path / "md"), "--"] + maildir_gen(tmp_path, 4, 5)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert p.returncode == 1
    assert "ok=0" in p.stdout and "4/5_arrived" in p.stdout


def log_gen(tmp_path, lines, n):
    return fake_generator(tmp_path, f"""
        with open({str(tmp_path / "log")!r}, "w") as f:
            for i in range({lines}):
                f.write("delivery: id=%d to=<a@discard.test> relay=discard "
                        "status=sent\\n" % i)
            f.write("delivery: id=x relay=[127.0.0.2]:25 status=sent\\n")
        print({LINE.format(n=n)!r})
        """)


REGEX = "^(?=.* relay=discard)(?=.* status=sent).*$"


@pytest.mark.parametrize("lines,ok", [(5, True), (4, False), (6, False)])
def test_accept_log_count(tmp_path, lines, ok):
    rc, f, _ = run(tmp_path, ["--mode", "accept", "--expect", "5",
                              "--log", str(tmp_path / "log"),
                              "--log-regex", REGEX],
                   log_gen(tmp_path, lines, 5))
    assert (rc == 0) == ok
    assert f["ok"] == ("1" if ok else "0")
    if ok:
        assert f["count"] == "5"


def test_sink_counter_rise(tmp_path):
    out = tmp_path / "sink.out"
    out.write_bytes(b"sess=1 quit=1 mesg=10\r")
    gen = fake_generator(tmp_path, f"""
        with open({str(out)!r}, "ab") as f:
            f.write(b"sess=2 quit=2 mesg=12\\rsess=3 quit=3 mesg=13\\r"
                    b"sess=3 quit=3 mes")
        print({LINE.format(n=3)!r})
        """)
    rc, f, err = run(tmp_path, ["--mode", "sink", "--expect", "3",
                                "--sink-out", str(out)], gen)
    assert rc == 0, err
    assert f["count"] == "3"


def test_generator_failure(tmp_path):
    gen = fake_generator(tmp_path, """
        print("550 5.7.1 refused", file=sys.stderr)
        sys.exit(1)
        """)
    rc, f, err = run(tmp_path, ["--mode", "accept", "--expect", "1",
                                "--log", str(tmp_path / "log"),
                                "--log-regex", REGEX], gen)
    assert rc == 1 and f["ok"] == "0"
    assert "generator_failed_(exit_1)" in f["reason"]
    assert "550 5.7.1 refused" in err


def test_generator_short_count(tmp_path):
    gen = fake_generator(tmp_path, """
        print("sent=4 failed=1 connections=5 seconds=0.1 rate=40.0 "
              "lat_p50=1 lat_p90=1 lat_p99=1 lat_max=1")
        """)
    rc, f, _ = run(tmp_path, ["--mode", "accept", "--expect", "5",
                              "--log", str(tmp_path / "log"),
                              "--log-regex", REGEX], gen)
    assert rc == 1 and "expected_sent=5" in f["reason"]


def children(pid):
    kids = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/children") as f:
            kids += [int(k) for k in f.read().split()]
    return kids


def test_samples_the_process_tree(tmp_path):
    """RSS, PSS and the process count cover the root and its children."""
    tree = subprocess.Popen(["sh", "-c", "sleep 30 & sleep 30 & wait"])
    try:
        for _ in range(200):
            if len(children(tree.pid)) == 2:
                break
            time.sleep(0.01)
        rc, f, err = run(tmp_path, ["--mode", "accept", "--expect", "1",
                                    "--log", str(tmp_path / "log"),
                                    "--log-regex", REGEX],
                         fake_generator(tmp_path, f"""
            import time
            time.sleep(0.3)
            with open({str(tmp_path / "log")!r}, "w") as f:
                f.write("id=1 relay=discard status=sent\\n")
            print({LINE.format(n=1)!r})
            """), root_pid=tree.pid)
        assert rc == 0, err
        assert f["procs"] == "3"
        assert int(f["rss_kb"]) > 0 and int(f["pss_kb"]) > 0
        assert re.fullmatch(r"\d+\.\d{3}", f["sampler_cpu"])
    finally:
        for pid in children(tree.pid):
            os.kill(pid, signal.SIGKILL)
        tree.kill()
        tree.wait()
