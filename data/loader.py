"""Training micro-batches: built in step or ahead on a background thread, trailing padding cut.

A GPU trains SPEC's model in milliseconds per step, while span corruption is Python work per
example; built in step, the device would idle while the next batch is made. The prefetching
loader builds the next micro-batches on a thread (pinned, for an asynchronous copy) while the
current one trains. The stream's own position, which checkpoints save, moves only when a batch
is taken, so a checkpoint never counts a batch that was built but not trained on.

Both loaders cut the columns after the last non-PAD target of the micro-batch: every variant is
causal and the loss ignores PAD targets, so those positions change neither the loss nor any
gradient, yet they are 13% of pretraining's and 54% of finetuning's positions on the real data
(python -m bench.padding).
"""

from __future__ import annotations

import itertools
import multiprocessing
import queue
import signal
import threading
from collections.abc import Iterator

import torch
import torch.utils.data

from data.errors import DataError
from data.stream import ShardedExampleStream
from data.vocab import PAD_ID

Batch = tuple[int, torch.Tensor, torch.Tensor]  # (global position of the rank's first example, x, y)


def trimmed_width(y: torch.Tensor) -> int:
    """Columns up to the last one whose target is not PAD in some row (at least one)."""
    real = (y != PAD_ID).any(dim=0).nonzero()
    return int(real[-1]) + 1 if len(real) else 1


def trim_trailing_padding(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x and y without the trailing columns whose targets are PAD in every row (at least one column kept)."""
    width = trimmed_width(y)
    return x[:, :width].contiguous(), y[:, :width].contiguous()


class Loader:
    """Hands out micro-batches; a context manager, so a background thread never outlives training."""

    stream: ShardedExampleStream

    def next_micro_batch(self) -> Batch:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> "Loader":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class InStepLoader(Loader):
    """Builds each micro-batch when asked: no thread (CPU training, where every core computes)."""

    def __init__(self, stream: ShardedExampleStream) -> None:
        self.stream = stream

    def next_micro_batch(self) -> Batch:
        position = int(self.stream.my_positions()[0])
        x, y = trim_trailing_padding(*self.stream.next_micro_batch())
        return position, x, y


class PrefetchingLoader(Loader):
    """Keeps up to `depth` micro-batches ready, built from the stream's position at creation."""

    def __init__(self, stream: ShardedExampleStream, depth: int = 4, pin_memory: bool = False) -> None:
        self.stream = stream
        self.ready: queue.Queue = queue.Queue(maxsize=depth)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._build, args=(stream.position, pin_memory), daemon=True,
                                       name="spangpt-prefetch")
        self.thread.start()

    def _build(self, position: int, pin_memory: bool) -> None:
        try:
            while not self.stopping.is_set():
                positions = self.stream.positions_at(position)
                x, y = trim_trailing_padding(*self.stream.examples_at(positions))
                if pin_memory:
                    x, y = x.pin_memory(), y.pin_memory()
                self._put((int(positions[0]), x, y))
                position += self.stream.examples_per_micro_step
        except BaseException as exc:  # handed to the training thread, raised there
            self._put(exc)

    def _put(self, item) -> None:
        while not self.stopping.is_set():
            try:
                self.ready.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def next_micro_batch(self) -> Batch:
        item = self.ready.get()
        if isinstance(item, BaseException):
            raise item
        self.stream.position += self.stream.examples_per_micro_step
        return item

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)


class _MicroBatchChunks(torch.utils.data.Dataset):
    """Chunk c: this rank's micro-steps c*S .. c*S+S-1 from the stream's `start` position, packed as one
    tensor (S, 2, m, T) of inputs and targets, with each micro-step's first global position and width
    after trimming. Built in a worker process; the stream's own position is never moved here."""

    def __init__(self, stream: ShardedExampleStream, start: int, steps: int) -> None:
        self.stream, self.start, self.steps = stream, start, steps

    def __len__(self) -> int:
        return 2**62  # endless, as the stream is; the sampler says which chunks

    def __getitem__(self, chunk: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | DataError:
        try:
            return self.build(chunk)
        except DataError as exc:  # returned, not raised: torch would re-raise it as a RuntimeError with a traceback
            return exc

    def build(self, chunk: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        per_step = self.stream.examples_per_micro_step
        first = self.start + chunk * self.steps * per_step
        shares = [self.stream.positions_at(first + k * per_step) for k in range(self.steps)]
        pairs = [self.stream.examples_at(share) for share in shares]
        packed = torch.stack([torch.stack((x, y)) for x, y in pairs])
        positions = torch.tensor([int(share[0]) for share in shares])
        widths = torch.tensor([trimmed_width(y) for _, y in pairs])
        return packed, positions, widths


class WorkerLoader(Loader):
    """Micro-batches built ahead by `workers` processes, chunk by chunk, and moved to `device` in one
    transfer per chunk: for GPUs, which train a micro-batch faster than one Python thread corrupts it.

    The same micro-batches in the same order as InStepLoader's (a chunk is a run of consecutive
    micro-steps of this rank's share of the global stream, built by the stream's own examples_at), so
    resume and world-size invariance hold; the stream's position moves only as batches are taken.
    """

    STEPS_PER_CHUNK = 16  # micro-steps per transfer: 1,024 examples at SPEC's 64 per rank of 2

    def __init__(self, stream: ShardedExampleStream, workers: int, device: torch.device,
                 steps_per_chunk: int = STEPS_PER_CHUNK) -> None:
        self.stream, self.device = stream, device
        chunks = _MicroBatchChunks(stream, stream.position, steps_per_chunk)
        self.loader = torch.utils.data.DataLoader(
            chunks, batch_size=None, sampler=itertools.count(), num_workers=workers, prefetch_factor=4,
            pin_memory=device.type == "cuda", persistent_workers=False, multiprocessing_context=_start_method(),
            worker_init_fn=_leave_stop_signals_to_the_trainer)
        self.chunks: Iterator | None = iter(self.loader)
        self.pending: list[Batch] = []

    def _next_chunk(self) -> None:
        item = next(self.chunks)
        if isinstance(item, DataError):
            raise item
        packed, positions, widths = item
        packed = packed.to(self.device, non_blocking=True)
        self.pending = [(int(p), packed[k, 0, :, :w], packed[k, 1, :, :w])
                        for k, (p, w) in enumerate(zip(positions.tolist(), widths.tolist()))][::-1]

    def next_micro_batch(self) -> Batch:
        if not self.pending:
            self._next_chunk()
        batch = self.pending.pop()
        self.stream.position += self.stream.examples_per_micro_step
        return batch

    def close(self) -> None:
        self.chunks = None  # the DataLoader's iterator ends its worker processes when dropped
        self.pending = []


def _leave_stop_signals_to_the_trainer(_worker_id: int) -> None:
    """A stop signal (scancel's SIGTERM to every process of a step, a time box's to its process group)
    is the trainer's to act on: it saves a checkpoint at the next step and then ends these workers
    itself. A worker that died of it first would make the trainer's next batch a crash."""
    for sig in (signal.SIGTERM, signal.SIGUSR1):  # launcher/preemption.py's STOP_SIGNALS
        signal.signal(sig, signal.SIG_IGN)


def _start_method() -> str:
    """fork where it is safe and fast (workers need no CUDA and copy the stream for free); spawn elsewhere."""
    return "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"


def micro_batch_loader(stream: ShardedExampleStream, prefetch: bool, workers: int, device: torch.device) -> Loader:
    """Worker processes when `workers` > 0 (GPU runs), else a prefetching thread (pinned for a GPU) or
    in-step building."""
    if workers > 0:
        return WorkerLoader(stream, workers, device)
    return PrefetchingLoader(stream, pin_memory=device.type == "cuda") if prefetch else InStepLoader(stream)
