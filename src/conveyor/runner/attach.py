"""`python -m conveyor.runner attach STATE_DIR RUN_ID [OFFSET]`, in the runner container:
print the run's journal from line OFFSET as it grows, until the run finishes; read the
controller's control lines (verdicts, cancel, detach) on stdin; EOF on stdin without a detach
means the controller is gone. Standard library only: it starts in a few milliseconds."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

HEARTBEAT_EVERY = 2.0
POLL = 0.05  # the journal is looked at this often (it is read from where the last read ended)
JOURNAL = "journal.jsonl"


class _Lines:
    """The journal's complete lines as it grows, read from where the last read stopped (a line
    being written is left for the next read)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pos = 0
        self.partial = b""
        self.count = 0

    def new(self) -> list[str]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                data = f.read()
        except OSError:
            return []
        self.pos += len(data)
        data = self.partial + data
        cut = data.rfind(b"\n") + 1
        self.partial = data[cut:]
        lines = [ln for ln in data[:cut].decode("utf-8", "replace").splitlines() if ln.strip()]
        self.count += len(lines)
        return lines


def _finished(line: str) -> bool:
    return line.startswith('{"event": "run_finished"')


def attach(state_dir: str, run_id: str, offset: int = 0) -> int:
    """Print the journal from line `offset` as it grows, until the run finishes; read control
    lines from stdin. EOF on stdin without a detach: the controller is gone."""
    rd = Path(f"{state_dir}/runs/{run_id}")
    detached = threading.Event()
    done = threading.Event()

    def beat() -> None:
        while not done.is_set() and not detached.is_set():
            try:
                (rd / "heartbeat").touch()
            except OSError:
                pass
            time.sleep(HEARTBEAT_EVERY)

    def control() -> None:
        for line in sys.stdin:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if "verdict" in msg:
                tmp = rd / f".verdict-{msg['step']}.tmp"
                tmp.write_text(json.dumps(msg["verdict"]))
                tmp.rename(rd / f"verdict-{msg['step']}.json")
            elif msg.get("cancel"):
                (rd / "cancel").touch()
            elif msg.get("detach"):
                detached.set()
                return
        if not done.is_set():
            detached.set()  # no heartbeat after the marker: a later one is a new controller
            (rd / "controller-gone").touch()
        detached.set()

    for _ in range(200):  # the runner creates the directory right after it starts
        if (rd / JOURNAL).exists():
            break
        time.sleep(POLL)
    (rd / "heartbeat").touch()
    threading.Thread(target=beat, daemon=True).start()
    threading.Thread(target=control, daemon=True).start()
    journal = _Lines(rd / JOURNAL)
    while True:
        first = journal.count
        lines = journal.new()
        for i, line in enumerate(lines, start=first):
            if i >= offset:
                print(line, flush=True)
        if any(_finished(line) for line in lines[-3:]):
            done.set()
            return 0
        if detached.is_set():
            return 0
        time.sleep(POLL)
