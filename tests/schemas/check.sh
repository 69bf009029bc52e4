#!/usr/bin/env bash
# check.sh: self-test of the JSON Schemas in docs/schemas/.
#
# Each schema must itself be a valid draft 2020-12 schema; every document
# under tests/schemas/samples/<schema>/good/ must validate against
# docs/schemas/<schema>.schema.json and every one under bad/ must not.
#
# Validator: python3-jsonschema (Debian: apt-get install python3-jsonschema;
# needs >= 4.0 for draft 2020-12). Exit 77 (ctest: skipped) without it.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

if ! python3 -c 'import jsonschema; jsonschema.Draft202012Validator' 2>/dev/null; then
	echo "check.sh: python3-jsonschema (>= 4) not installed; apt-get install python3-jsonschema" >&2
	exit 77
fi

exec python3 - "$root/docs/schemas" "$here/samples" <<'PY'
import json, pathlib, sys
import jsonschema
from jsonschema import Draft202012Validator

schemas_dir, samples_dir = map(pathlib.Path, sys.argv[1:3])
passed = failed = 0

def result(ok, what):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {what}")
    else:
        failed += 1
        print(f"FAIL {what}")

for schema_file in sorted(schemas_dir.glob("*.schema.json")):
    name = schema_file.name[: -len(".schema.json")]
    schema = json.loads(schema_file.read_text())
    try:
        Draft202012Validator.check_schema(schema)
        result(True, f"{schema_file.name} is a valid 2020-12 schema")
    except jsonschema.SchemaError as e:
        result(False, f"{schema_file.name}: {e.message}")
        continue
    v = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    samples = samples_dir / name
    good = sorted((samples / "good").glob("*.json"))
    bad = sorted((samples / "bad").glob("*.json"))
    if not good or not bad:
        result(False, f"{name}: needs good and bad samples under {samples}")
    for f in good:
        errs = list(v.iter_errors(json.loads(f.read_text())))
        result(not errs, f"{name}/good/{f.name}" + (f": {errs[0].message}" if errs else ""))
    for f in bad:
        errs = list(v.iter_errors(json.loads(f.read_text())))
        result(bool(errs), f"{name}/bad/{f.name} rejected" + (f" ({errs[0].message[:80]})" if errs else ": ACCEPTED"))

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
