#!/bin/sh
# Entry point of the worker image (deploy/Dockerfile): runs the command under tini as the
# unprivileged `node` user.
#
# Started as root with CAP_SYS_ADMIN (docker-compose.yaml: `user: root`, `cap_add: [SYS_ADMIN]`), it
# first removes Docker's masks on /proc (the mounts over /proc/kcore, /proc/sys, ...): while they are
# there the kernel refuses the agent's sandbox a /proc of its own. `--security-opt
# systempaths=unconfined` does the same when the container is created, but Compose v1.29 cannot pass
# it (it hands it to the daemon, which rejects it). Then it drops to `node` with no capabilities, an
# empty bounding set and no_new_privs: nothing the worker or the agent runs can get them back.
# Started as any other user it only runs the command. docs/security.md, "In containers".
set -eu

if [ "$(id -u)" != 0 ]; then
  exec tini -- "$@"
fi

cap_eff=$(awk '/^CapEff:/ { print $2 }' /proc/self/status)
if [ $((0x$cap_eff >> 21 & 1)) = 1 ]; then # CAP_SYS_ADMIN
  # Deepest first: a masked path can sit under a read-only one.
  awk '$5 ~ /^\/proc\// { print $5 }' /proc/self/mountinfo | sort -r | while read -r path; do
    if ! umount "$path"; then
      echo "worker-entrypoint: cannot unmount $path: the agent's sandbox will not start (on an AppArmor host add security_opt apparmor=unconfined)" >&2
    fi
  done
fi

HOME=$(getent passwd node | cut -d: -f6)
export HOME
exec setpriv --reuid=node --regid=node --init-groups --inh-caps=-all --bounding-set=-all \
  --no-new-privs -- tini -- "$@"
