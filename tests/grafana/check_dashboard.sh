#!/usr/bin/env bash
# check_dashboard.sh: every PromQL expression of the dashboard and of the
# alerts is valid and names only metrics the worker exports.
#
#   check_dashboard.sh SOURCE_DIR OUT_DIR
#
# 1. Each panel query of deploy/grafana/*.json becomes a recording rule
#    (Grafana's variables replaced by values of their kind: $namespace and
#    $account by ".*", $__rate_interval by 5m) and `promtool check rules`
#    parses them all.
# 2. The PrometheusRule's groups under deploy/ go through promtool too.
# 3. Every metric a query names (histogram suffixes aside) is one the
#    worker declares: a PB_M_* name in src/ops/metrics.h or a process_* one of
#    src/ops/procstat.c, so a renamed metric cannot leave a panel empty.
# Exit 77 (skipped) without promtool or PyYAML.
set -euo pipefail
src=$1 out=$2
mkdir -p "$out"
command -v promtool >/dev/null || { echo "promtool not found (Debian: prometheus)" >&2; exit 77; }
python3 -c 'import yaml' 2>/dev/null || { echo "python3-yaml not found" >&2; exit 77; }

python3 - "$src" "$out" <<'PY'
import json, pathlib, re, sys, yaml
src, out = map(pathlib.Path, sys.argv[1:3])
known = set(re.findall(r'#define PB_M_\w+[\s\\]+"([a-z0-9_]+)"', (src / "src/ops/metrics.h").read_text()))
known |= set(re.findall(r'"(process_[a-z_]+)"', (src / "src/ops/procstat.c").read_text()))
names = re.compile(r'\b((?:pruvan_bridge|process)_[a-z0-9_]+)\b')
bad = 0
def check_names(where, expr):
    global bad
    for n in names.findall(expr):
        base = re.sub(r'_(bucket|sum|count)$', '', n)
        if n not in known and base not in known:
            print(f"FAIL {where}: {n} is not a metric the worker exports")
            bad += 1

rules = []
for dash in sorted((src / "deploy/grafana").glob("*.json")):
    d = json.loads(dash.read_text())
    for k in ("title", "uid", "panels"):
        if k not in d:
            print(f"FAIL {dash.name}: no {k}"); bad += 1
    def walk(panels):
        for p in panels:
            yield p
            yield from walk(p.get("panels", []))
    n = 0
    for p in walk(d.get("panels", [])):
        for t in p.get("targets", []):
            expr = t["expr"]
            check_names(f'{dash.name} "{p["title"]}"', expr)
            expr = (expr.replace("$__rate_interval", "5m")
                        .replace("$namespace", ".*").replace("$account", ".*"))
            if "$" in expr:
                print(f'FAIL {dash.name} "{p["title"]}": unknown variable in {expr}'); bad += 1
            rules.append({"record": f"pruvan_bridge:dashboard:{d['uid'].replace('-', '_')}_{p['id']}_{t['refId']}".lower(),
                          "expr": expr})
            n += 1
    print(f"ok   {dash.name}: {n} queries")
(out / "dashboard-rules.yaml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))

alerts = []
for f in sorted((src / "deploy").rglob("*.yaml")):
    for doc in yaml.safe_load_all(f.read_text()):
        if isinstance(doc, dict) and doc.get("kind") == "PrometheusRule":
            for g in doc["spec"]["groups"]:
                for r in g["rules"]:
                    check_names(f'{f.name} {r.get("alert", r.get("record"))}', r["expr"])
                alerts.append(g)
(out / "alert-rules.yaml").write_text(yaml.safe_dump({"groups": alerts}))
sys.exit(1 if bad else 0)
PY
promtool check rules "$out/dashboard-rules.yaml" "$out/alert-rules.yaml"
