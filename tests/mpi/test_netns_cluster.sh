#!/bin/bash
# jobs/netns-cluster without a job: `up 4` (with a rate limit and two racks)
# makes four hosts with their own names, addresses, node-local directories
# and tbf on both ends of every link, and no way out of the private /24;
# `status` lists them; `exec` runs on one; `down` leaves no namespace, veth,
# mount or process behind, and may be run again. Then the same after an
# `up` killed half-way (SIGKILL, then down), and an `up` stopped by SIGTERM
# (which cleans up itself). Creating namespaces must work here: if it does
# not, the test fails with the reason.
set -euo pipefail
source "$GFS_TEST_LIB"
mk_tmp

NC="$(cd "$HERE/../.." && pwd)/jobs/netns-cluster"
# A cluster of this test's own (name, state and data under $TMP), so that a
# cluster someone has up, or another run of this test, is not touched.
export GFS_NETNS_NAME="t$$"
export GFS_NETNS_STATE="$TMP/state"
export GFS_NETNS_DATA="$TMP/hosts"
S="$GFS_NETNS_STATE/$GFS_NETNS_NAME"
LOCAL="$GFS_NETNS_DATA/$GFS_NETNS_NAME/local"
# Whatever happens, take the cluster down before the temp directory goes.
trap '_rc=$?; "$NC" down >/dev/null 2>&1 || true; (exit $_rc); _cleanup' EXIT

# What the machine's own network namespace and mount table look like now.
links_before="$(ip -o link show | awk -F': ' '{print $2}' | sort)"

# netns_ids: the namespace ids (net:[N]) of the cluster's network namespaces.
netns_ids() {
  local f
  for f in /run/netns/"$GFS_NETNS_NAME"-*; do
    [[ -e "$f" ]] || continue
    ip netns exec "$(basename "$f")" readlink /proc/self/ns/net 2>/dev/null || true
  done
}

# assert_all_gone IDS: no namespace, process, mount, veth or state left.
assert_all_gone() {
  local ids="$1" left id d
  left="$(ip netns list | awk '{print $1}' | grep -E "^$GFS_NETNS_NAME-" || true)"
  [[ -z "$left" ]] || fail "network namespaces left after down: $left"
  for id in $ids; do
    for d in /proc/[0-9]*; do
      if [[ "$(readlink "$d/ns/net" 2>/dev/null)" == "$id" ]]; then
        fail "process ${d#/proc/} ($(tr '\0' ' ' <"$d/cmdline" 2>/dev/null)) still in $id after down"
      fi
    done
  done
  if grep -F -e "$TMP" /proc/self/mountinfo >/dev/null; then
    fail "mounts left after down: $(grep -F -e "$TMP" /proc/self/mountinfo)"
  fi
  if grep -E " /run/netns/$GFS_NETNS_NAME-" /proc/self/mountinfo >/dev/null; then
    fail "namespace mounts left after down"
  fi
  local links_after
  links_after="$(ip -o link show | awk -F': ' '{print $2}' | sort)"
  assert_eq "$links_before" "$links_after" "the machine's own interfaces"
  [[ ! -e "$S" ]] || fail "state directory $S left after down"
  [[ ! -e "$GFS_NETNS_DATA/$GFS_NETNS_NAME" ]] || fail "data directories left after down"
}

# --- up 4 ---------------------------------------------------------------------
run_cmd "$NC" up 4 --rate 500mbit --racks 2
if ((RC != 0)); then
  fail "cannot create the test hosts (network namespaces): $(grep -m1 . "$ERR_FILE")"
fi
# Nothing new in the machine's own network namespace.
assert_eq "$links_before" "$(ip -o link show | awk -F': ' '{print $2}' | sort)" \
  "the machine's own interfaces after up"

run_cmd "$NC" status
assert_ok "status"
for i in 0 1 2 3; do
  line="$(grep -E "^h$i " <<<"$OUT" || true)"
  [[ -n "$line" ]] || fail "status does not list h$i: $OUT"
  read -r -a w <<<"$line"
  assert_eq "10.213.7.$((i + 1))" "${w[2]}" "h$i's address"
  assert_eq "rack$((i % 2))" "${w[3]}" "h$i's rack"
  assert_eq 500mbit "${w[4]}" "h$i's rate"
  assert_eq running "${w[5]}" "h$i's state"
done
assert_eq 4 "$(grep -c -E '^h[0-9]+ ' <<<"$OUT")" "four hosts"
assert_eq "$(printf 'h0 rack0\nh1 rack1\nh2 rack0\nh3 rack1')" "$(cat "$S/topology")" "topology file"
assert_eq "$(printf 'h0\nh1\nh2\nh3')" "$(awk '{print $1}' "$S/hostfile")" "hostfile"

run_cmd "$NC" exec h1 hostname
assert_ok "exec h1 hostname"
assert_eq h1 "$OUT" "h1's host name"
run_cmd "$NC" exec h3 hostname
assert_eq h3 "$OUT" "h3's host name"
[[ "$(hostname)" != h1 ]] || fail "the machine's own host name changed"

# Addresses, and no route beyond the /24.
run_cmd "$NC" exec h2 ip -4 -o addr show dev eth0
assert_contains "$OUT" "10.213.7.3/24" "h2's address"
run_cmd "$NC" exec h2 ip route show
assert_not_contains "$OUT" "default" "a host must have no route out"
# The hosts reach each other (bash's /dev/tcp to a port nobody listens on:
# "connection refused" proves the peer answered).
run_cmd "$NC" exec h0 bash -c 'exec 3<>/dev/tcp/h3/9'
assert_contains "$ERR" "refused" "h0 reaches h3 by name"

# The rate limit: tbf on both ends of each link.
run_cmd tc -n "$GFS_NETNS_NAME-h1" qdisc show dev eth0
assert_contains "$OUT" "tbf" "tbf on h1's end"
assert_contains "$OUT" "500Mbit" "h1's rate"
run_cmd tc -n "$GFS_NETNS_NAME-br" qdisc show dev v1
assert_contains "$OUT" "tbf" "tbf on the bridge's end"

# Node-local directories: one path, another directory on every host.
run_cmd "$NC" exec h1 sh -c "echo one >'$LOCAL/mark'"
assert_ok
run_cmd "$NC" exec h2 sh -c "ls -A '$LOCAL'"
assert_ok
assert_eq "" "$OUT" "h2 must not see h1's node-local file"
run_cmd "$NC" exec h1 cat "$LOCAL/mark"
assert_eq one "$OUT" "h1 sees its own file"
[[ ! -e "$LOCAL/mark" ]] || fail "the node-local file shows on the machine itself"

# A second up of the same cluster is refused.
run_cmd "$NC" up 2
assert_fails "up while up"
assert_contains "$ERR" "already up"

ids="$(netns_ids)"
assert_eq 5 "$(wc -w <<<"$ids")" "five network namespaces (4 hosts and the bridge)"
run_cmd "$NC" down
assert_ok "down"
assert_all_gone "$ids"
run_cmd "$NC" down
assert_ok "a second down"
run_cmd "$NC" status
assert_fails "status when down"
assert_contains "$OUT" "down"

# --- up killed half-way, then down ----------------------------------------------
log "up 8, killed once the third host is being made"
bash "$NC" up 8 >"$TMP/killed-up.out" 2>&1 &
up_pid=$!
for _ in $(seq 1 200); do
  [[ -e "$S/h2.ready" ]] && break
  kill -0 "$up_pid" 2>/dev/null || break
  sleep 0.02
done
kill -KILL "$up_pid" 2>/dev/null || fail "up ended before it could be killed: $(cat "$TMP/killed-up.out")"
wait "$up_pid" 2>/dev/null || true
ids="$(netns_ids)"
[[ -n "$ids" ]] || fail "the killed up made no namespace"
run_cmd "$NC" status
assert_fails "status of a half-made cluster"
run_cmd "$NC" down
assert_ok "down after a killed up"
assert_all_gone "$ids"

# --- up stopped by SIGTERM: it takes down what it had made itself ----------------
log "up 8, sent SIGTERM once the second host is made"
bash "$NC" up 8 >"$TMP/term-up.out" 2>&1 &
up_pid=$!
for _ in $(seq 1 200); do
  [[ -e "$S/h1.ready" ]] && break
  kill -0 "$up_pid" 2>/dev/null || break
  sleep 0.02
done
ids="$(netns_ids)"
kill -TERM "$up_pid" 2>/dev/null || fail "up ended before SIGTERM: $(cat "$TMP/term-up.out")"
rc=0
wait "$up_pid" || rc=$?
[[ "$rc" != 0 ]] || fail "an interrupted up exited 0"
assert_contains "$(cat "$TMP/term-up.out")" "interrupted" "the interrupted up says so"
assert_all_gone "$ids"

pass
