#!/bin/sh
# bench/relay.sh: how fast Petrel relays mail to a remote server, next to
# Postfix relaying the same load to the same server in the same run.
#
# One smtp-sink (from the postfix package) plays the remote server. For each
# repetition, a fresh Postfix instance and a fresh Petrel (in turn) accept N
# messages for a remote domain from smtp-source (S parallel sessions) and
# relay them through their relayhost, the sink. A run is timed from the
# first injection until the sink has counted all N messages. It prints
# messages/second per run, then the median, minimum, maximum and spread for
# each server, and the ratio Petrel/Postfix of the medians. See
# bench/README.md.
#
# Environment (all optional):
#   BENCH_MESSAGES   messages per run (default 2000)
#   BENCH_SESSIONS   parallel smtp-source sessions (default 50)
#   BENCH_SIZE       payload size in bytes (default 4096)
#   BENCH_REPS       runs per server (default 3), alternating servers
#   BENCH_TIMEOUT    seconds from the first injection until every message
#                    must be at the sink (default 120); a server that misses
#                    it fails and its remaining runs are skipped
#   BENCH_SERVERS    "postfix petrel" (default both)
#   BUILD            build directory for make (default build)
#   PETREL_BIN       use this binary and skip the build
#
# It must run as root (Postfix's master runs as root). It installs nothing
# but what scripts/deps.sh installs. It never starts or touches the system's
# Postfix: its Postfix is a private instance (configuration, queue, data
# directory and log under a temporary directory, listening on a free port of
# 127.0.0.1), started with `postfix -c DIR start` and stopped with
# `postfix -c DIR stop`. Everything runs on loopback; neither server makes a
# DNS query (both send everything to [127.0.0.2]:SINK_PORT).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
MESSAGES=${BENCH_MESSAGES:-2000}
SESSIONS=${BENCH_SESSIONS:-50}
SIZE=${BENCH_SIZE:-4096}
REPS=${BENCH_REPS:-3}
RUN_TIMEOUT=${BENCH_TIMEOUT:-120}
SERVERS=${BENCH_SERVERS:-"postfix petrel"}
BUILD=${BUILD:-build}
PYTHON=/usr/bin/python3
SOURCE=/usr/sbin/smtp-source
SINK=/usr/sbin/smtp-sink
POSTFIX=/usr/sbin/postfix
RCPT=user@remote.test

BENCH_NAME=relay.sh
. "$ROOT/bench/lib.sh"

for v in "$MESSAGES" "$SESSIONS" "$SIZE" "$REPS" "$RUN_TIMEOUT"; do
	case "$v" in
	'' | *[!0-9]* | 0*) die "BENCH_* numbers must be positive integers" ;;
	esac
done
for server in $SERVERS; do
	case "$server" in
	postfix | petrel) ;;
	*) die "BENCH_SERVERS: unknown server $server" ;;
	esac
done
[ "$(id -u)" -eq 0 ] || die "must run as root (Postfix's master needs it)"

# ---- dependencies and build ----
sh "$ROOT/scripts/deps.sh"
case " $SERVERS " in
*" petrel "*)
	petrel_binary "$ROOT" "$BUILD"
	;;
esac
for f in "$SOURCE" "$SINK" "$POSTFIX" /usr/lib/postfix/sbin/master; do
	[ -x "$f" ] || die "$f missing (package postfix)"
done
getent passwd postfix >/dev/null || die "no postfix user"

WORK=$(mktemp -d /tmp/petrel-relay.XXXXXX)
# Postfix's daemons (user postfix) and Petrel (user petrel) open files
# below here by path.
chmod 755 "$WORK"
SINK_PID=""
PETREL_PID=""
LOAD_PID=""
PFX_CONF=""


# shellcheck disable=SC2317 # called by the trap
cleanup() {
	if [ -n "$LOAD_PID" ]; then
		# It kills its smtp-source on SIGTERM.
		kill -TERM "$LOAD_PID" 2>/dev/null || true
		wait "$LOAD_PID" 2>/dev/null || true
	fi
	postfix_stop
	if [ -n "$PETREL_PID" ]; then
		kill -KILL "$PETREL_PID" 2>/dev/null || true
		wait "$PETREL_PID" 2>/dev/null || true
	fi
	if [ -n "$SINK_PID" ]; then
		kill -TERM "$SINK_PID" 2>/dev/null || true
		wait "$SINK_PID" 2>/dev/null || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- the remote server: one smtp-sink for every run ----
# On 127.0.0.2, beside the servers' 127.0.0.1 (the first results were
# taken so; see bench/README.md, "Relay").
# -c makes it write "sess=S quit=Q mesg=M\r" to stdout after every session,
# QUIT and final "."; M, the messages it has received so far, is what the
# runs count (it never goes down, so each run counts from its own start).
SINK_ADDR=127.0.0.2
SINK_PORT=$(free_port "$SINK_ADDR")
SINK_OUT=$WORK/sink.out
"$SINK" -c -u nobody -m 1000 "$SINK_ADDR:$SINK_PORT" 1024 \
    >"$SINK_OUT" 2>"$WORK/sink.err" &
SINK_PID=$!
wait_port "$SINK_PORT" 10 "$SINK_ADDR" ||
    die "smtp-sink did not start: $(cat "$WORK/sink.err")"

# sink_count: messages the sink has received since it started (from the
# last complete record: the sink may be halfway through writing one).
sink_count() {
	$PYTHON - "$SINK_OUT" <<'EOF'
import re, sys
with open(sys.argv[1], "rb") as f:
    f.seek(0, 2)
    f.seek(max(0, f.tell() - 512))
    recs = f.read().split(b"\r")[:-1]
counts = [re.search(rb"mesg=(\d+)$", r) for r in recs]
print(next((int(m.group(1)) for m in reversed(counts) if m), 0))
EOF
}

# run_load NAME PORT LOG: smtp-source sends MESSAGES messages to RCPT through
# 127.0.0.1:PORT; waits until the sink has counted them all. Prints
# "SECONDS INJECT_SECONDS" (first injection to last message at the sink,
# and the smtp-source run alone); on failure says why on stderr, returns 1.
# Call it only in the background: it execs, so that $! is the PID of the
# Python process, which kills its smtp-source when it gets SIGTERM.
run_load() {
	exec "$PYTHON" - "$1" "$2" "$3" "$SINK_OUT" "$MESSAGES" "$SIZE" \
	    "$SESSIONS" "$RUN_TIMEOUT" "$SOURCE" "$RCPT" <<'EOF'
import re, signal, subprocess, sys, time

name, port, log, sink_out = sys.argv[1:5]
n, size, sessions, timeout = (int(a) for a in sys.argv[5:9])
source, rcpt = sys.argv[9:11]
record = re.compile(rb"mesg=(\d+)$")

def sink_count():
    # Only complete records (ended by \r) count: the sink may be halfway
    # through writing the last one.
    with open(sink_out, "rb") as f:
        f.seek(0, 2)
        f.seek(max(0, f.tell() - 512))
        data = f.read()
    for rec in reversed(data.split(b"\r")[:-1]):
        m = record.search(rec)
        if m:
            return int(m.group(1))
    return 0

def fail(msg):
    print(f"relay.sh: {name}: {msg}", file=sys.stderr)
    sys.exit(1)

p = None

def on_term(signum, frame):
    if p is not None and p.poll() is None:
        p.kill()
        p.wait()
    sys.exit(1)

signal.signal(signal.SIGTERM, on_term)
base = sink_count()
t_inject = t_done = None
with open(log, "wb") as out:
    t0 = time.monotonic()
    p = subprocess.Popen([source, "-c", "-l", str(size), "-m", str(n),
        "-s", str(sessions), "-M", "bench.test", "-f", "bench@bench.test",
        "-t", rcpt, "127.0.0.1:" + port], stdout=out,
        stderr=subprocess.STDOUT)
    while t_inject is None or t_done is None:
        now = time.monotonic()
        got = sink_count() - base
        if t_done is None and got >= n:
            t_done = now
        if t_inject is None and p.poll() is not None:
            t_inject = now
            if p.returncode != 0:
                with open(log, "rb") as f:
                    tail = f.read().replace(b"\r", b"\n").splitlines()[-3:]
                fail(f"smtp-source failed (exit {p.returncode}) with "
                    f"{got}/{n} at the sink: "
                    + " / ".join(t.decode(errors="replace") for t in tail))
        if now - t0 > timeout:
            if t_inject is None:
                p.kill()
                p.wait()
                fail(f"smtp-source still running after {timeout} s, "
                    f"{got}/{n} delivered")
            fail(f"{got}/{n} delivered after {timeout} s")
        time.sleep(0.01)
print(f"{t_done - t0:.3f} {t_inject - t0:.3f}")
EOF
}

# wait_drained NAME SECONDS DIR...: until no regular file is left under the
# DIRs (the server's queue), so that the sink's count is final.
wait_drained() {
	_name=$1
	_end=$(($(date +%s) + $2))
	shift 2
	while [ -n "$(find "$@" -type f 2>/dev/null | head -1)" ]; do
		if [ "$(date +%s)" -ge "$_end" ]; then
			echo "relay.sh: $_name: queue not empty:" \
			    "$(find "$@" -type f | wc -l) files" >&2
			return 1
		fi
		sleep 0.1
	done
}

# ---- Postfix: a private instance per run ----
# start_postfix DIR: sets PFX_CONF and PFX_PORT.
start_postfix() {
	_d=$1
	PFX_PORT=$(free_port)
	mkdir -p "$_d/conf" "$_d/queue" "$_d/data"
	chown postfix: "$_d/data"
	# Debian's master.cf, with the smtpd on our port and no chroot
	# (a chroot would need copies of /etc files in the queue directory).
	awk -v port="$PFX_PORT" '
	/^[ \t#]/ || NF < 8 { print; next }
	{
		$5 = "n"
		if ($1 == "smtp" && $2 == "inet")
			$1 = "127.0.0.1:" port
		print
	}' /etc/postfix/master.cf >"$_d/conf/master.cf"
	grep -q "^127.0.0.1:$PFX_PORT inet" "$_d/conf/master.cf" ||
	    die "postfix: no smtp inet service in /etc/postfix/master.cf"
	grep -q '^postlog[ 	]*unix-dgram' "$_d/conf/master.cf" ||
	    die "postfix: no postlog service in /etc/postfix/master.cf"
	_plimit=$((SESSIONS + 50))
	[ "$_plimit" -ge 100 ] || _plimit=100
	# Defaults everywhere else, in particular durability: every queue
	# file is fsync'd before the 250, as shipped.
	cat >"$_d/conf/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $_d/queue
data_directory = $_d/data
syslog_name = postfix-relay-bench
maillog_file = $_d/maillog
maillog_file_prefixes = $_d
myhostname = relay.postfix.bench.test
mydomain = postfix.bench.test
myorigin = \$myhostname
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
biff = no
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [$SINK_ADDR]:$SINK_PORT
smtp_dns_support_level = disabled
smtp_host_lookup = native
default_process_limit = $_plimit
EOF
	PFX_CONF=$_d/conf
	if ! "$POSTFIX" -c "$PFX_CONF" start >"$_d/start.log" 2>&1; then
		cat "$_d/start.log" "$_d/maillog" >&2 2>/dev/null || true
		die "postfix did not start"
	fi
	if ! wait_port "$PFX_PORT" 20; then
		cat "$_d/maillog" >&2 2>/dev/null || true
		die "postfix does not listen on 127.0.0.1:$PFX_PORT"
	fi
}

# ---- Petrel: a fresh spool per run ----
if getent passwd petrel >/dev/null; then
	RUN_USER=petrel
else
	RUN_USER=root
fi

# start_petrel DIR: sets PETREL_PID and PETREL_PORT.
start_petrel() {
	_d=$1
	mkdir -p "$_d/mail"
	PETREL_PORT=$(free_port)
	printf 'user@local.bench.test:\n' >"$_d/users"
	# dns points nowhere: the relayhost is an address, nothing is looked
	# up.
	cat >"$_d/petrel.conf" <<EOF
hostname relay.petrel.bench.test
spool $_d/spool
run_dir $_d/run
maildrop $_d/maildrop
listen 127.0.0.1:$PETREL_PORT mx
domain local.bench.test
maildir $_d/mail/%d/%u
users $_d/users
dns 127.0.0.1:1
relayhost [$SINK_ADDR]:$SINK_PORT
trusted 127.0.0.0/8
max_connections 2000
max_connections_per_ip 2000
retry_initial 1s
retry_max 4s
user $RUN_USER
EOF
	if [ "$RUN_USER" = petrel ]; then
		chown -R petrel: "$_d"
	fi
	chmod 755 "$_d"
	launch_petrel "$_d" "$PETREL_PORT"
}

# run_one SERVER REP: one timed run on a fresh instance; appends
# "RATE INJECT_RATE" to $WORK/rates-SERVER. Returns 1 on failure.
run_one() {
	_srv=$1
	_run=$WORK/$1-$2
	mkdir -p "$_run"
	chmod 755 "$_run"
	case "$_srv" in
	postfix)
		start_postfix "$_run"
		_port=$PFX_PORT
		_log=$_run/maillog
		;;
	petrel)
		start_petrel "$_run"
		_port=$PETREL_PORT
		_log=$_run/petrel.log
		;;
	esac
	_before=$(sink_count)
	_ok=1
	# In the background, so that a signal runs the trap at once (the
	# shell defers traps until a foreground command ends).
	run_load "$_srv" "$_port" "$_run/source.log" >"$_run/times" &
	LOAD_PID=$!
	wait "$LOAD_PID" || _ok=0
	LOAD_PID=""
	_t=$(cat "$_run/times")
	# The count is final once the server's queue is empty: then more
	# than MESSAGES at the sink would be duplicates.
	if [ "$_ok" -eq 1 ]; then
		case "$_srv" in
		postfix)
			wait_drained postfix 30 "$_run/queue/incoming" \
			    "$_run/queue/active" "$_run/queue/deferred" \
			    "$_run/queue/hold" "$_run/queue/maildrop" || _ok=0
			;;
		petrel)
			wait_drained petrel 30 "$_run/spool/incoming" \
			    "$_run/spool/queue" || _ok=0
			if [ -n "$(find "$_run/spool/failed" -type f \
			    2>/dev/null | head -1)" ]; then
				echo "relay.sh: petrel: mail in spool/failed" >&2
				_ok=0
			fi
			;;
		esac
	fi
	_got=$(($(sink_count) - _before))
	if [ "$_got" -ne "$MESSAGES" ]; then
		echo "relay.sh: $_srv: the sink received $_got messages," \
		    "expected $MESSAGES" >&2
		_ok=0
	fi
	# Both log one line per delivered recipient with " status=sent ".
	_sent=$(grep -c ' status=sent ' "$_log" || true)
	if [ "$_ok" -eq 0 ]; then
		echo "relay.sh: $_srv: the last lines of $_log:" >&2
		tail -5 "$_log" >&2
	fi
	case "$_srv" in
	postfix) postfix_stop ;;
	petrel) stop_petrel ;;
	esac
	if [ "$_ok" -eq 0 ]; then
		printf '%-8s run %s/%s: FAIL (%s/%s at the sink)\n' "$_srv" \
		    "$2" "$REPS" "$_got" "$MESSAGES"
		rm -rf "$_run"
		return 1
	fi
	echo "$_t" | awk -v n="$MESSAGES" '{ printf "%.3f %.3f\n", n / $1,
	    n / $2 }' >>"$WORK/rates-$_srv"
	echo "$_t" | awk -v s="$_srv" -v r="$2" -v reps="$REPS" \
	    -v n="$MESSAGES" -v sent="$_sent" '{
		printf "%-8s run %s/%s: %d messages at the sink in %.2f s " \
		    "(%.0f msg/s), injection %.2f s (%.0f msg/s)", s, r, reps,
		    n, $1, n / $1, $2, n / $2
		printf ", %d status=sent in its log\n", sent
	}'
	rm -rf "$_run"
	return 0
}

# median COLUMN FILE
median() {
	awk -v c="$1" '{ print $c }' "$2" | sort -n | awk '
	{ v[NR] = $1 }
	END {
		if (NR % 2)
			m = v[(NR + 1) / 2]
		else
			m = (v[NR / 2] + v[NR / 2 + 1]) / 2
		printf "%.0f\n", m
	}'
}

# stats SERVER: "MEDIAN MIN MAX SPREAD INJECT_MEDIAN" of its runs' rates
# (spread: (max - min) / median).
stats() {
	_f=$WORK/rates-$1
	[ -s "$_f" ] || return 1
	_m=$(median 1 "$_f")
	_im=$(median 2 "$_f")
	sort -n "$_f" | awk -v m="$_m" -v im="$_im" '
	{ r[NR] = $1 }
	END { printf "%s %.0f %.0f %.0f%% %s\n", m, r[1], r[NR],
	    100 * (r[NR] - r[1]) / m, im }'
}

echo "relay.sh: $MESSAGES messages of $SIZE bytes to $RCPT per run," \
    "$SESSIONS sessions, $REPS runs per server, sink $SINK_ADDR:$SINK_PORT," \
    "$(nproc) cpus, work dir $WORK"
[ -z "${PETREL_BIN:-}" ] || echo "relay.sh: petrel=$PETREL_BIN user=$RUN_USER"
echo "relay.sh: postfix $(dpkg-query -W -f='${Version}' postfix)"

status=0
failed=""
rep=1
while [ "$rep" -le "$REPS" ]; do
	for server in $SERVERS; do
		case " $failed " in *" $server "*) continue ;; esac
		if ! run_one "$server" "$rep"; then
			failed="$failed $server"
			status=1
		fi
	done
	rep=$((rep + 1))
done

echo
printf '%-8s %-5s %-9s %-12s %-8s %-8s %-7s %-12s\n' server runs messages \
    "msg/s median" min max spread "inject msg/s"
for server in $SERVERS; do
	case " $failed " in
	*" $server "*) s="" ;;
	*) s=$(stats "$server") || s="" ;;
	esac
	if [ -z "$s" ]; then
		status=1
		printf '%-8s %-5s %-9s %-12s\n' "$server" "$REPS" \
		    "$MESSAGES" FAIL
		continue
	fi
	# shellcheck disable=SC2086 # five fields
	set -- $s
	printf '%-8s %-5s %-9s %-12s %-8s %-8s %-7s %-12s\n' \
	    "$server" "$REPS" "$MESSAGES" "$1" "$2" "$3" "$4" "$5"
	eval "median_$server=$1"
done
if [ -n "${median_postfix:-}" ] && [ -n "${median_petrel:-}" ]; then
	echo "$median_petrel $median_postfix" |
	    awk '{ printf "ratio petrel/postfix (medians): %.2f\n", $1 / $2 }'
fi
exit $status
