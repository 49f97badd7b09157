# verify_backup.sh: check that a backup can be restored: the file is not empty and
# pg_restore --list (in the database container) reads its table of contents.
# shellcheck shell=sh
#
# Arguments:
#   $1  the backup file (.dump)
#   $2  the database container's name
# Stdin: not read.
# Stdout: `::backup:: SIZE OBJECTS` (bytes, entries in pg_restore --list).
# Exit: 0 readable; 20 no such file, or it is empty; 21 pg_restore --list cannot read it.
f=$1; c=$2
[ -s "$f" ] || { echo "no backup file $f (or it is empty)" >&2; exit 20; }
toc=$(docker exec -i "$c" pg_restore --list < "$f") || exit 21
echo "::backup:: $(wc -c < "$f") $(printf '%s\n' "$toc" | grep -c '^[0-9]')"
