#!/usr/bin/env bash
# Installs Debian packages the system and its tests need when they are
# missing. Sourced by run.sh, test.sh and .ci/run.
set -euo pipefail

apt_updated=""

# How long each apt-get run waits for a lock another apt-get or dpkg holds (on
# a fresh VM: unattended-upgrades, often for minutes) before it gives up.
APT_LOCK_TIMEOUT="${APT_LOCK_TIMEOUT:-300}"

# apt_get ARGS...: `apt-get ARGS...` as root (through sudo when needed),
# waiting up to APT_LOCK_TIMEOUT seconds for the locks other apt/dpkg runs
# hold. apt itself waits for the dpkg locks (DPkg::Lock::Timeout, apt >=
# 1.9.11) but not for the lists lock of `apt-get update` nor the archives
# lock, so a run that failed on a lock is tried again here every 2 s. The
# first try does not wait, so that waiting is said before it begins.
apt_get() {
  local sudo="" start=$SECONDS wait_s=0 rc err line held said=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  while :; do
    rc=0
    # apt-get's stdout goes where this function's goes; its stderr is kept
    # (in English: LC_ALL=C) to tell a held lock from other failures.
    { err="$($sudo env DEBIAN_FRONTEND=noninteractive LC_ALL=C apt-get \
      -o DPkg::Lock::Timeout="$wait_s" "$@" 2>&1 1>&3 3>&-)"; } 3>&1 || rc=$?
    # A lock another apt/dpkg holds: "Could not get lock PATH. It is held by
    # process PID (NAME)" when apt did not wait (apt < 2.1: "PATH - open
    # (11: ...)"), only the lines after it when apt waited for it in vain.
    # (Not "..., are you root?": that is no lock to wait for.)
    line="$(grep -m1 -E '^E: (Could not get lock |Unable to .*, is another process using it\?$)' <<<"$err" || true)"
    if [ "$rc" -eq 0 ] || [ -z "$line" ]; then
      if [ -n "$err" ]; then echo "$err" >&2; fi
      return "$rc"
    fi
    case "$line" in
      "E: Could not get lock "*". It is held by "*)
        held="${line#E: Could not get lock }"
        held="${held%%. It is held by *} (held by ${held#*. It is held by })" ;;
      "E: Could not get lock "*)
        held="${line#E: Could not get lock }"
        held="${held%% - *}" ;;
      *) held="${line#*(}"; held="${held%%)*}" ;;
    esac
    # A directory's lock is the file "lock" in it.
    case "$held" in */) held="${held}lock" ;; esac
    if [ $((SECONDS - start)) -ge "$APT_LOCK_TIMEOUT" ]; then
      echo "${0##*/}: gave up after ${APT_LOCK_TIMEOUT}s waiting for the apt/dpkg lock ${held} to install packages; run this again once that apt-get/dpkg has finished (or set APT_LOCK_TIMEOUT=seconds)" >&2
      return 1
    fi
    if [ -z "$said" ]; then
      echo "${0##*/}: waiting up to ${APT_LOCK_TIMEOUT}s for the apt/dpkg lock ${held}: another apt-get or dpkg (e.g. unattended-upgrades) is running" >&2
      said=1
    fi
    sleep 2
    wait_s=$((APT_LOCK_TIMEOUT - (SECONDS - start)))
    if [ "$wait_s" -lt 0 ]; then wait_s=0; fi
  done
}

# ensure_command COMMAND PACKAGE: installs PACKAGE unless COMMAND is on PATH.
ensure_command() {
  if command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; then
    return
  fi
  echo "$1 is missing: installing Debian's $2 package" >&2
  if [ -z "$apt_updated" ]; then
    apt_get update -qq
    apt_updated=1
  fi
  apt_get install -y -qq "$2" >/dev/null
}

# The node links jemalloc, which its build compiles from C with make.
ensure_build_tools() {
  ensure_command make make
  ensure_command cc gcc
}

ensure_redis_installed() {
  ensure_command redis-server redis-server
}
