# restore.sh: restore a backup into a new database (the live one is not touched); the new
# database is dropped again if the restore fails.
# shellcheck shell=sh
#
# Arguments:
#   $1  the backup file (.dump, on the host)
#   $2  the database container's name
#   $3  the database user
#   $4  the new database's name
#   $5  SQL that drops the new database (DROP DATABASE IF EXISTS ...)
#   $6  SQL that creates it (CREATE DATABASE ... OWNER ...)
# Stdin: not read (the backup file is pg_restore's stdin).
# Stdout, stderr: psql's and pg_restore's.
# Exit: 0 restored; 21 the new database could not be created; 22 pg_restore failed (the new
#   database was dropped).
f=$1; c=$2; u=$3; new=$4
docker exec "$c" psql -XAtq -v ON_ERROR_STOP=1 -U "$u" -d postgres -c "$5" -c "$6" || exit 21
if ! docker exec -i "$c" pg_restore --exit-on-error --single-transaction --no-password \
    -U "$u" -d "$new" < "$f"; then
  docker exec "$c" psql -XAtq -U "$u" -d postgres -c "$5" >/dev/null 2>&1
  exit 22
fi
