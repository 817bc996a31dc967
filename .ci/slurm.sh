#!/usr/bin/env bash
# A real one-node SLURM on this machine, for the scale-out tests (never a mock).
#
#   bash .ci/slurm.sh install          # Debian's slurmctld, slurmd, slurm-client, munge
#   eval "$(bash .ci/slurm.sh start DIR)"   # daemons up; exports SLURM_CONF for this shell
#   bash .ci/slurm.sh stop DIR         # stops them by the pids start recorded
#
# Everything it writes (slurm.conf, state, spool, logs, pid files) is under DIR; the munge
# daemon uses the package's key and socket (/run/munge), as sbatch and srun expect. Run as
# root (or with sudo). Daemons are stopped by their recorded pids, never by name.
set -euo pipefail

sudo_=()
[ "$(id -u)" -eq 0 ] || sudo_=(sudo)

install_packages() {
  local apt=("${sudo_[@]+"${sudo_[@]}"}" env DEBIAN_FRONTEND=noninteractive apt-get)
  local need=()
  for tool in slurmctld slurmd sbatch munged; do
    command -v "$tool" >/dev/null 2>&1 || need=(slurmctld slurmd slurm-client munge)
  done
  [ "${#need[@]}" -eq 0 ] && return 0
  "${apt[@]}" install -y -q "${need[@]}" >/dev/null \
    || { "${apt[@]}" update -q >/dev/null && "${apt[@]}" install -y -q "${need[@]}" >/dev/null; }
}

wait_for() {  # wait_for SECONDS COMMAND...: until COMMAND succeeds.
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.5
  done
}

start() {
  local dir node cpus memory
  dir="$(mkdir -p "$1" && cd "$1" && pwd)"
  mkdir -p "$dir/state" "$dir/spool" "$dir/log"
  node="$(hostname -s)"
  cpus="$(nproc)"
  # Leave 1 GiB to the system; slurmd refuses a node that claims more than it has.
  memory=$(( $(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) - 1024 ))
  cat >"$dir/slurm.conf" <<EOF
ClusterName=hdsemg
SlurmctldHost=$node(127.0.0.1)
SlurmUser=$(id -un)
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldPort=${HDSEMG_SLURMCTLD_PORT:-6817}
SlurmdPort=${HDSEMG_SLURMD_PORT:-6818}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
MinJobAge=300
KillWait=5
InactiveLimit=0
JobRequeue=1
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
  # munged: as the munge user, with its run directory (absent on a fresh boot).
  "${sudo_[@]+"${sudo_[@]}"}" install -d -o munge -g munge -m 0755 /run/munge
  if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    # --force: a stale socket of a daemon that died (e.g. a killed CI run) is not an error.
    "${sudo_[@]+"${sudo_[@]}"}" runuser -u munge -- /usr/sbin/munged --force \
      --pid-file=/run/munge/munged.pid 2>>"$dir/log/munged.log"
    wait_for 10 bash -c 'munge -n </dev/null | unmunge' \
      || { echo "slurm.sh: munged did not start ($dir/log/munged.log)" >&2; return 1; }
    # Recorded here only when this script started it: stop leaves any other munged alone.
    cp /run/munge/munged.pid "$dir/munged.pid"
  fi
  "${sudo_[@]+"${sudo_[@]}"}" /usr/sbin/slurmctld -f "$dir/slurm.conf" -c -i
  "${sudo_[@]+"${sudo_[@]}"}" /usr/sbin/slurmd -f "$dir/slurm.conf" -N "$node"
  export SLURM_CONF="$dir/slurm.conf"
  if ! wait_for 60 bash -c "sinfo -h -N -o %t | grep -q -E '^idle|^mix|^alloc'"; then
    echo "slurm.sh: the node did not come up: $(sinfo -N 2>&1 | tail -1)" >&2
    tail -5 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" >&2 || true
    return 1
  fi
  echo "export SLURM_CONF=$dir/slurm.conf"
}

stop() {
  local dir="$1" name pid
  for name in slurmd slurmctld munged; do
    [ -f "$dir/$name.pid" ] || continue
    pid="$(cat "$dir/$name.pid")"
    "${sudo_[@]+"${sudo_[@]}"}" kill "$pid" 2>/dev/null || continue
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && "${sudo_[@]+"${sudo_[@]}"}" kill -9 "$pid" 2>/dev/null
    rm -f "$dir/$name.pid"
  done
  return 0
}

case "${1:-}" in
  install) install_packages ;;
  start) [ -n "${2:-}" ] || { echo 'usage: slurm.sh start DIR' >&2; exit 2; }; start "$2" ;;
  stop) [ -n "${2:-}" ] || { echo 'usage: slurm.sh stop DIR' >&2; exit 2; }; stop "$2" ;;
  *) echo 'usage: slurm.sh install | start DIR | stop DIR' >&2; exit 2 ;;
esac
