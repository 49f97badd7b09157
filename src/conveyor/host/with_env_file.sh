# with_env_file.sh: write stdin to an env file (mode 0600, its directory created 0700 if new),
# run a command that reads it, and remove the file whatever happens.
# shellcheck shell=sh
#
# Arguments:
#   $1  the env file's path
#   $2... the command to run, and its arguments
# Stdin: the env file's contents (KEY=value lines); the command's stdin is empty.
# Stdout, stderr: the command's.
# Exit: the command's exit code (or mkdir's or cat's if the file could not be written).
umask 077; f=$1; shift; trap 'rm -f "$f"' EXIT; mkdir -p "$(dirname "$f")" && cat > "$f" && "$@"
