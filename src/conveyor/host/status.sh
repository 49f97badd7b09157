# status.sh: what `conveyor status` shows of an environment's host, in one round trip.
# shellcheck shell=sh
#
# Arguments:
#   $1  the environment's state directory
#   $2  the app container's name
#   $3  the previous app container's name (kept for a rollback)
#   $4  the database container's name ("": the database is reached by URL)
#   $5  the runner container's name (optional)
#   $6  the proxy container's name (optional: strategy = "zero-downtime")
# Stdin: not read.
# Stdout: sections, each a marker line then one line of JSON (null: missing):
#   ::app::       `docker container inspect` of $2
#   ::previous::  the state of $3
#   ::db::        (if $4) `docker container inspect` of $4
#   ::lock::      the lock holder ({} if the lock is taken and its holder file missing)
#   ::last::      the last line of $1/history.jsonl
#   ::runner::    (if $5) `.State` and labels of $5, then the last line of its run's journal
#   ::proxy::     (if $6) `docker container inspect` of $6
# Exit: 0.
echo '::app::'
docker container inspect --format '{{json .}}' "$2" 2>/dev/null || echo null
echo '::previous::'
docker container inspect --format '{{json .State}}' "$3" 2>/dev/null || echo null
if [ -n "$4" ]; then
  echo '::db::'
  docker container inspect --format '{{json .}}' "$4" 2>/dev/null || echo null
fi
echo '::lock::'
cat "$1/lock/holder.json" 2>/dev/null || { [ -d "$1/lock" ] && echo '{}'; } || echo null
echo '::last::'
tail -n 1 "$1/history.jsonl" 2>/dev/null || echo null
if [ -n "${5:-}" ]; then
  echo '::runner::'
  if run=$(docker container inspect --format '{{index .Config.Labels "conveyor.deployment"}}' \
      "$5" 2>/dev/null); then
    docker container inspect --format '{"state": {{json .State}}, "labels": {{json .Config.Labels}}}' "$5"
    echo '::journal::'
    tail -n 1 "$1/runs/$run/journal.jsonl" 2>/dev/null || echo null
  else
    echo null
  fi
fi
if [ -n "${6:-}" ]; then
  echo '::proxy::'
  docker container inspect --format '{{json .}}' "$6" 2>/dev/null || echo null
fi
echo
