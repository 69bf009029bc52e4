#!/bin/sh
# run.sh: build the libFuzzer targets with clang in their own build dir and
# run each for N seconds (default 30).
#
#   tests/fuzz/run.sh [SECONDS]
#
# New inputs go to a scratch corpus under the build dir (the committed seed
# corpora under tests/fuzz/corpus/ are read, not written). A crash leaves
# crash-* files in the build dir: copy the input to
# tests/fuzz/regressions/{event,response}/ so that ctest replays it forever
# (fuzz_replay_* tests), then fix the bug.
set -eu
secs=${1:-30}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${PB_FUZZ_BUILD:-$root/build-fuzz}

cmake -S "$root" -B "$build" -G Ninja -DPB_FUZZ=ON \
	-DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" --target fuzz_event fuzz_response

status=0
for kind in event response; do
	work="$build/corpus-$kind"
	mkdir -p "$work" "$build/artifacts-$kind"
	echo "== fuzz_$kind for ${secs}s"
	(cd "$build" && "./fuzz_$kind" -max_total_time="$secs" \
		-max_len=65536 -timeout=10 -rss_limit_mb=2048 \
		-artifact_prefix="$build/artifacts-$kind/" \
		"$work" "$here/corpus/$kind") || status=1
done
if [ "$status" -ne 0 ]; then
	echo "fuzzing found a problem: see $build/artifacts-*/" >&2
fi
exit "$status"
