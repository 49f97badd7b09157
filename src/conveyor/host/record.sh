# record.sh: write a deployment's record and its history line, then release the lock (if this
# deployment holds it) whatever happened to the write.
# shellcheck shell=sh
#
# Arguments:
#   $1  the environment's state directory
#   $2  the deployment id: the record is $1/deployments/$2.json
#   $3  the lock holder's id ("": the lock is not held, leave it alone)
# Stdin: the history line (one line of JSON, appended to $1/history.jsonl), then the record
#   (the rest of stdin, written to a temporary file and renamed into place).
# Stdout: nothing. Stderr: why the lock was not released, if it was not.
# Exit: 0 written (and released); 1 the record or the history line could not be written (the
#   lock is released all the same); 3 the lock is not held by $3 (any more).
umask 077
written=1
if mkdir -p "$1/deployments" && IFS= read -r line \
    && cat > "$1/deployments/$2.json.tmp" \
    && mv "$1/deployments/$2.json.tmp" "$1/deployments/$2.json" \
    && printf '%s\n' "$line" >> "$1/history.jsonl"; then
  written=0
fi
if [ -n "$3" ]; then
  if grep -qF "\"$3\"" "$1/lock/holder.json" 2>/dev/null; then
    rm -rf "$1/lock"
  else
    echo "the lock is not held by $3 (any more)" >&2
    exit 3
  fi
fi
exit $written
