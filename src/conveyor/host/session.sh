#!/bin/sh
# The remote side of a command session (conveyor.transport.session): reads framed commands on
# stdin and runs each one with `sh -c`. Frame: "<script bytes> <input bytes>\n", the script, the
# input. After a command, its exit code follows the marker $1 on a line of stdout, and a line
# with the marker ends its stderr. The input reaches the command through a pipe that is always
# drained, so the framing holds even when the command does not read all of it; nothing is
# written to disk.
M=$1
while IFS=' ' read -r n m; do
  s=$(head -c "$n"; echo x); s=${s%x}
  if [ "$m" -gt 0 ]; then
    head -c "$m" | { sh -c "$s"; r=$?; cat >/dev/null; exit "$r"; }
  else
    sh -c "$s" </dev/null
  fi
  r=$?
  printf '\n%s %s\n' "$M" "$r"
  printf '\n%s\n' "$M" >&2
done
