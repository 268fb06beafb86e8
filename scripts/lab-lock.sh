# Sourced by the lab benchmarks. Only one lab can exist on a machine (fixed namespace
# names), so whoever brings one up holds the lock directory /tmp/drover-lab-lock from
# before `lab up` until after `lab down`. Its `owner` file says "PID LAB_DIR"; a lock whose
# owner process is gone (killed by a timeout, a crash, a lost session) is stale: the next
# taker brings that owner's lab down and takes the lock, instead of waiting for ever.
# The Rust tests' LabLock (crates/drover/tests/support) follows the same protocol.
lab_lock=/tmp/drover-lab-lock
lab_lock_held=0

# lab_lock_take DIR DROVER: waits for the lock, breaking a stale one.
lab_lock_take() {
  local dir="$1" drover="$2" owner pid odir
  until mkdir "$lab_lock" 2>/dev/null; do
    owner="$(cat "$lab_lock/owner" 2>/dev/null || true)"
    pid="${owner%% *}"
    odir="${owner#* }"
    if [ -n "$owner" ] && [ ! -d "/proc/$pid" ]; then
      echo "lab lock: its owner (pid $pid) is gone; bringing its lab down and taking the lock" >&2
      [ -e "$odir/.drover-lab" ] && "$drover" lab down --dir "$odir" >/dev/null 2>&1
      rm -rf "$lab_lock"
      continue
    fi
    if [ -z "$owner" ] && [ -n "$(find "$lab_lock" -maxdepth 0 -mmin +1 2>/dev/null)" ]; then
      echo "lab lock: no owner recorded for over a minute; taking it" >&2
      rm -rf "$lab_lock"
      continue
    fi
    echo "waiting for $lab_lock (pid ${pid:-?} is using the lab)" >&2
    sleep 5
  done
  echo "$$ $dir" >"$lab_lock/owner"
  lab_lock_held=1
}

lab_lock_release() {
  if [ "$lab_lock_held" = 1 ]; then
    rm -rf "$lab_lock"
    lab_lock_held=0
  fi
}
