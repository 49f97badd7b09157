# proxy_switch.sh: switch an environment's proxy (nginx) to a new configuration, gracefully.
# shellcheck shell=sh
#
# Arguments:
#   $1  the proxy's configuration directory on the host (mounted into the proxy container)
#   $2  the proxy container's name
#   $3  seconds to wait for the new worker processes
# Stdin: the new nginx.conf.
# Stdout: "switched" once nginx runs workers of the new configuration and no old worker still
#   accepts connections (every old one is gone or "shutting down").
# Exit: 0 switched; 65 the new configuration does not pass `nginx -t` (the previous one is put
#   back, nothing was reloaded); 69 the proxy container is not running; 70 not switched in $3 s.
# The configuration file is replaced by a rename (atomic); nginx reloads on SIGHUP: new workers
# take the new requests, the old ones finish the requests in flight (worker_shutdown_timeout).
conf="$1/nginx.conf"
# shellcheck disable=SC2016 # the script runs in the proxy container, expanded there
workers='for d in /proc/[0-9]*; do c=$(tr "\0" " " < "$d/cmdline" 2>/dev/null) || continue;
case "$c" in "nginx: worker process is shutting down"*) ;; "nginx: worker process"*) echo "${d#/proc/}";; esac; done'
if ! before=$(docker exec "$2" sh -c "$workers" 2>/dev/null); then
  echo "the proxy container $2 is not running" >&2
  exit 69
fi
mkdir -p "$1"
if [ -f "$conf" ]; then cp -p "$conf" "$conf.prev"; fi
cat > "$conf.new" && mv -f "$conf.new" "$conf"
if ! out=$(docker exec "$2" nginx -t -q -c /etc/conveyor-proxy/nginx.conf 2>&1); then
  if [ -f "$conf.prev" ]; then mv -f "$conf.prev" "$conf"; fi
  echo "the new proxy configuration was refused: $out" >&2
  exit 65
fi
docker kill --signal HUP "$2" >/dev/null
i=0
old=" $(echo "$before" | tr '\n' ' ') "
while [ "$i" -lt $(($3 * 10)) ]; do
  # switched: a worker of the new configuration runs, and no old worker still accepts (an old
  # one not yet "shutting down" may take a new connection to the old upstream)
  fresh=no
  stale=no
  for p in $(docker exec "$2" sh -c "$workers" 2>/dev/null); do
    case "$old" in
      *" $p "*) stale=yes ;;
      *) fresh=yes ;;
    esac
  done
  if [ "$fresh" = yes ] && [ "$stale" = no ]; then echo switched; exit 0; fi
  sleep 0.1
  i=$((i + 1))
done
echo "nginx in $2 did not hand every worker to the new configuration in $3 s" >&2
exit 70
