#!/bin/sh
# lint.sh [DOCKERFILE]: lint the container recipe.
#
# 1. dockerfilelint (npm), installed on first use into a private prefix
#    ($PB_NPM_PREFIX, default ~/.cache/pb-npm) so nothing global changes.
# 2. The image's own invariants, which no generic linter knows: the last
#    stage is debian:12-slim, runs as uid 10001 (deploy/ sets runAsUser
#    10001 and runAsNonRoot), exposes 9464, and starts pruvan-bridge in
#    exec form (so SIGTERM reaches the worker, not a shell).
#
# Exit 0 clean, 1 on any finding, 77 (ctest SKIP_RETURN_CODE) when the
# linter cannot be installed (no npm or no registry).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
dockerfile=${1:-$here/../../Dockerfile}
prefix=${PB_NPM_PREFIX:-$HOME/.cache/pb-npm}
[ -f "$dockerfile" ] || { echo "lint.sh: no such file: $dockerfile" >&2; exit 1; }

linter=$(command -v dockerfilelint 2>/dev/null || true)
if [ -z "$linter" ]; then
	linter=$prefix/node_modules/.bin/dockerfilelint
	if [ ! -x "$linter" ]; then
		if ! command -v npm >/dev/null 2>&1; then
			echo "lint.sh: SKIP: npm not found, cannot install dockerfilelint" >&2
			exit 77
		fi
		mkdir -p "$prefix"
		if ! npm install --prefix "$prefix" --no-audit --no-fund \
			--loglevel=error dockerfilelint >&2; then
			echo "lint.sh: SKIP: npm install dockerfilelint failed" >&2
			exit 77
		fi
	fi
fi

status=0
rc_args=
# Rule overrides, if any, live next to the Dockerfile.
rc=$(dirname "$dockerfile")/.dockerfilelintrc
[ -f "$rc" ] && rc_args="-c $(dirname "$dockerfile")"
# shellcheck disable=SC2086
if ! "$linter" $rc_args "$dockerfile"; then
	status=1
fi

# --- project rules, on the last stage only ---
last_stage=$(awk 'toupper($1)=="FROM"{buf=""} {buf=buf $0 "\n"} END{printf "%s", buf}' "$dockerfile")
finding() { echo "lint.sh: $dockerfile: $*" >&2; status=1; }

printf '%s' "$last_stage" | grep -Eq '^FROM[[:space:]]+debian:12-slim([[:space:]]|$)' ||
	finding "the runtime (last) stage must be FROM debian:12-slim"
grep -Eiq '^FROM[[:space:]]+[^[:space:]]+:latest' "$dockerfile" &&
	finding "a FROM uses :latest; pin the base image"
user=$(printf '%s' "$last_stage" | awk 'toupper($1)=="USER"{u=$2} END{print u}')
case "$user" in
10001 | 10001:10001) ;;
"") finding "the runtime stage has no USER (it would run as root)" ;;
*) finding "the runtime stage must run as USER 10001:10001 (deploy/ expects uid 10001), not '$user'" ;;
esac
printf '%s' "$last_stage" | grep -Eq '^EXPOSE[[:space:]]+9464([[:space:]/]|$)' ||
	finding "the runtime stage must EXPOSE 9464 (ops endpoints)"
printf '%s' "$last_stage" | grep -Eq '^ENTRYPOINT[[:space:]]+\["pruvan-bridge"\]' ||
	finding 'ENTRYPOINT must be exec form ["pruvan-bridge"] so signals reach the worker'

[ "$status" -eq 0 ] && echo "lint.sh: $dockerfile: clean"
exit "$status"
