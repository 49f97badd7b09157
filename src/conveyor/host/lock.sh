# lock.sh: take an environment's deploy lock (an atomic mkdir) and, in the same round trip,
# read what a deployment needs: the app and database containers, the applied migrations and
# whether the image to deploy is already on the host.
# shellcheck shell=sh
#
# Arguments:
#   $1  the environment's state directory (<state_dir>/<app>/<env>); the lock is $1/lock
#   $2  the app container's name
#   $3  the database container's name ("": the database is reached by URL)
#   $4  the database user to read the applied migrations as ("": do not read them)
#   $5  the database name
#   $6  the SQL query listing the applied migrations (run with psql in $3)
#   $7  the image reference to look for ("": do not look)
# Stdin: the lock holder (JSON: id, who, since, what, image, pid), written to
#   $1/lock/holder.json when the lock is taken.
# Stdout: when taken, sections, each a marker line then its lines:
#   ::containers::  `docker container inspect` of $2 (and $3) as JSON, one per line
#   ::applied::     (if $4) the query's rows, or ::unknown:: when psql failed
#   ::image::       (if $7) the image's labels as JSON, or ::missing::
#   when held by someone else: the holder's JSON ({} if its file is missing).
# Exit: 0 the lock is taken; 1 the state directory cannot be created; 75 the lock is held.
d=$1
umask 077
mkdir -p "$d/deployments" || exit 1
if mkdir "$d/lock" 2>/dev/null; then
  cat > "$d/lock/holder.json"
else
  cat "$d/lock/holder.json" 2>/dev/null || echo '{}'
  exit 75
fi
# the reads run at once (the database's psql is the slow one), each into a file in the lock
# directory (0700, ours now), printed in order when all are done
t=$d/lock
docker container inspect --format '{{json .}}' "$2" ${3:+"$3"} > "$t/containers" 2>/dev/null &
if [ -n "$4" ]; then
  { docker exec "$3" psql -XAtq -v ON_ERROR_STOP=1 -U "$4" -d "$5" -c "$6" 2>/dev/null \
      || echo '::unknown::'; } > "$t/applied" &
fi
if [ -n "$7" ]; then
  { docker image inspect --format '{{json .Config.Labels}}' "$7" 2>/dev/null \
      || echo '::missing::'; } > "$t/image" &
fi
wait
echo '::containers::'
cat "$t/containers"
if [ -n "$4" ]; then
  echo '::applied::'
  cat "$t/applied"
fi
if [ -n "$7" ]; then
  echo '::image::'
  cat "$t/image"
fi
rm -f "$t/containers" "$t/applied" "$t/image"
