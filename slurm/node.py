"""What srun starts on each node of a job: torchrun, watched, with the node's output kept on the node.

    python -m slurm.node --log RUN_DIR/slurm/JOB-%n.log [--grace SECONDS] -- python -m torch.distributed.run ...

Why a watcher: behind a lost link torchrun's agent on a node other than the head does not exit
when its trainers do. Its monitor loop asks the rendezvous store on the head node how many nodes
are waiting; torch's TCPStore client polls for the answer until its timeout, then sends a cancel
and waits for the reply to that with a blocking recv that only TCP's retransmission limit ends
(about 15 minutes on Linux; seen on the namespaced test cluster: the agent stayed in
TCPStore::doWait -> recv while its trainers had long exited). So every trainer that fails writes
a note (SPANGPT_FAILURE_NOTES, launcher.distributed.note_failure); once a note exists and none of
torchrun's trainers is left, torchrun gets --grace seconds to exit on its own, and is then stopped
with one line. A torchrun whose trainers succeeded is never stopped: it may wait in its exit
barrier for slower nodes.

Why a node log (%n is this node's host name): a node cut off from the batch host cannot send its
output to the job's log, so its trainers' last lines would be lost; the node log keeps them.

Signals (scancel, the time-limit warning) reach the trainers and torchrun directly from
slurmstepd; the watcher ignores them and keeps relaying output until torchrun is done.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import BinaryIO

DEFAULT_GRACE_S = 5.0
POLL_S = 0.5


def children(pid: int) -> list[int]:
    """The live child processes of pid, from /proc (zombies excluded: they have exited)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state, ppid, ...
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def relay(source: BinaryIO, sinks: list[BinaryIO]) -> None:
    """Copy torchrun's output to the job's log and the node's, as it comes (tqdm's \\r included)."""
    while chunk := os.read(source.fileno(), 65536):
        for sink in sinks:
            sink.write(chunk)
            sink.flush()


def watch(command: list[str], log_path: Path, grace_s: float) -> int:
    """Run command (torchrun) to its end, or stop it when it outlives its failed trainers by grace_s."""
    for name in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT):
        signal.signal(name, signal.SIG_IGN)
    host = socket.gethostname()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="spangpt-failures-") as notes, open(log_path, "ab") as log:
        env = {**os.environ, "SPANGPT_FAILURE_NOTES": notes}
        agent = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 preexec_fn=lambda: [signal.signal(s, signal.SIG_DFL)
                                                     for s in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)])
        relaying = threading.Thread(target=relay, args=(agent.stdout, [sys.stdout.buffer, log]), daemon=True)
        relaying.start()
        alone_since: float | None = None  # when a trainer had failed and none was left
        while agent.poll() is None:
            time.sleep(POLL_S)
            if not os.listdir(notes) or children(agent.pid):
                alone_since = None
                continue
            alone_since = alone_since or time.monotonic()
            if time.monotonic() - alone_since >= grace_s and agent.poll() is None:
                agent.kill()
                agent.wait()
                relaying.join(timeout=5)
                line = (f"spangpt: node {host}: torchrun was still running {grace_s:g} s after its trainers failed "
                        f"(waiting on the rendezvous store behind a lost link); stopped it\n").encode()
                for sink in (sys.stdout.buffer, log):
                    sink.write(line)
                    sink.flush()
                return 1
        relaying.join(timeout=5)
        return agent.returncode if agent.returncode >= 0 else 128 - agent.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m slurm.node", description=__doc__.splitlines()[0])
    parser.add_argument("--log", required=True, help="this node's log; %%n becomes the host name")
    parser.add_argument("--grace", type=float, default=DEFAULT_GRACE_S,
                        help="seconds torchrun gets to exit once its trainers have failed (default %(default)s)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- torchrun and its arguments")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.exit(2, "error: python -m slurm.node: no command after --\n")
    if args.grace <= 0:
        parser.exit(2, f"error: python -m slurm.node: --grace {args.grace:g}: must be positive\n")
    return watch(command, Path(args.log.replace("%n", socket.gethostname())), args.grace)


if __name__ == "__main__":
    sys.exit(main())
