#!/usr/bin/env bash
# The worker's main job on an embedded default, end to end on one machine:
# a librdkafka mock cluster (real Kafka protocol), a private redis-server on
# a free loopback port, the Pruvan simulator, the sample events under
# examples/, one worker consuming them and serving the relay web service,
# pruvan-call making Pruvan's calls to it (validate delivering a PushKey,
# uploadPictures with real files, status), and a summary of the outcomes
# from `pruvan-bridge watch --once` and of the media store.
#
#   scripts/demo.sh            (installs what is missing, builds, runs)
# Env: BUILD_DIR (default build), KEEP=1 keeps the run directory.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=${BUILD_DIR:-build}

scripts/deps.sh
if [ ! -x "$build/pruvan-bridge" ] || [ ! -x "$build/pruvan-call" ] || [ -n "$(find src tools cmake CMakeLists.txt -newer "$build/pruvan-bridge" -print -quit)" ]; then
  echo "== building into $build" >&2
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$build" --target pruvan-bridge pruvan-sim pruvan-call pb-mock-kafka >/dev/null
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
export DEMO_NORTHWIND_PUSHKEY_URL="$sim/api/?apiKey=NORTHWIND-DEMO"
# the integrations' credentials, as entered in Pruvan's setup screen
export DEMO_ACME_RELAY_PASSWORD=acme-demo-password DEMO_ACME_RELAY_TOKEN=acme-demo-token
export DEMO_NORTHWIND_RELAY_PASSWORD=northwind-demo-password
media="$run/media"
cfg="$run/config.json"
sed -e "s|@SIM@|$sim|" -e "s|@MEDIA@|$media|" examples/demo-config.json > "$cfg"
bridge="$build/pruvan-bridge"
call="$build/pruvan-call"

produce() { kcat -P -b "$KAFKA_BOOTSTRAP_SERVERS" -t "$1" -K $'\t' -l "$2" 2>>"$run/kcat.log"; }
results() { kcat -C -b "$KAFKA_BOOTSTRAP_SERVERS" -t pruvan.results -o beginning -e -q 2>>"$run/kcat.log" | wc -l; }
await_results() {
  for _ in $(seq 300); do [ "$(results)" -ge "$1" ] && return 0; sleep 0.1; done
  echo "timed out waiting for $1 outcomes (have $(results)); see $run/worker.log" >&2; return 1
}

echo "== starting the worker with its relay web service" >&2
"$bridge" run -c "$cfg" 2>>"$run/worker.log" &
worker=$!
pids+=($worker)
for _ in $(seq 100); do grep -q '"relay endpoint listening"' "$run/worker.log" 2>/dev/null && break; sleep 0.1; done
relay_port=$(grep '"relay endpoint listening"' "$run/worker.log" | sed -E 's/.*"port":"([0-9]+)".*/\1/')
relay="http://127.0.0.1:$relay_port/pruvan"
acme() { "$call" --url "$relay/acme-internal" --username acme --password-env DEMO_ACME_RELAY_PASSWORD \
  --token-env DEMO_ACME_RELAY_TOKEN "$@" >>"$run/calls.log"; }
northwind() { "$call" --url "$relay/northwind" --username northwind \
  --password-env DEMO_NORTHWIND_RELAY_PASSWORD "$@" >>"$run/calls.log"; }
head -c 48000 /dev/urandom > "$run/front-door.jpg"
head -c 52000 /dev/urandom > "$run/after.jpg"
cp examples/relay/survey-sv-1.json "$run/survey.json"

echo "== Pruvan validates acme-internal's integration and delivers its PushKey" >&2
acme validate --pushkey ACME-DEMO

n=$(wc -l < examples/events.jsonl)
echo "== phase 1: $n order events; Pruvan relays a photo and a status" >&2
produce pruvan.orders examples/events.jsonl
await_results "$n"
northwind uploadPictures --meta "$(cat examples/relay/photo-ph-1.json)" --file "$run/front-door.jpg"
acme status --entry "$(cat examples/relay/status-testpost.json)"
await_results $((n + 2))

echo "== phase 2: the back office deletes NW-1001, then sends an update for it" >&2
produce pruvan.orders examples/events-after-delete.jsonl
await_results $((n + 4))

echo "== phase 3: Pruvan relays queued data for the deleted order (old Key1, and a new one)" >&2
northwind uploadPictures --meta "$(cat examples/relay/survey-sv-1.json)" --file "$run/survey.json" \
  --content-type application/json
northwind uploadPictures --meta "$(cat examples/relay/photo-ph-2.json)" --file "$run/after.jpg"
await_results $((n + 6))
echo "== Pruvan imports acme-internal's orders (getWorkOrders, a full refresh)" >&2
imported=$("$call" --url "$relay/acme-internal" --username acme --password-env DEMO_ACME_RELAY_PASSWORD \
  --token-env DEMO_ACME_RELAY_TOKEN getWorkOrders | tee -a "$run/calls.log")
kill -TERM "$worker"; wait "$worker" || true

echo >&2
"$bridge" watch -c "$cfg" --once
echo
echo "Media store ($media): kept $(ls "$media" | tr '\n' ' ')"
for f in northwind_sv-1 northwind_ph-2; do
  [ -e "$media/$f" ] && echo "  $f: STILL THERE (expected deleted)" || echo "  $f: discarded, file deleted"
done
echo "getWorkOrders answered: $(printf '%s' "$imported" | python3 -c 'import json,sys; print(", ".join(sorted(o["workOrderNumber"] for o in json.load(sys.stdin)["workOrders"])))' 2>/dev/null || echo "(see $run/calls.log)")"
echo "Pruvan simulator saw: $(curl -s "$sim/_sim/stats")"
echo "Pushed with the learned key: $(curl -s "$sim/_sim/orders?apiKey=ACME-DEMO" | python3 -c 'import json,sys; print(", ".join(sorted(json.load(sys.stdin)["orders"])))' 2>/dev/null || echo "(see $sim/_sim/orders?apiKey=ACME-DEMO)")"
echo "Worker log: $(wc -l < "$run/worker.log") JSON lines$( [ -n "${KEEP:-}" ] && echo " in $run/worker.log")"
