#!/usr/bin/env bash
# Renders a drill report as the self-contained HTML page drover writes, in Debian's headless
# Chromium, and saves a screenshot: the proof that the page renders with nothing fetched.
#
#   scripts/render-drill-report.sh REPORT.json OUT.png
#
# REPORT.json: what 'drover drill --json FILE' wrote, or 'drover drills show DRILL -o json'.
# Installs chromium with apt-get when it is missing (it is heavy, so the suite does not need
# it: crates/drover-core/src/drill_html.rs parses the page's SVG and checks its order instead).
# DROVER names the binary [default: drover on PATH, else target/debug/drover].
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 REPORT.json OUT.png" >&2
  exit 2
fi
report=$1
out=$2
[ -r "$report" ] || { echo "$report: cannot read the report" >&2; exit 2; }

root=$(cd "$(dirname "$0")/.." && pwd)
drover=${DROVER:-$(command -v drover || echo "${CARGO_TARGET_DIR:-$root/target}/debug/drover")}
[ -x "$drover" ] || { echo "no drover binary at $drover: build it (cargo build -p drover) or set DROVER" >&2; exit 2; }

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
  echo "render: installing Debian's chromium"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
  browser=$(command -v chromium)
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$drover" drills render "$report" --output html >"$work/drill.html"

# No network: every host resolves to nothing, so a page that fetched anything would show it
# broken. --no-sandbox: Chromium refuses to run as root otherwise.
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run \
  --host-resolver-rules="MAP * ~NOTFOUND" --window-size=1000,1500 \
  --user-data-dir="$work/profile" --screenshot="$work/shot.png" "file://$work/drill.html" 2>"$work/chromium.log" ||
  { cat "$work/chromium.log" >&2; exit 1; }
mv "$work/shot.png" "$out"
echo "render: $out"
