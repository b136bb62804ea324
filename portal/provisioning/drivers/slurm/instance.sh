#!/bin/bash
# A Backfill instance: an SSH server on a free port of this node, with the instance's keys.
export HOME="${HOME:-$(getent passwd "$(id -un)" | cut -d: -f6)}" USER="$(id -un)"
cd "$HOME" 2>/dev/null || true
want=run
trap 'want=stop; [ -n "$ssh" ] && kill "$ssh" 2>/dev/null' USR1
trap 'want=reboot; [ -n "$ssh" ] && kill "$ssh" 2>/dev/null' USR2
trap 'notice=1' TERM
trap 'interruption' URG  # the portal's reclaim notice: its time is in the job's comment
ssh=
port=
ender=
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
# Volumes (BACKFILL_VOLUMES: "name:path" a line), each bind-mounted at $base/name in the
# instance's mount namespace (on a tmpfs of its own at $base, so instances never see each other's).
base="${BACKFILL_VOLUME_BASE:-~/data}"
case "$base" in "~"*) base="$HOME${base#\~}" ;; esac
if [ -n "$BACKFILL_VOLUMES" ]; then
  mkdir -p "$base" 2>/dev/null || [ -d "$base" ] || fail "cannot create the volume mount base $base"
  for path in $(printf '%s\n' "$BACKFILL_VOLUMES" | cut -d: -f2-); do
    [ -d "$path" ] || fail "a volume is not on this node's shared storage ($path)"
  done
fi
mounts='mount --bind "$1" "$2" || exit 1
if [ -n "$8" ]; then
  mount -t tmpfs -o mode=0755 backfill-volumes "$9" || exit 1
  printf "%s\n" "$8" | while IFS=: read -r name path; do
    mkdir -p "$9/$name" && mount --bind "$path" "$9/$name" || exit 1
  done || exit 1
fi
exec unshare -U --map-user="$3" --map-group="$4" dropbear -F -E -e -w -s -j -k -p "$5" -r "$6" -P "$7"'
serve() {  # $1 = port; dropbear in a mount namespace where ~/.ssh is this instance's
  unshare -Urm sh -c "$mounts" sh \
    "$state/ssh" "$HOME/.ssh" "$uid" "$gid" "$1" "$state/hostkey" "$state/dropbear.pid" \
    "$BACKFILL_VOLUMES" "$base" &
  ssh=$!
  for _ in $(seq 50); do
    kill -0 "$ssh" 2>/dev/null || return 1
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
interruption() {  # write the time where the user's code can watch it; end the job then
  local at now
  at=$(scontrol show job "$SLURM_JOB_ID" 2>/dev/null | grep -o 'reclaim=[0-9]*' | head -n1 | cut -d= -f2)
  [ -n "$at" ] || return 0
  mkdir -p "$HOME/.backfill"
  date -u -d "@$at" +%Y-%m-%dT%H:%M:%SZ > "$HOME/.backfill/interruption"
  cp "$HOME/.backfill/interruption" "$state/interruption" 2>/dev/null
  [ -n "$ender" ] && kill "$ender" 2>/dev/null
  (
    now=$(date +%s)
    [ "$at" -gt "$now" ] && sleep $((at - now))
    report "port=$port&run=${SLURM_RESTART_COUNT:-0}&reclaim=$at&reclaimed=1"
    scancel "$SLURM_JOB_ID"
  ) &
  ender=$!
}
kill_instance() {  # every process of this job but this script
  for dir in /proc/[0-9]*; do
    pid=${dir#/proc/}
    [ "$pid" = $$ ] && continue
    grep -qsxz "SLURM_JOB_ID=$SLURM_JOB_ID" "$dir/environ" && kill -KILL "$pid" 2>/dev/null
  done
}
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
