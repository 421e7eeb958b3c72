#!/usr/bin/env bash
# An emulated 2-node SLURM cluster on this host, for the tests and for trying the scripts without a cluster.
#
#   slurm/local-cluster.sh start    # munged, slurmctld and two slurmd (n1, n2) on 127.0.0.1; needs root
#   slurm/local-cluster.sh status   # sinfo
#   slurm/local-cluster.sh stop
#   eval "$(slurm/local-cluster.sh env)"   # point sbatch/squeue/scontrol at it (SLURM_CONF)
#
# Needs Debian's slurm-wlm and munge. Both "nodes" are this machine: each slurmd claims all of its CPUs,
# so jobs should ask for 1 task per node here. State lives in $SPANGPT_CLUSTER_DIR (default /tmp/spangpt-cluster).
set -euo pipefail

DIR=${SPANGPT_CLUSTER_DIR:-/tmp/spangpt-cluster}
CONF=$DIR/slurm.conf
NODES=(n1 n2)

die() { echo "local-cluster: $*" >&2; exit 1; }

write_conf() {
  local cpus memory host
  cpus=$(nproc)
  memory=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2 ))  # half each: the nodes share this host
  host=$(hostname)
  mkdir -p "$DIR/state" "$DIR/log" "$DIR/spool"
  for node in "${NODES[@]}"; do mkdir -p "$DIR/spool/$node"; done
  cat > "$CONF" <<CONF
ClusterName=spangpt-local
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=16817
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd-%n.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobRequeue=1
MinJobAge=3600
KillWait=30
SlurmdTimeout=60
InactiveLimit=0
NodeName=n[1-2] NodeHostname=$host NodeAddr=127.0.0.1 Port=[17001-17002] CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=local Nodes=n[1-2] Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
}

# Daemons are found by their command line: each names this cluster's config (and its node).
daemon_pattern() { echo "$1 -f $CONF${2:+ -N $2}\$"; }
running() { pgrep -f "$(daemon_pattern "$@")" >/dev/null; }

start() {
  [[ $(id -u) == 0 ]] || die "start needs root (munged and slurmd run as root here)"
  command -v slurmctld >/dev/null || die "slurmctld not found: apt-get install slurm-wlm munge"
  write_conf
  if ! pgrep -x munged >/dev/null; then
    [[ -f /etc/munge/munge.key ]] || mungekey --create >/dev/null
    mkdir -p /run/munge && chown munge:munge /run/munge 2>/dev/null || true
    munged --force
  fi
  running slurmctld || slurmctld -f "$CONF"
  for node in "${NODES[@]}"; do
    running slurmd "$node" || slurmd -f "$CONF" -N "$node"
  done
  for _ in $(seq 60); do
    if [[ $(SLURM_CONF=$CONF sinfo -h -o '%T' 2>/dev/null | grep -c '^idle') == 1 ]] &&
       [[ $(SLURM_CONF=$CONF sinfo -h -N -o '%T' | grep -c '^idle') == "${#NODES[@]}" ]]; then
      echo "local-cluster: up (${#NODES[@]} nodes). Use it with: export SLURM_CONF=$CONF"
      return 0
    fi
    sleep 1
  done
  die "nodes did not become idle; see $DIR/log/"
}

stop() {
  if running slurmctld; then  # cancel this cluster's jobs and let their steps end before the daemons go
    SLURM_CONF=$CONF scancel --quiet --user="$(id -un)" 2>/dev/null || true
    for _ in $(seq 45); do
      [[ -z $(SLURM_CONF=$CONF squeue -h -t RUNNING,COMPLETING 2>/dev/null) ]] && break
      sleep 1
    done
  fi
  pkill -f "$(daemon_pattern slurmctld)" || true
  for node in "${NODES[@]}"; do pkill -f "$(daemon_pattern slurmd "$node")" || true; done
  for _ in $(seq 30); do
    pgrep -f "slurm(ctl)?d -f $CONF" >/dev/null || { echo "local-cluster: stopped"; return 0; }
    sleep 1
  done
  die "daemons still running after 30 s"
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) SLURM_CONF=$CONF sinfo -N ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
