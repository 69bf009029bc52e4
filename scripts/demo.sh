#!/usr/bin/env bash
# The worker's main job on an embedded default, end to end on one machine:
# a librdkafka mock cluster (real Kafka protocol), a private redis-server on
# a free loopback port, the Pruvan simulator, the sample events under
# examples/, the worker consuming them (--exit-on-eof), and a summary of the
# outcomes from `pruvan-bridge watch --once`.
#
#   scripts/demo.sh            (installs what is missing, builds, runs)
# Env: BUILD_DIR (default build), KEEP=1 keeps the run directory.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=${BUILD_DIR:-build}

scripts/deps.sh
if [ ! -x "$build/pruvan-bridge" ] || [ -n "$(find src tools cmake CMakeLists.txt -newer "$build/pruvan-bridge" -print -quit)" ]; then
  echo "== building into $build" >&2
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$build" --target pruvan-bridge pruvan-sim pb-mock-kafka >/dev/null
fi

run=$(mktemp -d /tmp/pruvan-bridge-demo.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${KEEP:-}" ] && echo "run directory kept: $run" >&2 || rm -rf "$run"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null \
  || echo $((20000 + RANDOM % 20000)); }
await_file() { for _ in $(seq 100); do [ -s "$1" ] && return 0; sleep 0.1; done; echo "timed out waiting for $1" >&2; return 1; }

echo "== starting Redis, the mock Kafka cluster and the Pruvan simulator" >&2
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
export DEMO_ACME_PUSHKEY_URL="$sim/api/?apiKey=ACME-DEMO"
export DEMO_NORTHWIND_PUSHKEY_URL="$sim/api/?apiKey=NORTHWIND-DEMO"
cfg=examples/demo-config.json
bridge="$build/pruvan-bridge"

produce() { kcat -P -b "$KAFKA_BOOTSTRAP_SERVERS" -t "$1" -K $'\t' -l "$2" 2>>"$run/kcat.log"; }

echo "== phase 1: $(wc -l < examples/events.jsonl) order events and $(wc -l < examples/inbound.jsonl) relayed items" >&2
produce pruvan.orders examples/events.jsonl
produce pruvan.inbound examples/inbound.jsonl
"$bridge" run -c "$cfg" --exit-on-eof 2>>"$run/worker.log"

echo "== phase 2: the back office deletes NW-1001, then sends an update for it" >&2
produce pruvan.orders examples/events-after-delete.jsonl
"$bridge" run -c "$cfg" --exit-on-eof 2>>"$run/worker.log"

echo "== phase 3: Pruvan relays queued data for the deleted order (old and new Key1)" >&2
produce pruvan.inbound examples/inbound-after-delete.jsonl
"$bridge" run -c "$cfg" --exit-on-eof 2>>"$run/worker.log"

echo >&2
"$bridge" watch -c "$cfg" --once
echo
echo "Pruvan simulator saw: $(curl -s "$sim/_sim/stats")"
echo "Worker log: $(wc -l < "$run/worker.log") JSON lines$( [ -n "${KEEP:-}" ] && echo " in $run/worker.log")"
