# runner_finish.sh: after a run, wait (bounded) for its runner container to exit, so that the
# lock is free when the controller returns, then print what the controller has not seen of the
# run's journal and the deployment's record.
# shellcheck shell=sh
#
# Arguments:
#   $1  the runner container's name
#   $2  how many times to look again (every 0.1 s) while it still runs, after ten
#       quick looks (every 0.02 s)
#   $3  the deployment record's path (<state_dir>/deployments/<id>.json)
#   $4  the run's journal ("": not printed)
#   $5  how many of the journal's lines the controller has seen already
# Stdin: not read.
# Stdout: "::running::" when the runner still runs after the wait (exit 4); else, when $4 is
#   given, "::journal::" and the journal's lines after the first $5; then "::record::" and
#   the record (JSON).
# Exit: 0 the record printed; 3 no record (the run never took the lock, or has not ended); 4
#   the runner still runs.
n=0 quick=10
while [ "$(docker container inspect --format '{{.State.Running}}' "$1" 2>/dev/null)" = true ]
do
  # the runner exits right after its last event: looked at again soon at first
  if [ "$quick" -gt 0 ]; then
    quick=$((quick - 1))
    sleep 0.02
    continue
  fi
  n=$((n + 1))
  if [ "$n" -gt "$2" ]; then
    echo '::running::'
    exit 4
  fi
  sleep 0.1
done
if [ -n "$4" ]; then
  echo '::journal::'
  tail -n "+$(($5 + 1))" "$4" 2>/dev/null
fi
echo '::record::'
cat "$3" 2>/dev/null || exit 3
