#!/usr/bin/env bash
# Install what pruvan-bridge needs on Debian 12, only what is missing.
#   scripts/deps.sh          build + run (demo)
#   scripts/deps.sh --test   also what the test suite uses
set -euo pipefail

pkgs=(cmake ninja-build gcc pkg-config librdkafka-dev libjansson-dev
      libcurl4-openssl-dev libhiredis-dev libssl-dev libcmocka-dev libmicrohttpd-dev
      libjemalloc-dev redis-server kcat ca-certificates)
if [ "${1:-}" = "--test" ]; then
  # clang: libFuzzer targets; python3-jsonschema: outcome/event schemas;
  # prometheus: promtool checks the /metrics exposition; nodejs/npm:
  # Dockerfile lint and Kubernetes manifest validation.
  pkgs+=(clang libclang-rt-14-dev python3 python3-jsonschema prometheus git curl)
  command -v npm >/dev/null 2>&1 || pkgs+=(nodejs npm)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing: ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts services on install where it can; we run our own instances.
if command -v systemctl >/dev/null 2>&1; then
  $SUDO systemctl disable --now redis-server prometheus >/dev/null 2>&1 || true
fi
