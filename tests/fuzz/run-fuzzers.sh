#!/usr/bin/env bash
# Runs each libFuzzer target of BUILD_DIR for SECONDS (default 20), starting
# from its seed corpus, and prints how many inputs each one ran.  BUILD_DIR
# must be a clang build with libFuzzer (see README.md; tools/test makes
# build-fuzz).  New coverage goes to a scratch directory, not to the
# committed corpus.  A crash, leak or timeout fails the script; the input
# is kept in BUILD_DIR/fuzz-artifacts/ (README.md says what to do with it).
# Usage: tests/fuzz/run-fuzzers.sh BUILD_DIR [SECONDS]
set -euo pipefail

build=$(cd "$1" && pwd)
secs=${2:-20}
here=$(cd "$(dirname "$0")" && pwd)
artifacts=$build/fuzz-artifacts
work=$(mktemp -d /tmp/dsd-fuzz-XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$artifacts"

failed=0
for t in wire ipc json config ws; do
	bin=$build/tests/fuzz/fuzz-$t
	log=$work/$t.log
	mkdir "$work/$t"
	# -timeout: one input taking 10 s is a hang worth reporting.
	if "$bin" "$work/$t" "$here/corpus-$t" -max_total_time="$secs" \
		-timeout=10 -print_final_stats=1 \
		-artifact_prefix="$artifacts/fuzz-$t-" >"$log" 2>&1; then
		runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
		new=$(sed -n 's/^stat::new_units_added: *//p' "$log")
		cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
		echo "fuzz-$t: ${runs:-?} runs in ${secs} s, ${cov:-cov: ?} edges, ${new:-?} new inputs (not kept), no crash"
		[ -n "$runs" ] || {
			echo "fuzz-$t: no libFuzzer statistics: is $bin a libFuzzer build?" >&2
			failed=1
		}
	else
		echo "fuzz-$t: FAILED; the input is in $artifacts/; log tail:" >&2
		tail -n 60 "$log" >&2
		failed=1
	fi
done
exit "$failed"
