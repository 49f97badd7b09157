# copy_out.sh: copy a directory out of an image into a directory of the host, without running
# the image: docker create (never started), docker cp, docker rm.
# shellcheck shell=sh
#
# Arguments:
#   $1  the image reference
#   $2  the directory inside the image
#   $3  the directory on the host (emptied first, created if missing)
#   $4... options for `docker create` (the labels of the temporary container)
# Stdin: not read.
# Stdout: nothing on success.
# Exit: 0 copied; 1 the host directory or the container could not be made; otherwise the
#   exit code of `docker cp`. The container is removed in every case.
img=$1; dir=$2; dest=$3; shift 3
rm -rf "$dest" && mkdir -p "$dest" || exit 1
if ! c=$(docker create "$@" "$img" true); then exit 1; fi
docker cp "$c:$dir/." "$dest"; rc=$?
docker rm -f "$c" >/dev/null 2>&1
exit "$rc"
