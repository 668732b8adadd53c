#!/bin/bash
# The launcher's mpirun line (`gfs --dry-run`), its hostfile placement (the
# rankfile it writes so that the roles spread over the nodes: master on the
# first host, one chunkserver per node), and real jobs through the hostfile
# path: a one-host hostfile (localhost, no rankfile) and a three-"node"
# hostfile whose nodes are this machine (an rsh agent that runs orted here),
# which goes through a real rankfile.
set -euo pipefail
source "$GFS_TEST_LIB"
mk_tmp

# first_line: the mpirun line of the last dry run.
first_line() { printf '%s\n' "$OUT" | head -n 1; }
# rankfile_lines: the rankfile the last dry run printed ("# rank N=host slot=S").
rankfile_lines() { printf '%s\n' "$OUT" | sed -n 's/^# \(rank .*\)$/\1/p'; }
# host_of RANK: the host the last dry run's rankfile gives RANK.
host_of() { rankfile_lines | sed -n "s/^rank $1=\([^ ]*\) slot=.*/\1/p"; }

# --- The mpirun line, no hostfile ---------------------------------------------
run_cmd "$GFS" --data-dir "$DATA" --chunkservers 4 --clients 2 \
  --mpirun-args "--mca btl self,vader --tag-output" --dry-run ls /
assert_ok "dry run"
line="$(first_line)"
read -r -a w <<<"$line"
assert_eq "mpirun" "$(basename "${w[0]}")" "the command"
assert_contains " $line " " -q " "quiet"
assert_contains " $line " " --enable-recovery " "recovery"
assert_contains " $line " " --mca rtc_hwloc_vmhole none " "no shared topology segment"
if [[ "$(id -u)" == 0 ]]; then
  assert_contains " $line " " --allow-run-as-root " "root"
else
  assert_not_contains " $line " "--allow-run-as-root" "not root"
fi
assert_contains " $line " " -np 7 " "1 master + 4 chunkservers + 2 clients"
assert_contains " $line " " --stdin 5 " "stdin goes to the first client (rank 1+S+K)"
assert_contains " $line " " --mca btl self,vader --tag-output " "--mpirun-args passed through"
assert_contains " $line " " ls -- / " "the command after the options, its arguments after --"
assert_not_contains "$line" "--rankfile" "no rankfile without a hostfile"
assert_not_contains "$line" "--dry-run" "--dry-run is not passed to the ranks"
assert_eq 1 "$(printf '%s\n' "$OUT" | grep -c .)" "one line without a hostfile"
# More ranks than cores: --oversubscribe.
cores="$(nproc)"
run_cmd "$GFS" --data-dir "$DATA" --chunkservers "$cores" --clients 1 --dry-run ls /
assert_ok
assert_contains " $(first_line) " " --oversubscribe " "$((cores + 2)) ranks on $cores cores"
assert_contains " $(first_line) " " -np $((cores + 2)) "

# --- A hostfile of three hosts ------------------------------------------------
cat >"$TMP/hosts3" <<'EOF'
# three nodes, four slots each
node1 slots=4
node2 slots=4   # a comment after the host

node3 slots=4 max_slots=8
EOF
run_cmd "$GFS" --data-dir "$DATA" --hostfile "$TMP/hosts3" --chunkservers 3 --clients 3 \
  --mpirun-args "--mca btl tcp,self" --dry-run put /etc/hostname /h
assert_ok "dry run with a hostfile"
line="$(first_line)"
assert_contains " $line " " -np 7 " "1 + 3 + 3"
assert_contains " $line " " --stdin 4 " "first client"
assert_contains " $line " " --hostfile $TMP/hosts3 " "hostfile passed on"
assert_contains " $line " " --rankfile " "a rankfile with three hosts"
assert_contains " $line " " --mca btl tcp,self " "--mpirun-args passed through"
assert_not_contains " $line " " --oversubscribe " "7 ranks in 12 slots"
log "rankfile: $(rankfile_lines | tr '\n' ';')"
assert_eq 7 "$(rankfile_lines | wc -l)" "one rankfile line per rank"
assert_eq node1 "$(host_of 0)" "master on the first host"
assert_eq "node1 node2 node3" "$(host_of 1) $(host_of 2) $(host_of 3)" \
  "one chunkserver per node"
assert_eq "node1 node2 node3" "$(printf '%s\n' "$(host_of 4)" "$(host_of 5)" "$(host_of 6)" | sort | tr '\n' ' ' | sed 's/ $//')" \
  "clients spread over the nodes"
# Slots are numbered per host from 0, never twice on one host here.
dups="$(rankfile_lines | awk '{print $2, $3}' | sed 's/^[0-9]*=//' | sort | uniq -d)"
assert_eq "" "$dups" "a (host, slot) pair used twice"

# --bind-to none: the same placement, each rank given all its host's slots
# (a rankfile binds to its slots even under --bind-to none); one slot: 0.
run_cmd "$GFS" --data-dir "$DATA" --hostfile "$TMP/hosts3" --chunkservers 3 --clients 3 \
  --mpirun-args "--bind-to none" --dry-run put /etc/hostname /h
assert_ok
assert_eq node1 "$(host_of 0)" "master on the first host (unbound)"
assert_eq "node1 node2 node3" "$(host_of 1) $(host_of 2) $(host_of 3)" \
  "one chunkserver per node (unbound)"
assert_eq "slot=0-3" "$(rankfile_lines | awk '{print $3}' | sort -u)" "every slot of the host"
printf 'node1\nnode2\n' >"$TMP/hosts-one-slot"
run_cmd "$GFS" --data-dir "$DATA" --hostfile "$TMP/hosts-one-slot" --mpirun-args "--bind-to none" \
  --dry-run ls /
assert_ok
assert_eq "slot=0" "$(rankfile_lines | awk '{print $3}' | sort -u)" "one-slot hosts (unbound)"

# Six chunkservers on three nodes: two per node; 13 ranks > 12 slots oversubscribes.
run_cmd "$GFS" --data-dir "$DATA" --hostfile "$TMP/hosts3" --chunkservers 6 --clients 6 \
  --dry-run ls /
assert_ok
assert_contains " $(first_line) " " --oversubscribe " "13 ranks in 12 slots"
for h in node1 node2 node3; do
  n="$(for r in 1 2 3 4 5 6; do host_of "$r"; done | grep -cx "$h")"
  assert_eq 2 "$n" "chunkservers on $h"
done

# Hosts without slots= count one slot each; repeated lines add up.
printf 'a\nb\na\n' >"$TMP/hosts-plain"
run_cmd "$GFS" --data-dir "$DATA" --hostfile "$TMP/hosts-plain" --chunkservers 2 --clients 1 \
  --dry-run ls /
assert_ok
assert_contains " $(first_line) " " --oversubscribe " "4 ranks in 3 slots"
assert_eq a "$(host_of 0)"
assert_eq "a b" "$(host_of 1) $(host_of 2)" "chunkservers"

# A one-host hostfile: no rankfile.
printf 'localhost slots=8\n' >"$TMP/hosts1"
run_cmd "$GFS" --data-dir "$DATA" --hostfile "$TMP/hosts1" --dry-run ls /
assert_ok
assert_not_contains "$(first_line)" "--rankfile" "one host needs no rankfile"
assert_not_contains " $(first_line) " " --oversubscribe " "5 ranks in 8 slots"
assert_eq 1 "$(printf '%s\n' "$OUT" | grep -c .)"

# Bad hostfiles: one error line, usage exit status.
run_cmd "$GFS" --data-dir "$DATA" --hostfile "$TMP/no-such-file" --dry-run ls /
assert_exit 2 "missing hostfile"
assert_one_error_line "hostfile" "no-such-file"
printf 'node1 slots=four\n' >"$TMP/hosts-bad"
run_cmd "$GFS" --data-dir "$DATA" --hostfile "$TMP/hosts-bad" --dry-run ls /
assert_exit 2 "bad slots"
assert_one_error_line "hosts-bad:1" "slots=four"

# --- Real jobs through the hostfile path --------------------------------------
MiB=1048576
rand_file "$TMP/in" $((2 * MiB + 123))

# One host (localhost): the hostfile goes to mpirun, no rankfile.
GLOBALS=(--chunk-size 1M --hostfile "$TMP/hosts1")
run_gfs put "$TMP/in" /one
assert_ok "put through a localhost hostfile"
run_gfs get /one "$TMP/out1"
assert_ok "get through a localhost hostfile"
assert_same_file "$TMP/in" "$TMP/out1"
run_gfs get /missing "$TMP/nothing"
assert_fails "the exit status of a failed command travels back"
assert_no_leftovers

# Three "nodes" that are all this machine: an rsh agent that starts each
# node's orted here. Shared memory between "nodes" would confuse Open MPI, so
# TCP only. The launcher writes and removes a real rankfile; this host is not
# in the hostfile, so the status file goes to the current directory.
cat >"$TMP/agent" <<EOF
#!/bin/sh
# fake rsh: HOST COMMAND... -> run COMMAND here, and note the host
echo "\$1" >>"$TMP/agent.log"
shift
exec sh -c "\$*"
EOF
chmod +x "$TMP/agent"
printf 'node1 slots=2\nnode2 slots=2\nnode3 slots=2\n' >"$TMP/hosts-fake"
rankfiles_before="$(find /tmp -maxdepth 1 -name 'gfs-rankfile-*' | sort)"
# shellcheck disable=SC2034  # used by run_gfs
GLOBALS=(--chunk-size 1M --chunkservers 3 --clients 2 --hostfile "$TMP/hosts-fake"
  --mpirun-args "--mca plm_rsh_agent $TMP/agent --mca btl tcp,self --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo")
cd "$TMP"
run_gfs put "$TMP/in" /three
assert_ok "put over three nodes (rankfile)"
run_gfs get /three "$TMP/out3"
assert_ok "get over three nodes (rankfile)"
assert_same_file "$TMP/in" "$TMP/out3"
run_gfs get /missing "$TMP/nothing"
assert_fails "the exit status travels back through the shared directory"
for h in node1 node2 node3; do
  grep -qx "$h" "$TMP/agent.log" || fail "no daemon was started on $h: $(sort -u "$TMP/agent.log" | tr '\n' ' ')"
done
assert_eq 3 "$(find "$DATA" -maxdepth 1 -type d -name 'chunkserver-*' | wc -l)" "three chunkservers"
assert_eq "" "$(find "$TMP" -maxdepth 1 -name '.gfs-status*')" "status files removed"
rankfiles_after="$(find /tmp -maxdepth 1 -name 'gfs-rankfile-*' | sort)"
assert_eq "$rankfiles_before" "$rankfiles_after" "rankfiles removed after mpirun exits"
cd /
assert_no_leftovers

pass
