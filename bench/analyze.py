#!/usr/bin/env python3
"""Check and measure one benchmark run (called by bench/run.sh).

Inputs are kcat dumps of the topics, made after the run:
  --orders FILE   "PARTITION<TAB>OFFSET<TAB>TIMESTAMP_MS" per input event
  --results FILE  "TIMESTAMP_MS<TAB>OUTCOME_JSON" per outcome record
  --expected N    events the generator produced
and the run's side facts (--worker-start-ms, --worker-end-ms, --time-file
from /usr/bin/time -v, --worker-log, --sim-stats, --redis-info). With
several worker replicas, --time-file and --worker-log come once per
replica: CPU and round trips are summed, peak RSS is the largest, and the
per-replica figures are listed; --redis-info may hold several nodes'
INFO commandstats one after the other (a Cluster), and they are summed.

Fails (exit 1, a line starting "FAIL:") when the mock cluster did not keep
every event (a partition not starting at offset 0, or fewer events than
produced), or when any event has no outcome or more than one. Prints one
JSON object of metrics on stdout.
"""
import argparse
import json
import re
import sys


def pct(sorted_vals, p):
    if not sorted_vals:
        return None
    i = min(len(sorted_vals) - 1, max(0, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[i]


def steady_latency(lat_at, first_ev):
    if not lat_at:
        return {"p50": None, "p99": None, "max": None}
    last_ev = max(t for t, _ in lat_at)
    cut = first_ev + (last_ev - first_ev) * 0.10
    v = sorted(l for t, l in lat_at if t >= cut)
    return {"p50": pct(v, 50), "p99": pct(v, 99), "max": v[-1] if v else None}


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--expected", type=int, required=True)
    ap.add_argument("--worker-start-ms", type=int, default=0)
    ap.add_argument("--worker-end-ms", type=int, default=0)
    ap.add_argument("--time-file", action="append", default=[])
    ap.add_argument("--worker-log", action="append", default=[])
    ap.add_argument("--sim-stats")
    ap.add_argument("--redis-info")
    ap.add_argument("--services-cpu")
    a = ap.parse_args()

    # -- the input as the cluster kept it
    events = {}
    first_off = {}
    for line in open(a.orders):
        p, o, ts = line.rstrip("\n").split("\t")
        p, o, ts = int(p), int(o), int(ts)
        events[(p, o)] = ts
        first_off[p] = min(first_off.get(p, o), o)
    trimmed = {p: o for p, o in first_off.items() if o != 0}
    if trimmed:
        fail("the mock cluster dropped events (first offsets %s): raise the "
             "partition count (--partitions) or use fewer events" % trimmed)
    if len(events) != a.expected:
        fail("the orders topic holds %d events, %d were produced"
             % (len(events), a.expected))

    # -- exactly one outcome per event
    seen = {}
    outcomes = {}
    res_ts = []
    lat = []
    lat_at = []  # (event time, latency)
    first_res = last_res = None
    nres = 0
    for line in open(a.results):
        ts, payload = line.rstrip("\n").split("\t", 1)
        ts = int(ts)
        try:
            r = json.loads(payload)
        except ValueError:
            fail("an outcome record is not JSON: %r" % payload[:200])
        nres += 1
        if r.get("source") != "orders":
            continue
        k = (r.get("partition"), r.get("offset"))
        seen[k] = seen.get(k, 0) + 1
        outcomes[r.get("outcome")] = outcomes.get(r.get("outcome"), 0) + 1
        if k in events:
            lat.append(ts - events[k])
            lat_at.append((events[k], ts - events[k]))
        res_ts.append(ts)
    missing = [k for k in events if k not in seen]
    extra = [k for k, n in seen.items() if n > 1]
    stray = [k for k in seen if k not in events]
    if missing or extra or stray:
        fail("outcomes: %d events without one (e.g. %s), %d with more than "
             "one (e.g. %s), %d for unknown offsets (e.g. %s)"
             % (len(missing), missing[:3], len(extra), extra[:3],
                len(stray), stray[:3]))
    res_ts.sort()
    lat.sort()
    first_res, last_res = res_ts[0], res_ts[-1]
    n = len(events)
    first_ev = min(events.values())
    m = {
        "events": n,
        "outcomes": dict(sorted(outcomes.items())),
        "exactly_one_outcome": True,
        "eps_steady": round(n / max(0.001, (last_res - first_res) / 1000.0)),
        "latency_ms": {"p50": pct(lat, 50), "p99": pct(lat, 99),
                       "max": lat[-1] if lat else None},
        # the same without the first 10% of the events (by produce time):
        # the warm-up, while few orders exist and the generator's updates
        # queue behind them, connections open and caches fill
        "latency_steady_ms": steady_latency(lat_at, first_ev),
        "first_outcome_ms": first_res,
        "last_outcome_ms": last_res,
        "first_event_ms": first_ev,
    }
    if a.worker_start_ms:
        m["eps_wall"] = round(n / max(0.001, (last_res - a.worker_start_ms) / 1000.0))
        m["startup_ms"] = first_res - a.worker_start_ms
    if a.time_file:
        cpus, rsss = [], []
        for f in a.time_file:
            t = open(f).read()
            user = float(re.search(r"User time \(seconds\): ([\d.]+)", t).group(1))
            sys_ = float(re.search(r"System time \(seconds\): ([\d.]+)", t).group(1))
            rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1))
            cpus.append(user + sys_)
            rsss.append(rss / 1024.0)
        m["replicas"] = len(cpus)
        m["cpu_s"] = round(sum(cpus), 2)
        m["cpu_s_per_1k"] = round(sum(cpus) / n * 1000, 4)
        m["peak_rss_mib"] = round(max(rsss), 1)
        if len(cpus) > 1:
            m["replica_cpu_s"] = [round(c, 2) for c in cpus]
            m["replica_peak_rss_mib"] = [round(r, 1) for r in rsss]
    rts = []
    for f in a.worker_log:
        rt = None
        for line in open(f):
            if '"redis_round_trips"' in line:
                try:
                    rt = int(json.loads(line)["redis_round_trips"])
                except (ValueError, KeyError):
                    pass
        if rt is not None:
            rts.append(rt)
    if rts:
        m["redis_round_trips"] = sum(rts)
        m["redis_rt_per_event"] = round(sum(rts) / n, 4)
    if a.sim_stats:
        s = json.load(open(a.sim_stats))
        m["http_requests"] = s.get("requests")
        m["http_per_event"] = round(s.get("requests", 0) / n, 4)
        m["work_orders_pushed"] = s.get("workOrders")
    if a.redis_info:
        calls = 0
        nodes = 0
        used = 0  # bytes, summed over the nodes (INFO memory)
        for line in open(a.redis_info):
            if line.startswith("# Commandstats"):
                nodes += 1
            if line.startswith("used_memory:"):
                used += int(line.split(":", 1)[1])
            mm = re.match(r"cmdstat_(\w+):calls=(\d+)", line)
            if mm and mm.group(1) not in ("info", "ping", "flushall", "config"):
                calls += int(mm.group(2))
        m["redis_commands"] = calls
        m["redis_nodes"] = nodes
        m["redis_cmds_per_event"] = round(calls / n, 3)
        if used:
            m["redis_used_mib"] = round(used / 1048576, 1)
    if a.services_cpu:
        # summed by name: a Cluster's nodes are all redis-server
        m["services_cpu_s"] = {}
        for line in open(a.services_cpu):
            name, sec = line.split()
            m["services_cpu_s"][name] = round(
                m["services_cpu_s"].get(name, 0.0) + float(sec), 2)
    json.dump(m, sys.stdout)
    print()


if __name__ == "__main__":
    main()
