#!/bin/bash
# A Backfill instance: an SSH server on a free port of this node, with the instance's keys.
export HOME="${HOME:-$(getent passwd "$(id -un)" | cut -d: -f6)}" USER="$(id -un)"
cd "$HOME" 2>/dev/null || true
want=run
trap 'want=stop; [ -n "$ssh" ] && kill "$ssh" 2>/dev/null' USR1
trap 'want=reboot; [ -n "$ssh" ] && kill "$ssh" 2>/dev/null' USR2
trap 'notice=1' TERM
ssh=
state="$HOME/.backfill/$SLURM_JOB_ID"
report() { scontrol update JobId="$SLURM_JOB_ID" Comment="$BACKFILL_META&$1" >/dev/null; }
fail() {
  echo "backfill: $1" >&2
  report "error=$(printf %s "$1" | tr -c 'A-Za-z0-9._-' '+')"
  exit 1
}
umask 077
mkdir -p "$state/ssh" "$HOME/.ssh" || fail "cannot create $state"
chmod 700 "$HOME" "$HOME/.ssh" "$state" "$state/ssh" 2>/dev/null
cat > "$state/ssh/authorized_keys" <<'BACKFILL_KEYS'
@SSH_KEYS@
BACKFILL_KEYS
[ -f "$state/hostkey" ] || dropbearkey -t ed25519 -f "$state/hostkey" >/dev/null 2>&1 \
  || fail "dropbearkey is missing on the node (apt-get install dropbear-bin)"
unshare -Urm true 2>/dev/null \
  || fail "this node cannot give the instance its own SSH keys (no user namespaces)"
uid=$(id -u); gid=$(id -g)
serve() {  # $1 = port; dropbear in a mount namespace where ~/.ssh is this instance's
  unshare -Urm sh -c 'mount --bind "$1" "$2" && exec unshare -U --map-user="$3" --map-group="$4" \
    dropbear -F -E -e -w -s -j -k -p "$5" -r "$6" -P "$7"' sh \
    "$state/ssh" "$HOME/.ssh" "$uid" "$gid" "$1" "$state/hostkey" "$state/dropbear.pid" &
  ssh=$!
  for _ in $(seq 50); do
    kill -0 "$ssh" 2>/dev/null || return 1
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
kill_instance() {  # every process of this job but this script
  for dir in /proc/[0-9]*; do
    pid=${dir#/proc/}
    [ "$pid" = $$ ] && continue
    grep -qsxz "SLURM_JOB_ID=$SLURM_JOB_ID" "$dir/environ" && kill -KILL "$pid" 2>/dev/null
  done
}
port=
for candidate in $(shuf -i @PORT_LOW@-@PORT_HIGH@ -n 40); do
  (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null && continue
  if serve "$candidate"; then port=$candidate; break; fi
  kill "$ssh" 2>/dev/null; ssh=
done
[ -n "$port" ] || fail "no free port for the SSH server"
report "port=$port&run=${SLURM_RESTART_COUNT:-0}"
while true; do
  wait "$ssh"
  case "$want" in
    stop)
      # Slurm takes the job off the node and keeps it held; nothing more to do here.
      scontrol requeuehold "$SLURM_JOB_ID" && exit 0
      fail "could not requeue itself" ;;
    reboot)
      want=run
      kill_instance
      sleep 0.2
      serve "$port" || fail "the SSH server did not come back after a reboot" ;;
    *)
      kill -0 "$ssh" 2>/dev/null && continue
      sleep 0.5
      serve "$port" || fail "the SSH server died and did not come back" ;;
  esac
done
