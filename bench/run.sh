#!/usr/bin/env bash
# The benchmark: the worker end to end on one machine, against librdkafka's
# mock cluster (pb-mock-kafka), a private redis-server and the Pruvan
# simulator, with a generated event mix (bench/gen_events.py). See
# docs/benchmarks.md for what it measures and the numbers.
#
#   bench/run.sh                 full run: 3 x (instant sim, 50 ms sim,
#                                paced latency run), medians, targets
#   bench/run.sh --smoke         ~2,000 events, one round, no targets; still
#                                fails unless every event got exactly one
#                                outcome (ctest -L bench)
# Options:
#   --events N --orders N --accounts N   the mix (200000 / 20000 / 4)
#   --runs N          rounds, medians reported (3)
#   --scenarios LIST  comma list of instant,slow,latency (all)
#   --rate EPS        latency run's producer rate (default: half the
#                     median instant-run throughput)
#   --slow-ms MS      simulator latency of the slow scenario (50)
#   --partitions N    partitions of the orders/results/copy topics (8)
#   --replicas N      worker processes in one consumer group draining the
#                     backlog of the throughput runs (1; the latency run
#                     keeps one); per-replica CPU and RSS are reported
#   --redis-cluster   a 3-master Redis Cluster (no replicas) instead of one
#                     redis-server; commands and CPU summed over the nodes
#   --enforce         exit 1 when a target is missed
#   --out DIR         results directory (bench/results/TIMESTAMP)
#   --bridge/--sim/--mock PATH   binaries (default: build them into
#                     $BENCH_BUILD_DIR, default build-bench, Release)
# Env: BENCH_WORKER_WRAP prefixes the worker of the throughput runs (a
# profiler: "perf record -e cpu-clock -g -o FILE --"; then CPU and RSS are
# the profiler's). BENCH_KAFKA_EXTRA adds librdkafka properties to the
# worker's config ('"fetch.wait.max.ms": "50"'). BENCH_REDIS_ARGS adds
# words to every redis-server's command line ("--hash-max-listpack-value 1024").
# BENCH_LATENCY_FETCH_WAIT_MS (5) is the latency run's fetch.wait.max.ms
# (latency_kafka_props below says why; empty: the worker's default).
# Needs: kcat, redis-server, redis-cli, curl, python3, /usr/bin/time.
#
# The mock cluster keeps about 5 MB per partition (librdkafka trims older
# message sets and offers no setting for it), so producers compress (lz4)
# and the harness checks that every partition still starts at offset 0 and
# holds every event; it fails loudly otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

events=200000 orders=20000 accounts=4 runs=3 rate="" slow_ms=50 parts=8
scenarios=instant,slow,latency enforce=0 smoke=0 out=""
bridge="" sim="" mock="" replicas=1 cluster=0
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) smoke=1; events=2000; orders=200; runs=1 ;;
    --events) events=$2; shift ;;
    --orders) orders=$2; shift ;;
    --accounts) accounts=$2; shift ;;
    --runs) runs=$2; shift ;;
    --scenarios) scenarios=$2; shift ;;
    --rate) rate=$2; shift ;;
    --slow-ms) slow_ms=$2; shift ;;
    --partitions) parts=$2; shift ;;
    --replicas) replicas=$2; shift ;;
    --redis-cluster) cluster=1 ;;
    --enforce) enforce=1 ;;
    --out) out=$2; shift ;;
    --bridge) bridge=$2; shift ;;
    --sim) sim=$2; shift ;;
    --mock) mock=$2; shift ;;
    -h|--help) sed -n '2,36p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[[ "$replicas" =~ ^[1-9][0-9]?$ ]] || { echo "--replicas: expected 1 to 99" >&2; exit 2; }
if [ "$smoke" = 1 ] && [ "$scenarios" = instant,slow,latency ]; then
  scenarios=instant,latency
fi

for tool in kcat redis-server redis-cli curl python3 /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing (scripts/deps.sh)" >&2; exit 2; }
done

if [ -z "$bridge" ]; then
  build=${BENCH_BUILD_DIR:-build-bench}
  echo "== building into $build (Release)" >&2
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$build" --target pruvan-bridge pruvan-sim pb-mock-kafka >/dev/null
  bridge=$build/pruvan-bridge sim=$build/pruvan-sim mock=$build/pb-mock-kafka
fi

out=${out:-bench/results/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
echo "== results in $out" >&2

pids=()
wpid=""
wpids=()
stop_pids() {
  # workers still running under /usr/bin/time (a run that failed)
  local w
  for w in $wpid "${wpids[@]}"; do
    kill "$(pgrep -P "$w")" 2>/dev/null || true
    wait "$w" 2>/dev/null || true
  done
  wpid="" wpids=()
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}
trap stop_pids EXIT
now_ms() { date +%s%3N; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
await_file() { for _ in $(seq 200); do [ -s "$1" ] && return 0; sleep 0.05; done; echo "bench: timed out waiting for $1" >&2; return 1; }
die() { echo "FAIL: $*" >&2; exit 1; }

# Events: generated once, the same for every run.
evfile=$out/events.tsv
python3 bench/gen_events.py --events "$events" --orders "$orders" \
  --accounts "$accounts" --out "$evfile"

# start_redis_cluster DIR: three masters (slots split evenly, no
# replicas) on free ports below 55000 (the cluster bus is port + 10000);
# sets RPORTS. Command statistics are reset once the Cluster is whole, so
# that INFO commandstats counts the worker's commands only.
start_redis_cluster() {
  local d=$1 i p addrs=()
  RPORTS=()
  for i in 1 2 3; do
    p=$(free_port); while [ "$p" -gt 55000 ]; do p=$(free_port); done
    mkdir -p "$d/redis-$i"; rm -f "$d/redis-$i/nodes.conf"
    redis-server --port "$p" --bind 127.0.0.1 --save '' --appendonly no \
      --cluster-enabled yes --cluster-config-file nodes.conf \
      --cluster-node-timeout 5000 --dir "$d/redis-$i" \
      --logfile "$d/redis-$i.log" --daemonize no ${BENCH_REDIS_ARGS:-} &
    pids+=($!)
    RPORTS+=("$p") addrs+=("127.0.0.1:$p")
  done
  for p in "${RPORTS[@]}"; do
    for _ in $(seq 100); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.05; done
  done
  redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes \
    >"$d/redis-cluster-create.log" 2>&1 || die "redis-cli --cluster create failed (see $d/redis-cluster-create.log)"
  for p in "${RPORTS[@]}"; do
    for _ in $(seq 200); do
      redis-cli -p "$p" cluster info 2>/dev/null | grep -q 'cluster_state:ok' && break
      sleep 0.05
    done
    redis-cli -p "$p" cluster info | grep -q 'cluster_state:ok' || die "Redis Cluster not ok on port $p"
  done
  for p in "${RPORTS[@]}"; do redis-cli -p "$p" config resetstat >/dev/null; done
  REDIS_CFG="\"url\": \"redis://127.0.0.1:${RPORTS[0]}/0\", \"cluster\": {\"nodes\": [$(printf '"%s",' "${addrs[@]}" | sed 's/,$//')]}"
}

# start_stack DIR SIM_LATENCY_MS [KAFKA_PROPS]: Redis, mock cluster, simulator
# (KAFKA_PROPS: JSON members added to the worker's kafka section); sets BS,
# RPORTS (one port, or the Cluster's three), SIMURL.
start_stack() {
  local d=$1 lat=$2 kx=${3:-}
  rm -f "$d/bootstrap" "$d/sim.port" # a reused --out must not hand us old ports
  if [ "$cluster" = 1 ]; then
    start_redis_cluster "$d"
  else
    RPORTS=("$(free_port)")
    redis-server --port "${RPORTS[0]}" --bind 127.0.0.1 --save '' --appendonly no \
      --logfile "$d/redis.log" --daemonize no ${BENCH_REDIS_ARGS:-} &
    pids+=($!)
    REDIS_CFG="\"url\": \"redis://127.0.0.1:${RPORTS[0]}/0\""
  fi
  "$mock" --topic pruvan.orders:"$parts" --topic pruvan.inbound:1 \
    --topic pruvan.results:"$parts" --topic pruvan.dlq:1 \
    --topic bench.copy:"$parts" --bootstrap-file "$d/bootstrap" \
    </dev/null >"$d/kafka.out" 2>"$d/kafka.log" &
  pids+=($!)
  "$sim" --port 0 --port-file "$d/sim.port" --quiet --latency-ms "$lat" \
    --max-kept 1000 2>"$d/sim.log" &
  pids+=($!)
  await_file "$d/bootstrap"; await_file "$d/sim.port"
  for _ in $(seq 100); do redis-cli -p "${RPORTS[0]}" ping >/dev/null 2>&1 && break; sleep 0.05; done
  BS=$(cat "$d/bootstrap")
  SIMURL="http://127.0.0.1:$(cat "$d/sim.port")"
  cat >"$d/config.json" <<EOF
{
  "kafka": {"bootstrap.servers": "$BS", "group.id": "pruvan-bridge-bench",
            "session.timeout.ms": "6000", "heartbeat.interval.ms": "1000",
            "compression.codec": "lz4"${kx:+, $kx}${BENCH_KAFKA_EXTRA:+, $BENCH_KAFKA_EXTRA}},
  "redis": {$REDIS_CFG, "keyPrefix": "bench:"},
  "http": {"listen": "127.0.0.1:0"},${BENCH_CONFIG_EXTRA:+ $BENCH_CONFIG_EXTRA,}
  "accounts": {
    "bench-acme": {"pushKeyUrl": "env:BENCH_URL_ACME", "mode": "internal",
                   "allowDeletes": false, "users": ["jsmith", "mlee", "akhan"]},
    "bench-northwind": {"pushKeyUrl": "env:BENCH_URL_NORTHWIND", "mode": "external",
                        "allowDeletes": true},
    "bench-contoso": {"pushKeyUrl": "env:BENCH_URL_CONTOSO", "mode": "internal",
                      "allowDeletes": true, "users": ["jsmith", "mlee", "akhan"]},
    "bench-globex": {"pushKeyUrl": "env:BENCH_URL_GLOBEX", "mode": "external",
                     "statusPolicy": "reject"}
  }
}
EOF
  export BENCH_URL_ACME="$SIMURL/api/?apiKey=ACME"
  export BENCH_URL_NORTHWIND="$SIMURL/api/?apiKey=NORTHWIND"
  export BENCH_URL_CONTOSO="$SIMURL/api/?apiKey=CONTOSO"
  export BENCH_URL_GLOBEX="$SIMURL/api/?apiKey=GLOBEX"
}

kprod() { kcat -P -b "$BS" -t "$1" -K $'\t' -z lz4 -X linger.ms="${2:-50}" -X queue.buffering.max.messages=1000000; }

# topic_total TOPIC: sum of the partitions' high watermarks.
topic_total() {
  local args=() i
  for ((i = 0; i < parts; i++)); do args+=(-t "$1:$i:-1"); done
  kcat -Q -b "$BS" "${args[@]}" 2>/dev/null | awk '{s += $NF} END {print s + 0}'
}

# collect DIR: dumps, stats, analysis -> DIR/metrics.json
collect() {
  local d=$1
  curl -s "$SIMURL/_sim/stats" >"$d/sim-stats.json"
  # CPU seconds of the services sharing the machine (redis, broker, sim)
  local p; for p in "${pids[@]}"; do
    [ -r "/proc/$p/stat" ] && awk -v hz="$(getconf CLK_TCK)" \
      '{gsub(/[()]/, "", $2); printf "%s %.2f\n", $2, ($14 + $15) / hz}' "/proc/$p/stat"
  done >"$d/services-cpu.txt"
  local rp; for rp in "${RPORTS[@]}"; do
    redis-cli -p "$rp" info commandstats; redis-cli -p "$rp" info memory
  done >"$d/redis-info.txt"
  kcat -C -b "$BS" -t pruvan.orders -o beginning -e -q -f '%p\t%o\t%T\n' >"$d/orders.dump"
  kcat -C -b "$BS" -t pruvan.results -o beginning -e -q -f '%T\t%s\n' >"$d/results.dump"
  python3 bench/analyze.py --orders "$d/orders.dump" --results "$d/results.dump" \
    --expected "$events" --worker-start-ms "$(cat "$d/worker.start")" \
    $(for f in "$d"/time.txt "$d"/time-[0-9]*.txt; do [ -f "$f" ] && echo --time-file "$f"; done) \
    $(for f in "$d"/worker.log "$d"/worker-[0-9]*.log; do [ -f "$f" ] && echo --worker-log "$f"; done) \
    --sim-stats "$d/sim-stats.json" --redis-info "$d/redis-info.txt" \
    --services-cpu "$d/services-cpu.txt" \
    >"$d/metrics.json" || die "run $d failed verification (see above)"
}

# The raw limit: kcat consuming the events and producing them unchanged.
# Its consumer's prefetch limits are raised past any run's size: at librdkafka's defaults it stops
# fetching at 100,000 queued messages and resumes only when its broker
# thread next wakes, up to a second later, which made this figure bimodal
# (~300,000 or ~131,000 events/s from one run to the next).
raw_pipe() {
  local d=$1
  local t0; t0=$(now_ms)
  kcat -C -b "$BS" -t pruvan.orders -o beginning -e -q \
    -X queued.min.messages=10000000 -X queued.max.messages.kbytes=2097151 \
    -K $'\t' -f '%k\t%s\n' | kprod bench.copy 5
  local t1; t1=$(now_ms)
  kcat -C -b "$BS" -t bench.copy -o beginning -e -q -f '%T\n' | sort -n >"$d/copy.ts"
  local n; n=$(wc -l <"$d/copy.ts")
  [ "$n" = "$events" ] || die "raw pipe copied $n of $events events"
  python3 - "$d/copy.ts" "$t0" "$t1" "$events" >"$d/raw.json" <<'EOF'
import json, sys
ts = [int(x) for x in open(sys.argv[1])]
t0, t1, n = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
print(json.dumps({"raw_eps_steady": round(n / max(0.001, (ts[-1] - ts[0]) / 1000)),
                  "raw_eps_wall": round(n / max(0.001, (t1 - t0) / 1000))}))
EOF
}

# throughput_run NAME SIM_MS: backlog first, then the worker drains it.
throughput_run() {
  local d=$1 lat=$2
  mkdir -p "$d"; start_stack "$d" "$lat"
  kprod pruvan.orders <"$evfile"
  [ "$(topic_total pruvan.orders)" = "$events" ] || die "orders topic holds $(topic_total pruvan.orders) of $events events"
  [ "$lat" = 0 ] && raw_pipe "$d"
  now_ms >"$d/worker.start"
  # BENCH_WORKER_WRAP: a profiler prefix, e.g. "perf record -g -o FILE --"
  # Replica 1 writes time.txt and worker.log, replica R time-R.txt and
  # worker-R.log; all join one consumer group.
  local r sfx rc=0
  for ((r = 1; r <= replicas; r++)); do
    sfx=$([ "$r" = 1 ] || echo "-$r")
    /usr/bin/time -v -o "$d/time$sfx.txt" ${BENCH_WORKER_WRAP:-} "$bridge" run -c "$d/config.json" --exit-on-eof \
      2>"$d/worker$sfx.log" &
    wpids+=($!)
  done
  for r in "${!wpids[@]}"; do wait "${wpids[$r]}" || rc=$?; done
  wpids=()
  [ "$rc" = 0 ] || die "a worker exited non-zero (see $d/worker*.log)"
  now_ms >"$d/worker.end"
  collect "$d"
  stop_pids
}

# The mock cluster answers a fetch that found no data only after the
# request's whole fetch.wait.max.ms (the worker's default: 50), even when
# events arrive meanwhile; a Kafka broker answers as soon as
# fetch.min.bytes (1) is there. In a paced run most fetches come up empty
# first, so the mock would add ~25 ms on average to every event's latency
# that a broker does not. The latency run therefore asks for a short wait
# (BENCH_LATENCY_FETCH_WAIT_MS, 5; empty: the worker's default).
latency_kafka_props() {
  local w=${BENCH_LATENCY_FETCH_WAIT_MS-5}
  [ -n "$w" ] || return 0
  case "${BENCH_KAFKA_EXTRA:-}" in *fetch.wait.max.ms*) return 0 ;; esac
  printf '"fetch.wait.max.ms": "%s"' "$w"
}

# latency_run NAME RATE: the worker runs first; a paced producer feeds it.
latency_run() {
  local d=$1 r=$2
  mkdir -p "$d"; start_stack "$d" 0 "$(latency_kafka_props)"
  now_ms >"$d/worker.start"
  /usr/bin/time -v -o "$d/time.txt" "$bridge" run -c "$d/config.json" 2>"$d/worker.log" &
  wpid=$!
  for _ in $(seq 300); do grep -q '"partitions assigned"' "$d/worker.log" 2>/dev/null && break; sleep 0.1; done
  python3 bench/gen_events.py --events "$events" --orders "$orders" \
    --accounts "$accounts" --rate "$r" | kprod pruvan.orders 5
  local n=0 deadline=$(( $(date +%s) + 30 + events / 2000 ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    n=$(topic_total pruvan.results)
    [ "$n" -ge "$events" ] && break
    sleep 0.2
  done
  [ "$n" -ge "$events" ] || die "only $n outcomes for $events events after the producer finished (see $d/worker.log)"
  sleep 1 # a second late duplicate would show now
  # /usr/bin/time does not pass signals on: stop the worker itself.
  kill -TERM "$(pgrep -P "$wpid")"
  local rc=0; wait "$wpid" || rc=$?
  wpid=""
  [ "$rc" = 0 ] || die "worker exited non-zero (see $d/worker.log)"
  now_ms >"$d/worker.end"
  collect "$d"
  stop_pids
}

IFS=, read -r -a scen <<<"$scenarios"
has() { [[ ",$scenarios," == *",$1,"* ]]; }
for ((i = 1; i <= runs; i++)); do
  if has instant; then
    echo "== round $i: instant simulator" >&2
    throughput_run "$out/instant-$i" 0
    python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); m.update(json.load(open(sys.argv[2]))); print(json.dumps(m))' \
      "$out/instant-$i/metrics.json" "$out/instant-$i/raw.json" >"$out/instant-$i/all.json"
  fi
  if has slow; then
    echo "== round $i: simulator answering after $slow_ms ms" >&2
    throughput_run "$out/slow-$i" "$slow_ms"
    cp "$out/slow-$i/metrics.json" "$out/slow-$i/all.json"
  fi
done
if has latency; then
  if [ -z "$rate" ]; then
    if has instant; then
      rate=$(python3 -c 'import json,sys,statistics as s; print(int(s.median(json.load(open(f))["eps_steady"] for f in sys.argv[1:]) / 2))' "$out"/instant-*/all.json)
    else
      rate=10000
    fi
  fi
  for ((i = 1; i <= runs; i++)); do
    echo "== round $i: latency at $rate events/s" >&2
    latency_run "$out/latency-$i" "$rate"
    python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); m["rate"]=int(sys.argv[2]); print(json.dumps(m))' \
      "$out/latency-$i/metrics.json" "$rate" >"$out/latency-$i/all.json"
  done
fi

python3 bench/report.py --dir "$out" --smoke "$smoke" --enforce "$enforce"
