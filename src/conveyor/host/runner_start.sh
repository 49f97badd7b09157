# runner_start.sh: start conveyor's runner for a job in one round trip: check that the runner
# image is on the host, create the state directories, find the Docker engine's unix socket,
# read the runner container's state (its name is the environment's lock), remove a finished
# one, write the job from stdin (0600), `docker run` the runner and (with "attach") go on as
# the run's attach process in the same connection, then print the run's record once the runner
# has exited.
# shellcheck shell=sh
#
# Arguments:
#   $1  the runner image
#   $2  the runner container's name (<app>-<env>-runner)
#   $3  the job file's path (<state_dir>/jobs/<id>.json)
#   $4  "attach": once the runner runs, print "::started::" and run
#       `docker exec -i $2 python -m conveyor.runner attach <state_dir> <id> 0` (the run's
#       journal on stdout, the controller's control lines on stdin); when the journal then
#       ends with run_finished, wait for the runner to exit (`docker wait`) and print
#       "::journal::" and the whole journal, "::record::" and the record
#       <state_dir>/deployments/<id>.json; "": exit 0 there
#   $5  how many directories follow
#   $6... those directories, created first (mode 0700 when new): the state directory, its
#       jobs/ and runs/, the backup directory; then the `docker run` options, the image and
#       the runner's command, without the volume of the engine's socket (added here:
#       "<socket>:/var/run/docker.sock", the socket of $DOCKER_HOST)
# Stdin: the job (JSON, with its secrets) on its first line, written to $3 (mode 0600) only
#   when the runner starts; the file is removed again when `docker run` fails. With
#   "attach", the rest of stdin is the attach process's.
# Stdout: 75: the running runner's labels (JSON, one line); 76: "<deployment id> <time its
#   runner stopped> <socket>"; 4: $DOCKER_HOST; "attach" and started: "::started::" then the
#   journal's lines (then, the run finished: "::journal::" and the whole journal, "::record::"
#   and the record). Stderr: docker's error (exit 1).
# Exit: 0 the runner started; 3 the runner image is not on the host (nothing done); 4
#   DOCKER_HOST is not a unix socket; 75 the lock is held: the runner is running (or being
#   restarted by its restart policy); 76 a stopped
#   runner's run is unfinished (its journal has no run_finished): recover it first (nothing
#   removed); 77 another runner took the name meanwhile (try again); 1 otherwise. With
#   "attach" and started: 0 the run finished and its record printed, 3 finished without a
#   record (it never took the lock), else the attach process's exit code.
img=$1 name=$2 job=$3 attach=$4 n=$5
shift 5
docker image inspect --format '{{.Id}}' "$img" >/dev/null 2>&1 || exit 3
umask 077
while [ "$n" -gt 0 ]; do
  mkdir -p "$1" || exit 1
  shift
  n=$((n - 1))
done
host=${DOCKER_HOST:-unix:///var/run/docker.sock}
case $host in
  unix://*) sock=${host#unix://} ;;
  *) printf '%s\n' "$host"; exit 4 ;;
esac
nl='
'
# one inspect: "<running> <stopped at> <deployment>", then the labels as JSON
out=$(docker container inspect --format '{{or .State.Running .State.Restarting}} {{.State.FinishedAt}} {{index .Config.Labels "conveyor.deployment"}}
{{json .Config.Labels}}' "$name" 2>/dev/null)
if [ -n "$out" ]; then
  state=${out%%"$nl"*}
  running=${state%% *}
  finished=${state#* }
  rid=${finished#* }
  finished=${finished%% *}
  if [ "$running" = true ]; then
    labels=${out#*"$nl"}
    if [ "$labels" = "$out" ] || [ -z "$labels" ]; then labels='{}'; fi
    printf '%s\n' "$labels"
    exit 75
  fi
  if [ -n "$rid" ] && [ "$rid" != "<no value>" ]; then
    journal="$(dirname "$(dirname "$job")")/runs/$rid/journal.jsonl"
    if [ -f "$journal" ] && ! tail -n 1 "$journal" | grep -q '"run_finished"'; then
      echo "$rid $finished $sock"
      exit 76
    fi
  fi
  # not --force: a runner started meanwhile by another controller is not removed (its
  # `docker run` below then meets a conflict: 77)
  docker rm "$name" >/dev/null 2>&1
fi
# one line (read byte by byte: what follows it on stdin is left for the attach process)
IFS= read -r line || [ -n "$line" ] || exit 1
if ! { printf '%s\n' "$line" > "$job" && chmod 600 "$job"; }; then
  rm -f "$job"
  exit 1
fi
line=
if err=$(docker run --volume "$sock:/var/run/docker.sock" "$@" 2>&1 >/dev/null); then
  [ "$attach" = attach ] || exit 0
  echo '::started::'
  jobs=${job%/*} rid=${job##*/}
  state=${jobs%/*} rid=${rid%.json}
  docker exec -i "$name" python -m conveyor.runner attach "$state" "$rid" 0
  rc=$?
  # the run finished (the journal's last line; not a detach, not a controller gone): once the
  # runner has exited (the lock is free), the whole journal (the runner's exit usually ends
  # the attach process before it printed the last lines) and the record, in this connection
  journal="$state/runs/$rid/journal.jsonl"
  if tail -n 1 "$journal" 2>/dev/null | grep -q '"run_finished"'; then
    docker wait "$name" >/dev/null 2>&1
    echo '::journal::'
    cat "$journal"
    echo '::record::'
    cat "$state/deployments/$rid.json" 2>/dev/null || exit 3
    exit 0
  fi
  exit "$rc"
fi
rm -f "$job"
case $err in
  *Conflict*) exit 77 ;;
esac
printf '%s\n' "$err" >&2
exit 1
