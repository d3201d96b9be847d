#!/bin/bash
# Entrypoint of the EC2-like host stand-in: its own dockerd and sshd in one container.
# Run it with the options from /work/shared/testenv.md ("Several EC2 hosts on one machine"),
# e.g. --cap-add ALL --cap-drop SYS_RESOURCE --security-opt seccomp=unconfined
#      --security-opt apparmor=unconfined --cgroupns=host -v /sys/fs/cgroup:/sys/fs/cgroup:rw
# Environment:
#   SSH_AUTHORIZED_KEYS          public key line(s) allowed to log in as root
#   DOCKERD_INSECURE_REGISTRIES  comma/space separated HOST:PORT list of plain-HTTP registries
#   DOCKERD_EXTRA_ARGS           more dockerd arguments (word-split)
set -euo pipefail

# Host keys are made here, not in the image, so every host has its own identity.
ssh-keygen -A >/dev/null
mkdir -p /run/sshd /root/.ssh
chmod 700 /root/.ssh
if [ -n "${SSH_AUTHORIZED_KEYS:-}" ]; then
    printf '%s\n' "$SSH_AUTHORIZED_KEYS" >>/root/.ssh/authorized_keys
    chmod 600 /root/.ssh/authorized_keys
fi

dockerd_args=()
for registry in ${DOCKERD_INSECURE_REGISTRIES//,/ }; do
    dockerd_args+=(--insecure-registry "$registry")
done
# shellcheck disable=SC2206 # word splitting of the extra arguments is intended
dockerd_args+=(${DOCKERD_EXTRA_ARGS:-})

# A stopped host keeps its /run (a real host's is a tmpfs, empty at boot): dockerd's pid file
# and its containerd's. dockerd refuses to start beside the first; the second, when its pid
# now belongs to another process, makes dockerd wait for a containerd that is not there and
# exit (a CI run lost its Swarm node this way on `docker start`). Nothing else can be
# running in this container yet, so the runtime state goes, as a reboot clears it.
rm -rf /var/run/docker.pid /var/run/docker /run/containerd
dockerd "${dockerd_args[@]}" >>/var/log/dockerd.log 2>&1 &
dockerd_pid=$!
/usr/sbin/sshd -D -e &
sshd_pid=$!

# bash is PID 1: forward docker stop's SIGTERM so dockerd can stop its containers cleanly.
stop() {
    kill -TERM "$sshd_pid" "$dockerd_pid" 2>/dev/null || true
    wait "$dockerd_pid" 2>/dev/null || true
    exit "${1:-0}"
}
trap 'stop 0' TERM INT

wait -n "$sshd_pid" "$dockerd_pid" || true
echo "host-entrypoint: sshd or dockerd exited; see /var/log/dockerd.log" >&2
stop 1
