#!/usr/bin/env bash
# Installs what drover's lab and tests need on a fresh Debian machine (as root,
# or with sudo). Safe to run again: it only installs what is missing.
set -euo pipefail

# protobuf-compiler builds the etcd client; etcd-server runs in the etcd store tests.
packages=(postgresql-15 knot knot-dnsutils nftables iproute2 procps protobuf-compiler etcd-server)
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: run as root (or install sudo)" >&2; exit 2; }
  sudo="sudo"
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  # The packages' own services are not used: drover starts its own servers.
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's service scripts may start a stray knotd or cluster; the lab needs port 53 on its bridge.
$sudo pkill -x knotd 2>/dev/null || true
$sudo pkill -x etcd 2>/dev/null || true

command -v cargo >/dev/null || { echo "setup: cargo is missing; install Rust 1.95 (rustup)" >&2; exit 2; }
echo "setup: ready (postgresql-15, knot, nftables, iproute2, protoc, etcd)"
