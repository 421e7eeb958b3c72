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

import queue
import threading

import torch

from data.stream import ShardedExampleStream
from data.vocab import PAD_ID

Batch = tuple[int, torch.Tensor, torch.Tensor]  # (global position of the rank's first example, x, y)


def trim_trailing_padding(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x and y without the trailing columns whose targets are PAD in every row (at least one column kept)."""
    real = (y != PAD_ID).any(dim=0).nonzero()
    width = int(real[-1]) + 1 if len(real) else 1
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


def micro_batch_loader(stream: ShardedExampleStream, prefetch: bool, pin_memory: bool) -> Loader:
    return PrefetchingLoader(stream, pin_memory=pin_memory) if prefetch else InStepLoader(stream)
