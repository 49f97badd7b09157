# unlock.sh: release an environment's deploy lock, only if its holder is the one asking.
# shellcheck shell=sh
#
# Arguments:
#   $1  the environment's state directory; the lock is $1/lock
#   $2  the lock holder's id (the deployment id written in $1/lock/holder.json)
# Stdin: not read.
# Stdout: why the lock was not released, if it was not.
# Exit: 0 released (rm -rf $1/lock); 3 the lock is not held by $2 (any more): left as it is.
if grep -qF "\"$2\"" "$1/lock/holder.json" 2>/dev/null; then
  rm -rf "$1/lock"
else
  echo "the lock is not held by $2 (any more)"
  exit 3
fi
