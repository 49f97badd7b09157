# runner_finish.sh: after a run's last event, wait (bounded) for its runner container to exit,
# so that the lock is free when the controller returns, and print the deployment's record.
# shellcheck shell=sh
#
# Arguments:
#   $1  the runner container's name
#   $2  how many times to look again (every 0.1 s) while it still runs
#   $3  the deployment record's path (<state_dir>/deployments/<id>.json)
# Stdin: not read.
# Stdout: the record (JSON).
# Exit: 0 the record printed (the runner may still run if it outlived the wait); 3 no record
#   (the run never took the lock).
n=0
while [ "$(docker container inspect --format '{{.State.Running}}' "$1" 2>/dev/null)" = true ]
do
  n=$((n + 1))
  [ "$n" -le "$2" ] || break
  sleep 0.1
done
cat "$3" 2>/dev/null || exit 3
