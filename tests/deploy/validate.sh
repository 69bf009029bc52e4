#!/usr/bin/env bash
# validate.sh: validate every manifest under deploy/ offline.
#
#   tests/deploy/validate.sh              render deploy/base and each
#                                         overlay (kubectl kustomize or
#                                         kustomize), validate the result
#   tests/deploy/validate.sh FILE...      validate these files as they are
#   tests/deploy/validate.sh --self-test  the above, plus: each file under
#                                         tests/deploy/broken/ must FAIL
#
# Validator: validate.mjs with kubernetes-models (Kubernetes OpenAPI, KEDA
# and Prometheus Operator CRD schemas bundled as precompiled validators),
# installed from the npm registry once into a cache directory
# (PB_VALIDATE_CACHE, default ~/.cache/pruvan-bridge/deploy-validate).
# kubeconform/kubeval download schemas at run time, which we cannot.
# Without kustomize, each YAML file is validated on its own (patches
# included, which are whole objects here).
#
# Exit: 0 valid, 1 invalid, 77 validator not installable (ctest: skipped).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cache="${PB_VALIDATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pruvan-bridge/deploy-validate}"

install_validator() {
	mkdir -p "$cache"
	if ! cmp -s "$here/package.json" "$cache/package.json" ||
		[ ! -d "$cache/node_modules/kubernetes-models" ]; then
		cp "$here/package.json" "$cache/package.json"
		if ! (cd "$cache" && timeout 120 npm install --no-audit --no-fund \
			--loglevel=error >"$cache/npm.log" 2>&1); then
			echo "validate.sh: cannot install the validator (see $cache/npm.log)" >&2
			rm -f "$cache/package.json"
			exit 77
		fi
	fi
	# Node resolves imports next to the script: run a copy from the cache.
	cp "$here/validate.mjs" "$cache/validate.mjs"
}

validate() { # FILE... ("-" = stdin)
	node "$cache/validate.mjs" --docs "$root/docs" "$@"
}

render() { # DIR -> stdout
	if command -v kustomize >/dev/null 2>&1; then
		kustomize build "$1"
	elif command -v kubectl >/dev/null 2>&1; then
		kubectl kustomize "$1"
	else
		return 127
	fi
}

validate_tree() {
	local rc=0 dir
	if command -v kustomize >/dev/null 2>&1 || command -v kubectl >/dev/null 2>&1; then
		for dir in "$root/deploy/base" "$root"/deploy/overlays/*/; do
			dir="${dir%/}"
			echo "== ${dir#"$root"/} (kustomize)"
			local out
			out="$(mktemp)"
			if ! render "$dir" >"$out"; then
				echo "FAIL ${dir#"$root"/}: kustomize build failed" >&2
				rc=1
			elif ! validate "$out"; then
				rc=1
			fi
			rm -f "$out"
		done
	else
		echo "== deploy/ (no kustomize: each file on its own)"
		local files=()
		while IFS= read -r f; do files+=("$f"); done < <(
			find "$root/deploy" -name '*.yaml' ! -name kustomization.yaml | sort)
		validate "${files[@]}" || rc=1
	fi
	# Not part of any kustomization, but still a manifest people apply.
	echo "== deploy/base/secret*.example.yaml"
	validate "$root/deploy/base/secret.example.yaml" \
		"$root/deploy/base/secret-kafka.example.yaml" || rc=1
	return $rc
}

install_validator

if [ "${1:-}" = "--self-test" ]; then
	rc=0
	validate_tree || rc=1
	for f in "$here"/broken/*.yaml; do
		echo "== ${f#"$root"/} (must fail)"
		if validate "$f"; then
			echo "FAIL: $f was accepted" >&2
			rc=1
		fi
	done
	[ $rc -eq 0 ] && echo "validate.sh self-test: 1 passed, 0 failed" ||
		echo "validate.sh self-test: 0 passed, 1 failed"
	exit $rc
elif [ $# -gt 0 ]; then
	validate "$@"
else
	validate_tree
fi
