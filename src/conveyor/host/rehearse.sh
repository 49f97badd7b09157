# rehearse.sh: restore a backup into a scratch database on the same PostgreSQL server (where
# the pending migrations are rehearsed) and count its rows, in ONE `docker exec` of the
# database's container; or drop that database again.
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
# Exit: 0 done; 30 not enough free disk (nothing was created); 31 the free disk, the dump or
#   the counting SQL cannot be read; 32 the scratch database could not be created;
#   33 pg_restore failed; 34 counting failed (33, 34: the scratch database was dropped again);
#   35 the drop failed.
#
# restore: `docker exec -i $2 sh -c INNER` once; its stdin is the counting SQL, a line
# `::conveyor-dump::`, then the dump's bytes. INNER (POSIX sh, in the database's container)
# reads the SQL up to that line (`read` takes one byte at a time from a pipe: nothing of the
# dump), then: the data directory (SHOW data_directory) and its free disk (df -Pk), CREATE
# DATABASE, pg_restore of the rest of its stdin, the counts; a failed restore or count drops
# the scratch database again, still in the same exec. A dump cut short (the caller killed)
# fails pg_restore; SQL without the marker line creates nothing.
m=$1; c=$2; u=$3; scratch=$4; f=$5; create=$6; end=$7; dropsql=$8
if [ "$m" = drop ]; then
  docker exec "$c" psql -XAtq -v ON_ERROR_STOP=1 -U "$u" -d postgres -c "$end" -c "$dropsql" \
    > /dev/null || exit 35
  echo "::dropped::"; exit 0
fi
[ -s "$f" ] || { echo "no backup file $f (or it is empty)" >&2; exit 31; }
size=$(wc -c < "$f")
needed=$(( (2 * size + 1023) / 1024 ))
# shellcheck disable=SC2016 # INNER's own $1..., expanded in the database's container
inner='u=$1; scratch=$2; create=$3; end=$4; dropsql=$5; needed=$6
drop() {
  psql -XAtq -v ON_ERROR_STOP=1 -U "$u" -d postgres -c "$end" -c "$dropsql" \
    < /dev/null > /dev/null 2>&1
}
sql=; marked=; nl="
"
while IFS= read -r line; do
  if [ "$line" = "::conveyor-dump::" ]; then marked=1; break; fi
  sql=$sql$line$nl
done
[ -n "$marked" ] || { echo "the counting SQL came without the dump" >&2; exit 31; }
data=$(psql -XAtq -v ON_ERROR_STOP=1 -U "$u" -d postgres -c "SHOW data_directory" \
  < /dev/null) || exit 31
free=$(df -Pk "$data" < /dev/null | { read -r _; read -r _ _ _ avail _; echo "$avail"; })
case $free in
  ""|*[!0-9]*) echo "cannot read the free disk of $data" >&2; exit 31 ;;
esac
echo "::space:: $free $needed"
if [ "$free" -lt "$needed" ]; then
  echo "not enough free disk for a scratch restore: $free kB free in $data, $needed kB" \
    "needed (twice the size of the dump)" >&2
  exit 30
fi
psql -XAtq -v ON_ERROR_STOP=1 -U "$u" -d postgres -c "$create" < /dev/null || exit 32
if ! pg_restore --exit-on-error --single-transaction --no-password -U "$u" -d "$scratch"
then
  drop; exit 33
fi
echo "::restored::"
if ! printf "%s" "$sql" | psql -XAtq -v ON_ERROR_STOP=1 -U "$u" -d "$scratch" -f -; then
  drop; exit 34
fi'
{ cat; printf '\n::conveyor-dump::\n'; cat "$f"; } |
  docker exec -i "$c" sh -c "$inner" conveyor-rehearse-db "$u" "$scratch" "$create" "$end" \
    "$dropsql" "$needed"
