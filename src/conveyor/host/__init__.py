"""Shell scripts that run on an environment's host, shipped as package data (`*.sh` here).

Each script is fixed text: every value reaches it as a positional argument ("$1"...), quoted by
`shlex.join`, or on stdin. They are POSIX sh, shellcheck-clean, and each is tested by running it
with `sh` on a temporary directory (tests/unit/host).

    script("lock")      the text of lock.sh
    argv("lock", ...)   ("sh", "-c", <text>, "conveyor-lock", ...): one argv for a transport
    shown(argv)         the argv for --dry-run, the script named by its summary
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

#: the scripts' directory: conveyor is installed as files (site-packages, the runner image's
#: /opt/conveyor/src), never zipped; `importlib.resources` would cost the runner's start-up
#: 15 ms before its first reads (`runner/prefetch.py`)
_HERE = Path(__file__).parent

#: what each script does, in one line (shown by --dry-run instead of the script's text)
SUMMARIES: dict[str, str] = {
    "lock": "mkdir $1/lock atomically, write holder.json from stdin (else print the holder, "
            "exit 75); inspect the app ($2) and db ($3) containers; the applied migrations: "
            "psql -U $4 -d $5 -c $6 in $3; whether the image $7 is present (and its labels); "
            "or the reads made before into $8, when done",
    "unlock": "rm -r $1/lock if holder.json names $2",
    "record": "stdin -> $1/history.jsonl (first line) and $1/deployments/$2.json; then unlock "
              "as above if $3 holds the lock",
    "status": "inspect the app, previous and db containers; the lock holder; the last history "
              "line",
    "image_files": "docker create $1 (never started), docker cp its $2 as a tar (gzip | "
                   "base64), docker rm",
    "backup": "docker exec $3 pg_dump --format=custom -U $4 -d $5 > $1/$2.dump.partial; verify "
              "(not empty, pg_restore --list reads it); metadata from stdin -> $1/$2.json; "
              "rename to $1/$2.dump; keep the newest $6 files matching $7 (never $8)",
    "copy_out": "docker create $1 (never started), docker cp its $2 into the host directory $3 "
                "(emptied first), docker rm",
    "db_password": "print the generated database password kept in $1 (with $2 = create: "
                   "generate it first when it is missing, 0600)",
    "list_backups": "name, size and metadata of the files in $1 matching $2",
    "verify_backup": "$1 is not empty and pg_restore --list (in $2) reads it",
    "restore": "in $2: psql -d postgres -c $5 -c $6 (a new database $4), pg_restore "
               "--exit-on-error --single-transaction -d $4 < $1 (dropped on failure)",
    "swap": "in $1: end other sessions ($3), then $4 in one transaction (bounded retries)",
    "with_env_file": "stdin -> the 0600 env file $1, run the rest of the argv, remove the file "
                     "whatever happens",
    "session": "read framed commands on stdin, run each with sh -c, mark its exit code",
    "proxy_switch": "stdin -> $1/nginx.conf (renamed into place; the previous one back if "
                    "`nginx -t` in $2 refuses it), SIGHUP $2, wait (at most $3 s) for a worker "
                    "of the new configuration",
    "rehearse": "restore: free disk in $2's data directory >= twice $5's size, psql -c $6 (a "
                "scratch database $4), pg_restore -d $4 < $5, count its rows (SQL on stdin; "
                "dropped on failure); drop: psql -c $7 -c $8",
    "runner_start": "the socket of $DOCKER_HOST; mkdir the $5 directories that follow; stdin "
                    "-> the job $3 (0600); docker run --pull never the rest with the socket "
                    "mounted (no such image: exit 3); only when the name $2 is taken: running, "
                    "its labels, exit 75; stopped with an unfinished journal: exit 76; else "
                    "removed and run again; with $4 = attach, the attach process, then (the run "
                    "finished) docker wait $2, rm $2 in the background, cat the journal and the "
                    "record",
    "runner_finish": "wait (at most $2 x 0.1 s) for the runner $1 to exit; cat the record $3",
}


#: reads started before they are needed (the runner's `lock.sh "" ...` as it starts): the
#: script's name and arguments -> the directory they go to; taken once by the step that uses
#: them (`take_reads`)
_READS: dict[tuple[str, ...], str] = {}


def reads_started(name: str, args: Sequence[str], directory: str) -> None:
    _READS[(name, *args)] = directory


def take_reads(name: str, args: Sequence[str]) -> str:
    """The directory of reads started for exactly this script and these arguments ("": none);
    a second call gets "" (the reads are used once)."""
    return _READS.pop((name, *args), "")


@functools.cache
def script(name: str) -> str:
    """The text of `<name>.sh`."""
    if name not in SUMMARIES:
        raise KeyError(f"no host script {name!r}")
    return (_HERE / f"{name}.sh").read_text(encoding="utf-8")


def argv(name: str, *args: str) -> tuple[str, ...]:
    """`sh -c SCRIPT conveyor-NAME ARGS...`: the script with its positional arguments."""
    return ("sh", "-c", script(name), f"conveyor-{name.replace('_', '-')}", *args)


def shown(argv_: Sequence[str]) -> list[str]:
    """argv for --dry-run: a host script named by its summary instead of printed in full."""
    texts = {script(n): n for n in SUMMARIES}
    return [f"<{texts[a]} script: {SUMMARIES[texts[a]]}>" if a in texts else a for a in argv_]
