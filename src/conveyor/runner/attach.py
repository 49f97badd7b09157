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
JOURNAL = "journal.jsonl"


def _events(path: Path) -> list[str]:
    """The journal's complete lines (a line being written is left for the next read)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return []
    return [ln for ln in text[:text.rfind("\n") + 1].splitlines() if ln.strip()]


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

    for _ in range(100):  # the runner creates the directory right after it starts
        if (rd / JOURNAL).exists():
            break
        time.sleep(0.1)
    (rd / "heartbeat").touch()
    threading.Thread(target=beat, daemon=True).start()
    threading.Thread(target=control, daemon=True).start()
    sent = 0
    while True:
        lines = _events(rd / JOURNAL)
        for line in lines[max(sent, offset):]:
            print(line, flush=True)
        sent = max(sent, len(lines))
        if any(_finished(line) for line in lines[-3:]):
            done.set()
            return 0
        if detached.is_set():
            return 0
        time.sleep(0.1)


