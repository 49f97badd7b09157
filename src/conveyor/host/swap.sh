# swap.sh: swap two databases by renaming them in one transaction, after ending their other
# sessions; a session that is still going away makes the rename fail, so it is retried (20
# attempts, 0.25 s apart).
# shellcheck shell=sh
#
# Arguments:
#   $1  the database container's name
#   $2  the database user
#   $3  SQL that ends the other sessions of the two databases (its failure is ignored)
#   $4  the swap: BEGIN; ALTER DATABASE ... RENAME ...; ...; COMMIT;
# Stdin: not read.
# Stderr: the last attempt's output, if every attempt failed.
# Exit: 0 swapped; 23 every attempt failed.
c=$1; u=$2
i=0
while :; do
  docker exec "$c" psql -XAtq -U "$u" -d postgres -c "$3" >/dev/null 2>&1
  out=$(docker exec "$c" psql -XAtq -v ON_ERROR_STOP=1 -U "$u" -d postgres -c "$4" 2>&1) \
    && exit 0
  i=$((i + 1))
  if [ "$i" -ge 20 ]; then echo "$out" >&2; exit 23; fi
  sleep 0.25
done
