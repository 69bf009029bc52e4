#!/usr/bin/env python3
"""Summarise a bench/run.sh results directory: medians of the rounds per
scenario, the targets of docs/benchmarks.md, summary.json and summary.md.

Usage: report.py --dir DIR [--smoke 0|1] [--enforce 0|1]
Exit 1 with --enforce 1 when a target is missed (never in smoke mode).
"""
import argparse
import glob
import json
import os
import statistics
import sys


def load(d, scen):
    runs = []
    for f in sorted(glob.glob(os.path.join(d, scen + "-*", "all.json"))):
        runs.append(json.load(open(f)))
    return runs


def values(runs, *path):
    """The value at path (nested keys) of each run that has one."""
    vals = []
    for r in runs:
        v = r
        for p in path:
            v = v.get(p) if isinstance(v, dict) else None
        if v is not None:
            vals.append(v)
    return vals


def med(runs, *path):
    vals = values(runs, *path)
    return statistics.median(vals) if vals else None


def spread(runs, *path):
    vals = values(runs, *path)
    return (min(vals), max(vals)) if vals else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--smoke", type=int, default=0)
    ap.add_argument("--enforce", type=int, default=0)
    a = ap.parse_args()
    inst, slow, lat = load(a.dir, "instant"), load(a.dir, "slow"), load(a.dir, "latency")
    s = {"rounds": max(len(inst), len(slow), len(lat))}
    if inst:
        s["instant"] = {
            "eps_steady": med(inst, "eps_steady"),
            "eps_steady_range": spread(inst, "eps_steady"),
            "eps_wall": med(inst, "eps_wall"),
            "startup_ms": med(inst, "startup_ms"),
            "raw_eps_steady": med(inst, "raw_eps_steady"),
            "raw_eps_wall": med(inst, "raw_eps_wall"),
            "ratio_to_raw": round(med(inst, "eps_steady") / med(inst, "raw_eps_steady"), 3),
            "latency_ms": {k: med(inst, "latency_ms", k) for k in ("p50", "p99", "max")},
            "http_per_event": med(inst, "http_per_event"),
            "redis_rt_per_event": med(inst, "redis_rt_per_event"),
            "redis_cmds_per_event": med(inst, "redis_cmds_per_event"),
            "redis_used_mib": med(inst, "redis_used_mib"),
            "cpu_s_per_1k": med(inst, "cpu_s_per_1k"),
            "peak_rss_mib": med(inst, "peak_rss_mib"),
            "outcomes": inst[0].get("outcomes"),
        }
        # --replicas N: CPU s and peak RSS of each replica (round 1, ...)
        # and the worker CPU above is their sum; --redis-cluster: nodes
        for key in ("replicas", "redis_nodes"):
            if med(inst, key) is not None:
                s["instant"][key] = med(inst, key)
        for key in ("replica_cpu_s", "replica_peak_rss_mib"):
            if values(inst, key):
                s["instant"][key] = values(inst, key)
        # CPU per event of each part of the stack, against what the whole
        # machine may spend per event at 30% of the raw pipe
        per = {"worker": round(med(inst, "cpu_s_per_1k") * 1000, 1)}
        for part, label in (("redis", "redis"), ("sim", "simulator"),
                            ("kafka", "broker")):
            # by process name (a copied binary keeps its part in its name)
            vals = [sec * 1e6 / r["events"] for r in inst if r.get("events")
                    for name, sec in r.get("services_cpu_s", {}).items()
                    if part in name]
            if vals:
                per[label] = round(statistics.median(vals), 1)
        s["instant"]["cpu_us_per_event"] = per
        s["instant"]["budget_us_per_event_at_0_30"] = round(
            (os.cpu_count() or 1) * 1e6 / (0.30 * s["instant"]["raw_eps_steady"]), 1)
    if slow:
        s["slow"] = {
            "eps_steady": med(slow, "eps_steady"),
            "eps_steady_range": spread(slow, "eps_steady"),
            "eps_wall": med(slow, "eps_wall"),
            "latency_ms": {k: med(slow, "latency_ms", k) for k in ("p50", "p99", "max")},
            "http_per_event": med(slow, "http_per_event"),
            "redis_rt_per_event": med(slow, "redis_rt_per_event"),
            "cpu_s_per_1k": med(slow, "cpu_s_per_1k"),
            "peak_rss_mib": med(slow, "peak_rss_mib"),
        }
    if lat:
        s["latency"] = {
            "rate": lat[0].get("rate"),
            "eps_steady": med(lat, "eps_steady"),
            "latency_ms": {k: med(lat, "latency_ms", k) for k in ("p50", "p99", "max")},
            "p99_range": spread(lat, "latency_ms", "p99"),
            "latency_steady_ms": {k: med(lat, "latency_steady_ms", k) for k in ("p50", "p99", "max")},
            "steady_p99_range": spread(lat, "latency_steady_ms", "p99"),
            "http_per_event": med(lat, "http_per_event"),
            "redis_rt_per_event": med(lat, "redis_rt_per_event"),
            "cpu_s_per_1k": med(lat, "cpu_s_per_1k"),
            "peak_rss_mib": med(lat, "peak_rss_mib"),
        }
    targets = []
    if not a.smoke:
        if inst:
            i = s["instant"]
            targets += [
                ("instant: events/s >= 70000", i["eps_steady"], i["eps_steady"] >= 70000),
                ("instant: ratio to raw kcat pipe >= 0.30", i["ratio_to_raw"], i["ratio_to_raw"] >= 0.30),
                ("instant: HTTP requests/event <= 0.05", i["http_per_event"], i["http_per_event"] <= 0.05),
                ("instant: peak RSS <= 64 MiB", i["peak_rss_mib"], i["peak_rss_mib"] <= 64),
            ]
            cmds = i.get("redis_cmds_per_event")
            if cmds is not None:
                targets.append(("instant: Redis commands/event <= 2.5", cmds, cmds <= 2.5))
            cpu = i.get("cpu_us_per_event") or {}
            if "redis" in cpu:
                targets.append(("instant: Redis CPU us/event <= 4", cpu["redis"], cpu["redis"] <= 4))
            if "worker" in cpu:
                targets.append(("instant: worker CPU us/event <= 10", cpu["worker"], cpu["worker"] <= 10))
        if slow:
            targets.append(("slow sim: events/s >= 10000", s["slow"]["eps_steady"],
                            s["slow"]["eps_steady"] >= 10000))
            targets.append(("slow sim: peak RSS <= 64 MiB", s["slow"]["peak_rss_mib"],
                            s["slow"]["peak_rss_mib"] <= 64))
        if lat:
            p99 = s["latency"]["latency_steady_ms"]["p99"]
            targets.append(("latency at half rate: p99 <= 100 ms (after warm-up)", p99, p99 <= 100))
            p99 = s["latency"]["latency_ms"]["p99"]
            targets.append(("latency at half rate: p99 <= 250 ms (all events)", p99, p99 <= 250))
    s["targets"] = [{"target": t, "value": v, "met": ok} for t, v, ok in targets]
    json.dump(s, open(os.path.join(a.dir, "summary.json"), "w"), indent=2)
    lines = ["# bench summary (%s, medians of %d rounds)" % (a.dir, s["rounds"]), ""]
    for k in ("instant", "slow", "latency"):
        if k in s:
            lines.append("%s: %s" % (k, json.dumps(s[k])))
    if "instant" in s and "cpu_us_per_event" in s["instant"]:
        i = s["instant"]
        lines.append("")
        lines.append("instant: CPU per event (us): %s; at 0.30 of the raw pipe the whole "
                     "machine (%d cores) has %s us per event" % (
                         ", ".join("%s %s" % kv for kv in i["cpu_us_per_event"].items()),
                         os.cpu_count() or 1, i["budget_us_per_event_at_0_30"]))
    lines.append("")
    for t in s["targets"]:
        lines.append("%-45s %12s  %s" % (t["target"], t["value"], "met" if t["met"] else "MISSED"))
    if a.smoke:
        lines.append("smoke: every event got exactly one outcome")
    text = "\n".join(lines) + "\n"
    open(os.path.join(a.dir, "summary.md"), "w").write(text)
    sys.stdout.write(text)
    if a.enforce and not a.smoke and not all(t["met"] for t in s["targets"]):
        sys.exit(1)


if __name__ == "__main__":
    main()
