# backup.sh: dump a conveyor-managed database (pg_dump --format=custom in its container), verify
# the dump before it counts, store it with its metadata and apply retention.
# shellcheck shell=sh
#
# Arguments:
#   $1  the backup directory on the host
#   $2  the backup's name (<app>-<env>-<id>): the files are $1/$2.dump and $1/$2.json
#   $3  the database container's name
#   $4  the database user
#   $5  the database name
#   $6  how many backups retention keeps (the newest, by name)
#   $7  an ERE matching exactly this environment's backup file names (retention's scope)
#   $8  a backup name retention must never remove ("": none)
#   $9  "rows": also count each table's rows in the dump (its COPY data, read back with
#       pg_restore --data-only) and add them to the metadata as "rows" ("" or absent: not)
# Stdin: the backup's metadata (JSON), written to $1/$2.json.
# Stdout: `::backup:: SIZE OBJECTS` (bytes, entries in pg_restore --list), then (with $9) one
#   `::rows:: COUNT TABLE` per table, then one `::removed:: NAME` per file removed by retention.
# Exit: 0 stored; 1 the directory, the metadata or the rename failed; 10 pg_dump failed;
#   11 the dump is empty; 12 pg_restore --list cannot read it; 13 (with $9) its data cannot
#   be read back. A failed dump leaves no file.
umask 077
d=$1; n=$2; c=$3; u=$4; db=$5; keep=$6; pattern=$7; protect=$8
mkdir -p "$d" || exit 1
f="$d/$n.dump"
if ! docker exec "$c" pg_dump --format=custom --no-password -U "$u" -d "$db" > "$f.partial"
then
  rm -f "$f.partial"; echo "pg_dump failed" >&2; exit 10
fi
size=$(wc -c < "$f.partial")
if [ "$size" -eq 0 ]; then rm -f "$f.partial"; echo "the dump is empty" >&2; exit 11; fi
if ! toc=$(docker exec -i "$c" pg_restore --list < "$f.partial"); then
  rm -f "$f.partial"; echo "pg_restore --list cannot read the dump" >&2; exit 12
fi
objects=$(printf '%s\n' "$toc" | grep -c '^[0-9]')
if [ "${9-}" = rows ]; then
  rm -f "$f.failed"
  rows=$({ docker exec -i "$c" pg_restore --data-only --file=- < "$f.partial" \
             || echo failed > "$f.failed"; } | awk '
    copy && $0 == "\\." { print n "\t" t; copy = 0; next }
    copy { n++; next }
    /^COPY .* FROM stdin;$/ { t = substr($0, 6); sub(/ FROM stdin;$/, "", t); sub(/ \(.*$/, "", t)
                              sub(/ +$/, "", t)
                              n = 0; copy = 1 }')
  if [ -e "$f.failed" ]; then
    rm -f "$f.partial" "$f.failed"; echo "pg_restore cannot read the dump's data" >&2; exit 13
  fi
  json=$(printf '%s\n' "$rows" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' \
    | awk -F '\t' 'NF == 2 { printf "%s\"%s\": %s", (k++ ? ", " : ""), $2, $1 }')
  meta=$(cat) || exit 1
  case $meta in
    *'}') printf '%s, "rows": {%s}}\n' "${meta%\}}" "$json" > "$d/$n.json" || exit 1 ;;
    *) printf '%s\n' "$meta" > "$d/$n.json" || exit 1 ;;
  esac
  mv "$f.partial" "$f" || exit 1
  echo "::backup:: $size $objects"
  printf '%s\n' "$rows" | awk -F '\t' 'NF == 2 { print "::rows:: " $1 " " $2 }'
else
  cat > "$d/$n.json" && mv "$f.partial" "$f" || exit 1
  echo "::backup:: $size $objects"
fi
for p in "$d"/*; do printf '%s\n' "${p##*/}"; done | grep -E "$pattern" | sort -r \
  | tail -n +$((keep + 1)) | while IFS= read -r old; do
  [ "$old" = "$protect.dump" ] && continue
  rm -f "$d/$old" "$d/${old%.dump}.json" && echo "::removed:: $old"
done
