#!/bin/sh
# run.sh: build the libFuzzer targets with clang in their own build dir,
# replay the committed regressions and seed corpora, then fuzz each target
# for N seconds (default 30).
#
#   tests/fuzz/run.sh [SECONDS [SEED]]
#
# With SEED (what scripts/test.sh does, so a red CI run can be reproduced
# by running the same command) libFuzzer starts from -seed=SEED and a fresh
# scratch corpus; without it (scripts/fuzz.sh, exploratory) from a random
# seed and the scratch corpus of earlier runs. The committed corpora under
# tests/fuzz/ are read, never written. A crash leaves its input under
# the build dir's artifacts-*/: copy it to tests/fuzz/regressions/{event,
# response}/ so that every test run replays it (here and in ctest's
# fuzz_replay_* tests), then fix the bug.
set -eu
secs=${1:-30}
seed=${2:-}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${PB_FUZZ_BUILD:-$root/build-fuzz}

cmake -S "$root" -B "$build" -G Ninja -DPB_FUZZ=ON \
	-DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" --target fuzz_event fuzz_response

status=0
for kind in event response; do
	work="$build/corpus-$kind"
	art="$build/artifacts-$kind"
	mkdir -p "$art"
	echo "== fuzz_$kind: replaying the regressions and the seed corpus"
	(cd "$build" && "./fuzz_$kind" -runs=0 -timeout=10 -rss_limit_mb=2048 \
		-artifact_prefix="$art/" \
		"$here/regressions/$kind" "$here/corpus/$kind") || status=1
	opts=""
	if [ -n "$seed" ]; then
		rm -rf "$work"
		opts="-seed=$seed"
		echo "== fuzz_$kind for ${secs}s, -seed=$seed" \
			"(reproduce: tests/fuzz/run.sh $secs $seed)"
	else
		echo "== fuzz_$kind for ${secs}s, random seed (printed below)"
	fi
	mkdir -p "$work"
	# shellcheck disable=SC2086
	(cd "$build" && "./fuzz_$kind" $opts -max_total_time="$secs" \
		-max_len=65536 -timeout=10 -rss_limit_mb=2048 \
		-artifact_prefix="$art/" \
		"$work" "$here/corpus/$kind") || status=1
done
if [ "$status" -ne 0 ]; then
	echo "fuzzing found a problem: see $build/artifacts-*/ and copy the" \
		"input to tests/fuzz/regressions/" >&2
fi
exit "$status"
