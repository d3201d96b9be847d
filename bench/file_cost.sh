#!/usr/bin/env bash
# What one test file costs the machine (issue 26 item 5): container starts/creates and execs
# on this machine's engine (docker events: anything else using the engine counts too), every
# `docker` CLI call its pytest, deployctl and fixtures make on this machine (a PATH shim logs each argv), the CPU of its own process tree (a cpuacct
# cgroup: pytest, deployctl subprocesses, docker CLI), dockerd's and the whole machine's CPU
# (/proc/stat: other work on the machine counts there too), wall time and the load average.
#   bench/file_cost.sh LABEL TREE PYTEST_ARGS...   (as root; cgroup v1 cpuacct)
#   e.g. bench/file_cost.sh rb_main /path/to/main-checkout tests/faults/test_rollback_faults.py -x
# Writes $OUT/LABEL.{log,events,trace,summary} (OUT: /tmp/file-cost). Compare two trees back to
# back on the same file; the counts (docker calls, creates, starts) do not depend on load.
set -u
label=$1; tree=$2; shift 2
out=${OUT:-/tmp/file-cost}; mkdir -p "$out/shim"; base=$out/$label
real_docker=$(command -v docker)
cat >"$out/shim/docker" <<SHIM
#!/bin/sh
printf '%s\t%s\n' "\$PPID" "\$*" >> "\${DOCKER_TRACE:?}"
exec $real_docker "\$@"
SHIM
chmod +x "$out/shim/docker"
cg=/sys/fs/cgroup/cpuacct/file_cost_$label; mkdir -p "$cg"
busy() { awk '/^cpu /{print $2+$3+$4+$7+$8, $4+$7+$8}' /proc/stat; }
pcpu() { awk '{print $14+$15}' "/proc/$(pgrep -xo "$1")/stat"; }
docker events --format '{{.Time}} {{.Type}} {{.Action}} {{.Actor.Attributes.name}}' >"$base.events" 2>/dev/null &
events=$!
sleep 1
read -r b0 s0 < <(busy); d0=$(pcpu dockerd); t0=$(date +%s.%N); l0=$(cut -d' ' -f1-3 /proc/loadavg)
rm -f "$base.trace"; : >"$base.trace"
( echo $BASHPID >"$cg/tasks"; cd "$tree" && PATH="$out/shim:$PATH" DOCKER_TRACE="$base.trace" PYTHONPATH=$PWD \
    exec /work/main/.venv/bin/python -m pytest -p no:cacheprovider -q "$@" ) >"$base.log" 2>&1
rc=$?
read -r b1 s1 < <(busy); d1=$(pcpu dockerd); t1=$(date +%s.%N); l1=$(cut -d' ' -f1-3 /proc/loadavg)
sleep 1; kill $events
hz=$(getconf CLK_TCK)
{
echo "$label rc=$rc: $*"
echo "  wall $(echo "$t1 - $t0" | bc) s; load before $l0, after $l1"
echo "  CPU-s: own tree $(echo "scale=1; $(cat "$cg/cpuacct.usage")/1000000000" | bc), dockerd $(( (d1-d0)/hz )), machine $(( (b1-b0)/hz )) (kernel $(( (s1-s0)/hz )))"
echo "  engine: container starts $(grep -c ' container start ' "$base.events"), creates $(grep -c ' container create ' "$base.events"), execs $(grep -c ' exec_start' "$base.events")"
echo "  docker CLI calls $(grep -c "$(printf '\t')" "$base.trace")"
tail -1 "$base.log"
} | tee "$base.summary"
rmdir "$cg" 2>/dev/null || true
