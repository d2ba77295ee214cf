#!/bin/sh
# bench/compare.sh: Petrel next to Postfix and smtp-sink, the same loads in
# the same run (issue 7).
#
# For every load (path, message size, sessions, messages per connection)
# and every repetition it runs, in turn, a fresh private Postfix, a fresh
# Petrel and smtp-sink (the ceiling: a server that stores nothing), each
# loaded by the same generator (petrel-smtpload), and prints a table:
# messages/second (median and spread), Petrel/Postfix and Petrel/smtp-sink,
# peak RSS and process count, p50/p99 time from the final dot to the 250.
# Then a latency row: both servers loaded at half of Petrel's peak accept
# rate. Every run checks that every message arrived, exactly once. Every
# run's files stay under the work directory until the script exits. See
# bench/README.md ("compare.sh").
#
# Paths (BENCH_PATHS, default "accept maildir relay"):
#   accept   RCPT user@discard.test, routed to a discard target: Postfix's
#            discard(8) (transport_maps), Petrel's `discard:` next hop (a
#            transport line); when Petrel's transport file refuses
#            `discard:`, Petrel relays discard.test to a second smtp-sink
#            instead and the output says so. Timed until the generator
#            ends: every message has its 250, i.e. is durably queued.
#   maildir  RCPT user@example.test, delivered to a Maildir (Petrel's local
#            delivery; Postfix's virtual(8)). Timed until every file is in
#            the Maildir's new/ (polled every 10 ms).
#   relay    RCPT user@remote.test, relayed to a loopback smtp-sink
#            ([127.0.0.2]:PORT). Timed until the sink has counted every
#            message; then the queue must drain.
#
# Environment (all optional):
#   BENCH_QUICK      1: only the issue's target load (50 sessions, 4096
#                    bytes, one message per connection, every path); the
#                    BENCH_* below still override it
#   BENCH_PATHS      default "accept maildir relay"
#   BENCH_SESSIONS   default "1 10 50 200"
#   BENCH_SIZES      message sizes in bytes, headers included (default
#                    "1024 4096 102400")
#   BENCH_PER_CONN   messages per connection (default "1 100"); a run
#                    uses at most ceil(messages / sessions) so that every
#                    session has a connection
#   BENCH_MESSAGES   messages per run (default 2000); sizes above 40 KiB
#                    send MESSAGES * 40960 / SIZE (at least 50): 800 of
#                    100 KiB
#   BENCH_REPS       repetitions of each server per load (default 3)
#   BENCH_LATENCY    0: skip the latency row (default 1)
#   BENCH_TIMEOUT    seconds a run may take until complete (default 300)
#   BENCH_DIR        parent of the work directory (default /tmp): both
#                    servers' queues and Maildirs are there, on one disk
#   BUILD            build directory for make (default build)
#   PETREL_BIN       use this petrel binary and skip the build
#   BENCH_PLAN       1: print how many runs there would be, and exit
#   SMTPLOAD         the load generator (default: petrel-smtpload next to
#                    the petrel binary); /usr/sbin/smtp-source works too,
#                    without latencies and without the latency row
#
# It must run as root (Postfix's master needs it) and installs what
# scripts/deps.sh installs (package postfix: the daemon, smtp-sink). It
# never starts or touches the system's Postfix: its Postfix is a private
# instance per run (configuration, queue, data directory and log under the
# work directory, on a free port of 127.0.0.1), started with
# `postfix -c DIR start` and stopped with `postfix -c DIR stop`. Only
# loopback; neither server makes a DNS query. Exit 1 if any run failed.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ "${BENCH_QUICK:-0}" = 1 ]; then
	SESSIONS=${BENCH_SESSIONS:-50}
	SIZES=${BENCH_SIZES:-4096}
	PER_CONN=${BENCH_PER_CONN:-1}
else
	SESSIONS=${BENCH_SESSIONS:-"1 10 50 200"}
	SIZES=${BENCH_SIZES:-"1024 4096 102400"}
	PER_CONN=${BENCH_PER_CONN:-"1 100"}
fi
PATHS=${BENCH_PATHS:-"accept maildir relay"}
MESSAGES=${BENCH_MESSAGES:-2000}
REPS=${BENCH_REPS:-3}
LATENCY=${BENCH_LATENCY:-1}
RUN_TIMEOUT=${BENCH_TIMEOUT:-300}
BENCH_DIR=${BENCH_DIR:-/tmp}
BUILD=${BUILD:-build}
PYTHON=/usr/bin/python3
SINK=/usr/sbin/smtp-sink
POSTFIX=/usr/sbin/postfix
RUNNER=$ROOT/bench/compare_run.py
SERVERS="postfix petrel sink"

BENCH_NAME=compare.sh
. "$ROOT/bench/lib.sh"

# ---- arguments ----
for v in $SESSIONS $SIZES $PER_CONN "$MESSAGES" "$REPS" "$RUN_TIMEOUT"; do
	case "$v" in
	'' | *[!0-9]* | 0*) die "BENCH_* numbers must be positive integers" ;;
	esac
done
for p in $PATHS; do
	case "$p" in
	accept | maildir | relay) ;;
	*) die "BENCH_PATHS: unknown path $p (accept, maildir, relay)" ;;
	esac
done
[ -d "$BENCH_DIR" ] || die "BENCH_DIR $BENCH_DIR is not a directory"
[ "$(id -u)" -eq 0 ] || die "must run as root (Postfix's master needs it)"

# ---- the plan ----
nloads=0
for _p in $PATHS; do for _z in $SIZES; do for _s in $SESSIONS; do
	for _m in $PER_CONN; do nloads=$((nloads + 1)); done
done; done; done
nruns=$((nloads * 3 * REPS))
LAT_KEY=accept-4096-50-1
do_latency=0
case "$(basename "${SMTPLOAD:-petrel-smtpload}")" in
smtp-source) GEN=source ;;
*) GEN=smtpload ;;
esac
if [ "$LATENCY" = 1 ] && [ "$GEN" = smtpload ]; then
	case " $PATHS " in *" accept "*)
		case " $SIZES " in *" 4096 "*)
			case " $SESSIONS " in *" 50 "*)
				case " $PER_CONN " in *" 1 "*)
					do_latency=1 ;;
				esac ;;
			esac ;;
		esac ;;
	esac
fi
[ "$do_latency" -eq 0 ] || nruns=$((nruns + 2 * REPS))

lat_note=""
[ "$do_latency" -eq 0 ] || lat_note=" + latency 2 x $REPS"
# About 3.5 s a run on the 2-core machine of bench/README.md (Postfix's
# start and stop are most of it).
echo "compare.sh: $nloads loads x 3 servers x $REPS repetitions$lat_note:" \
    "$nruns runs (a rough estimate at ~4 s a run: $((nruns / 15 + 1))" \
    "minutes)"
[ "${BENCH_PLAN:-0}" != 1 ] || exit 0

# ---- dependencies and build ----
sh "$ROOT/scripts/deps.sh"
petrel_binary "$ROOT" "$BUILD"
SMTPLOAD=${SMTPLOAD:-$(dirname "$PETREL_BIN")/petrel-smtpload}
[ -x "$SMTPLOAD" ] || die "no load generator at $SMTPLOAD (set SMTPLOAD)"
for f in "$SINK" "$POSTFIX" /usr/lib/postfix/sbin/master \
    /usr/lib/postfix/sbin/discard /usr/lib/postfix/sbin/virtual; do
	[ -x "$f" ] || die "$f missing (package postfix)"
done
getent passwd postfix >/dev/null || die "no postfix user"
if getent passwd petrel >/dev/null; then
	RUN_USER=petrel
else
	die "no user petrel (scripts/deps.sh creates it)"
fi
# Postfix's virtual(8) writes the Maildir as the same user as Petrel.
MAIL_UID=$(id -u petrel)
MAIL_GID=$(id -g petrel)

WORK=$(mktemp -d "$BENCH_DIR/petrel-compare.XXXXXX")
# Postfix's daemons (user postfix) and Petrel (user petrel) open files
# below here by path.
chmod 755 "$WORK"
mkdir "$WORK/res" "$WORK/runs"
# Each run's directory (its Maildir, its empty queue) stays until the end:
# deleting thousands of files between runs would slow the next run's file
# creations on ext4 without a journal (bench/README.md, "Where the time
# goes"), a cost neither server caused.
chmod 755 "$WORK/runs"
RUNS_DONE=0
CEIL_PID=""
RELAY_SINK_PID=""
DISCARD_SINK_PID=""
PETREL_PID=""
RUN_PID=""
PFX_CONF=""


# shellcheck disable=SC2317 # called by the trap
cleanup() {
	if [ -n "$RUN_PID" ]; then
		# It kills its generator on SIGTERM.
		kill -TERM "$RUN_PID" 2>/dev/null || true
		wait "$RUN_PID" 2>/dev/null || true
	fi
	postfix_stop
	if [ -n "$PETREL_PID" ]; then
		kill -KILL "$PETREL_PID" 2>/dev/null || true
		wait "$PETREL_PID" 2>/dev/null || true
	fi
	for _p in $CEIL_PID $RELAY_SINK_PID $DISCARD_SINK_PID; do
		kill -TERM "$_p" 2>/dev/null || true
		wait "$_p" 2>/dev/null || true
	done
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- the sinks ----
# start_sink ADDR OUT: a smtp-sink -c on a free port of ADDR; -c makes it
# write "sess=S quit=Q mesg=M\r" to OUT after every session, QUIT and
# final ".": the runs count the rise of M. Sets SINK_PORT_R and SINK_PID_R.
start_sink() {
	SINK_PORT_R=$(free_port "$1")
	"$SINK" -c -u nobody -m 1000 "$1:$SINK_PORT_R" 1024 \
	    >"$2" 2>"$2.err" &
	SINK_PID_R=$!
	wait_port "$SINK_PORT_R" 10 "$1" ||
	    die "smtp-sink did not start on $1: $(cat "$2.err")"
}

# The remote server of the relay path, on 127.0.0.2 as in relay.sh.
start_sink 127.0.0.2 "$WORK/relay-sink.out"
RELAY_SINK_PORT=$SINK_PORT_R
RELAY_SINK_PID=$SINK_PID_R

# Does Petrel's transport file take "discard:"? If not, the accept path
# sends Petrel's discard.test to a third sink.
PETREL_DISCARD="discard:"
mkdir "$WORK/probe"
printf 'discard.test discard:\n' >"$WORK/probe/transport"
cat >"$WORK/probe/petrel.conf" <<EOF
hostname probe.petrel.bench.test
spool $WORK/probe/spool
listen 127.0.0.1:1 mx
dns 127.0.0.1:1
transport $WORK/probe/transport
EOF
case " $PATHS " in
*" accept "*)
	if ! "$PETREL_BIN" check-config -c "$WORK/probe/petrel.conf" \
	    >"$WORK/probe/out" 2>&1; then
		start_sink 127.0.0.3 "$WORK/discard-sink.out"
		DISCARD_SINK_PORT=$SINK_PORT_R
		DISCARD_SINK_PID=$SINK_PID_R
		PETREL_DISCARD="smtp:[127.0.0.3]:$DISCARD_SINK_PORT"
		echo "compare.sh: NOTE: petrel refuses a discard: next hop" \
		    "($(tr '\n' ' ' <"$WORK/probe/out" | sed 's/ *$//'));" \
		    "on the accept path petrel relays discard.test to a" \
		    "second smtp-sink at 127.0.0.3:$DISCARD_SINK_PORT" \
		    "instead, Postfix uses discard(8)"
	fi
	;;
esac
rm -rf "$WORK/probe"

# ---- Postfix: a private instance per run ----
# start_postfix DIR PATH SESSIONS: sets PFX_CONF, PFX_PORT, PFX_PID.
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
	# One smtpd per session: enough processes for every session.
	_plimit=$(($3 + 50))
	[ "$_plimit" -ge 100 ] || _plimit=100
	# Defaults everywhere else, in particular durability: every queue
	# file is fsync'd before the 250, as shipped.
	cat >"$_d/conf/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $_d/queue
data_directory = $_d/data
syslog_name = postfix-compare
maillog_file = $_d/maillog
maillog_file_prefixes = $_d
myhostname = mx.postfix.bench.test
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
smtp_dns_support_level = disabled
smtp_host_lookup = native
default_process_limit = $_plimit
EOF
	case "$2" in
	accept)
		echo 'transport_maps = inline:{ discard.test=discard: }' \
		    >>"$_d/conf/main.cf"
		;;
	maildir)
		mkdir -p "$_d/vmail"
		chown "$MAIL_UID:$MAIL_GID" "$_d/vmail"
		cat >>"$_d/conf/main.cf" <<EOF
virtual_mailbox_domains = example.test
virtual_mailbox_maps = inline:{ user@example.test=example.test/user/ }
virtual_mailbox_base = $_d/vmail
virtual_uid_maps = static:$MAIL_UID
virtual_gid_maps = static:$MAIL_GID
EOF
		;;
	relay)
		echo "relayhost = [127.0.0.2]:$RELAY_SINK_PORT" \
		    >>"$_d/conf/main.cf"
		;;
	esac
	PFX_CONF=$_d/conf
	if ! "$POSTFIX" -c "$PFX_CONF" start >"$_d/start.log" 2>&1; then
		tail -5 "$_d/start.log" "$_d/maillog" >&2 2>/dev/null || true
		echo "compare.sh: postfix did not start" >&2
		return 1
	fi
	if ! wait_port "$PFX_PORT" 20; then
		tail -5 "$_d/maillog" >&2 2>/dev/null || true
		echo "compare.sh: postfix does not listen on" \
		    "127.0.0.1:$PFX_PORT" >&2
		return 1
	fi
	PFX_PID=$(awk '{ print $1; exit }' "$_d/queue/pid/master.pid")
}

# ---- Petrel: a fresh configuration and spool per run ----
# start_petrel DIR PATH: sets PETREL_PID and PETREL_PORT.
start_petrel() {
	_d=$1
	mkdir -p "$_d/mail"
	PETREL_PORT=$(free_port)
	printf 'user@example.test:\n' >"$_d/users"
	printf 'discard.test %s\n' "$PETREL_DISCARD" >"$_d/transport"
	{
		echo "hostname mx.petrel.bench.test"
		echo "spool $_d/spool"
		echo "run_dir $_d/run"
		echo "maildrop $_d/maildrop"
		echo "listen 127.0.0.1:$PETREL_PORT mx"
		echo "dns 127.0.0.1:1"
		echo "trusted 127.0.0.0/8"
		echo "max_connections 2000"
		echo "max_connections_per_ip 2000"
		echo "retry_initial 1s"
		echo "retry_max 4s"
		echo "user $RUN_USER"
		case "$2" in
		accept) echo "transport $_d/transport" ;;
		maildir)
			echo "domain example.test"
			echo "maildir $_d/mail/%d/%u"
			echo "users $_d/users"
			;;
		relay) echo "relayhost [127.0.0.2]:$RELAY_SINK_PORT" ;;
		esac
	} >"$_d/petrel.conf"
	chown -R petrel: "$_d"
	chmod 755 "$_d"
	# As lib.sh's launch_petrel, but a failure fails the run, not the
	# script.
	"$PETREL_BIN" serve -c "$_d/petrel.conf" 2>"$_d/petrel.log" &
	PETREL_PID=$!
	if ! wait_log "$_d/petrel.log" \
	    "listening addr=127.0.0.1 port=$PETREL_PORT " 20; then
		tail -5 "$_d/petrel.log" >&2
		echo "compare.sh: petrel did not start" >&2
		return 1
	fi
}

# start_failed: the server of run_one did not start: a FAIL row.
start_failed() {
	case "$_srv" in
	postfix) postfix_stop ;;
	petrel) stop_petrel ;;
	esac
	echo "ok=0 reason=${_srv}_did_not_start" >>"$WORK/res/$_key.$_srv"
	printf 'run %s %-7s %s/%s: FAIL %s did not start\n' "$_key" "$_srv" \
	    "$_rep" "$REPS" "$_srv"
}

# messages_for SIZE: messages per run for that size.
messages_for() {
	if [ "$1" -le 40960 ]; then
		echo "$MESSAGES"
	else
		_n=$((MESSAGES * 40960 / $1))
		[ "$_n" -ge 50 ] || _n=50
		echo "$_n"
	fi
}

# gen_cmd PORT RCPT SIZE SESSIONS PERCONN N [RATE]: the generator's
# command line.
gen_cmd() {
	if [ "$GEN" = source ]; then
		# smtp-source: -l is the body's size; -d keeps the connection
		# for every message of a session.
		_d=""
		[ "$5" -eq 1 ] || _d=-d
		echo "$SMTPLOAD $_d -l $3 -m $6 -s $4 -M load.test" \
		    "-f bench@load.test -t $2 127.0.0.1:$1"
		return
	fi
	_r=""
	[ -z "${7:-}" ] || _r="-r $7"
	echo "$SMTPLOAD -q -s $4 -m $6 -M $5 -l $3 -t $2 -T $RUN_TIMEOUT" \
	    "$_r 127.0.0.1:$1"
}

# run_one KEY PATH SERVER SIZE SESSIONS PERCONN N REP [RATE]: one run on a
# fresh instance; appends the runner's line to $WORK/res/KEY.SERVER and
# prints a progress line. Returns 1 if it failed.
run_one() {
	_key=$1 _path=$2 _srv=$3 _size=$4 _s=$5 _m=$6 _n=$7 _rep=$8
	_rate=${9:-}
	RUNS_DONE=$((RUNS_DONE + 1))
	_run=$WORK/runs/$RUNS_DONE
	mkdir -p "$_run"
	chmod 755 "$_run"
	case "$_path" in
	accept) _rcpt=user@discard.test ;;
	maildir) _rcpt=user@example.test ;;
	relay) _rcpt=user@remote.test ;;
	esac
	set -- --expect "$_n" --timeout "$RUN_TIMEOUT" \
	    --gen-out "$_run/gen.out"
	case "$_srv" in
	sink)
		# The ceiling, fresh for each run (its VmHWM is the run's):
		# the generator talks to it directly.
		start_sink 127.0.0.1 "$_run/ceil.out"
		CEIL_PID=$SINK_PID_R
		_port=$SINK_PORT_R
		_log=""
		set -- "$@" --mode accept --root-pid "$CEIL_PID" \
		    --sink-out "$_run/ceil.out"
		;;
	postfix)
		if ! start_postfix "$_run" "$_path" "$_s"; then
			start_failed
			return 1
		fi
		_port=$PFX_PORT
		_log=$_run/maillog
		set -- "$@" --root-pid "$PFX_PID"
		for _q in incoming active deferred hold maildrop; do
			set -- "$@" --queue "$_run/queue/$_q"
		done
		;;
	petrel)
		if ! start_petrel "$_run" "$_path"; then
			start_failed
			return 1
		fi
		_port=$PETREL_PORT
		_log=$_run/petrel.log
		set -- "$@" --root-pid "$PETREL_PID" \
		    --queue "$_run/spool/incoming" --queue "$_run/spool/queue"
		;;
	esac
	case "$_srv/$_path" in
	sink/*) ;;
	postfix/accept)
		# discard(8): "relay=none, ... status=sent (discard.test)"
		set -- "$@" --mode accept --log "$_log" \
		    --log-regex ' status=sent '
		;;
	petrel/accept)
		if [ "$PETREL_DISCARD" = discard: ]; then
			set -- "$@" --mode accept --log "$_log" \
			    --log-regex '^(?=.* relay=discard)(?=.* status=sent).*$'
		else
			set -- "$@" --mode accept \
			    --sink-out "$WORK/discard-sink.out"
		fi
		;;
	postfix/maildir)
		set -- "$@" --mode maildir \
		    --maildir "$_run/vmail/example.test/user"
		;;
	petrel/maildir)
		set -- "$@" --mode maildir \
		    --maildir "$_run/mail/example.test/user"
		;;
	*/relay)
		set -- "$@" --mode sink --sink-out "$WORK/relay-sink.out"
		;;
	esac
	# shellcheck disable=SC2046 # the generator's words
	set -- "$@" -- $(gen_cmd "$_port" "$_rcpt" "$_size" "$_s" "$_m" \
	    "$_n" "$_rate")
	_ok=1
	# In the background, so that a signal runs the trap at once.
	"$PYTHON" "$RUNNER" "$@" >"$_run/result" 2>"$_run/runner.err" &
	RUN_PID=$!
	wait "$RUN_PID" || _ok=0
	RUN_PID=""
	if [ "$_ok" -eq 0 ] && [ -n "$_log" ]; then
		echo "$_srv: the last lines of $_log:" >>"$_run/runner.err"
		tail -5 "$_log" >>"$_run/runner.err" 2>/dev/null || true
	fi
	case "$_srv" in
	postfix) postfix_stop ;;
	petrel) stop_petrel ;;
	sink)
		kill -TERM "$CEIL_PID" 2>/dev/null || true
		wait "$CEIL_PID" 2>/dev/null || true
		CEIL_PID=""
		;;
	esac
	_res=$(cat "$_run/result")
	[ -n "$_res" ] || _res="ok=0 reason=the_runner_printed_nothing"
	echo "$_res" >>"$WORK/res/$_key.$_srv"
	if [ "$_ok" -eq 0 ]; then
		sed 's/^/compare.sh: /' "$_run/runner.err" >&2
	fi
	echo "$_res" | awk -v k="$_key" -v s="$_srv" -v r="$_rep" \
	    -v reps="$REPS" '{
		for (i = 1; i <= NF; i++) {
			split($i, kv, "=")
			f[kv[1]] = kv[2]
		}
		if (f["ok"] == 1)
			printf "run %s %-7s %s/%s: %s msg/s in %s s, count %s," \
			    " rss %d kB, pss %d kB, %s procs, p50 %s p99 %s ms," \
			    " sampler %s s cpu\n", k, s, r, reps, f["rate"],
			    f["seconds"], f["count"], f["rss_kb"], f["pss_kb"],
			    f["procs"], f["lat_p50"], f["lat_p99"],
			    f["sampler_cpu"]
		else
			printf "run %s %-7s %s/%s: FAIL %s\n", k, s, r, reps,
			    f["reason"]
	}'
	[ "$_ok" -eq 1 ]
}

# summary FILE: "RUNS MEDIAN SPREAD% RSS_MAX PROCS_MAX P50_MED P99_MED
# GEN_RATE_MED PSS_MAX" of the runs in FILE (rates in messages/second,
# memory in MiB, latencies in ms), or "FAIL" when a run failed.
summary() {
	"$PYTHON" - "$1" <<'EOF'
import statistics, sys
runs = []
fails = 0
with open(sys.argv[1]) as f:
    for line in f:
        kv = dict(x.split("=", 1) for x in line.split() if "=" in x)
        if kv.get("ok") == "1":
            runs.append(kv)
        else:
            fails += 1
if fails or not runs:
    print("FAIL")
    sys.exit(0)
def num(k):
    v = [float(r[k]) for r in runs if r.get(k, "-") != "-"]
    return v
rates = num("rate")
med = statistics.median(rates)
spread = 100 * (max(rates) - min(rates)) / med
p50, p99 = num("lat_p50"), num("lat_p99")
print(len(runs), f"{med:.0f}", f"{spread:.0f}%",
      f"{max(num('rss_kb')) / 1024:.1f}", f"{max(num('procs')):.0f}",
      f"{statistics.median(p50):.2f}" if p50 else "-",
      f"{statistics.median(p99):.2f}" if p99 else "-",
      f"{statistics.median(num('gen_rate')):.0f}" if num("gen_rate")
      else "-", f"{max(num('pss_kb')) / 1024:.1f}")
EOF
}

echo "compare.sh: paths '$PATHS', sizes '$SIZES', sessions '$SESSIONS'," \
    "per connection '$PER_CONN', $MESSAGES messages per run"
echo "compare.sh: petrel=$PETREL_BIN user=$RUN_USER," \
    "generator=$SMTPLOAD, postfix $(dpkg-query -W -f='${Version}' postfix)," \
    "$(nproc) cpus, work dir $WORK"
echo "compare.sh: $(uptime | sed 's/^ *//')"

status=0
for path in $PATHS; do
for size in $SIZES; do
for s in $SESSIONS; do
for m in $PER_CONN; do
	n=$(messages_for "$size")
	# Many per connection: at most ceil(n / s) each, so that every
	# session gets a connection.
	mm=$(((n + s - 1) / s))
	[ "$m" -le "$mm" ] || m=$mm
	key=$path-$size-$s-$m
	echo "$path $size $s $m $n" >>"$WORK/res/loads"
	rep=1
	while [ "$rep" -le "$REPS" ]; do
		# Rotate the order, so that no server always follows the same
		# one (the file system remembers the last run's deletions).
		case $((rep % 3)) in
		1) order="postfix petrel sink" ;;
		2) order="petrel sink postfix" ;;
		0) order="sink postfix petrel" ;;
		esac
		for server in $order; do
			run_one "$key" "$path" "$server" "$size" "$s" "$m" \
			    "$n" "$rep" || status=1
		done
		rep=$((rep + 1))
	done
done
done
done
done

# ---- latency at half of Petrel's peak accept rate ----
if [ "$do_latency" -eq 1 ]; then
	lat_rate=""
	if [ -s "$WORK/res/$LAT_KEY.petrel" ]; then
		# shellcheck disable=SC2046
		set -- $(summary "$WORK/res/$LAT_KEY.petrel")
		[ "$1" = FAIL ] || lat_rate=$(($2 / 2))
	fi
	if [ -z "$lat_rate" ]; then
		echo "compare.sh: no latency row: petrel's accept run at 50" \
		    "sessions, 4096 bytes failed"
		status=1
	else
		n=$(messages_for 4096)
		echo "compare.sh: latency: both servers at $lat_rate msg/s" \
		    "(half of petrel's median accept rate), $n messages"
		echo "latency $lat_rate" >>"$WORK/res/loads"
		rep=1
		while [ "$rep" -le "$REPS" ]; do
			if [ $((rep % 2)) -eq 1 ]; then
				order="postfix petrel"
			else
				order="petrel postfix"
			fi
			for server in $order; do
				run_one latency "accept" "$server" 4096 50 1 \
				    "$n" "$rep" "$lat_rate" || status=1
			done
			rep=$((rep + 1))
		done
	fi
fi

# ---- the table ----
echo
printf '%-8s %-6s %-4s %-4s %-5s %-8s %-7s %-6s %-8s %-6s %-8s %-8s %-5s %-7s %-7s\n' \
    path size sess per msgs server "msg/s" spread "/postfix" "/sink" \
    "RSS MiB" "PSS MiB" procs "p50 ms" "p99 ms"
while read -r path size s m n; do
	[ "$path" != latency ] || continue
	key=$path-$size-$s-$m
	for server in $SERVERS; do
		f=$WORK/res/$key.$server
		if [ -s "$f" ]; then sum=$(summary "$f"); else sum=FAIL; fi
		eval "sum_$server=\$sum"
	done
	# shellcheck disable=SC2154 # set by the eval above
	med_postfix=$(echo "$sum_postfix" | awk '$1 != "FAIL" { print $2 }')
	# shellcheck disable=SC2154
	med_sink=$(echo "$sum_sink" | awk '$1 != "FAIL" { print $2 }')
	for server in $SERVERS; do
		eval "sum=\$sum_$server"
		# shellcheck disable=SC2086
		set -- $sum
		if [ "$1" = FAIL ]; then
			status=1
			printf '%-8s %-6s %-4s %-4s %-5s %-8s %-7s\n' "$path" \
			    "$size" "$s" "$m" "$n" "$server" FAIL
			continue
		fi
		vp="" vs=""
		if [ "$server" = petrel ]; then
			[ -z "$med_postfix" ] ||
			    vp=$(echo "$2 $med_postfix" | awk '{
				printf "%.2f", $1 / $2 }')
			[ -z "$med_sink" ] ||
			    vs=$(echo "$2 $med_sink" | awk '{
				printf "%.2f", $1 / $2 }')
		fi
		printf '%-8s %-6s %-4s %-4s %-5s %-8s %-7s %-6s %-8s %-6s %-8s %-8s %-5s %-7s %-7s\n' \
		    "$path" "$size" "$s" "$m" "$n" "$server" "$2" "$3" \
		    "${vp:--}" "${vs:--}" "$4" "$9" "$5" "$6" "$7"
	done
done <"$WORK/res/loads"

if grep -q '^latency ' "$WORK/res/loads"; then
	lat_rate=$(awk '/^latency / { print $2 }' "$WORK/res/loads")
	echo
	echo "latency at $lat_rate msg/s (half of petrel's accept rate at" \
	    "50 sessions, 4096 bytes), $REPS runs each:"
	printf '%-8s %-10s %-8s %-8s %-8s %-8s\n' server "sent msg/s" \
	    "p50 ms" "p99 ms" "RSS MiB" "PSS MiB"
	for server in postfix petrel; do
		f=$WORK/res/latency.$server
		if [ -s "$f" ]; then sum=$(summary "$f"); else sum=FAIL; fi
		# shellcheck disable=SC2086
		set -- $sum
		if [ "$1" = FAIL ]; then
			status=1
			printf '%-8s %-10s\n' "$server" FAIL
			continue
		fi
		printf '%-8s %-10s %-8s %-8s %-8s %-8s\n' "$server" "$8" "$6" \
		    "$7" "$4" "$9"
	done
fi
exit $status
