#!/usr/bin/env bash
# What one local emit costs dsd, app frame in -> WebSocket frame out, with
# no deepstream server in the way: dsd (no -v) connected to ws-sink, fed by
# dsipc-load.  Prints figures, judges nothing (docs/performance.md).
#
#   tests/bench/count-emit.sh [BUILD_DIR]          (default: build-rel)
#
# 1. instructions per emit, 64 B and 1 KiB of data: dsd runs under
#    valgrind --tool=callgrind; after start-up and a warm-up block the
#    counters are zeroed (callgrind_control -z), COUNT emits go through,
#    and the dump's total (every thread) is divided by COUNT.
# 2. ingest ceiling, events/s at the sink, 64 B and 1 KiB, dsd running
#    natively: RATE_COUNT emits from one app as fast as it can, timed
#    from the first to the last EVENT the sink reads.
# 3. CPU per emit at low rate: one emit every millisecond, each on its own
#    (its own wakeups and its own PING/PONG fence), dsd's CPU time from
#    /proc (all threads, nanoseconds) over LOW_COUNT emits.
#
# Environment: COUNT (10000), RATE_COUNT (200000), LOW_COUNT (3000),
# SKIP_CALLGRIND=1, SKIP_RATE=1, SKIP_LOW=1, KEEP_PROFILE=DIR (keeps the
# callgrind dumps there, for callgrind_annotate).  Build dir: a release build
# (meson setup build-rel --buildtype=release).
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build-rel}
count=${COUNT:-10000}
rate_count=${RATE_COUNT:-200000}
low_count=${LOW_COUNT:-3000}
dsd=$build/daemon/dsd
load=$build/tests/dsipc-load
sink_bin=$build/tests/bench/ws-sink
dsctl=$build/tools/dsctl
for f in "$dsd" "$load" "$sink_bin" "$dsctl"; do
	[ -x "$f" ] || { echo "count-emit: $f missing (ninja -C $build)" >&2; exit 1; }
done

# Data of exactly 64 and 1024 bytes for k < 100000: {"i":k,"pad":"x..."}.
pad_for() { echo $(($1 - 20)); }

tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

# start_sink BLOCK: ws-sink printing a line every BLOCK events; sets port
# and sink_out.
start_sink() {
	sink_out=$tmp/sink.$1.out
	"$sink_bin" -n "$1" >"$sink_out" &
	sink_pid=$!
	pids+=("$sink_pid")
	for _ in $(seq 100); do
		port=$(sed -n 's/^{"port":\([0-9]*\)}$/\1/p' "$sink_out")
		[ -n "$port" ] && return 0
		sleep 0.05
	done
	echo "count-emit: ws-sink did not start" >&2
	exit 1
}

# start_dsd [WRAPPER...]: dsd against the sink; sets dsd_pid and sock.
start_dsd() {
	sock=$tmp/dsd.sock
	cat >"$tmp/dsd.conf" <<-EOF
		[platform]
		url = ws://127.0.0.1:$port/deepstream
		[ipc]
		socket = $sock
		clientBuffer = 67108864
		[queue]
		maxMessages = 1000000
		maxBytes = 1073741824
	EOF
	rm -f "$sock"
	"$@" "$dsd" -f -c "$tmp/dsd.conf" 2>"$tmp/dsd.log" &
	dsd_pid=$!
	pids+=("$dsd_pid")
	for _ in $(seq 600); do
		if "$dsctl" -s "$sock" status --json 2>/dev/null | grep -q '"state":"OPEN"'; then
			return 0
		fi
		sleep 0.1
	done
	echo "count-emit: dsd did not reach OPEN; its log:" >&2
	cat "$tmp/dsd.log" >&2
	exit 1
}

# wait_blocks N: until the sink has printed N block lines.
wait_blocks() {
	for _ in $(seq 6000); do
		[ "$(grep -c block_us "$sink_out" || true)" -ge "$1" ] && return 0
		sleep 0.1
	done
	echo "count-emit: the sink did not get block $1" >&2
	exit 1
}

# wait_confirmed: nothing left unconfirmed in dsd's store.
wait_confirmed() {
	for _ in $(seq 600); do
		if "$dsctl" -s "$sock" status --json | grep -q '"queue":{"messages":0,"bytes":0,"unconfirmed":0,'; then
			return 0
		fi
		sleep 0.1
	done
	echo "count-emit: emits stayed unconfirmed" >&2
	exit 1
}

emit() { # emit COUNT SIZE
	"$load" -s "$sock" emit bench "$1" "$(pad_for "$2")" >/dev/null
}

stop_all() {
	kill "$dsd_pid" "$sink_pid" 2>/dev/null || true
	wait "$dsd_pid" "$sink_pid" 2>/dev/null || true
	pids=()
}

echo "dsd emit cost ($build, $(nproc) cores, $(git rev-parse --short HEAD 2>/dev/null || echo '?'))"

if [ "${SKIP_CALLGRIND:-0}" != 1 ]; then
	start_sink "$count"
	start_dsd valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.out" \
		--dump-instr=no --compress-strings=no
	blocks=0
	for size in 64 1024; do
		emit "$count" "$size" # warm-up: allocator, caches, lws buffers
		blocks=$((blocks + 1))
		wait_blocks "$blocks"
		wait_confirmed
		callgrind_control -z "$dsd_pid" >/dev/null 2>&1
		emit "$count" "$size"
		blocks=$((blocks + 1))
		wait_blocks "$blocks"
		wait_confirmed
		rm -f "$tmp"/cg.out*
		callgrind_control -d "$dsd_pid" >/dev/null 2>&1
		if [ -n "${KEEP_PROFILE:-}" ]; then
			mkdir -p "$KEEP_PROFILE"
			cat "$tmp"/cg.out.* >"$KEEP_PROFILE/emit-$size.callgrind"
		fi
		ir=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$tmp"/cg.out* | awk '{s += $1} END {print s}')
		printf 'instructions per %4s-B emit: %8d   (%d emits, callgrind, all threads)\n' \
			"$size" $((ir / count)) "$count"
	done
	stop_all
fi

# cpu_ns: dsd's CPU time so far, all threads, in ns (schedstat).
cpu_ns() {
	cat /proc/"$dsd_pid"/task/*/schedstat | awk '{s += $1} END {printf "%.0f\n", s}'
}

if [ "${SKIP_RATE:-0}" != 1 ]; then
	start_sink "$rate_count"
	start_dsd
	blocks=0
	for size in 64 1024; do
		emit "$rate_count" "$size" # warm-up block, not counted
		blocks=$((blocks + 1))
		wait_blocks "$blocks"
		wait_confirmed
		for rep in 1 2 3; do
			c0=$(cpu_ns)
			emit "$rate_count" "$size"
			blocks=$((blocks + 1))
			wait_blocks "$blocks"
			wait_confirmed
			c1=$(cpu_ns)
			us=$(grep block_us "$sink_out" | sed -n "${blocks}p" | sed 's/.*"block_us":\([0-9]*\).*/\1/')
			printf 'ingest %4s B, run %d: %7d events/s at the sink   dsd CPU %5.2f us/emit\n' \
				"$size" "$rep" $((rate_count * 1000000 / us)) \
				"$(awk -v a="$c0" -v b="$c1" -v n="$rate_count" 'BEGIN {print (b - a) / 1000 / n}')"
		done
	done
	stop_all
fi

if [ "${SKIP_LOW:-0}" != 1 ]; then
	start_sink "$low_count"
	start_dsd
	emit 100 64
	wait_confirmed
	c0=$(cpu_ns)
	"$load" -s "$sock" tick bench 1 "$low_count" >/dev/null
	wait_blocks 1
	wait_confirmed
	c1=$(cpu_ns)
	printf 'low rate (1 emit/ms, each with its own PING/PONG): dsd CPU %.1f us/emit\n' \
		"$(awk -v a="$c0" -v b="$c1" -v n="$low_count" 'BEGIN {print (b - a) / 1000 / n}')"
	stop_all
fi
