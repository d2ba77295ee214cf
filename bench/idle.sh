#!/bin/sh
# bench/idle.sh: what 10,000 idle SMTP connections cost Petrel, and whether
# a new client is still served quickly while they are open.
#
# A fresh Petrel (private configuration and spool under a temporary
# directory) is measured idle, then bench/idle.py opens N connections, reads
# each one's 220 and leaves them idle. With them open it prints Petrel's RSS
# (VmRSS, VmHWM), threads and open fds, the cost per connection, Petrel's
# CPU time while they sit idle, and the time a new client waits for its 220
# and for the 250 to a NOOP (20 probes in turn, before and with the idle
# connections). Then the idle connections close and RSS is read once more.
# PASS/MISS against the issue's targets (200 MiB for 10,000 connections,
# 100 ms) is information only: this is a benchmark, not a test. See
# bench/README.md.
#
# Environment (all optional):
#   BENCH_IDLE_CONNECTIONS  idle connections (default 10000)
#   BENCH_IDLE_SOURCES      spread them over this many source addresses
#                           from 127.0.0.2 on (default 0: all from the
#                           kernel's choice, 127.0.0.1)
#   BENCH_IDLE_PROBES       new-client probes, before and with (default 20)
#   BENCH_IDLE_SETTLE       seconds to wait before each measurement, and
#                           the window of the idle CPU measurement
#                           (default 5)
#   BENCH_TIMEOUT           seconds for opening every connection (default
#                           300)
#   BENCH_IDLE_USER         the `user` line of Petrel's configuration
#                           (default, as root: petrel if that user
#                           exists, else root; "" leaves the line out)
#   BUILD                   build directory for make (default build)
#   PETREL_BIN              use this binary and skip the build
#
# Exit status: 0; 1 if fewer than N connections got their 220, one was
# dropped while idle, a probe got no 220 or no NOOP reply at all, or
# Petrel died; 2 if a number in the environment is malformed.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
COUNT=${BENCH_IDLE_CONNECTIONS:-10000}
SOURCES=${BENCH_IDLE_SOURCES:-0}
PROBES=${BENCH_IDLE_PROBES:-20}
SETTLE=${BENCH_IDLE_SETTLE:-5}
RUN_TIMEOUT=${BENCH_TIMEOUT:-300}
BUILD=${BUILD:-build}
PYTHON=/usr/bin/python3
CLIENT=$ROOT/bench/idle.py
RSS_TARGET_MIB=200
LAT_TARGET_MS=100

BENCH_NAME=idle.sh
. "$ROOT/bench/lib.sh"

for v in "$COUNT" "$PROBES" "$RUN_TIMEOUT"; do
	case "$v" in
	'' | *[!0-9]* | 0*) echo "idle.sh: BENCH_* numbers must be" \
	    "positive integers" >&2; exit 2 ;;
	esac
done
for v in "$SOURCES" "$SETTLE"; do
	case "$v" in
	'' | *[!0-9]*) echo "idle.sh: BENCH_IDLE_SOURCES and" \
	    "BENCH_IDLE_SETTLE must be integers" >&2; exit 2 ;;
	esac
done

petrel_binary "$ROOT" "$BUILD"

# Descriptors: the client holds COUNT sockets, Petrel COUNT plus its own.
# Petrel raises its soft limit to the hard one itself. (`ulimit -n` is
# not POSIX, but dash, bash, busybox sh and ksh all have it.)
NEED=$((COUNT + PROBES + 512))
# shellcheck disable=SC3045
cur=$(ulimit -n)
if [ "$cur" != unlimited ] && [ "$cur" -lt "$NEED" ]; then
	# shellcheck disable=SC3045
	ulimit -n "$NEED" 2>/dev/null ||
	    die "cannot raise the fd limit to $NEED (ulimit -n is $cur)"
fi
# shellcheck disable=SC3045
FDLIMIT=$(ulimit -n)

WORK=$(mktemp -d /tmp/petrel-idle.XXXXXX)
PETREL_PID=""
HOLD_PID=""

# shellcheck disable=SC2317 # called by the trap
cleanup() {
	if [ -n "$HOLD_PID" ]; then
		kill -KILL "$HOLD_PID" 2>/dev/null || true
		wait "$HOLD_PID" 2>/dev/null || true
	fi
	if [ -n "$PETREL_PID" ]; then
		kill -KILL "$PETREL_PID" 2>/dev/null || true
		wait "$PETREL_PID" 2>/dev/null || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -n "${BENCH_IDLE_USER+set}" ]; then
	RUN_USER=$BENCH_IDLE_USER
elif [ "$(id -u)" -eq 0 ] && getent passwd petrel >/dev/null; then
	RUN_USER=petrel
elif [ "$(id -u)" -eq 0 ]; then
	RUN_USER=root
else
	RUN_USER=""
fi

# ---- Petrel ----
PORT=$(free_port 127.0.0.1)
MAXCONN=$((COUNT + PROBES + 100))
mkdir -p "$WORK/mail"
printf 'user@example.test:\n' >"$WORK/users"
{
	echo "hostname mx.example.test"
	echo "spool $WORK/spool"
	echo "listen 127.0.0.1:$PORT mx"
	echo "domain example.test"
	echo "maildir $WORK/mail/%d/%u"
	echo "users $WORK/users"
	echo "dns 127.0.0.1:5353"
	# Its own sockets and maildrop: never the system's /run/petrel.
	echo "run_dir $WORK/run"
	echo "maildrop $WORK/maildrop"
	echo "max_connections $MAXCONN"
	echo "max_connections_per_ip $MAXCONN"
	# Longer than any run: no idle connection may time out.
	echo "timeout_command 1d"
	[ -z "$RUN_USER" ] || echo "user $RUN_USER"
} >"$WORK/petrel.conf"
if [ "$RUN_USER" = petrel ]; then
	chown -R petrel: "$WORK"
fi
chmod 755 "$WORK"
launch_petrel "$WORK" "$PORT"

# alive: Petrel runs (kill -0 alone would accept a zombie not yet
# waited for).
alive() {
	kill -0 "$PETREL_PID" 2>/dev/null &&
	    ! grep -Eq '^State:[[:space:]]+[ZX]' "/proc/$PETREL_PID/status" \
	    2>/dev/null
}

# status_kb FIELD: a field of /proc/PID/status, in kB ("?" if gone).
# shellcheck disable=SC2317 # called from snapshot
status_kb() {
	awk -v f="$1:" '$1 == f { print $2 }' "/proc/$PETREL_PID/status" \
	    2>/dev/null || echo "?"
}

fds() {
	find "/proc/$PETREL_PID/fd" -mindepth 1 -maxdepth 1 2>/dev/null |
	    wc -l
}

# cpu_ms: Petrel's user + system CPU time so far, in milliseconds.
cpu_ms() {
	awk -v hz="$(getconf CLK_TCK)" '{
		sub(/^.*\) /, "")	# after "(comm) ": field 3 is state
		printf "%d\n", ($12 + $13) * 1000 / hz
	}' "/proc/$PETREL_PID/stat"
}

# snapshot: "RSS HWM threads fds RssAnon" (kB but for threads and fds).
snapshot() {
	echo "$(status_kb VmRSS) $(status_kb VmHWM) $(status_kb Threads)" \
	    "$(fds) $(status_kb RssAnon)"
}

# word N WORDS: the Nth word of WORDS.
word() {
	echo "$2" | cut -d' ' -f"$1"
}

# probe NAME: run the probes; prints their summary line into NAME.probe.
probe() {
	if ! "$PYTHON" "$CLIENT" probe 127.0.0.1 "$PORT" --count "$PROBES" \
	    >"$WORK/$1.probe" 2>&1; then
		status=1
		echo "idle.sh: a probe failed ($1):" >&2
		grep error= "$WORK/$1.probe" | head -3 >&2 || true
	fi
}

# field KEY FILE: the value of KEY= in the last summary line of FILE.
field() {
	grep '^probes=' "$2" 2>/dev/null | tail -1 |
	    tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2 }'
}

row() {
	printf '%-22s %-12s %-12s %-12s %-8s %-8s\n' "$@"
}

status=0
echo "idle.sh: $COUNT idle connections, sources=$SOURCES," \
    "petrel=$PETREL_BIN, user=${RUN_USER:-default}, $(nproc) cpus," \
    "fd limit $FDLIMIT, work dir $WORK"
echo "idle.sh: load before: $(cut -d' ' -f1-3 /proc/loadavg)"

sleep "$SETTLE"
before=$(snapshot)
probe before

# ---- the idle connections ----
"$PYTHON" "$CLIENT" hold 127.0.0.1 "$PORT" "$COUNT" --sources "$SOURCES" \
    --timeout "$RUN_TIMEOUT" >"$WORK/hold.out" 2>"$WORK/hold.err" &
HOLD_PID=$!
end=$(($(date +%s) + RUN_TIMEOUT + 30))
while ! grep -q '^connections=' "$WORK/hold.out" 2>/dev/null; do
	if ! kill -0 "$HOLD_PID" 2>/dev/null; then
		cat "$WORK/hold.err" >&2
		die "the client died while connecting"
	fi
	[ "$(date +%s)" -lt "$end" ] || die "the client did not finish"
	sleep 0.1
done
opened=$(grep '^connections=' "$WORK/hold.out")
greeted=$(echo "$opened" | tr ' ' '\n' | awk -F= '$1 == "greeted" {
	print $2 }')
secs=$(echo "$opened" | tr ' ' '\n' | awk -F= '$1 == "seconds" {
	print $2 }')
if [ "$greeted" -lt "$COUNT" ]; then
	status=1
	echo "idle.sh: only $greeted of $COUNT connections got their 220:" \
	    "$opened" >&2
	cat "$WORK/hold.err" >&2
fi

alive || die "petrel died while the connections opened"
sleep 1
cpu0=$(cpu_ms)
sleep "$SETTLE"
cpu1=$(cpu_ms)
with=$(snapshot)
probe with
alive || die "petrel died with $COUNT connections open"

kill -TERM "$HOLD_PID"
wait "$HOLD_PID" || status=1
HOLD_PID=""
held=$(grep '^held=' "$WORK/hold.out" || echo "held=? dropped=?")
case "$held" in
*" dropped=0") ;;
*)
	status=1
	echo "idle.sh: connections dropped while idle: $held" >&2
	cat "$WORK/hold.err" >&2
	;;
esac

# Wait (at most 60 s) for Petrel to have closed them all.
end=$(($(date +%s) + 60))
while [ "$(fds)" -gt "$(word 4 "$before")" ] &&
    [ "$(date +%s)" -lt "$end" ]; do
	sleep 0.2
done
sleep "$SETTLE"
# shellcheck disable=SC2034 # read by eval in the report
after=$(snapshot)
alive || die "petrel died after the connections closed"
stop_petrel

# ---- report ----
echo
row "" VmRSS VmHWM RssAnon threads fds
for w in before with after; do
	eval "v=\$$w"
	case $w in
	before) name=before ;;
	with) name="with $COUNT idle" ;;
	after) name="after closing" ;;
	esac
	row "$name" "$(word 1 "$v") kB" "$(word 2 "$v") kB" \
	    "$(word 5 "$v") kB" "$(word 3 "$v")" "$(word 4 "$v")"
done
echo
echo "opened:      $opened"
echo "at the end:  $held"
echo "$(word 1 "$with") $(word 1 "$before") $COUNT" | awk '{
	printf "per connection: (%d - %d) kB / %d = %.0f bytes\n",
	    $1, $2, $3, ($1 - $2) * 1024 / $3 }'
echo "open rate: $COUNT connections greeted in $secs s"
echo "petrel cpu while idle: $((cpu1 - cpu0)) ms in $SETTLE s"
for p in before with; do
	echo "new client, $p: 220 p50 $(field greet_p50 "$WORK/$p.probe")" \
	    "max $(field greet_max "$WORK/$p.probe") ms;" \
	    "NOOP 250 p50 $(field noop_p50 "$WORK/$p.probe")" \
	    "max $(field noop_max "$WORK/$p.probe") ms" \
	    "($(field ok "$WORK/$p.probe")/$PROBES ok)"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "$(word 1 "$with") $RSS_TARGET_MIB $COUNT" | awk '{
	v = ($1 / 1024 < $2) ? "PASS" : "MISS"
	printf "target RSS < %d MiB with %d idle connections: %s (%.1f MiB)",
	    $2, $3, v, $1 / 1024
	if ($3 != 10000) printf " (the target is for 10000)"
	printf "\n" }'
gmax=$(field greet_max "$WORK/with.probe")
nmax=$(field noop_max "$WORK/with.probe")
echo "${gmax:-nan} ${nmax:-nan} $LAT_TARGET_MS" | awk '{
	ok = $1 != "nan" && $2 != "nan" && $1 + 0 < $3 && $2 + 0 < $3
	v = ok ? "PASS" : "MISS"
	f = "target new client 220 and NOOP 250 < %d ms: %s"
	printf f " (max %s and %s ms)\n", $3, v, $1, $2 }'
exit $status
