#!/usr/bin/env bash
# check_reference.sh: the configuration reference cannot drift.
#
#   check_reference.sh GEN_CONFIG_DOC PRUVAN_BRIDGE SOURCE_DIR OUT_DIR
#
# 1. Regenerates docs/configuration.md and docs/schemas/config.schema.json
#    from the code (GEN_CONFIG_DOC) into OUT_DIR and diffs them against
#    the committed files (fix: cmake --build build --target config_reference).
# 2. Validates config/*.json, config/examples/*.json and the config.json of
#    every ConfigMap under deploy/ against the schema (python3-jsonschema).
# 3. Runs `pruvan-bridge check-config --no-env` on each of those files:
#    every one must be valid for the worker too, except the examples that
#    config/examples/README.md lists as needing a librdkafka feature this
#    build lacks, which must then fail naming that feature.
# Exit 77 (skipped) without python3-jsonschema >= 4 or PyYAML.
set -euo pipefail
gen=$1 bridge=$2 src=$3 out=$4
mkdir -p "$out"

if ! python3 -c 'import jsonschema, yaml; jsonschema.Draft202012Validator' 2>/dev/null; then
	echo "check_reference.sh: needs python3-jsonschema (>= 4) and python3-yaml" >&2
	exit 77
fi

fail=0
"$gen" "$out/configuration.md" "$out/config.schema.json"
for pair in "configuration.md:docs/configuration.md" \
	    "config.schema.json:docs/schemas/config.schema.json"; do
	if ! diff -u "$src/${pair#*:}" "$out/${pair%%:*}"; then
		echo "FAIL ${pair#*:} differs from the code: run" \
		     "cmake --build build --target config_reference and commit it" >&2
		fail=1
	else
		echo "ok   ${pair#*:} matches the code"
	fi
done

# The ConfigMaps' config.json, one file each.
python3 - "$src" "$out" <<'PY'
import pathlib, sys, yaml
src, out = map(pathlib.Path, sys.argv[1:3])
for f in sorted((src / "deploy").rglob("*.yaml")):
    for doc in yaml.safe_load_all(f.read_text()):
        if isinstance(doc, dict) and doc.get("kind") == "ConfigMap" and \
           "config.json" in (doc.get("data") or {}):
            name = str(f.relative_to(src)).replace("/", "_")
            (out / f"configmap-{name}.json").write_text(doc["data"]["config.json"])
PY

files=("$src"/config/*.json "$src"/config/examples/*.json "$out"/configmap-*.json)
python3 - "$src/docs/schemas/config.schema.json" "${files[@]}" <<'PY' || fail=1
import json, sys
from jsonschema import Draft202012Validator
schema = json.load(open(sys.argv[1]))
Draft202012Validator.check_schema(schema)
v = Draft202012Validator(schema)
bad = 0
for f in sys.argv[2:]:
    errs = list(v.iter_errors(json.load(open(f))))
    for e in errs:
        print(f"FAIL {f}: $.{'.'.join(map(str, e.path))}: {e.message}")
    if not errs:
        print(f"ok   {f} matches the schema")
    bad += bool(errs)
sys.exit(1 if bad else 0)
PY

# Only the worker knows every rule (cross-field checks, librdkafka).
needs=$(sed -n 's/^<!-- needs-feature: \([^ ]*\) \(.*\) -->$/\1:\2/p' \
	"$src/config/examples/README.md" 2>/dev/null || true)
for f in "${files[@]}"; do
	base=$(basename "$f")
	want=""
	for n in $needs; do [ "${n%%:*}" = "$base" ] && want=${n#*:}; done
	if log=$(ACME_PUSHKEY_URL=unused "$bridge" check-config --no-env -c "$f" 2>&1 >/dev/null); then
		if [ -n "$want" ]; then
			echo "ok   $base: check-config --no-env valid (this build has $want)"
		else
			echo "ok   $base: check-config --no-env valid"
		fi
	elif [ -n "$want" ] && grep -q "not supported in this build" <<<"$log"; then
		echo "ok   $base: needs $want, which this librdkafka lacks (named)"
	else
		echo "FAIL $base: check-config --no-env:" >&2
		echo "$log" >&2
		fail=1
	fi
done
exit $fail
