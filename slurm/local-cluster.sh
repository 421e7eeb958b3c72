#!/usr/bin/env bash
# An emulated 2-node SLURM cluster on this host, for the tests and for trying the scripts without a cluster.
#
#   slurm/local-cluster.sh start    # munged, slurmctld and two slurmd (n1, n2); needs root
#   slurm/local-cluster.sh status   # sinfo
#   slurm/local-cluster.sh stop
#   eval "$(slurm/local-cluster.sh env)"   # point sbatch/squeue/scontrol/srun at it (SLURM_CONF, PATH)
#
# Two network modes ($SPANGPT_CLUSTER_NET):
#   netns     each node in a network namespace of its own, with its own address, hostname (a UTS
#             namespace) and loopback; the controller in one of its own; veth pairs join them to a
#             bridge in a fifth namespace. Names resolve through per-namespace hosts files
#             (/etc/netns/NS/hosts, which `ip netns exec` mounts). Each slurmd, and every job step it
#             starts, runs inside its node's namespace; `env` puts wrappers first on PATH that run the
#             cluster's commands inside the controller's. Nothing is added to this machine's own
#             network namespace: no address, no listener. `stop` removes it all.
#   loopback  every daemon on 127.0.0.1 in this machine's namespace, for machines without netns.
#   auto      (default) netns where `ip netns` works (root), else loopback.
# Needs Debian's slurm-wlm and munge. Both "nodes" are this machine's CPUs: each slurmd claims all of
# them, so jobs should ask for 1 task per node here. State lives in $SPANGPT_CLUSTER_DIR (default
# /tmp/spangpt-cluster); `net` in it records the mode the cluster started in.
set -euo pipefail

DIR=${SPANGPT_CLUSTER_DIR:-/tmp/spangpt-cluster}
CONF=$DIR/slurm.conf
NODES=(n1 n2)
# netns mode: namespaces named after the state folder, so two clusters (a test's, a user's) never meet
PREFIX=sg$(printf '%s' "$DIR" | md5sum | cut -c1-6)
SUBNET=10.213.0
declare -A ADDRESS=([ctl]=$SUBNET.1 [n1]=$SUBNET.11 [n2]=$SUBNET.12)
COMMANDS=(sbatch squeue scontrol scancel sinfo sacct srun salloc sattach sstat)
# The real commands, never this cluster's wrappers (after `eval "$(... env)"` they come first on PATH, and a
# wrapper written or run through itself would recurse without end)
PATH=$(printf '%s' "$PATH" | tr ':' '\n' | grep -vxF "$DIR/bin" | paste -sd: -)

die() { echo "local-cluster: $*" >&2; exit 1; }

net_mode() {  # the mode a running cluster started in, else the one asked for
  if [[ -f $DIR/net ]]; then cat "$DIR/net"; return; fi
  local asked=${SPANGPT_CLUSTER_NET:-auto}
  case $asked in
    netns|loopback) echo "$asked" ;;
    auto) if [[ $(id -u) == 0 ]] && ip netns add "$PREFIX-probe" 2>/dev/null; then
            ip netns delete "$PREFIX-probe"; echo netns
          else echo loopback; fi ;;
    *) die "SPANGPT_CLUSTER_NET=$asked: expected netns, loopback or auto" ;;
  esac
}

namespace() { echo "$PREFIX-$1"; }  # ctl, n1, n2, br

# Run a command in a member's network namespace, with its own hostname (a UTS namespace) and its
# hosts file mounted over /etc/hosts in a private mount namespace, as `ip netns exec` mounts it. Not
# `ip netns exec` itself: it also remounts /sys, where slurmd then finds no cgroup file system.
in_member() {
  local member=$1; shift
  local ns; ns=$(namespace "$member")
  nsenter --net="/run/netns/$ns" unshare --mount --uts --fork \
    sh -c 'mount --bind "/etc/netns/$1/hosts" /etc/hosts && hostname "$2" && shift 2 && exec "$@"' \
    in_member "$ns" "$member" "$@"
}

net_up() {
  local member br; br=$(namespace br)
  ip netns add "$br"
  ip -n "$br" link add sgbr0 type bridge
  ip -n "$br" link set sgbr0 up
  for member in ctl "${NODES[@]}"; do
    local ns; ns=$(namespace "$member")
    ip netns add "$ns"
    mkdir -p "/etc/netns/$ns"
    {
      echo "127.0.0.1 localhost"
      for other in ctl "${NODES[@]}"; do echo "${ADDRESS[$other]} $other"; done
    } > "/etc/netns/$ns/hosts"
    ip -n "$br" link add "p-$member" type veth peer name eth0 netns "$ns"  # both ends made in place
    ip -n "$br" link set "p-$member" master sgbr0 up
    ip -n "$ns" addr add "${ADDRESS[$member]}/24" dev eth0
    ip -n "$ns" link set lo up
    ip -n "$ns" link set eth0 up
  done
}

net_down() {
  local member ns
  for member in ctl "${NODES[@]}" br; do
    ns=$(namespace "$member")
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns delete "$ns" 2>/dev/null || true
    rm -rf "/etc/netns/$ns"
  done
}

write_wrappers() {  # the cluster's commands, each run inside the controller's namespace
  local command real
  mkdir -p "$DIR/bin"
  for command in "${COMMANDS[@]}"; do
    real=$(command -v "$command") || continue
    printf '#!/bin/sh\nexec ip netns exec %s %s "$@"\n' "$(namespace ctl)" "$real" > "$DIR/bin/$command"
    chmod +x "$DIR/bin/$command"
  done
}

write_conf() {
  local cpus memory host mode=$1 ctl_line node_lines
  cpus=$(nproc)
  memory=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2 ))  # half each: the nodes share this host
  host=$(hostname)
  mkdir -p "$DIR/state" "$DIR/log" "$DIR/spool"
  for node in "${NODES[@]}"; do mkdir -p "$DIR/spool/$node"; done
  if [[ $mode == netns ]]; then
    ctl_line="ctl(${ADDRESS[ctl]})"
    node_lines="NodeName=n1 NodeHostname=n1 NodeAddr=${ADDRESS[n1]} Port=17001 CPUs=$cpus RealMemory=$memory State=UNKNOWN
NodeName=n2 NodeHostname=n2 NodeAddr=${ADDRESS[n2]} Port=17002 CPUs=$cpus RealMemory=$memory State=UNKNOWN"
  else
    ctl_line="$host(127.0.0.1)"
    node_lines="NodeName=n[1-2] NodeHostname=$host NodeAddr=127.0.0.1 Port=[17001-17002] CPUs=$cpus RealMemory=$memory State=UNKNOWN"
  fi
  cat > "$CONF" <<CONF
ClusterName=spangpt-local
SlurmctldHost=$ctl_line
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
SlurmdTimeout=30
InactiveLimit=0
$node_lines
PartitionName=local Nodes=n[1-2] Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
}

# Daemons are found by their command line: each names this cluster's config (and its node).
daemon_pattern() { echo "$1 -f $CONF${2:+ -N $2}\$"; }
running() { pgrep -f "$(daemon_pattern "$@")" >/dev/null; }

start() {
  [[ $(id -u) == 0 ]] || die "start needs root (munged and slurmd run as root here)"
  command -v slurmctld >/dev/null || die "slurmctld not found: apt-get install slurm-wlm munge"
  local mode; mode=$(net_mode)
  write_conf "$mode"
  if ! pgrep -x munged >/dev/null; then  # its socket is a file: every namespace reaches it
    [[ -f /etc/munge/munge.key ]] || mungekey --create >/dev/null
    mkdir -p /run/munge && chown munge:munge /run/munge 2>/dev/null || true
    munged --force
  fi
  if [[ $mode == netns ]]; then
    [[ -d /run/netns && -e /run/netns/$(namespace ctl) ]] || { net_down; net_up; }
    write_wrappers
    running slurmctld || in_member ctl slurmctld -f "$CONF"
    for node in "${NODES[@]}"; do running slurmd "$node" || in_member "$node" slurmd -f "$CONF" -N "$node"; done
  else
    running slurmctld || slurmctld -f "$CONF"
    for node in "${NODES[@]}"; do running slurmd "$node" || slurmd -f "$CONF" -N "$node"; done
  fi
  echo "$mode" > "$DIR/net"
  for _ in $(seq 60); do
    if [[ $(slurm sinfo -h -o '%T' 2>/dev/null | grep -c '^idle') == 1 ]] &&
       [[ $(slurm sinfo -h -N -o '%T' | grep -c '^idle') == "${#NODES[@]}" ]]; then
      echo "local-cluster: up (${#NODES[@]} nodes, $mode). Use it with: eval \"\$($0 env)\""
      return 0
    fi
    sleep 1
  done
  die "nodes did not become idle; see $DIR/log/"
}

# One of the cluster's commands, where it reaches the controller.
slurm() {
  if [[ -f $DIR/net && $(cat "$DIR/net") == netns ]]; then
    SLURM_CONF=$CONF ip netns exec "$(namespace ctl)" "$@"
  else
    SLURM_CONF=$CONF "$@"
  fi
}

stop() {
  if running slurmctld; then  # cancel this cluster's jobs and let their steps end before the daemons go
    slurm scancel --quiet --user="$(id -un)" 2>/dev/null || true
    for _ in $(seq 45); do
      [[ -z $(slurm squeue -h -t RUNNING,COMPLETING 2>/dev/null) ]] && break
      sleep 1
    done
  fi
  pkill -f "$(daemon_pattern slurmctld)" || true
  for node in "${NODES[@]}"; do pkill -f "$(daemon_pattern slurmd "$node")" || true; done
  local gone=0
  for _ in $(seq 30); do
    pgrep -f "slurm(ctl)?d -f $CONF" >/dev/null || { gone=1; break; }
    sleep 1
  done
  if [[ $(cat "$DIR/net" 2>/dev/null) == netns ]]; then net_down; rm -rf "$DIR/bin"; fi
  rm -f "$DIR/net"
  (( gone )) || die "daemons still running after 30 s"
  echo "local-cluster: stopped"
}

env_lines() {
  echo "export SLURM_CONF=$CONF"
  if [[ $(cat "$DIR/net" 2>/dev/null) == netns ]]; then echo "export PATH=$DIR/bin:\$PATH"; fi
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) slurm sinfo -N ;;
  env) env_lines ;;
  exec) shift; slurm "$@" ;;  # e.g. local-cluster.sh exec scontrol show nodes
  netns) [[ $(cat "$DIR/net" 2>/dev/null) == netns ]] || die "netns: the cluster is not running in netns mode"
         namespace "${2:?netns MEMBER: ctl, n1, n2 or br}" ;;  # ip netns exec "$(local-cluster.sh netns n2)" ...
  *) echo "usage: $0 start|stop|status|env|exec COMMAND...|netns MEMBER" >&2; exit 2 ;;
esac
