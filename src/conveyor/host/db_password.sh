# db_password.sh: the generated password of a conveyor-managed database, kept on the host.
# shellcheck shell=sh
#
# Arguments:
#   $1  the password file (<state_dir>/<app>/<env>/db.password)
#   $2  "create": generate it (32 random letters and digits, mode 0600) when it is missing
# Stdin: not read.
# Stdout: the password.
# Exit: 0 printed; 1 missing (and not created) or not readable.
f=$1
if [ ! -s "$f" ] && [ "${2:-}" = create ]; then
  umask 077
  mkdir -p "$(dirname "$f")" || exit 1
  head -c 96 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 32 > "$f.tmp" \
    && mv "$f.tmp" "$f" || exit 1
fi
[ -s "$f" ] || exit 1
cat "$f"
