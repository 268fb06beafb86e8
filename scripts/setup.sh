#!/usr/bin/env bash
# Installs what drover's lab and tests need on a fresh Debian machine (as root,
# or with sudo). Safe to run again: it only installs what is missing.
set -euo pipefail

# protobuf-compiler builds the etcd client; etcd-server runs in the etcd store tests.
# python3-venv holds moto, the AWS API server the Route 53 tests run against.
# tcpdump captures the lab bridge to prove no token or password crosses it in clear.
packages=(postgresql-15 knot knot-dnsutils nftables iproute2 procps protobuf-compiler etcd-server python3-venv tcpdump)
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: run as root (or install sudo)" >&2; exit 2; }
  sudo="sudo"
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

# Debian's knot and etcd-server start a service of their own when installed (as the users
# knot and etcd); drover starts its own servers, and the lab needs port 53 on its bridge.
# Setup stops such a service only if its own install just started it, by the pid recorded
# after the install with the process's start time (/proc/PID/stat field 22) and command
# line, checked again before the signal: never a process it did not start (another etcd on
# this machine may be a Kubernetes control plane's). "PACKAGE BINARY USER" per service:
services=("knot /usr/sbin/knotd knot" "etcd-server /usr/bin/etcd etcd")

# start_ticks PID: when the process started, in clock ticks after boot (field 22 of its
# stat; the fields after the command name, which may hold spaces, start at field 3).
start_ticks() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  set -- ${stat##*) }
  echo "${20}"
}

# cmdline_of PID: its arguments joined by spaces.
cmdline_of() {
  tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | sed 's/ $//'
}

# services_running BINARY USER: "PID START CMDLINE" of each process of BINARY run by USER.
services_running() {
  local uid pid p
  uid="$(id -u "$2" 2>/dev/null)" || return 0
  for p in /proc/[0-9]*; do
    pid="${p#/proc/}"
    [ "$(stat -c %u "$p" 2>/dev/null)" = "$uid" ] || continue
    [ "$(tr '\0' '\n' <"$p/cmdline" 2>/dev/null | head -n 1)" = "$1" ] || continue
    echo "$pid $(start_ticks "$pid") $(cmdline_of "$pid")"
  done
}

# stop_recorded "PID START CMDLINE": SIGTERM to that process if it is still the one recorded.
stop_recorded() {
  local pid start cmd
  read -r pid start cmd <<<"$1"
  if [ "$(start_ticks "$pid")" = "$start" ] && [ "$(cmdline_of "$pid")" = "$cmd" ]; then
    echo "setup: stopping the service its install started: pid $pid ($cmd)"
    $sudo kill -TERM "$pid" || true
  fi
}

if [ ${#missing[@]} -gt 0 ]; then
  before=()
  for s in "${services[@]}"; do
    read -r _ binary user <<<"$s"
    while IFS= read -r line; do [ -n "$line" ] && before+=("$line"); done < <(services_running "$binary" "$user")
  done
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  # The packages' own services are not used: drover starts its own servers.
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  for s in "${services[@]}"; do
    read -r package binary user <<<"$s"
    [[ " ${missing[*]} " == *" $package "* ]] || continue
    while IFS= read -r line; do
      [ -n "$line" ] || continue
      seen=0
      for b in "${before[@]}"; do [ "$b" = "$line" ] && seen=1; done
      [ "$seen" = 1 ] || stop_recorded "$line"
    done < <(services_running "$binary" "$user")
  done
fi

# moto[server] from PyPI in its own venv (the tests start /opt/drover-moto/bin/moto_server).
MOTO_VERSION=5.2.5
moto_venv=/opt/drover-moto
if ! "$moto_venv/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
  echo "setup: installing moto[server]==$MOTO_VERSION into $moto_venv"
  $sudo /usr/bin/python3 -m venv "$moto_venv"
  $sudo "$moto_venv/bin/pip" install -q --disable-pip-version-check "moto[server]==$MOTO_VERSION"
fi

command -v cargo >/dev/null || { echo "setup: cargo is missing; install Rust 1.95 (rustup)" >&2; exit 2; }
# The suite checks formatting and lints before it tests (scripts/test.sh).
for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    command -v rustup >/dev/null || { echo "setup: cargo $component is missing and rustup is not there to add it" >&2; exit 2; }
    echo "setup: adding the $component component"
    rustup component add "$component"
  fi
done
echo "setup: ready (postgresql-15, knot, nftables, iproute2, protoc, etcd, moto $MOTO_VERSION)"
