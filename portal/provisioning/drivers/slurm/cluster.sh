#!/bin/bash
# A Backfill cluster: one job on N Slurm nodes. On each node an SSH server with the cluster's
# keys, the cluster node's name (<cluster>-<i>) as its host name and a hosts file listing every
# node. The state directory is in $HOME, which the nodes share (a cluster's shared storage).
export HOME="${HOME:-$(getent passwd "$(id -un)" | cut -d: -f6)}" USER="$(id -un)"
cd "$HOME" 2>/dev/null || true
run="${SLURM_RESTART_COUNT:-0}"
shared="$HOME/.backfill/$SLURM_JOB_ID/$run"
report() { scontrol update JobId="$SLURM_JOB_ID" Comment="$BACKFILL_META&$1" >/dev/null; }
fail() {
  echo "backfill: $1" >&2
  report "error=$(printf %s "$1" | tr -c 'A-Za-z0-9._-' '+')"
  [ -n "$step" ] && kill "$step" 2>/dev/null
  exit 1
}
step=
trap '[ -n "$step" ] && kill "$step" 2>/dev/null; scontrol requeuehold "$SLURM_JOB_ID"; exit 0' USR1
trap 'notice=1' TERM
umask 077
# A job id can come back (a Slurm whose state was reset numbers its jobs from 1 again): what an
# earlier job of that id left here, above all its nodes' ports, must not be taken for this one's.
rm -rf "$shared"
mkdir -p "$shared/ssh" "$HOME/.ssh" || fail "cannot create $shared"
chmod 755 "$HOME/.backfill" "$HOME/.backfill/$SLURM_JOB_ID" "$shared" 2>/dev/null
chmod 700 "$HOME/.ssh" "$shared/ssh" 2>/dev/null
cat > "$shared/ssh/authorized_keys" <<'BACKFILL_KEYS'
@SSH_KEYS@
BACKFILL_KEYS
[ -f "$shared/hostkey" ] || dropbearkey -t ed25519 -f "$shared/hostkey" >/dev/null 2>&1 \
  || fail "dropbearkey is missing on the node (apt-get install dropbear-bin)"
unshare -Urmu true 2>/dev/null \
  || fail "this node cannot give the cluster's nodes their names and keys (no user namespaces)"
hosts=; i=0
: > "$shared/hosts.new"
for host in $(scontrol show hostnames "$SLURM_JOB_NODELIST"); do
  address=$(scontrol show node "$host" -o | tr ' ' '\n' | sed -n 's/^NodeAddr=//p')
  echo "${address:-$host} $BACKFILL_NAME-$i" >> "$shared/hosts.new"
  hosts="$hosts${hosts:+.}$host"; i=$((i + 1))
done
nodes=$i
chmod 644 "$shared/hosts.new" && mv "$shared/hosts.new" "$shared/hosts"
cat > "$shared/node.sh" <<'BACKFILL_NODE'
#!/bin/bash
# One node of the cluster: dropbear on a free port, as <cluster>-<SLURM_NODEID>.
shared="$1"; low="$2"; high="$3"
name="$BACKFILL_NAME-$SLURM_NODEID"
uid=$(id -u); gid=$(id -g)
for candidate in $(shuf -i "$low-$high" -n 40); do
  (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null && continue
  unshare -Urmu sh -c 'hostname "$1" && mount --bind "$2" "$3" && mount --bind "$4" /etc/hosts \
    && exec unshare -U --map-user="$5" --map-group="$6" \
    dropbear -F -E -e -w -s -j -k -p "$7" -r "$8" -P "$9"' sh \
    "$name" "$shared/ssh" "$HOME/.ssh" "$shared/hosts" "$uid" "$gid" "$candidate" \
    "$shared/hostkey" "$shared/dropbear.$SLURM_NODEID.pid" &
  ssh=$!
  for _ in $(seq 50); do
    kill -0 "$ssh" 2>/dev/null || break
    if (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then
      echo "$candidate" > "$shared/port.$SLURM_NODEID.new"
      mv "$shared/port.$SLURM_NODEID.new" "$shared/port.$SLURM_NODEID"
      wait "$ssh"
      exit $?
    fi
    sleep 0.1
  done
  kill "$ssh" 2>/dev/null
done
echo "backfill: no free port for the SSH server of $name" >&2
exit 1
BACKFILL_NODE
srun --overlap --ntasks="$nodes" --ntasks-per-node=1 --kill-on-bad-exit=1 \
  bash "$shared/node.sh" "$shared" @PORT_LOW@ @PORT_HIGH@ &
step=$!
ports=
for _ in $(seq 600); do
  kill -0 "$step" 2>/dev/null || fail "a node of the cluster did not start its SSH server"
  ports=; ready=0
  for n in $(seq 0 $((nodes - 1))); do
    [ -f "$shared/port.$n" ] || break
    ports="$ports${ports:+.}$(cat "$shared/port.$n")"; ready=$((ready + 1))
  done
  [ "$ready" = "$nodes" ] && break
  sleep 0.1
done
[ "$ready" = "$nodes" ] || fail "the nodes' SSH servers did not start within a minute"
report "port=${ports%%.*}&ports=$ports&hosts=$hosts&run=$run"
while true; do
  wait "$step"
  code=$?
  kill -0 "$step" 2>/dev/null && continue  # a signal interrupted the wait
  fail "a node of the cluster stopped (exit code $code)"
done
