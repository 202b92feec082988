#!/usr/bin/env bash
# Installs redis-server from Debian's packages when it is missing.
# Sourced by run.sh and test.sh.
set -euo pipefail

ensure_redis_installed() {
  if command -v redis-server >/dev/null 2>&1; then
    return
  fi
  echo "redis-server is missing: installing Debian's redis-server package" >&2
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
}
