#!/usr/bin/env bash
# A Patroni cluster on a drover lab: etcd (one member per namespace, or one in the
# witness) and Patroni in east and west, in place of the lab's own PostgreSQL pair.
# Sourced by bench/patroni-race.sh; also usable by hand on a lab that is up:
#   bench/patroni/cluster.sh up   LABDIR [TTL LOOP_WAIT RETRY_TIMEOUT]   (default 30 10 10)
#   bench/patroni/cluster.sh down LABDIR
#   bench/patroni/cluster.sh status LABDIR
# Environment: ETCD_MEMBERS=3 (east, west, witness; default) or 1 (witness only).
# Holds no lock itself: whoever brings the lab up holds /tmp/drover-lab-lock.

patroni_here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PG_BIN=/usr/lib/postgresql/15/bin
declare -A REGION_ADDRESS=([east]=10.200.0.11 [west]=10.200.0.12 [witness]=10.200.0.13)
ETCD_MEMBERS="${ETCD_MEMBERS:-3}"

pt_log() { echo "patroni-cluster: $*" >&2; }
now_ms() { date +%s%3N; }

# Everything Patroni and etcd need lives under LABDIR/patroni (postgres-owned) and
# LABDIR/etcd; `drover lab down` removes both with the lab. Pids go to LABDIR/etcd/*.pid.
patroni_paths() {
  lab="$1"
  pdir="$lab/patroni"
  edir="$lab/etcd"
}

etcd_regions() {
  if [ "$ETCD_MEMBERS" = 1 ]; then echo witness; else echo east west witness; fi
}

etcd_endpoints() {
  local r eps=()
  for r in $(etcd_regions); do eps+=("http://${REGION_ADDRESS[$r]}:2379"); done
  (IFS=,; echo "${eps[*]}")
}

# Starts a detached process inside a region's namespace; records its pid in PIDFILE.
#   pt_spawn REGION PIDFILE LOGFILE CMD...
pt_spawn() {
  local region="$1" pidfile="$2" logfile="$3"; shift 3
  setsid ip netns exec "drover-$region" "$@" </dev/null >>"$logfile" 2>&1 &
  echo $! >"$pidfile"
  disown $! # stopped by pid file, not as a job (no "Killed" notices)
}

pt_wait() { # pt_wait SECONDS WHAT CMD...: runs CMD every 0.2 s until it succeeds
  local guard="$1" what="$2"; shift 2
  local until=$((SECONDS + guard))
  while ! "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$until" ]; then pt_log "timed out after ${guard}s waiting for $what"; return 1; fi
    sleep 0.2
  done
}

# Stops the lab's own PostgreSQL pair (the supervisor does not restart it), so that
# Patroni owns the databases on 10.200.0.11/12:5432 with fresh data dirs.
patroni_stop_lab_postgres() {
  local lab="$1" r
  for r in east west; do
    if [ -f "$lab/$r/pgdata/postmaster.pid" ]; then
      runuser -u postgres -- "$PG_BIN/pg_ctl" stop -D "$lab/$r/pgdata" -m fast -w -t 30 >/dev/null
    fi
  done
}

patroni_start_etcd() {
  local lab="$1" r cluster=() a
  patroni_paths "$lab"
  mkdir -p "$edir"
  for r in $(etcd_regions); do cluster+=("$r=http://${REGION_ADDRESS[$r]}:2380"); done
  for r in $(etcd_regions); do
    a=${REGION_ADDRESS[$r]}
    pt_spawn "$r" "$edir/$r.pid" "$edir/$r.log" etcd --name "$r" --data-dir "$edir/$r" \
      --listen-client-urls "http://$a:2379" --advertise-client-urls "http://$a:2379" \
      --listen-peer-urls "http://$a:2380" --initial-advertise-peer-urls "http://$a:2380" \
      --initial-cluster "$(IFS=,; echo "${cluster[*]}")" --initial-cluster-state new \
      --initial-cluster-token drover-race
  done
  pt_wait 60 "etcd to be healthy" etcdctl --endpoints "$(etcd_endpoints)" endpoint health
  # Keep etcd's raft leader out of the region the race blacks out: a new etcd leader
  # extends every lease by its full TTL, which would add up to one Patroni ttl.
  if [ "$ETCD_MEMBERS" = 3 ]; then
    local witness_id leader_id
    pt_wait 30 "an etcd leader" etcd_leader_id
    witness_id=$(etcd_member_id witness)
    leader_id=$(etcd_leader_id)
    if [ "$leader_id" != "$witness_id" ]; then
      etcdctl --endpoints "$(etcd_endpoints)" move-leader "$witness_id" >/dev/null
    fi
    pt_wait 30 "the etcd leader to be the witness" test "$(etcd_leader_id)" = "$witness_id"
  fi
}

etcd_leader_id() { # hex id of the raft leader as the witness member sees it
  local id
  id=$(etcdctl --endpoints "http://${REGION_ADDRESS[witness]}:2379" endpoint status -w json 2>/dev/null |
    python3 -c 'import json,sys; s=json.load(sys.stdin)[0]["Status"]; print("%x" % s["leader"] if s["leader"] else "")') || return 1
  [ -n "$id" ] && echo "$id"
}

etcd_member_id() { # hex id of the member named $1
  etcdctl --endpoints "http://${REGION_ADDRESS[witness]}:2379" member list -w json |
    python3 -c 'import json,sys; n=sys.argv[1]; print(next("%x" % m["ID"] for m in json.load(sys.stdin)["members"] if m["name"]==n))' "$1"
}

# Writes LABDIR/patroni/{east,west}.yml from the template, the callback's key file and
# the post_bootstrap script, all owned by postgres.
#   patroni_prepare LABDIR TTL LOOP_WAIT RETRY_TIMEOUT
patroni_prepare() {
  local lab="$1" ttl="$2" loop_wait="$3" retry_timeout="$4" r password repl_password hosts
  patroni_paths "$lab"
  password=$(python3 -c 'import sys,urllib.parse as u; print(u.unquote(u.urlparse(open(sys.argv[1]).read().strip()).password))' "$lab/secrets/east.dsn")
  repl_password=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
  install -d -m 0700 -o postgres -g postgres "$pdir"
  install -m 0755 -o postgres -g postgres "$patroni_here/on-role-change.sh" "$pdir/on-role-change.sh"
  install -m 0755 -o postgres -g postgres "$patroni_here/post-bootstrap.sh" "$pdir/post-bootstrap.sh"
  # knsupdate's key file format: hmac-sha256:NAME:SECRET.
  (umask 077; printf 'hmac-sha256:drover:%s\n' "$(tr -d '\n' <"$lab/secrets/tsig.key")" >"$pdir/tsig.key")
  chown postgres:postgres "$pdir/tsig.key"
  for r in east west; do
    install -d -m 0700 -o postgres -g postgres "$pdir/$r" "$pdir/$r/run"
    if [ "$ETCD_MEMBERS" = 1 ]; then
      hosts="${REGION_ADDRESS[witness]}:2379"
    else
      local other=west; [ "$r" = west ] && other=east
      hosts="${REGION_ADDRESS[$r]}:2379,${REGION_ADDRESS[witness]}:2379,${REGION_ADDRESS[$other]}:2379"
    fi
    (umask 077; sed -e "s|@NAME@|$r|g" -e "s|@ADDRESS@|${REGION_ADDRESS[$r]}|g" \
      -e "s|@ETCD_HOSTS@|$hosts|g" -e "s|@ETCD_USE_PROXIES@|true|g" \
      -e "s|@TTL@|$ttl|g" -e "s|@LOOP_WAIT@|$loop_wait|g" -e "s|@RETRY_TIMEOUT@|$retry_timeout|g" \
      -e "s|@PATRONI_DIR@|$pdir|g" -e "s|@NODE_DIR@|$pdir/$r|g" -e "s|@DATA_DIR@|$pdir/$r/pgdata|g" \
      -e "s|@PASSWORD@|$password|g" -e "s|@REPL_PASSWORD@|$repl_password|g" \
      -e "s|@CA_FILE@|$lab/ca.pem|g" -e "s|@PG_TLS_DIR@|$lab/$r/tls|g" \
      "$patroni_here/patroni.yml.in" >"$pdir/$r.yml")
    chown postgres:postgres "$pdir/$r.yml"
  done
}

patroni_start_node() {
  local lab="$1" r="$2"
  patroni_paths "$lab"
  pt_spawn "$r" "$edir/patroni-$r.pid" "$pdir/$r/patroni.log" \
    setpriv --reuid=postgres --regid=postgres --init-groups \
    env HOME=/var/lib/postgresql PATH=/usr/bin:/bin patroni "$pdir/$r.yml"
}

# GET /cluster from a node's REST API.
patroni_cluster_json() { curl -sf --max-time 2 "http://${REGION_ADDRESS[$1]}:8008/cluster"; }

# True when /cluster (asked of node $1) shows member $2 with role $3 and state $4.
patroni_member_is() {
  patroni_cluster_json "$1" | python3 -c '
import json, sys
name, role, state = sys.argv[1:4]
m = [m for m in json.load(sys.stdin)["members"] if m["name"] == name]
sys.exit(0 if m and m[0]["role"] == role and m[0].get("state") == state else 1)' "$2" "$3" "$4"
}

# True when east's database reports west streaming as its synchronous standby.
east_has_sync_west() {
  local lab="$1"
  [ "$(psql "$(cat "$lab/secrets/east.dsn")" -Atc \
    "SELECT state || ',' || sync_state FROM pg_stat_replication WHERE application_name = 'west'" 2>/dev/null)" = "streaming,sync" ]
}

dns_points_at() { [ "$(kdig @10.200.0.1 +short api.app.test. A 2>/dev/null)" = "$1" ]; }

# The whole cluster, east first so it is the initial leader; returns when east leads,
# west streams synchronously, DNS points at east and the east app acknowledges a write.
#   patroni_up LABDIR TTL LOOP_WAIT RETRY_TIMEOUT
patroni_up() {
  local lab="$1"
  patroni_paths "$lab"
  patroni_stop_lab_postgres "$lab"
  patroni_start_etcd "$lab"
  patroni_prepare "$lab" "$2" "$3" "$4"
  patroni_start_node "$lab" east
  pt_wait 120 "east to lead (Patroni)" patroni_member_is east east leader running ||
    { tail -20 "$pdir/east/patroni.log" >&2; return 1; }
  patroni_start_node "$lab" west
  pt_wait 180 "west to be east's synchronous standby (Patroni)" patroni_member_is east west sync_standby running ||
    { tail -20 "$pdir/west/patroni.log" >&2; return 1; }
  pt_wait 60 "west streaming synchronously (pg_stat_replication)" east_has_sync_west "$lab"
  pt_wait 30 "api.app.test. -> 10.200.0.11" dns_points_at 10.200.0.11
  pt_wait 60 "the east app to acknowledge a write" \
    curl -sf --max-time 2 -X POST "http://10.200.0.11:8080/write?seq=$(now_ms)"
}

pt_kill_pidfile() { # pt_kill_pidfile FILE SIGNAL
  local pid
  [ -f "$1" ] || return 0
  pid=$(cat "$1")
  kill -0 "$pid" 2>/dev/null && kill "-$2" "$pid" 2>/dev/null
  return 0
}

pt_alive_pidfile() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Stops Patroni (which stops its PostgreSQL), then etcd; SIGKILL for whatever is left
# after a grace period, including postmasters of the Patroni data dirs.
patroni_down() {
  local lab="$1" f r pid until
  patroni_paths "$lab"
  [ -d "$edir" ] || return 0
  for f in "$edir"/patroni-*.pid; do pt_kill_pidfile "$f" TERM; done
  until=$((SECONDS + 10))
  for f in "$edir"/patroni-*.pid; do
    while pt_alive_pidfile "$f" && [ "$SECONDS" -lt "$until" ]; do sleep 0.2; done
    pt_kill_pidfile "$f" KILL
  done
  for r in east west; do
    if [ -f "$pdir/$r/pgdata/postmaster.pid" ]; then
      pid=$(head -1 "$pdir/$r/pgdata/postmaster.pid")
      kill -0 "$pid" 2>/dev/null && kill -QUIT "$pid" 2>/dev/null
    fi
  done
  for f in "$edir"/*.pid; do [[ "$f" == */patroni-* ]] || pt_kill_pidfile "$f" TERM; done
  until=$((SECONDS + 5))
  for f in "$edir"/*.pid; do
    while pt_alive_pidfile "$f" && [ "$SECONDS" -lt "$until" ]; do sleep 0.2; done
    pt_kill_pidfile "$f" KILL
    rm -f "$f"
  done
}

patroni_status() {
  local lab="$1" r
  for r in east west; do
    echo "--- /cluster from $r"; patroni_cluster_json "$r" | python3 -m json.tool 2>/dev/null || echo "(no answer)"
  done
  echo "--- etcd"; etcdctl --endpoints "$(etcd_endpoints)" endpoint status -w table 2>&1 || true
  echo "--- dns: $(kdig @10.200.0.1 +short api.app.test. A)"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  cmd="${1:?usage: cluster.sh up|down|status LABDIR [TTL LOOP_WAIT RETRY_TIMEOUT]}"
  lab="$(cd "${2:?usage: cluster.sh up|down|status LABDIR}" && pwd)"
  case "$cmd" in
    up) patroni_up "$lab" "${3:-30}" "${4:-10}" "${5:-10}" && echo "patroni cluster up: east leads, west is its synchronous standby" ;;
    down) patroni_down "$lab" ;;
    status) patroni_status "$lab" ;;
    *) echo "unknown command $cmd" >&2; exit 2 ;;
  esac
fi
