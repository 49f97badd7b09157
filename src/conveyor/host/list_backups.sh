# list_backups.sh: the backups of an environment, with their sizes and metadata.
# shellcheck shell=sh
#
# Arguments:
#   $1  the backup directory on the host
#   $2  an ERE matching exactly this environment's backup file names
# Stdin: not read.
# Stdout: one line per backup, by name: NAME<tab>SIZE<tab>METADATA (its .json on one line,
#   empty if there is none). Nothing if $1 does not exist.
# Exit: 0.
d=$1; pattern=$2
[ -d "$d" ] || exit 0
for p in "$d"/*; do printf '%s\n' "${p##*/}"; done | grep -E "$pattern" | sort \
  | while IFS= read -r f; do
  printf '%s\t%s\t' "$f" "$(wc -c < "$d/$f")"
  j="$d/${f%.dump}.json"
  if [ -f "$j" ]; then tr -d '\n' < "$j"; fi
  echo
done
