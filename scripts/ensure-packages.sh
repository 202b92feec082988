#!/usr/bin/env bash
# Installs Debian packages the system and its tests need when they are
# missing. Sourced by run.sh, test.sh and .ci/run.
set -euo pipefail

apt_updated=""

# ensure_command COMMAND PACKAGE: installs PACKAGE unless COMMAND is on PATH.
ensure_command() {
  if command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; then
    return
  fi
  echo "$1 is missing: installing Debian's $2 package" >&2
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  if [ -z "$apt_updated" ]; then
    $sudo apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$2" >/dev/null
}

# The node links jemalloc, which its build compiles from C with make.
ensure_build_tools() {
  ensure_command make make
  ensure_command cc gcc
}

ensure_redis_installed() {
  ensure_command redis-server redis-server
}
