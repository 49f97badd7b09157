# status.sh: everything `conveyor status` shows of an environment's host, in ONE round trip:
# its containers, the lock, the last deployment, the runner's journal, the applied migrations
# and the migration files of the app container's image. psql runs while the containers are
# inspected and the files copied.
# shellcheck shell=sh
#
# Arguments:
#   $1  the environment's state directory
#   $2  the app container's name
#   $3  the previous app container's name (kept for a rollback)
#   $4  the database container's name ("": the database is reached by URL)
#   $5  the runner container's name ("": none)
#   $6  the proxy container's name ("": none, the strategy is not zero-downtime)
#   $7  the database user } the applied-migrations query, run by psql in $4
#   $8  the database name } ("" in $9: not run)
#   $9  the query         }
#   $10 the migrations' directory in the app's image ("": not copied)
#   $11... options for `docker create` (the labels of the temporary container)
# Stdin: not read.
# Stdout: sections, each a marker line, then its lines:
#   ::containers::    one line per container of $2 $3 $4 $5 $6 that exists: its
#                     `docker container inspect` JSON (its "Name" says which)
#   ::lock::          the lock holder ({} if the lock is taken and its holder file missing;
#                     null if not taken)
#   ::last::          the last line of $1/history.jsonl (null)
#   ::journal::       the last line of the runner's run journal (null)
#   ::applied:: RC    (if $4 and $9) psql's stdout, base64; RC its exit code
#   ::applied-err::   psql's stderr, base64
#   ::files:: RC      (if $10 and the app container exists) the directory $10 of the app
#                     container's image as a tar, gzip'd, base64 (as image_files.sh: docker
#                     create, never started, docker cp, docker rm); RC 0 when copied. The copy
#                     is kept in $1/status/image-files, keyed by the image ID and $10 (an
#                     image ID names its content): the next status reads it from there
#   ::files-err::     docker's stderr, base64
# Exit: 0 (1: no temporary directory).
state=$1 app=$2 previous=$3 db=$4 runner=$5 proxy=$6 user=$7 dbname=$8 sql=$9
dir=${10:-}
if [ "$#" -ge 10 ]; then shift 10; else shift "$#"; fi
t=$(mktemp -d) || exit 1
: > "$t/files.err"
trap 'rm -rf "$t"' EXIT
trap 'exit 1' HUP INT TERM
if [ -n "$db" ] && [ -n "$sql" ]; then
  ( docker exec "$db" psql -XAtq -v ON_ERROR_STOP=1 -U "$user" -d "$dbname" -c "$sql" \
      > "$t/rows" 2> "$t/rows.err"
    echo "$?" > "$t/rows.rc" ) &
fi
docker container inspect \
  --format '{{.Name}}|{{.Image}}|{{index .Config.Labels "conveyor.deployment"}}|{{json .}}' \
  "$app" "$previous" ${db:+"$db"} ${runner:+"$runner"} ${proxy:+"$proxy"} \
  > "$t/inspect" 2> /dev/null
image='' run=''
while IFS='|' read -r name id deployment _; do
  case $name in
    "/$app") image=$id ;;
    "/$runner") run=$deployment ;;
  esac
done < "$t/inspect"
files_rc=''
if [ -n "$dir" ] && [ -n "$image" ]; then
  cache="$state/status/image-files"
  key="$image $dir"
  if [ -f "$cache" ] && [ "$(head -n 1 "$cache" 2>/dev/null)" = "$key" ] \
      && tail -n +2 "$cache" > "$t/files" 2> /dev/null; then
    files_rc=0
  elif c=$(docker create "$@" "$image" true 2> "$t/files.err"); then
    docker cp "$c:$dir/." - > "$t/files.tar" 2>> "$t/files.err"; files_rc=$?
    docker rm -f "$c" > /dev/null 2>&1
    if [ "$files_rc" -eq 0 ]; then
      gzip -c < "$t/files.tar" | base64 > "$t/files"
      # kept for the next status; a state directory that cannot be written is no error
      if mkdir -p "$state/status" 2> /dev/null \
          && { echo "$key"; cat "$t/files"; } > "$state/status/.image-files.$$" 2> /dev/null
      then
        mv -f "$state/status/.image-files.$$" "$cache" 2> /dev/null
      fi
      rm -f "$state/status/.image-files.$$"
    fi
  else
    files_rc=1
  fi
fi
wait
echo '::containers::'
cut -d '|' -f 4- "$t/inspect"
echo '::lock::'
cat "$state/lock/holder.json" 2>/dev/null || { [ -d "$state/lock" ] && echo '{}'; } || echo null
echo '::last::'
tail -n 1 "$state/history.jsonl" 2>/dev/null || echo null
echo '::journal::'
if [ -n "$run" ]; then
  tail -n 1 "$state/runs/$run/journal.jsonl" 2>/dev/null || echo null
else
  echo null
fi
if [ -f "$t/rows.rc" ]; then
  echo "::applied:: $(cat "$t/rows.rc")"
  base64 < "$t/rows"
  echo '::applied-err::'
  base64 < "$t/rows.err"
fi
if [ -n "$files_rc" ]; then
  echo "::files:: $files_rc"
  cat "$t/files" 2> /dev/null
  echo '::files-err::'
  base64 < "$t/files.err" 2> /dev/null
fi
echo
