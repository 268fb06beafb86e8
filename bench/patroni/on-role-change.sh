#!/usr/bin/env bash
# Patroni callback (on_role_change, on_start): when this node is the primary, point the
# service record at this region with an RFC 2136 UPDATE signed with the lab's TSIG key,
# the way a Patroni user moves DNS. Patroni appends ACTION ROLE SCOPE to the configured
# command, which gives ADDRESS KEYFILE LOG first:
#   on-role-change.sh ADDRESS KEYFILE LOG ACTION ROLE SCOPE
# KEYFILE holds `hmac-sha256:drover:SECRET`. Every call is logged with a Unix time in ms.
set -u
address=$1 keyfile=$2 log=$3 action=${4:-} role=${5:-} scope=${6:-}
server=${DNS_SERVER:-10.200.0.1}
record=${DNS_RECORD:-api.app.test.}
zone=${DNS_ZONE:-app.test.}
now() { date +%s%3N; }
echo "$(now) callback $action role=$role scope=$scope" >>"$log"
case "$role" in master | primary) ;; *) exit 0 ;; esac
case "$action" in on_role_change | on_start) ;; *) exit 0 ;; esac

update="server $server 53
zone $zone
update delete $record A
update add $record 1 A $address
send
"
for attempt in 1 2 3 4 5; do
  if command -v knsupdate >/dev/null; then
    # Knot's nsupdate (knot-dnsutils); -k reads the key from a file, not argv.
    printf '%s' "$update" | timeout 5 knsupdate -k "$keyfile" >>"$log" 2>&1 && ok=1 || ok=0
  else
    printf '%s' "$update" | timeout 5 nsupdate -y "$(cat "$keyfile")" >>"$log" 2>&1 && ok=1 || ok=0
  fi
  if [ "$ok" = 1 ]; then
    echo "$(now) dns $record -> $address (attempt $attempt)" >>"$log"
    exit 0
  fi
  sleep 0.2
done
echo "$(now) dns update of $record to $address failed" >>"$log"
exit 1
