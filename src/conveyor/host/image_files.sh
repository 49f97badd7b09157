# image_files.sh: copy a directory out of an image without running it: docker create (never
# started), docker cp as a tar, docker rm.
# shellcheck shell=sh
#
# Arguments:
#   $1  the image reference
#   $2  the directory inside the image
#   $3... options for `docker create` (the labels of the temporary container)
# Stdin: not read.
# Stdout: the directory's contents as a tar, gzip'd, base64-encoded (only on success).
# Exit: 0 copied; 1 no temporary file or the container could not be created; otherwise the
#   exit code of `docker cp`. The container is removed in every case.
img=$1; dir=$2; shift 2
t=$(mktemp) || exit 1
if ! c=$(docker create "$@" "$img" true); then rm -f "$t"; exit 1; fi
docker cp "$c:$dir/." - > "$t"; rc=$?
docker rm -f "$c" >/dev/null 2>&1
if [ "$rc" -eq 0 ]; then gzip -c < "$t" | base64; fi
rm -f "$t"
exit "$rc"
