#!/usr/bin/env bash
# clang-format check (ctest "style_format"): every C file of the project is
# formatted as .clang-format says. Fix with:
#   clang-format -i $(git ls-files '*.c' '*.h')
# Usage: format.sh SOURCE_DIR. Exits 77 (skipped) without clang-format.
set -euo pipefail
root=${1:?usage: format.sh SOURCE_DIR}
cd "$root"
command -v clang-format >/dev/null 2>&1 || {
	echo "clang-format not installed (scripts/deps.sh --test)"; exit 77; }
files=$(git ls-files -- '*.c' '*.h' 2>/dev/null || find src tools tests -name '*.[ch]')
bad=0
for f in $files; do
	if ! clang-format --style=file "$f" | cmp -s - "$f"; then
		echo "$f: not clang-format clean; first difference:"
		clang-format --style=file "$f" | diff -u "$f" - | sed -n '1,12p'
		bad=$((bad + 1))
	fi
done
if [ "$bad" -ne 0 ]; then
	echo "style_format: $bad file(s) differ; run: clang-format -i FILE" >&2
	exit 1
fi
echo "style_format: $(echo "$files" | wc -w) files clean"
