#!/usr/bin/env bash
# clang-tidy check (ctest "style_tidy") with a small set of checks, each
# one a bug class this code base can have, none a matter of taste:
#   bugprone-integer-division          integer division in a float context
#   bugprone-misplaced-widening-cast   (long)(a * b) computed narrow
#   bugprone-macro-parentheses         macro arguments without parentheses
#   bugprone-suspicious-memset-usage   memset(p, sizeof p, n) and the like
#   bugprone-not-null-terminated-result  str/mem copies that lose the NUL
#   bugprone-signed-char-misuse        char sign-extended into an int
#   bugprone-suspicious-string-compare strcmp/memcmp used as a boolean
#   cert-err34-c                       atoi/sscanf without error detection
#   misc-redundant-expression          x == x, a || a
# Left out on purpose: bugprone-sizeof-expression flags sizeof(*pp) for an
# array of pointers, which is the idiom here; the clang-analyzer checks
# take minutes on two cores.
# Usage: tidy.sh SOURCE_DIR BUILD_DIR (BUILD_DIR has compile_commands.json).
set -euo pipefail
root=${1:?usage: tidy.sh SOURCE_DIR BUILD_DIR}
build=${2:?usage: tidy.sh SOURCE_DIR BUILD_DIR}
command -v clang-tidy >/dev/null 2>&1 || {
	echo "clang-tidy not installed (scripts/deps.sh --test)"; exit 77; }
[ -f "$build/compile_commands.json" ] || {
	echo "no $build/compile_commands.json: configure with CMake first" >&2; exit 1; }
checks='-*,bugprone-integer-division,bugprone-misplaced-widening-cast'
checks+=',bugprone-macro-parentheses,bugprone-suspicious-memset-usage'
checks+=',bugprone-not-null-terminated-result,bugprone-signed-char-misuse'
checks+=',bugprone-suspicious-string-compare,cert-err34-c,misc-redundant-expression'
cd "$root"
files=$(git ls-files -- 'src/*.c' 'tools/*.c' 2>/dev/null || find src tools -name '*.c')
out=$(clang-tidy -p "$build" --quiet --checks="$checks" --warnings-as-errors='*' \
	$files 2>&1) && rc=0 || rc=$?
echo "$out" | grep -E '(warning|error):' || true
if [ "$rc" -ne 0 ]; then
	echo "style_tidy: clang-tidy found the problems above" >&2
	exit 1
fi
echo "style_tidy: $(echo "$files" | wc -w) files clean"
