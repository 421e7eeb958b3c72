"""What spangpt knows about SLURM, in one place: node lists, the head node, the rendezvous port.

The batch scripts (slurm/phase.sh) and the trainer under plain `srun` (launcher.distributed) both
need the job's head node and one port that every node derives alike; computing both here keeps
the two launch paths from drifting apart. The shell reaches it through the CLI:

    python -m slurm.job rendezvous                     # head-address:port of the current job
    python -m slurm.job run-dir --config A.yaml [B.yaml ...] [--set key=value ...]

Every error is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from typing import NoReturn

MAX_HOSTS = 65536  # SLURM's own cap on one bracket range; also caps a whole list
SCONTROL_TIMEOUT_S = 30  # scontrol retries for a minute when it cannot read slurm.conf; never hang a launch
PORT_BASE = 20000
RANGE_ITEM = re.compile(r"(\d+)(?:-(\d+))?")


def _bracket_values(nodelist: str, inner: str) -> list[str]:
    """`01-03,7` -> ['01', '02', '03', '7']: a range keeps its low end's width, as SLURM pads."""
    values: list[str] = []
    for item in inner.split(","):
        match = RANGE_ITEM.fullmatch(item)
        if match is None:
            raise ValueError(f"nodelist {nodelist!r}: [{inner}] holds {item!r}, not a number or a range like 01-04")
        low, high = match.group(1), match.group(2) or match.group(1)
        if int(low) > int(high):
            raise ValueError(f"nodelist {nodelist!r}: range {item} runs backwards")
        if int(high) - int(low) + 1 > MAX_HOSTS:
            raise ValueError(f"nodelist {nodelist!r}: range {item} has more than {MAX_HOSTS} hosts")
        values += [str(n).zfill(len(low)) for n in range(int(low), int(high) + 1)]
    return values


def _split_groups(nodelist: str) -> list[str]:
    """Split at the commas outside brackets, checking that every bracket is closed and none nests."""
    groups: list[str] = []
    start, open_at = 0, -1
    for i, char in enumerate(nodelist):
        if char == "[":
            if open_at >= 0:
                raise ValueError(f"nodelist {nodelist!r}: '[' at {i} inside another bracket")
            open_at = i
        elif char == "]":
            if open_at < 0:
                raise ValueError(f"nodelist {nodelist!r}: ']' at {i} without its '['")
            open_at = -1
        elif char == "," and open_at < 0:
            groups.append(nodelist[start:i])
            start = i + 1
    if open_at >= 0:
        raise ValueError(f"nodelist {nodelist!r}: '[' at {open_at} is never closed")
    return groups + [nodelist[start:]]


def _expand_group(nodelist: str, group: str) -> list[str]:
    """One comma-separated entry, e.g. `rack[1-2]-node[01-02]`, in the order scontrol prints it."""
    if not group:
        raise ValueError(f"nodelist {nodelist!r}: empty host name (a stray comma?)")
    parts = re.split(r"\[([^\]]*)\]", group)  # text, bracket, text, bracket, ..., text
    texts, brackets = parts[0::2], [_bracket_values(nodelist, inner) for inner in parts[1::2]]
    if brackets and texts[-1]:
        raise ValueError(f"nodelist {nodelist!r}: {texts[-1]!r} after the last ']' (SLURM allows no suffix there)")
    # SLURM's hostlist.c recurses from the last bracket of the prefix, so with n brackets the
    # outermost loop is bracket n-2, then n-3 ... 0, and bracket n-1 varies fastest.
    order = [*range(len(brackets) - 2, -1, -1), len(brackets) - 1] if brackets else []
    count = 1
    for values in brackets:
        count *= len(values)
    if count > MAX_HOSTS:
        raise ValueError(f"nodelist {nodelist!r}: {group} names more than {MAX_HOSTS} hosts")
    hosts = []
    for combination in itertools.product(*(brackets[i] for i in order)):
        chosen = dict(zip(order, combination))
        hosts.append("".join(text + chosen.get(i, "") for i, text in enumerate(texts)))
    return hosts


def expand_hostlist(nodelist: str) -> list[str]:
    """SLURM's compressed host list (`gpu[01-04]`, `a1,b[2-3],c`) as host names, in SLURM's order.

    Pure Python, for nodes without `scontrol` on PATH; a malformed list is one ValueError line.
    """
    if not nodelist.strip():
        raise ValueError("nodelist is empty")
    if re.search(r"\s", nodelist):
        raise ValueError(f"nodelist {nodelist!r}: contains whitespace")
    return [host for group in _split_groups(nodelist) for host in _expand_group(nodelist, group)]


def _scontrol(env: Mapping[str, str], *args: str) -> str | None:
    """scontrol's output, or None where it is absent from env's PATH, fails or hangs."""
    path = shutil.which("scontrol", path=env.get("PATH", os.defpath))
    if path is None:
        return None
    try:
        result = subprocess.run([path, *args], env=dict(env), capture_output=True, text=True,
                                timeout=SCONTROL_TIMEOUT_S, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout


def _nodelist(env: Mapping[str, str]) -> str | None:
    return env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST") or None


def head_node(env: Mapping[str, str]) -> str:
    """The job's first node: SLURM's own expansion when scontrol is on env's PATH, ours otherwise."""
    nodelist = _nodelist(env)
    if nodelist is None:
        raise ValueError("SLURM_JOB_NODELIST is not set: not inside a SLURM job")
    hosts = (_scontrol(env, "show", "hostnames", nodelist) or "").split()
    return hosts[0] if hosts else expand_hostlist(nodelist)[0]


def head_address(env: Mapping[str, str]) -> str:
    """Where the other nodes reach the head node: its NodeAddr, which need not be a resolvable name
    (the emulated cluster's n1 is 127.0.0.1); the host name when scontrol cannot say; 127.0.0.1
    outside a job."""
    if _nodelist(env) is None:
        return "127.0.0.1"
    head = head_node(env)
    match = re.search(r"\bNodeAddr=(\S+)", _scontrol(env, "show", "node", head) or "")
    return match.group(1) if match else head


def node_addresses(env: Mapping[str, str]) -> dict[str, str]:
    """{node: NodeAddr} of the job's nodes, from one `scontrol show node`; empty where scontrol cannot say."""
    nodelist = _nodelist(env)
    if nodelist is None:
        return {}
    hosts = set((_scontrol(env, "show", "hostnames", nodelist) or "").split() or expand_hostlist(nodelist))
    found = {}
    for block in (_scontrol(env, "show", "node") or "").split("\n\n"):
        name, address = re.search(r"\bNodeName=(\S+)", block), re.search(r"\bNodeAddr=(\S+)", block)
        if name and address and name.group(1) in hosts:
            found[name.group(1)] = address.group(1)
    return found


def check_rendezvous(env: Mapping[str, str], head: str) -> None:
    """Refuse, as a ValueError, a rendezvous on a loopback address in a job of several nodes
    (launcher/network.py says when loopback is right: every node is this host)."""
    from launcher.network import loopback_rendezvous, resolve

    nodes = int(env.get("SLURM_JOB_NUM_NODES") or env.get("SLURM_NNODES") or 1)
    try:
        address = resolve(head)
    except OSError:  # not a loopback name, at least; the launcher reports a name nobody can resolve
        return
    problem = loopback_rendezvous(head, address, nodes, node_addresses(env) if nodes > 1 else None)
    if problem is not None:
        raise ValueError(f"rendezvous: {problem}")


def rendezvous_port(job_id: int | str) -> int:
    """A port every node of the job derives alike without talking: 20000 + job id mod 20000.
    Jobs sharing a head node collide only when their ids differ by a multiple of 20000."""
    try:
        number = int(job_id)
    except ValueError:
        raise ValueError(f"SLURM_JOB_ID {job_id!r} is not a number") from None
    return PORT_BASE + number % PORT_BASE


def tasks_on_this_node(env: Mapping[str, str]) -> int:
    """How many of the step's tasks share this node: --ntasks-per-node when given, else this node's
    entry of SLURM_TASKS_PER_NODE (`2(x3),1` means 2 tasks on each of 3 nodes, then 1)."""
    if env.get("SLURM_NTASKS_PER_NODE"):
        return int(env["SLURM_NTASKS_PER_NODE"].split("(")[0].split(",")[0])
    counts: list[int] = []
    for entry in env.get("SLURM_TASKS_PER_NODE", "1").split(","):
        match = re.fullmatch(r"(\d+)(?:\(x(\d+)\))?", entry)
        if match is None:
            raise ValueError(f"SLURM_TASKS_PER_NODE {env['SLURM_TASKS_PER_NODE']!r}: cannot read {entry!r}")
        counts += [int(match.group(1))] * int(match.group(2) or 1)
    node = int(env.get("SLURM_NODEID", "0"))
    return counts[node] if node < len(counts) else counts[0]


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line, like every other error here."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message}\n")


def _run_dir(configs: list[str], overrides: list[str]) -> str:
    """The run directory of the resolved config (placeholders filled, overrides applied), so the
    scripts can put logs there and hand it to the next phase before the run starts."""
    from launcher.config import load_config  # pydantic, yaml and the model registry (torch): this command only

    return str(load_config(configs, overrides).run_dir)


def _timeout_seconds(configs: list[str], overrides: list[str]) -> int:
    """distributed.timeout_minutes of the resolved config, in whole seconds (at least 1): the scripts
    give torchrun's rendezvous the same bound, so its agents do not outwait the trainers."""
    from launcher.config import load_config

    return max(1, round(load_config(configs, overrides).distributed.timeout_minutes * 60))


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    parser = _Parser(prog="python -m slurm.job", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("rendezvous", help="print head-address:port for the current job")
    run_dir = commands.add_parser("run-dir", help="print the run_dir of the resolved config")
    run_dir.add_argument("--config", required=True, nargs="+")
    run_dir.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE")
    timeout = commands.add_parser("timeout", help="print distributed.timeout_minutes of the resolved config, in seconds")
    timeout.add_argument("--config", required=True, nargs="+")
    timeout.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    try:
        if args.command == "rendezvous":
            if "SLURM_JOB_ID" not in env:
                raise ValueError("SLURM_JOB_ID is not set: rendezvous runs inside a SLURM job")
            head = head_address(env)
            check_rendezvous(env, head)
            print(f"{head}:{rendezvous_port(env['SLURM_JOB_ID'])}")
        elif args.command == "timeout":
            print(_timeout_seconds(args.config, args.overrides))
        else:
            print(_run_dir(args.config, args.overrides))
    except ValueError as exc:  # launcher.config's ConfigError is a ValueError
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. a directory given as a config file
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
