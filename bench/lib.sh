# bench/lib.sh: helpers shared by the benchmark scripts (sourced, POSIX sh).
#
# The sourcing script sets BENCH_NAME (for messages) and PYTHON, and, for
# the Petrel helpers, PETREL_BIN and PETREL_PID ("" when none runs), and,
# for postfix_stop, POSTFIX and PFX_CONF.

die() {
	echo "$BENCH_NAME: $*" >&2
	exit 1
}

# petrel_binary ROOT BUILD: build Petrel unless PETREL_BIN is set, then
# check that PETREL_BIN is there.
petrel_binary() {
	if [ -z "${PETREL_BIN:-}" ]; then
		make -C "$1" BUILD="$2" all >/dev/null
		case "$2" in
		/*) PETREL_BIN=$2/petrel ;;
		*) PETREL_BIN=$1/$2/petrel ;;
		esac
	fi
	[ -x "$PETREL_BIN" ] || die "no petrel binary at $PETREL_BIN"
}

# free_port [ADDR]: a free TCP port on ADDR (default 127.0.0.1).
free_port() {
	$PYTHON - "${1:-127.0.0.1}" <<'PY'
import socket, sys
s = socket.socket()
s.bind((sys.argv[1], 0))
print(s.getsockname()[1])
PY
}

# wait_port PORT SECONDS [ADDR]: until something accepts on ADDR:PORT.
wait_port() {
	$PYTHON - "$1" "$2" "${3:-127.0.0.1}" <<'PY'
import socket, sys, time
port, deadline = int(sys.argv[1]), time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    try:
        socket.create_connection((sys.argv[3], port), 1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit(1)
PY
}

# wait_log FILE REGEX SECONDS
wait_log() {
	_end=$(($(date +%s) + $3))
	while ! grep -Eq "$2" "$1" 2>/dev/null; do
		[ "$(date +%s)" -lt "$_end" ] || return 1
		sleep 0.05
	done
}

# launch_petrel DIR PORT: run Petrel on DIR/petrel.conf (log in
# DIR/petrel.log) until it listens on 127.0.0.1:PORT; sets PETREL_PID.
launch_petrel() {
	"$PETREL_BIN" serve -c "$1/petrel.conf" 2>"$1/petrel.log" &
	PETREL_PID=$!
	if ! wait_log "$1/petrel.log" \
	    "listening addr=127.0.0.1 port=$2 " 20; then
		cat "$1/petrel.log" >&2
		die "petrel did not start"
	fi
}

# stop_petrel: SIGTERM, SIGKILL after 30 s.
stop_petrel() {
	kill -TERM "$PETREL_PID" 2>/dev/null || true
	_end=$(($(date +%s) + 30))
	while kill -0 "$PETREL_PID" 2>/dev/null; do
		if [ "$(date +%s)" -ge "$_end" ]; then
			echo "$BENCH_NAME: petrel ignored SIGTERM, killing" >&2
			kill -KILL "$PETREL_PID" 2>/dev/null || true
			break
		fi
		sleep 0.1
	done
	wait "$PETREL_PID" 2>/dev/null || true
	PETREL_PID=""
}

# postfix_stop: stop the private Postfix instance whose configuration
# directory is $PFX_CONF (the caller's; "" when none runs) with $POSTFIX,
# by force if needed, and set PFX_CONF to "".
postfix_stop() {
	[ -n "$PFX_CONF" ] || return 0
	"$POSTFIX" -c "$PFX_CONF" stop >/dev/null 2>&1 || true
	# postfix stop waits up to 5 s, then gives up; make sure of it (the
	# master calls setsid, so its process group ID is its PID).
	_pidfile=$(dirname "$PFX_CONF")/queue/pid/master.pid
	if [ -f "$_pidfile" ]; then
		_pid=$(awk '{ print $1; exit }' "$_pidfile")
		case "$_pid" in
		'' | *[!0-9]*) ;;
		*) if kill -0 "$_pid" 2>/dev/null &&
			    grep -q master "/proc/$_pid/comm" 2>/dev/null; then
				kill -KILL -- "-$_pid" 2>/dev/null || true
			fi ;;
		esac
	fi
	PFX_CONF=""
}
