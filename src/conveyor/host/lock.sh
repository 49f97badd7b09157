# lock.sh: take an environment's deploy lock (an atomic mkdir) and, in the same round trip,
# read what a deployment needs: the app and database containers, the applied migrations and
# whether the image to deploy is already on the host. Or, with no state directory, only make
# those reads, into a directory, for a lock.sh that takes the lock soon after (the runner
# starts them as it starts, under its own lock: its container's name).
# shellcheck shell=sh
#
# Arguments:
#   $1  the environment's state directory (<state_dir>/<app>/<env>); the lock is $1/lock.
#       "": only the reads, into $8
#   $2  the app container's name
#   $3  the database container's name ("": the database is reached by URL)
#   $4  the database user to read the applied migrations as ("": do not read them)
#   $5  the database name
#   $6  the SQL query listing the applied migrations (run with psql in $3)
#   $7  the image reference to look for ("": do not look)
#   $8  (optional) a directory of reads made beforehand by `lock.sh "" ...` with the same $2
#       to $7: used when they are done within 2 s (the image's when it is done already),
#       else read here; removed. With $1 "": the directory the reads go to (made 0700)
#   $9  (with $1 "") pull this image first, then look for $7 (the image read waits for it)
# Stdin: the lock holder (JSON: id, who, since, what, image, pid), written to
#   $1/lock/holder.json when the lock is taken. Not read with $1 "".
# Stdout: when taken, sections, each a marker line then its lines:
#   ::containers::  `docker container inspect` of $2 (and $3) as JSON, one per line
#   ::applied::     (if $4) the query's rows, or ::unknown:: when psql failed
#   ::image::       (if $7) the image's labels as JSON, or ::missing::
#   when held by someone else: the holder's JSON ({} if its file is missing). Nothing with
#   $1 "": the reads are files in $8 (containers, applied, image), "reads.done" once the
#   first two are written, "image.done" once the image's is.
# Exit: 0 the lock is taken (or the reads are made); 1 the state directory cannot be created;
#   75 the lock is held.
d=$1 app=$2 db=$3 user=$4 dbname=$5 sql=$6 img=$7 pre=${8-} pull=${9-}
umask 077

# the reads run at once (the database's psql is the slow one), each into a file in $1;
# $2: "containers" or "image" (what to read)
reads() {
  if [ "$2" = containers ]; then
    docker container inspect --format '{{json .}}' "$app" ${db:+"$db"} > "$1/containers" \
      2>/dev/null &
    if [ -n "$user" ]; then
      { docker exec "$db" psql -XAtq -v ON_ERROR_STOP=1 -U "$user" -d "$dbname" -c "$sql" \
          2>/dev/null || echo '::unknown::'; } > "$1/applied" &
    fi
  elif [ -n "$img" ]; then
    { docker image inspect --format '{{json .Config.Labels}}' "$img" 2>/dev/null \
        || echo '::missing::'; } > "$1/image" &
  fi
}

if [ -z "$d" ]; then
  mkdir -p "$pre" || exit 1
  if [ -n "$img" ]; then  # the image's read after the pull, in the background
    ( if [ -n "$pull" ]; then docker pull --quiet "$pull" >/dev/null 2>&1; fi
      reads "$pre" image; wait; : > "$pre/image.done" ) &
  fi
  ( reads "$pre" containers; wait; : > "$pre/reads.done" )
  wait
  exit 0
fi

mkdir -p "$d/deployments" || exit 1
if mkdir "$d/lock" 2>/dev/null; then
  cat > "$d/lock/holder.json"
else
  cat "$d/lock/holder.json" 2>/dev/null || echo '{}'
  exit 75
fi
# into the lock directory (0700, ours now), printed in order when all are done
t=$d/lock
from=$t
image_from=$t
if [ -n "$pre" ]; then
  i=0
  while [ ! -e "$pre/reads.done" ] && [ "$i" -lt 100 ]; do
    sleep 0.02
    i=$((i + 1))
  done
  [ -e "$pre/reads.done" ] && from=$pre
  [ -e "$pre/image.done" ] && image_from=$pre
fi
[ "$from" = "$t" ] && reads "$t" containers
[ "$image_from" = "$t" ] && reads "$t" image
wait
echo '::containers::'
cat "$from/containers"
if [ -n "$user" ]; then
  echo '::applied::'
  cat "$from/applied"
fi
if [ -n "$img" ]; then
  echo '::image::'
  cat "$image_from/image"
fi
rm -f "$t/containers" "$t/applied" "$t/image"
[ -n "$pre" ] && rm -rf "$pre"
exit 0
