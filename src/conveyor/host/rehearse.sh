# rehearse.sh: restore a backup into a scratch database on the same PostgreSQL server (where
# the pending migrations are rehearsed) and count its rows; or drop that database again.
# shellcheck shell=sh
#
# Arguments:
#   $1  restore | drop
#   $2  the database container's name
#   $3  the database user
#   $4  the scratch database's name (restore: it must not exist yet)
#   $5  restore: the backup file (.dump, on the host); drop: ""
#   $6  restore: SQL that creates the scratch database (CREATE DATABASE ...); drop: ""
#   $7  SQL that ends the scratch database's sessions (SELECT pg_terminate_backend ...)
#   $8  SQL that drops it (DROP DATABASE IF EXISTS ...)
# Stdin: restore: SQL run in the restored database that prints one `COUNT|TABLE` row per
#   table (the rows the backup step counted in the dump); drop: not read.
# Stdout: restore: `::space:: FREE NEEDED` (kB free where the server keeps its data, kB
#   needed: twice the dump's size), `::restored::` once pg_restore is done, then the counting
#   SQL's rows; drop: `::dropped::`.
# Exit: 0 done; 30 not enough free disk (nothing was created); 31 the free disk or the dump
#   cannot be read; 32 the scratch database could not be created; 33 pg_restore failed;
#   34 counting failed (33, 34: the scratch database was dropped again); 35 the drop failed.
m=$1; c=$2; u=$3; scratch=$4; f=$5; create=$6; end=$7; dropsql=$8
drop() {
  docker exec "$c" psql -XAtq -v ON_ERROR_STOP=1 -U "$u" -d postgres -c "$end" -c "$dropsql" \
    > /dev/null
}
if [ "$m" = drop ]; then
  drop || exit 35
  echo "::dropped::"; exit 0
fi
[ -s "$f" ] || { echo "no backup file $f (or it is empty)" >&2; exit 31; }
data=$(docker exec "$c" psql -XAtq -v ON_ERROR_STOP=1 -U "$u" -d postgres \
  -c "SHOW data_directory" < /dev/null) || exit 31
free=$(docker exec "$c" df -Pk "$data" < /dev/null | awk 'NR == 2 { print $4 }')
case $free in ''|*[!0-9]*) echo "cannot read the free disk of $data in $c" >&2; exit 31 ;; esac
size=$(wc -c < "$f")
needed=$(( (2 * size + 1023) / 1024 ))
echo "::space:: $free $needed"
if [ "$free" -lt "$needed" ]; then
  echo "not enough free disk for a scratch restore: ${free} kB free in $data, ${needed} kB" \
    "needed (twice the dump's size)" >&2
  exit 30
fi
docker exec "$c" psql -XAtq -v ON_ERROR_STOP=1 -U "$u" -d postgres -c "$create" < /dev/null \
  || exit 32
if ! docker exec -i "$c" pg_restore --exit-on-error --single-transaction --no-password \
    -U "$u" -d "$scratch" < "$f"; then
  drop 2>/dev/null; exit 33
fi
echo "::restored::"
if ! docker exec -i "$c" psql -XAtq -v ON_ERROR_STOP=1 -U "$u" -d "$scratch" -f -; then
  drop 2>/dev/null; exit 34
fi
