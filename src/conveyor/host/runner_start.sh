# runner_start.sh: start conveyor's runner for a job in one round trip: find the Docker
# engine's unix socket, create the state directories, write the job from stdin (0600) and
# `docker run` the runner (its container's name is the environment's lock); only when the name
# is taken, read that container's state (a live holder, a dead one, or a finished run's
# container to remove). With "attach", go on as the run's attach process in the same
# connection, then print the run's record once the runner has exited, and remove its container.
# shellcheck shell=sh
#
# Arguments:
#   $1  the runner image (named again in the `docker run` options below)
#   $2  the runner container's name (<app>-<env>-runner)
#   $3  the job file's path (<state_dir>/jobs/<id>.json)
#   $4  "attach": once the runner runs, print "::started::" and run
#       `docker exec -i $2 python -m conveyor.runner attach <state_dir> <id> 0` (the run's
#       journal on stdout, the controller's control lines on stdin); when the journal then
#       ends with run_finished, wait for the runner to exit (`docker wait`), remove its
#       container in the background (not forced) and print "::journal::" and the whole
#       journal, "::record::" and the record <state_dir>/deployments/<id>.json; "": exit 0
#       there
#   $5  how many directories follow
#   $6... those directories, created first (mode 0700 when new): the state directory, its
#       jobs/ and runs/, the backup directory; then the `docker run` options, the image and
#       the runner's command, without the volume of the engine's socket (added here:
#       "<socket>:/var/run/docker.sock", the socket of $DOCKER_HOST) and without `--pull`
#       (`--pull never` is added: a missing runner image is exit 3, never a pull here)
# Stdin: the job (JSON, with its secrets) on its first line, written to $3 (mode 0600) just
#   before `docker run` and removed again when the runner does not start. With "attach", the
#   rest of stdin is the attach process's.
# Stdout: 75: the running runner's labels (JSON, one line); 76: "<deployment id> <time its
#   runner stopped> <socket>"; 4: $DOCKER_HOST; "attach" and started: "::started::" then the
#   journal's lines (then, the run finished: "::journal::" and the whole journal, "::record::"
#   and the record). Stderr: docker's error (exit 1).
# Exit: 0 the runner started; 3 the runner image is not on the host (no container made, the
#   job file removed); 4 DOCKER_HOST is not a unix socket (nothing done); 75 the lock is held:
#   the runner is running (or being restarted by its restart policy); 76 a stopped runner's
#   run is unfinished (its journal has no run_finished): recover it first (nothing removed);
#   77 another runner took the name meanwhile (try again); 1 otherwise. With "attach" and
#   started: 0 the run finished and its record printed, 3 finished without a record (it
#   never took the lock), else the attach process's exit code.
name=$2 job=$3 attach=$4 n=$5
shift 5
# <state_dir>/jobs/<id>.json: the state directory and the run's id
jobs=${job%/*} rid=${job##*/}
state=${jobs%/*} rid=${rid%.json}
# the runner does not start: its job file (the secrets) goes, then exit $1
drop_job() {
  rm -f "$job"
  exit "$1"
}
host=${DOCKER_HOST:-unix:///var/run/docker.sock}
case $host in
  unix://*) sock=${host#unix://} ;;
  *) printf '%s\n' "$host"; exit 4 ;;
esac
umask 077
dirs=
while [ "$n" -gt 0 ]; do
  dirs="$dirs$1
"
  shift
  n=$((n - 1))
done
# one mkdir for all of them (the list is newline-separated: paths may hold spaces)
old_ifs=$IFS IFS='
'
# shellcheck disable=SC2086 # split on newlines only, on purpose
[ -z "$dirs" ] || mkdir -p $dirs || exit 1
IFS=$old_ifs
nl='
'
# one line (read byte by byte: what follows it on stdin is left for the attach process)
IFS= read -r line || [ -n "$line" ] || exit 1
{ printf '%s\n' "$line" > "$job" && chmod 600 "$job"; } || drop_job 1
line=
# the common case first: no runner container (a finished run's is removed at its end), so
# `docker run` takes the name at once; only when the name is taken is the container looked at
tries=2
while :; do
  if err=$(docker run --pull never --volume "$sock:/var/run/docker.sock" "$@" 2>&1 >/dev/null)
  then
    break
  fi
  case $err in
    *"No such image"*) drop_job 3 ;;
    *Conflict*) ;;
    *) printf '%s\n' "$err" >&2; drop_job 1 ;;
  esac
  tries=$((tries - 1))
  [ "$tries" -gt 0 ] || drop_job 77
  # one inspect: "<running> <stopped at> <deployment>", then the labels as JSON
  out=$(docker container inspect --format '{{or .State.Running .State.Restarting}} {{.State.FinishedAt}} {{index .Config.Labels "conveyor.deployment"}}
{{json .Config.Labels}}' "$name" 2>/dev/null)
  [ -n "$out" ] || continue  # gone meanwhile: try the name again
  held=${out%%"$nl"*}
  running=${held%% *}
  finished=${held#* }
  holder=${finished#* }
  finished=${finished%% *}
  if [ "$running" = true ]; then
    labels=${out#*"$nl"}
    if [ "$labels" = "$out" ] || [ -z "$labels" ]; then labels='{}'; fi
    printf '%s\n' "$labels"
    drop_job 75
  fi
  if [ -n "$holder" ] && [ "$holder" != "<no value>" ]; then
    journal="$state/runs/$holder/journal.jsonl"
    if [ -f "$journal" ] && ! tail -n 1 "$journal" | grep -q '"run_finished"'; then
      echo "$holder $finished $sock"
      drop_job 76
    fi
  fi
  # not --force: a runner started meanwhile by another controller is not removed (its name
  # then conflicts again: 77)
  docker rm "$name" >/dev/null 2>&1
done
[ "$attach" = attach ] || exit 0
echo '::started::'
docker exec -i "$name" python -m conveyor.runner attach "$state" "$rid" 0
rc=$?
# the run finished (the journal's last line; not a detach, not a controller gone): once the
# runner has exited (the lock is free), the whole journal (the runner's exit usually ends the
# attach process before it printed the last lines) and the record, in this connection
journal="$state/runs/$rid/journal.jsonl"
if tail -n 1 "$journal" 2>/dev/null | grep -q '"run_finished"'; then
  docker wait "$name" >/dev/null 2>&1
  # the finished runner's container is removed in the background (not --force: it has
  # exited), so that the next start's `docker run` finds the name free; if that is cut short,
  # the next start removes it
  docker rm "$name" </dev/null >/dev/null 2>&1 &
  echo '::journal::'
  cat "$journal"
  echo '::record::'
  cat "$state/deployments/$rid.json" 2>/dev/null || exit 3
  exit 0
fi
exit "$rc"
