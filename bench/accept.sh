#!/bin/sh
# bench/accept.sh: how fast Petrel accepts mail, next to Postfix's smtp-sink.
#
# smtp-source (from the postfix package) sends N messages over S parallel
# sessions, once to smtp-sink (which throws every message away: the upper
# bound of the client and the loopback) and once to Petrel (which writes
# each message durably to its spool before its 250, then delivers it to a
# Maildir). For every size and session count it prints messages/second for
# both, the ratio Petrel/smtp-sink, Petrel's peak RSS (VmHWM) and how many
# messages reached the Maildir. See bench/README.md.
#
# Environment (all optional):
#   BENCH_MESSAGES   messages per run (default 2000)
#   BENCH_SESSIONS   session counts (default "1 10 50")
#   BENCH_SIZES      payload sizes in bytes (default "1024 4096")
#   BENCH_TIMEOUT    seconds one smtp-source run may take (default 300)
#   BENCH_PATHS      "deliver hold" (default both): deliver = a local user,
#                    every message delivered to the Maildir during the run;
#                    hold = a recipient in another domain (the client is
#                    trusted), so every message is accepted durably and
#                    stays queued: the accept path alone
#   BUILD            build directory for make (default build)
#   PETREL_BIN       use this binary and skip the build
#
# It installs nothing but what scripts/deps.sh installs, and never starts
# Postfix's own daemon: smtp-source and smtp-sink are standalone programs.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
MESSAGES=${BENCH_MESSAGES:-2000}
SESSIONS=${BENCH_SESSIONS:-"1 10 50"}
SIZES=${BENCH_SIZES:-"1024 4096"}
PATHS=${BENCH_PATHS:-"deliver hold"}
RUN_TIMEOUT=${BENCH_TIMEOUT:-300}
BUILD=${BUILD:-build}
PYTHON=/usr/bin/python3
SOURCE=/usr/sbin/smtp-source
SINK=/usr/sbin/smtp-sink

BENCH_NAME=accept.sh
. "$ROOT/bench/lib.sh"

# ---- dependencies and build ----
sh "$ROOT/scripts/deps.sh"
petrel_binary "$ROOT" "$BUILD"
if [ ! -x "$SOURCE" ] || [ ! -x "$SINK" ]; then
	die "smtp-source/smtp-sink missing"
fi

WORK=$(mktemp -d /tmp/petrel-bench.XXXXXX)
SINK_PID=""
PETREL_PID=""

# shellcheck disable=SC2317 # called by the trap
cleanup() {
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

now() {
	date +%s.%N
}

# run_source PORT SIZE SESSIONS LOG RCPT: prints elapsed seconds, fails if
# smtp-source fails (it exits on any rejected command) or times out.
run_source() {
	_t0=$(now)
	if ! timeout "$RUN_TIMEOUT" "$SOURCE" -c -l "$2" -m "$MESSAGES" \
	    -s "$3" -M bench.test -f bench@bench.test \
	    -t "$5" "127.0.0.1:$1" >"$4" 2>&1; then
		return 1
	fi
	_t1=$(now)
	echo "$_t0 $_t1" | awk '{ printf "%.3f\n", $2 - $1 }'
}

rate() {
	echo "$1 $2" | awk '{ if ($2 > 0) printf "%.0f", $1 / $2; else print "-" }'
}

# ---- smtp-sink, shared by every run ----
SINK_PORT=$(free_port)
if [ "$(id -u)" -eq 0 ]; then
	"$SINK" -u nobody -m 1000 "127.0.0.1:$SINK_PORT" 1024 \
	    >"$WORK/sink.log" 2>&1 &
else
	"$SINK" -m 1000 "127.0.0.1:$SINK_PORT" 1024 >"$WORK/sink.log" 2>&1 &
fi
SINK_PID=$!
wait_port "$SINK_PORT" 10 || die "smtp-sink did not start: $(cat "$WORK/sink.log")"

if [ "$(id -u)" -eq 0 ] && getent passwd petrel >/dev/null; then
	RUN_USER=petrel
elif [ "$(id -u)" -eq 0 ]; then
	RUN_USER=root
else
	RUN_USER=""
fi

# start_petrel DIR: sets PETREL_PID and PETREL_PORT.
start_petrel() {
	_d=$1
	mkdir -p "$_d/mail"
	PETREL_PORT=$(free_port)
	printf 'user@example.test:\n' >"$_d/users"
	{
		echo "hostname mx.example.test"
		echo "spool $_d/spool"
		echo "run_dir $_d/run"
		echo "maildrop $_d/maildrop"
		echo "listen 127.0.0.1:$PETREL_PORT mx"
		echo "domain example.test"
		echo "maildir $_d/mail/%d/%u"
		echo "users $_d/users"
		echo "dns 127.0.0.1:5353"
		echo "max_connections 2000"
		echo "max_connections_per_ip 2000"
		echo "trusted 127.0.0.0/8"
		[ -z "$RUN_USER" ] || echo "user $RUN_USER"
	} >"$_d/petrel.conf"
	if [ "$RUN_USER" = petrel ]; then
		chown -R petrel: "$_d"
	fi
	chmod 755 "$WORK" "$_d"
	launch_petrel "$_d" "$PETREL_PORT"
}

delivered() {
	if [ "$2" = hold ]; then
		find "$1/spool/queue" -type f 2>/dev/null | wc -l
	else
		find "$1/mail" -path '*/new/*' -type f 2>/dev/null | wc -l
	fi
}

echo "accept.sh: $MESSAGES messages per run, petrel=$PETREL_BIN," \
    "user=${RUN_USER:-self}, $(nproc) cpus, work dir $WORK"
printf '%-8s %-6s %-8s %-10s %-12s %-12s %-7s %-12s %-10s\n' path size \
    sessions messages "sink msg/s" "petrel msg/s" ratio "petrel RSS" \
    "in place"
status=0
for path in $PATHS; do
	case "$path" in
	deliver) rcpt=user@example.test ;;
	hold) rcpt=user@held.test ;;
	*) die "BENCH_PATHS: unknown path $path" ;;
	esac
for size in $SIZES; do
	for s in $SESSIONS; do
		run=$WORK/run-$path-$size-$s
		mkdir -p "$run"
		if ! t_sink=$(run_source "$SINK_PORT" "$size" "$s" \
		    "$run/source-sink.log" "$rcpt"); then
			echo "accept.sh: smtp-source to smtp-sink failed:" >&2
			tail -5 "$run/source-sink.log" >&2
			t_sink=""
			status=1
		fi
		start_petrel "$run"
		if ! t_petrel=$(run_source "$PETREL_PORT" "$size" "$s" \
		    "$run/source-petrel.log" "$rcpt"); then
			echo "accept.sh: smtp-source to petrel failed:" >&2
			tail -5 "$run/source-petrel.log" >&2
			t_petrel=""
			status=1
		fi
		# Let delivery finish (bounded) so that the count is final and
		# the next run starts on a quiet machine.
		end=$(($(date +%s) + 120))
		while [ "$(delivered "$run" "$path")" -lt "$MESSAGES" ] &&
		    [ "$(date +%s)" -lt "$end" ]; do
			sleep 0.2
		done
		hwm=$(awk '/^VmHWM:/ { print $2 " " $3 }' \
		    "/proc/$PETREL_PID/status" 2>/dev/null || echo "?")
		stop_petrel
		r_sink=$( [ -n "$t_sink" ] && rate "$MESSAGES" "$t_sink" ||
		    echo FAIL)
		r_petrel=$( [ -n "$t_petrel" ] &&
		    rate "$MESSAGES" "$t_petrel" || echo FAIL)
		ratio=$(echo "$r_petrel $r_sink" | awk '{
			if ($1 ~ /^[0-9]+$/ && $2 ~ /^[0-9]+$/ && $2 > 0)
				printf "%.2f", $1 / $2; else print "-" }')
		n=$(delivered "$run" "$path")
		[ "$n" -eq "$MESSAGES" ] || status=1
		printf '%-8s %-6s %-8s %-10s %-12s %-12s %-7s %-12s %-10s\n' \
		    "$path" "$size" "$s" "$MESSAGES" "$r_sink" "$r_petrel" \
		    "$ratio" "$hwm" "$n"
		rm -rf "$run"
	done
done
done
exit $status
