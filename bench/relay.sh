#!/usr/bin/env bash
# The relay web service's answer time: how long Pruvan waits for the
# worker to answer a `status` call (one entry), which includes producing
# the inbound record and waiting for Kafka's acknowledgement. One machine:
# the mock cluster (pb-mock-kafka), a private redis-server, the simulator,
# and one worker on examples/demo-config.json; the calls come from one
# keep-alive connection, then from 8 at once. See docs/benchmarks.md.
#
#   bench/relay.sh [--calls N] [--linger MS]
#     --calls N     calls per pass, after 5 warm-up calls per connection (400)
#     --linger MS   the producers' linger.ms under `kafka` (default: the
#                   worker's own)
# Prints, per pass, the mean and p99 answer time (ms) and calls/s.
# Needs: redis-server, redis-cli, python3; builds into $BENCH_BUILD_DIR
# (build-bench, Release) when its binaries are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
calls=400 linger=
while [ $# -gt 0 ]; do
  case $1 in
    --calls) calls=$2; shift 2 ;;
    --linger) linger=$2; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "bench/relay.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
build=${BENCH_BUILD_DIR:-build-bench}
if [ ! -x "$build/pruvan-bridge" ] || [ ! -x "$build/pb-mock-kafka" ] || [ ! -x "$build/pruvan-sim" ]; then
  echo "== building into $build (Release)" >&2
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$build" --target pruvan-bridge pruvan-sim pb-mock-kafka >/dev/null
fi

run=$(mktemp -d /tmp/pruvan-bridge-relay.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$run"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
await_file() { for _ in $(seq 100); do [ -s "$1" ] && return 0; sleep 0.1; done; echo "timed out waiting for $1" >&2; return 1; }

rport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no \
  --logfile "$run/redis.log" --daemonize no &
pids+=($!)
"$build/pb-mock-kafka" --topic pruvan.orders:4 --topic pruvan.inbound:2 \
  --topic pruvan.results:4 --topic pruvan.dlq:1 --bootstrap-file "$run/bootstrap" \
  </dev/null >"$run/kafka.out" 2>"$run/kafka.log" &
pids+=($!)
"$build/pruvan-sim" --port 0 --port-file "$run/sim.port" --quiet 2>"$run/sim.log" &
pids+=($!)
await_file "$run/bootstrap"; await_file "$run/sim.port"
for _ in $(seq 50); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.1; done

export KAFKA_BOOTSTRAP_SERVERS=$(cat "$run/bootstrap")
export REDIS_URL="redis://127.0.0.1:$rport/0"
sim="http://127.0.0.1:$(cat "$run/sim.port")"
export DEMO_NORTHWIND_PUSHKEY_URL="$sim/api/?apiKey=NORTHWIND-BENCH"
export DEMO_ACME_RELAY_PASSWORD=acme-bench DEMO_ACME_RELAY_TOKEN=acme-bench-token
export DEMO_NORTHWIND_RELAY_PASSWORD=northwind-bench
extra=${linger:+, \"linger.ms\": \"$linger\"}
sed -e "s|@SIM@|$sim|" -e "s|@MEDIA@|$run/media|" \
  -e "s|\"heartbeat.interval.ms\": \"1000\"|\"heartbeat.interval.ms\": \"1000\"$extra|" \
  examples/demo-config.json >"$run/config.json"
"$build/pruvan-bridge" run -c "$run/config.json" 2>>"$run/worker.log" &
pids+=($!)
for _ in $(seq 100); do grep -q '"relay endpoint listening"' "$run/worker.log" 2>/dev/null && break; sleep 0.1; done
port=$(grep '"relay endpoint listening"' "$run/worker.log" | sed -E 's/.*"port":"([0-9]+)".*/\1/')
[ -n "$port" ] || { echo "the worker did not start its relay endpoint; see $run/worker.log" >&2; cat "$run/worker.log" >&2; exit 1; }

python3 - "$port" "$calls" "$DEMO_NORTHWIND_RELAY_PASSWORD" <<'PY'
import hashlib, http.client, json, statistics, sys, threading, time, urllib.parse
port, n, password = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
payload = {"username": "northwind", "password": hashlib.sha1(password.encode()).hexdigest(),
           "token": "", "workOrders": [{"workOrderNumber": "TESTPOST", "key1": "88001",
                                        "fieldStatus": "complete"}]}
body = "payload=" + urllib.parse.quote(json.dumps(payload))
form = {"Content-Type": "application/x-www-form-urlencoded"}

def call(c):
    t = time.perf_counter()
    c.request("POST", "/pruvan/northwind/status.php", body, form)
    r = c.getresponse()
    answer = r.read()
    if r.status != 200 or not json.loads(answer).get("status"):
        sys.exit("FAIL: the relay answered %d %r" % (r.status, answer[:200]))
    return (time.perf_counter() - t) * 1000

for conc in (1, 8):
    times, lock = [], threading.Lock()
    def caller():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for _ in range(5):
            call(c)
        mine = [call(c) for _ in range(n // conc)]
        with lock:
            times.extend(mine)
    t0 = time.perf_counter()
    threads = [threading.Thread(target=caller) for _ in range(conc)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if len(times) != (n // conc) * conc:
        sys.exit("FAIL: %d of %d calls answered" % (len(times), (n // conc) * conc))
    times.sort()
    print("%d connection(s): mean %.2f ms, p99 %.2f ms, %.0f calls/s"
          % (conc, statistics.mean(times), times[int(len(times) * 0.99)], len(times) / wall))
PY
