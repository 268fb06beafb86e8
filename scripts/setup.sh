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
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  # The packages' own services are not used: drover starts its own servers.
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's service scripts may start a stray knotd or cluster; the lab needs port 53 on its bridge.
$sudo pkill -x knotd 2>/dev/null || true
$sudo pkill -x etcd 2>/dev/null || true

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
