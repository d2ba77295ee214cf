"""bench/idle.sh and its client bench/idle.py, with small counts: the
counts, the output formats and the exit codes (never a timing)."""
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from harness import PETREL_BIN, wait_until

pytestmark = pytest.mark.timeout(180)

SRC = os.environ.get("PETREL_SOURCE_DIR",
                     os.path.join(os.path.dirname(__file__), "..", ".."))
CLIENT = os.path.join(SRC, "bench", "idle.py")
SCRIPT = os.path.join(SRC, "bench", "idle.sh")


def start_hold(p, count, *extra):
    return subprocess.Popen(
        [sys.executable, CLIENT, "hold", p.host, str(p.port), str(count),
         "--timeout", "60"] + list(extra),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def opened_line(proc):
    line = proc.stdout.readline()
    m = re.fullmatch(r"connections=(\d+) greeted=(\d+) refused=(\d+) "
                     r"failed=(\d+) seconds=\d+\.\d{3}\n", line)
    assert m, "got %r, want the connections= line" % line
    return [int(x) for x in m.groups()]


def stop_hold(proc):
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    return out, err, proc.returncode


def test_hold_greets_every_connection_and_keeps_it(make_petrel):
    p = make_petrel(extra_conf="max_connections_per_ip 100\n"
                    "timeout_command 1h")
    h = start_hold(p, 50, "--sources", "5")
    assert opened_line(h) == [50, 50, 0, 0]
    # They are open on the server's side: 50 connect lines, no disconnect.
    wait_until(lambda: sum("smtp: connect session=" in l
                           for l in p.log_lines) >= 50,
               what="50 connect lines")
    # Spread over 127.0.0.2 to 127.0.0.6, ten each (--sources 5).
    for i in range(2, 7):
        n = sum(" client=127.0.0.%d " % i in l and "smtp: connect" in l
                for l in p.log_lines)
        assert n == 10, "127.0.0.%d: got %d connections, want 10" % (i, n)
    assert not any("smtp: disconnect" in l for l in p.log_lines)

    r = subprocess.run([sys.executable, CLIENT, "probe", p.host,
                        str(p.port), "--count", "3", "--gap", "0"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 4, lines
    for i, l in enumerate(lines[:3]):
        assert re.fullmatch(r"probe %d greet_ms=\d+\.\d{3} "
                            r"noop_ms=\d+\.\d{3}" % (i + 1), l), l
    assert re.fullmatch(r"probes=3 ok=3 greet_p50=\S+ greet_max=\S+ "
                        r"noop_p50=\S+ noop_max=\S+", lines[3]), lines[3]

    out, err, rc = stop_hold(h)
    assert out == "held=50 dropped=0\n", (out, err)
    assert rc == 0, err


def test_hold_counts_refusals_and_drops(make_petrel):
    p = make_petrel(extra_conf="max_connections_per_ip 20\n"
                    "timeout_command 2s")
    h = start_hold(p, 30)
    n, greeted, refused, failed = opened_line(h)
    assert (n, greeted, refused + failed) == (30, 20, 10)
    assert refused == 10, "the 421 of max_connections_per_ip"
    # timeout_command ends the 20 idle ones: dropped, exit 1.
    wait_until(lambda: sum("smtp: disconnect" in l
                           for l in p.log_lines) >= 30, timeout=30,
               what="the idle sessions to time out")
    time.sleep(1.5)         # the client polls once a second
    out, err, rc = stop_hold(h)
    assert out == "held=0 dropped=20\n", (out, err)
    assert rc == 1


def test_probe_fails_without_a_server():
    r = subprocess.run([sys.executable, CLIENT, "probe", "127.0.0.1", "1",
                        "--count", "2", "--gap", "0"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert r.stdout.splitlines()[-1].startswith("probes=2 ok=0 ")


def run_script(**env):
    e = dict(os.environ, PETREL_BIN=PETREL_BIN, BENCH_IDLE_SETTLE="0",
             BENCH_IDLE_PROBES="2", BENCH_TIMEOUT="60")
    e.update(env)
    return subprocess.run(["sh", SCRIPT], capture_output=True, text=True,
                          env=e, timeout=150)


def test_script_reports_and_exits_0():
    r = run_script(BENCH_IDLE_CONNECTIONS="50")
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert re.search(r"^with 50 idle +\d+ kB +\d+ kB +\d+ kB +\d+ +\d+ *$", out,
                     re.M), out
    assert "opened:      connections=50 greeted=50 refused=0 failed=0" \
        in out, out
    assert "at the end:  held=50 dropped=0" in out, out
    assert re.search(r"^per connection: \(\d+ - \d+\) kB / 50 = -?\d+ "
                     r"bytes$", out, re.M), out
    assert re.search(r"^new client, with: 220 p50 \S+ max \S+ ms; NOOP 250 "
                     r"p50 \S+ max \S+ ms \(2/2 ok\)$", out, re.M), out
    assert re.search(r"^target RSS < 200 MiB with 50 idle connections: "
                     r"(PASS|MISS) ", out, re.M), out
    assert re.search(r"^target new client 220 and NOOP 250 < 100 ms: "
                     r"(PASS|MISS) ", out, re.M), out


def test_script_exits_1_when_connections_are_refused(tmp_path):
    # A Petrel that refuses: a wrapper binary that adds a low limit.
    wrapper = tmp_path / "petrel"
    wrapper.write_text(
        "#!/bin/sh\n"
        "# serve -c CONF: lower max_connections in CONF\n"
        "sed -i 's/^max_connections .*/max_connections 10/' \"$3\"\n"
        "exec %s \"$@\"\n" % PETREL_BIN)
    wrapper.chmod(0o755)
    r = run_script(BENCH_IDLE_CONNECTIONS="30", PETREL_BIN=str(wrapper))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "only 10 of 30 connections got their 220" in r.stderr, r.stderr
    assert "opened:      connections=30 greeted=10 refused=20 failed=0" \
        in r.stdout, r.stdout
