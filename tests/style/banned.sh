#!/usr/bin/env bash
# Banned-function check (ctest "style_banned"): the C library calls that
# invite buffer overruns or hide errors never appear in the project's code.
#   sprintf strcpy strcat  -> snprintf / memcpy with a known length
#   strtok                 -> strtok_r or a hand-written split (not reentrant)
#   atoi                   -> strtol / strtoll with end and range checks
#   gets                   -> fgets / getline
# Usage: banned.sh SOURCE_DIR. Exits 1 naming each use, file:line.
set -euo pipefail
root=${1:?usage: banned.sh SOURCE_DIR}
cd "$root"
pattern='\b(sprintf|vsprintf|strcpy|strcat|strtok|atoi|atol|gets)[[:space:]]*\('
# Comments may name a banned function; code may not. Strip // and /* */
# comment text on each line before matching (block comments in the
# project's style start every line with " *").
hits=$(git ls-files -- 'src/*.c' 'src/*.h' 'tools/*.c' 'tools/*.h' \
		'tests/*.c' 'tests/*.h' 2>/dev/null ||
	find src tools tests -name '*.[ch]')
found=0
for f in $hits; do
	out=$(sed -E 's#//.*$##; s#/\*.*\*/##g; s#^[[:space:]]*\*.*$##' "$f" |
	      grep -nE "$pattern" || true)
	if [ -n "$out" ]; then
		while IFS= read -r line; do
			echo "$f:${line%%:*}: banned call: ${line#*:}"
		done <<<"$out"
		found=1
	fi
done
if [ "$found" -ne 0 ]; then
	echo "style_banned: replace the calls above (see the table at the top of $0)" >&2
	exit 1
fi
echo "style_banned: no banned calls in $(echo "$hits" | wc -w) files"
