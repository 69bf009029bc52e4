#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this):
#   1. installs what is missing (scripts/deps.sh --test);
#   2. builds with -Wall -Wextra -Werror and runs every ctest test
#      (unit, rules tables, integration against a real redis-server, the
#      librdkafka mock cluster and the Pruvan simulator, ops endpoints with
#      promtool, Dockerfile lint and runtime libraries, Kubernetes manifest
#      and JSON Schema validation, the benchmark smoke run);
#   3. builds again with AddressSanitizer + UndefinedBehaviorSanitizer and
#      runs the code tests there;
#   4. replays the fuzz regressions and runs each libFuzzer target for a
#      bounded time from a fixed seed (a failure reproduces with the
#      command it prints; scripts/fuzz.sh is the longer, unseeded run).
# Env: PB_FUZZ_SECONDS (default 30), PB_FUZZ_SEED (default 1),
#      PB_TEST_JOBS (default: nproc).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${PB_TEST_JOBS:-$(nproc)}
started=$(date +%s)
stage() { echo; echo "== $* ($(( $(date +%s) - started ))s)"; }

stage "dependencies"
scripts/deps.sh --test

stage "build (plain, -Werror)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build
stage "tests (plain)"
(cd build && ctest -j"$jobs" --output-on-failure --timeout 600)

stage "build (AddressSanitizer + UndefinedBehaviorSanitizer)"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DPB_SANITIZE=ON >/dev/null
cmake --build build-asan
stage "tests (sanitizers)"
# Docker, manifests and schemas check files, not code: once is enough.
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
   UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
   ctest -j"$jobs" --output-on-failure --timeout 900 -LE 'docker|deploy|schemas|bench')

stage "fuzzing (${PB_FUZZ_SECONDS:-30}s per target, seed ${PB_FUZZ_SEED:-1})"
tests/fuzz/run.sh "${PB_FUZZ_SECONDS:-30}" "${PB_FUZZ_SEED:-1}"

stage "all tests passed"
