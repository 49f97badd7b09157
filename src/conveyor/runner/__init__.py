"""The host-side runner: a remote plan executes ON the environment's host, in a container of
conveyor's runner image next to the host's Docker engine, detached from the SSH session.

    controller (laptop, CI job)              host (dev/prod VM)
    ---------------------------              ------------------------------------------
    write the job (0600) ------------------> <state_dir>/jobs/<id>.json
    docker run --name <app>-<env>-runner --> runner: builds the plan from the job, runs it,
                                             journals every event (runs/<id>/journal.jsonl)
    docker exec -i <runner> ... attach <---> streams the journal; takes verdicts (tests,
                                             validate_command) and a cancel from the controller

The controller may vanish at any time (Ctrl-C, SIGKILL, a cut SSH connection, a cancelled CI
job): the runner finishes, or undoes to the previous version, on its own. A step that needs the
controller (the dev tests, prod's validate_command) fails when the controller is gone. A runner
killed on the host (or by a Docker restart) is restarted by its restart policy, finds its
unfinished journal and recovers: it undoes what the journal says was done, records the
deployment as interrupted, and releases the lock. See docs/runner.md.
"""
