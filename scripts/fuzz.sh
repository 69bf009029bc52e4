#!/usr/bin/env bash
# Exploratory fuzzing for developers, before they finish a change to the
# parsers or the rules: every libFuzzer target for SECONDS each (default
# 600), from a random seed, keeping the scratch corpus between runs.
# scripts/test.sh runs the same targets briefly with a fixed seed.
#   scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --test
exec tests/fuzz/run.sh "${1:-600}"
