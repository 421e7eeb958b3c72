"""The real TensorBoard server on a real run: what its HTTP API serves is what metrics.jsonl and
predictions.txt hold, and stopping it leaves no process behind."""

from __future__ import annotations

import html
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from conftest import CONFIGS, TINY
from launch import check, launch, metrics, worker_env

pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install tensorboard)")

SAMPLES = 8  # eval.samples' default: the first 8 dev questions are shown
URL = re.compile(r"TensorBoard \S+ at (http://127\.0\.0\.1:\d+/)")


class TensorBoardServer:
    """`python -m tensorboard.main --logdir RUN --host 127.0.0.1 --port 0` in its own process group (it
    starts a data-server child); port 0 lets the kernel pick a free port, read back from its banner."""

    def __init__(self, logdir: Path, log: Path) -> None:
        self.log = log
        command = [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", "127.0.0.1",
                   "--port", "0", "--reload_interval", "1"]
        with open(log, "w", encoding="utf-8") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=worker_env(),
                                            start_new_session=True)
        self.group = self.process.pid  # a new session: its process group id is its pid
        try:
            self.url = self._wait_for_url(timeout=30)
        except BaseException:  # no banner: stop the server before failing, or it outlives the test
            os.killpg(self.group, signal.SIGKILL)
            raise

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def _wait_for_url(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"tensorboard exited with {self.process.returncode}:\n{self.output()}")
            found = URL.search(self.output())
            if found:
                return found.group(1)
            time.sleep(0.2)
        pytest.fail(f"tensorboard printed no URL within {timeout} s:\n{self.output()}")

    def get(self, route: str, **query: str):
        url = self.url + route.lstrip("/") + ("?" + urllib.parse.urlencode(query) if query else "")
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.loads(response.read().decode("utf-8"))
        except urllib.error.URLError as error:
            pytest.fail(f"GET {url}: {error}\n{self.output()}")

    def wait_for(self, ready, what: str, timeout: float = 20):
        """Poll until ready() is true: the server loads event files in the background after it answers."""
        deadline = time.monotonic() + timeout
        while not ready():
            if time.monotonic() > deadline:
                pytest.fail(f"tensorboard did not serve {what} within {timeout} s:\n{self.output()}")
            time.sleep(0.3)

    def stop(self, timeout: float = 15) -> None:
        if self.process.poll() is None:
            os.killpg(self.group, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.group, signal.SIGKILL)
            self.process.wait(timeout=timeout)
        deadline = time.monotonic() + timeout
        while live_processes(self.group) and time.monotonic() < deadline:
            time.sleep(0.2)


def live_processes(group: int) -> list[str]:
    """The processes of a process group that have not exited (an exited child of an exited parent may stay
    a zombie until PID 1 reaps it: it runs nothing), as 'pid command' lines read from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            continue  # it exited while being read
        state, pgrp = fields[0], int(fields[2])
        if pgrp == group and state not in ("Z", "X"):
            found.append(f"{stat.parent.name} {command}")
    return found


class TableCells(HTMLParser):
    """The rows of <td>/<th> text in rendered markdown; the innermost table's rows have 3 cells."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append("".join(self.cell).strip())
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


@pytest.fixture(scope="module")
def evaluated_run(world, tmp_path_factory) -> Path:
    """Finetune from scratch for 3 steps, then the dev evaluation: train/* and eval/accuracy scalars and the
    eval/samples text."""
    run = tmp_path_factory.mktemp("tensorboard") / "run"
    overrides = [f"run_dir={run}", f"data.corpus={world / 'wiki.txt'}",
                 f"data.finetune={world / 'birth_places_train.tsv'}", f"eval.questions={world / 'birth_dev.tsv'}",
                 "train.global_batch_size=16", "train.max_steps=3", *TINY]
    check(launch([str(CONFIGS / "finetune_scratch.yaml")], overrides, launcher="python"))
    return run


def test_tensorboard_server_serves_the_runs_scalars_and_samples(evaluated_run, world, tmp_path):
    records = metrics(evaluated_run)
    expected = {tag: [(m["step"], m[tag]) for m in records if tag in m] for tag in
                ("train/loss", "train/lr", "train/grad_norm", "train/epoch", "eval/accuracy")}
    assert [step for step, _ in expected["train/loss"]] == [1, 2, 3] and expected["eval/accuracy"][0][0] == 3
    predictions = (evaluated_run / "predictions.txt").read_text(encoding="utf-8").splitlines()
    questions = [line.split("\t") for line in (world / "birth_dev.tsv").read_text(encoding="utf-8").splitlines()]

    server = TensorBoardServer(evaluated_run, tmp_path / "tensorboard.log")
    try:
        assert server.get("/data/runs") == ["tensorboard"]  # the event files' folder is the run's name

        def scalar(tag: str) -> list:
            return server.get("/data/plugin/scalars/scalars", run="tensorboard", tag=tag)

        def text(markdown: str) -> list:
            return server.get("/data/plugin/text/text", run="tensorboard", tag="eval/samples/text_summary",
                              markdown=markdown)

        def loaded() -> bool:
            tags = server.get("/data/plugin/scalars/tags").get("tensorboard", {})
            return expected.keys() <= tags.keys() and len(scalar("train/loss")) == 3 and bool(text("true"))

        server.wait_for(loaded, "the run's scalars and text")

        for tag, values in expected.items():
            served = [(step, value) for _, step, value in scalar(tag)]  # [wall_time, step, value]
            # Event files store scalars as float32: metrics.jsonl's doubles, rounded so, are what comes back.
            assert served == [(step, float(np.float32(value))) for step, value in values], tag

        raw, = text("false")  # one text event, at the final step; its markdown source, HTML-escaped
        assert raw["step"] == 3
        rows = [f"| {q} | {p} | {a} |" for (q, a), p in zip(questions[:SAMPLES], predictions[:SAMPLES])]
        assert html.unescape(raw["text"]).count("\n| Where was") == SAMPLES
        for row in rows:
            assert row in html.unescape(raw["text"]), row

        rendered, = text("true")  # what the dashboard shows: the markdown rendered to a table
        parser = TableCells()
        parser.feed(rendered["text"])
        cells = [row for row in parser.rows if len(row) == 3]
        assert cells[0] == ["question", "prediction", "answer"]
        assert cells[1:] == [[q, p.strip(), a] for (q, a), p in zip(questions[:SAMPLES], predictions[:SAMPLES])]
        assert live_processes(server.group), "tensorboard's processes were not found while it ran"
    finally:
        server.stop()
    assert server.process.returncode is not None
    assert not live_processes(server.group), f"left running:\n{live_processes(server.group)}\n{server.output()}"
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(server.url + "data/runs", timeout=5)
