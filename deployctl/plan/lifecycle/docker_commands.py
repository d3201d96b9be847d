"""The exact `docker` argv lists deploy, rollback and status run on a host (Kamal-style:
commands are data here, executed by a connector elsewhere, and tests compare the lists).

Nothing secret is ever part of an argv: secrets are files mounted read-only, and the
registry password goes to `docker login --password-stdin`.
"""

from __future__ import annotations

import shlex
from typing import Sequence

from .containers import ContainerSpec
from .names import LABEL_APP, LABEL_ENV, LABEL_RELEASE, Names
from ..edge.proxy_config import PID_FILE

STOP_TIMEOUT = 10  # seconds gunicorn gets to finish in-flight requests on SIGTERM
PROXY_CONTAINER_PORT = 80


def _labels(labels: dict[str, str]) -> list[str]:
    return [arg for k, v in sorted(labels.items()) for arg in ("--label", f"{k}={v}")]


def _env(env: dict[str, str]) -> list[str]:
    return [arg for k, v in sorted(env.items()) for arg in ("-e", f"{k}={v}")]


def _secret_mounts(spec: ContainerSpec) -> list[str]:
    return [arg for host, inside in spec.secret_mounts() for arg in ("-v", f"{host}:{inside}:ro")]


def _env_file(spec: ContainerSpec) -> list[str]:
    """Variables whose values use a secret come from a 0600 file on the host, read by the
    docker CLI there: never on this argv."""
    return ["--env-file", spec.env_file] if spec.env_file else []


def _hardening(spec: ContainerSpec) -> list[str]:
    return spec.hardening.create_flags() if spec.hardening else []


def create_service(spec: ContainerSpec, release_network: str) -> list[str]:
    """A release's long-running container, created on its release's network where it carries
    its service's name as an alias. Not published: only the proxy reaches it."""
    return [
        "docker", "create", "--name", spec.name, "--network", release_network, "--network-alias", spec.service,
        "--restart", "unless-stopped", "--log-opt", "max-size=10m", *_hardening(spec),
        *_labels(spec.labels), *_env(spec.env), *_env_file(spec), *_secret_mounts(spec), spec.image, *spec.command,
    ]


def running_workers(names: Names) -> list[str]:
    """`name|release` of the app's running worker containers (retire stops a warm release's:
    its web containers stay for a fast rollback, but a second consumer must not run)."""
    return ["docker", "ps", "--no-trunc", "--format", '{{.Names}}|{{.Label "io.deployctl.release"}}',
            *_app_filters(names), "--filter", "label=io.deployctl.worker=true", "--filter", "status=running"]


def running_of_service(names: Names, service: str) -> list[str]:
    """The names of `service`'s running containers, any release (a stop_first worker's
    previous one: services/lifecycle/switch.py stops it before the new one starts)."""
    return ["docker", "ps", "--no-trunc", "--format", "{{.Names}}", *_app_filters(names),
            "--filter", f"label=io.deployctl.service={service}", "--filter", "label=io.deployctl.role=service",
            "--filter", "status=running"]


def connect_network(network: str, container: str, alias: str | None = None) -> list[str]:
    return ["docker", "network", "connect", *(["--alias", alias] if alias else []), network, container]


def start_service(spec: ContainerSpec, release_network: str, app_network: str) -> list[list[str]]:
    """Create on the release network, join the app network (the proxy and the accessories
    are there; the service's bare name is not), then start: in this order, so the process
    never runs without its accessories in reach."""
    return [create_service(spec, release_network), connect_network(app_network, spec.name), start([spec.name])]


def run_migration(spec: ContainerSpec, release_network: str, app_network: str, name: str, command: Sequence[str],
                  labels: dict[str, str]) -> list[list[str]]:
    """A one-off container of the new image with the service's env, secrets, privileges and
    limits, on both networks like the service; `start --attach` streams its output and
    returns its code."""
    return [
        ["docker", "create", "--name", name, "--network", release_network, "--network-alias", spec.service,
         *_hardening(spec), *_labels(labels), *_env(spec.env), *_env_file(spec), *_secret_mounts(spec), spec.image, *command],
        connect_network(app_network, name),
        ["docker", "start", "--attach", name],
    ]


def chown_secrets(image: str, user: str, host_dir: str) -> list[str]:
    """Hands a secrets directory to the image's own user (names resolved by the image's
    /etc/passwd), so files can stay mode 0600 and still be readable by a non-root app.
    The fallback of plan/pipeline/image_user.py's host-side chown: a container start costs ~1 s."""
    return ["docker", "run", "--rm", "--network", "none", "--user", "0:0", "--entrypoint", "chown",
            "-v", f"{host_dir}:/secrets", image, "-R", user, "/secrets"]


# The anchor's process. It owns the namespace; nginx containers serve in it. When none does
# (a host reboot: dockerd restores containers in no set order and never retries one that
# failed to start, so nginx, started before the anchor, stays "Exited (128)"; or the anchor
# itself restarted and nginx is left in the old namespace), the anchor runs nginx itself on
# the live configuration, HUPs it when the file changes, and QUITs it (gracefully) as soon
# as a listener it does not own appears on the port: a deploy's new nginx container.
# "Its own" = a socket inode held by a process of the anchor's PID namespace, looked for only
# while its own nginx runs (the scan is most of a tick's CPU; without one, any listener is
# another's: about a third of the idle anchor's cost, each second, on every host). While its
# nginx serves, the marker file holds its pid: the switch reads it (services/edge/proxy.py) and
# starts a new nginx container rather than reload one that may be in a dead namespace.
# The listeners are read from /proc/net/tcp{,6}, whose every read walks the kernel's table of
# the whole machine's connections (262,144 buckets here: ~20 ms of CPU a tick, for an anchor
# that watches an nginx serving, on every host, each second). So once a scan found an nginx
# container listening (and none of its own runs), a tick reads how many TCP sockets the
# namespace holds (/proc/net/sockstat{,6}: two counters, no walk, no process) and keeps that
# finding while the number did not fall since the last tick: an nginx that dies takes its
# sockets with it (the others there are the engine's DNS server's, on an app network), so
# the number falls at once and the next scan is that tick's. An idle site's anchor scans every
# tenth tick; a busy one's connections come and go, so it scans most ticks, as before. The
# tenth-tick scan bounds any case the counters misjudge at 10 s.
ANCHOR_SCRIPT = """trap 'exit 0' TERM INT QUIT
for tool in awk cksum grep ls nginx sed tr; do  # an image without them: only wait, as before
    command -v "$tool" >/dev/null || while :; do sleep 3600 & wait $!; done
done
hex=$(printf '%04X' "$1"); conf=$2; marker=$3; fallback=; sum=
alive() { [ -n "$fallback" ] && [ -r "/proc/$fallback/stat" ] && ! grep -q ') Z' "/proc/$fallback/stat"; }
count() {  # TCP sockets in this namespace, IPv4 and IPv6 ("" when a counter is unreadable or odd)
    v4=0; v6=0
    [ -r /proc/net/sockstat ] && { read -r _; read -r _ _ v4 _; } </proc/net/sockstat
    [ -r /proc/net/sockstat6 ] && read -r _ _ v6 _ </proc/net/sockstat6
    case "$v4.$v6" in *[!0-9.]*|.*|*.) now= ;; *) now=$((v4 + v6)) ;; esac
}
rm -f "$marker"
sleep 3 & wait $!
tick=0; last=; listening=
while :; do
    tick=$((tick + 1)); count
    # Scanned again unless the last scan found another's listener and no socket went since.
    if [ -n "$fallback" ] || [ $((tick % 10)) -eq 0 ] || [ -z "$listening" ] || [ -z "$now" ] \\
            || [ -z "$last" ] || [ "$now" -lt "$last" ]; then
        listening=$(awk -v p=":$hex" '$4 == "0A" && substr($2, length($2) - 4) == p { print $10 }' \\
                    /proc/net/tcp /proc/net/tcp6 2>/dev/null)
    fi
    last=$now
    others=
    if [ -n "$listening" ] && [ -z "$fallback" ]; then
        others=1  # no nginx of its own: any listener is another's (no scan of /proc/*/fd)
    elif [ -n "$listening" ]; then
        mine=" $(ls -l /proc/[0-9]*/fd 2>/dev/null | sed -n 's/.*socket:\\[\\([0-9]*\\)\\].*/\\1/p' | tr '\\n' ' ') "
        for inode in $listening; do
            case "$mine" in *" $inode "*) ;; *) others=1 ;; esac
        done
    fi
    if [ -n "$others" ]; then
        alive && kill -QUIT "$fallback"; fallback=
        [ -e "$marker" ] && rm -f "$marker"
    elif ! alive; then
        [ -e "$marker" ] && rm -f "$marker"
        if [ -s "$conf" ] && nginx -t -q -c "$conf" 2>/dev/null; then
            sum=$(cksum <"$conf"); nginx -c "$conf" -g 'daemon off;' & fallback=$!
            echo "$fallback" >"$marker"
        fi
    elif [ "$(cksum <"$conf")" != "$sum" ]; then
        sum=$(cksum <"$conf"); kill -HUP "$fallback"
    fi
    sleep 1 & wait $!
done"""


def anchor_command(listen_port: int, config: str, marker: str) -> list[str]:
    """The anchor's entrypoint and arguments ($0 names it in `ps`)."""
    return ["sh", "-c", ANCHOR_SCRIPT, "deployctl-anchor", str(listen_port), config, marker]


def run_proxy_anchor(names: Names, image: str, port: int, container_port: int, labels: dict[str, str],
                     proxy_dir: str, mount: str, config: str, marker: str,
                     tls: tuple[int, int] | None = None, tls_address: str | None = None,
                     address: str | None = None) -> list[str]:
    """The proxy's anchor: owns the published port and the network namespace (on the app
    network) that nginx containers join. tcp_migrate_req hands connections still queued
    on a closing listener to the next one, so replacing nginx drops nothing. It mounts the
    proxy directory as nginx does (writable: the marker), to serve it itself when no nginx
    container does. `address`: HTTP published there only (behind a shared proxy: 127.0.0.1,
    whose X-Forwarded-For it believes, docs/proxy.md); `ip::port` is Docker's free port on it."""
    published = f"{port}:{container_port}" if port else str(container_port)
    if address:
        published = f"{address}:{published}" if port else f"{address}::{container_port}"
    command = anchor_command(container_port, config, marker)
    # HTTPS (plan/edge/tls_config.py): (host port, port inside), published by the anchor too;
    # on `tls_address` only where given (behind a shared proxy: 127.0.0.1, docs/proxy.md).
    https = ["--publish", f"{tls_address + ':' if tls_address else ''}{tls[0]}:{tls[1]}"] if tls else []
    return [
        "docker", "run", "--detach", "--name", names.proxy, "--network", names.network,
        "--restart", "unless-stopped", "--publish", published, *https,
        "--sysctl", "net.ipv4.tcp_migrate_req=1",
        # nginx images stop with SIGQUIT; the anchor's shell traps TERM (and QUIT) and exits.
        "--stop-signal", "TERM",
        *_labels(labels), "-v", f"{proxy_dir}:{mount}", "--entrypoint", command[0], image, *command[1:],
    ]


def quit_anchor_nginx(anchor: str) -> list[str]:
    """The anchor's own nginx (if it serves: see ANCHOR_SCRIPT) quits gracefully; the pid
    file is the one the rendered configuration names, inside the anchor's filesystem."""
    return ["docker", "exec", anchor, "sh", "-c", f"kill -QUIT $(cat {PID_FILE}) 2>/dev/null; true"]


def run_proxy_nginx(names: Names, name: str, image: str, proxy_dir: str, mount: str, config: str,
                    labels: dict[str, str]) -> list[str]:
    """nginx in the anchor's network namespace, with deployctl's rendered configuration."""
    return [
        "docker", "run", "--detach", "--name", name, "--network", f"container:{names.proxy}",
        "--restart", "unless-stopped", "--log-opt", "max-size=10m",
        *_labels(labels), "-v", f"{proxy_dir}:{mount}:ro", "--entrypoint", "nginx", image,
        "-c", config, "-g", "daemon off;",
    ]


def nginx_swap_and_reload(container: str, host_dir: str, mount: str, config_file: str, staged_file: str) -> list[str]:
    """A switch's new configuration goes live in one command on the host: `nginx -t` of the
    staged file (as the container sees it, under `mount`), its rename over the live file (on
    the host: the container's mount is read-only), the reload. The live file changes only
    here, so a deployctl killed before this command leaves it as it was: nothing that reads
    it later (a reload by the next switch, a restarted nginx, the anchor's own nginx after a
    reboot) loads a release the switch never got to. A deployctl killed during it leaves the
    host to finish it. `&&`: a file nginx refuses is never renamed.
    The reload is a HUP to the container's PID 1, nginx's master (run_proxy_nginx starts it
    as the entrypoint, `daemon off`, on `{mount}/{config_file}`): what `nginx -s reload`
    sends, without the second `docker exec` (an exec is a process started in the
    container: 0.2-0.35 s of the switch on a loaded machine; a signal is one API call)."""
    test = shlex.join(["docker", "exec", container, "nginx", "-t", "-q", "-c", f"{mount}/{staged_file}"])
    move = shlex.join(["mv", "-f", f"{host_dir}/{staged_file}", f"{host_dir}/{config_file}"])
    reload = shlex.join(nginx_hup(container))
    return ["sh", "-c", f"{test} && {move} && {reload}"]


def nginx_test_staged(container: str, mount: str, staged_file: str) -> list[str]:
    """The first half of `nginx_swap_and_reload`, apart: `nginx -t` of the staged file in
    the running nginx. For a switch whose new configuration can be tested before it is due
    (a rollback by the standby flag tests the target's own file while its verify runs);
    `nginx_move_and_reload` is then the rest, once due."""
    return ["docker", "exec", container, "nginx", "-t", "-q", "-c", f"{mount}/{staged_file}"]


def nginx_move_and_reload(container: str, host_dir: str, config_file: str, staged_file: str) -> list[str]:
    """The second half of `nginx_swap_and_reload`: the staged file, tested already
    (`nginx_test_staged`), renamed over the live one and nginx's master HUPed, in one command
    (no `docker exec`: the slowest part of the swap, 0.4-1 s at load 20)."""
    move = shlex.join(["mv", "-f", f"{host_dir}/{staged_file}", f"{host_dir}/{config_file}"])
    return ["sh", "-c", f"{move} && {shlex.join(nginx_hup(container))}"]


def nginx_hup(container: str) -> list[str]:
    """nginx's master re-reads its configuration (graceful: old workers finish what they hold)."""
    return ["docker", "kill", "--signal", "HUP", container]


BACKGROUND_TAIL = ") </dev/null >/dev/null 2>&1 &"


def in_background(argvs: Sequence[Sequence[str]]) -> list[str]:
    """`argvs`, one after the other (a failure does not stop the next), run by the host after
    this command returns: the work after a verified switch that nothing needs to wait for
    (the stop of a release out of the proxy long enough, a prune). Its output goes nowhere
    and it ignores the hang-up of an SSH session that ends, so neither the connection nor
    deployctl's exit cuts it short. What it leaves undone (a host reboot meanwhile) the next
    command's retire and prune do again: they work from what runs on the host, not from a
    record of this one."""
    body = "; ".join(shlex.join(list(argv)) for argv in argvs)
    return ["sh", "-c", f"trap '' HUP; ({body}{BACKGROUND_TAIL}"]


def remove_tree(path: str) -> list[str]:
    return ["rm", "-rf", "--", path]


def nginx_quit(container: str) -> list[str]:
    """Graceful: nginx stops accepting, finishes what it holds, exits."""
    return ["docker", "kill", "--signal", "QUIT", container]


def wait(container: str) -> list[str]:
    return ["docker", "wait", container]


def exec_command(container: str, command: Sequence[str]) -> list[str]:
    return ["docker", "exec", container, *command]


def image_user(image: str) -> list[str]:
    return ["docker", "image", "inspect", "--format", "{{.Config.User}}", image]


def image_present(*images: str) -> list[str]:
    """Exit 0 when the engine has every one of `images` (one round trip for all of them)."""
    return ["docker", "image", "inspect", "--format", "{{.Id}}", *images]


def client(config_dir: str | None) -> list[str]:
    """`docker`, reading its client config (where `docker login` keeps credentials) from
    `config_dir` when given: a command's own registry login, not the host user's."""
    return ["docker", "--config", config_dir] if config_dir else ["docker"]


def pull(image: str, config_dir: str | None = None) -> list[str]:
    return [*client(config_dir), "pull", "--quiet", image]


# A registry login on a host lives in a client config directory of its own, made for one
# deployctl command and removed when it ends (services/lifecycle/preflight.py): the host user's
# ~/.docker/config.json never holds the password, and a deployctl killed half-way leaves at
# most this 0700 directory in the host's temp dir (mktemp -d makes it 0700). Chosen over
# `docker logout` after the pull, which edits the user's own config (and its credential
# helper), and which a crash between login and logout skips, leaving the password behind.
REGISTRY_CONFIG_PREFIX = "deployctl-registry."


def with_registry_auth(registry_auth: bool | str) -> list[str]:
    """`docker ... service create` sending the registry login to the Swarm's nodes: from the
    command's own client config when `registry_auth` names it (True: the user's)."""
    config_dir = registry_auth if isinstance(registry_auth, str) else None
    return [*client(config_dir), "service", "create", "--detach", *(["--with-registry-auth"] if registry_auth else [])]


def registry_config_dir() -> list[str]:
    """Prints the new directory's path."""
    return ["mktemp", "-d", "-t", f"{REGISTRY_CONFIG_PREFIX}XXXXXXXXXX"]


# Longer than any command runs (a pull times out after 15 minutes): a directory this old was
# left by a deployctl that was killed, and still holds its login.
STALE_REGISTRY_CONFIG_MINUTES = 24 * 60


def sweep_registry_configs(temp_dir: str) -> list[str]:
    """Removes the login directories killed commands left in the host's temp dir."""
    return ["find", temp_dir, "-maxdepth", "1", "-type", "d", "-name", f"{REGISTRY_CONFIG_PREFIX}*",
            "-mmin", f"+{STALE_REGISTRY_CONFIG_MINUTES}", "-exec", "rm", "-rf", "--", "{}", "+"]


def remove_registry_config(config_dir: str) -> list[str]:
    return ["rm", "-rf", "--", config_dir]


def login(server: str, username: str, config_dir: str | None = None) -> list[str]:
    """The password goes on stdin (--password-stdin): never on this argv."""
    return [*client(config_dir), "login", "--username", username, "--password-stdin", server]


def docker_version() -> list[str]:
    return ["docker", "version", "--format", "{{.Server.Version}}"]


def networks_present(*networks: str) -> list[str]:
    """The name of each of `networks` the engine has, one a line (exit 1 when any is
    missing): which of a deploy's networks to create, in one docker process (issue 26)."""
    return ["docker", "network", "inspect", "--format", "{{.Name}}", *networks]


def network_create(names: Names, subnet: str | None = None) -> list[str]:
    return ["docker", "network", "create", *(["--subnet", subnet] if subnet else []), *_labels(names.labels("network")),
            names.network]


def release_network_create(names: Names, release: str, subnet: str | None = None) -> list[str]:
    """`subnet`: a small one from the environment's pool (plan/lifecycle/subnets.py); None: Docker's."""
    return ["docker", "network", "create", *(["--subnet", subnet] if subnet else []),
            *_labels(names.labels("network", release)), names.release_network(release)]


NETWORK_IDS = ["docker", "network", "ls", "--quiet"]


def network_subnets(ids: Sequence[str]) -> list[str]:
    """Each network's subnets, one line per network: what a release network's subnet must
    not overlap. A network removed since the listing fails the command but not the others'
    lines, which are read anyway."""
    return ["docker", "network", "inspect", "--format", "{{range .IPAM.Config}}{{.Subnet}} {{end}}", *ids]


def network_gateways(network: str) -> list[str]:
    """`GATEWAY|SUBNET ` of each of a network's address ranges (plan/edge/tls_config.gateways)."""
    return ["docker", "network", "inspect", "--format", "{{range .IPAM.Config}}{{.Gateway}}|{{.Subnet}} {{end}}", network]


def release_networks(names: Names) -> list[str]:
    """`name|release` of this environment's release networks (the app's own has no release)."""
    return ["docker", "network", "ls", "--filter", f"label={LABEL_APP}={names.app}",
            "--filter", f"label={LABEL_ENV}={names.env}", "--format", f'{{{{.Name}}}}|{{{{.Label "{LABEL_RELEASE}"}}}}']


def network_remove(networks: Sequence[str]) -> list[str]:
    return ["docker", "network", "rm", *networks]


def start(containers: Sequence[str]) -> list[str]:
    return ["docker", "start", *containers]


def stop(containers: Sequence[str], timeout: int = STOP_TIMEOUT) -> list[str]:
    return ["docker", "stop", "--time", str(timeout), *containers]


def remove(containers: Sequence[str]) -> list[str]:
    return ["docker", "rm", "--force", "--volumes", *containers]


def remove_images(images: Sequence[str]) -> list[str]:
    return ["docker", "image", "rm", *images]


def logs(container: str, lines: int, follow: bool = False) -> list[str]:
    return ["docker", "logs", "--tail", str(lines), *(["--follow"] if follow else []), container]


# One line per container: name, state, health, IP on the app network, release label, start,
# image, and how it last exited and how often its restart policy restarted it (the health
# wait reads a crash from these, in the same inspect that gives it the address).
STATE_FORMAT = ("{{.Name}}|{{.State.Status}}|{{if .State.Health}}{{.State.Health.Status}}{{end}}|"
                "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}|"
                "{{index .Config.Labels \"io.deployctl.release\"}}|{{.State.StartedAt}}|{{.Image}}|"
                "{{.State.ExitCode}}|{{.RestartCount}}")


def inspect_state(containers: Sequence[str]) -> list[str]:
    return ["docker", "container", "inspect", "--format", STATE_FORMAT, *containers]


def addresses_on(containers: Sequence[str], network: str) -> list[str]:
    """`name|IP` of each container on `network` (empty when it is not attached or not running)."""
    return ["docker", "container", "inspect", "--format",
            f'{{{{.Name}}}}|{{{{with index .NetworkSettings.Networks "{network}"}}}}{{{{.IPAddress}}}}{{{{end}}}}',
            *containers]


def _app_filters(names: Names) -> list[str]:
    return ["--filter", f"label=io.deployctl.app={names.app}", "--filter", f"label=io.deployctl.env={names.env}"]


def list_containers(names: Names) -> list[str]:
    """Every container of the app and environment, running or stopped: `name|role|release|state|worker`
    (the state too: a warm rollback's check needs no inspect on its way to the switch; the
    worker label: a retire reads the running workers from it, not from a `running_workers`
    listing of its own)."""
    return ["docker", "ps", "--all", "--no-trunc", "--format",
            '{{.Names}}|{{.Label "io.deployctl.role"}}|{{.Label "io.deployctl.release"}}|{{.State}}'
            '|{{.Label "io.deployctl.worker"}}',
            *_app_filters(names)]


# What the switch needs of the proxy, per container (read by plan/edge/proxy_containers.py).
PROXY_LISTING_FORMAT = '{{.Names}}|{{.State}}|{{.Label "io.deployctl.role"}}|{{.Image}}|{{.Ports}}'


def list_proxy(names: Names) -> list[str]:
    """The app's containers with their state, role, image and published ports: one round
    trip answers what the switch asks of the anchor, the nginx containers and the port."""
    return ["docker", "ps", "--all", "--no-trunc", "--format", PROXY_LISTING_FORMAT, *_app_filters(names)]


def status_and_role(container: str) -> list[str]:
    """`state|role` of one container (exit 1 when it does not exist)."""
    return ["docker", "container", "inspect", "--format",
            '{{.State.Status}}|{{index .Config.Labels "io.deployctl.role"}}', container]


def no_restart(container: str) -> list[str]:
    return ["docker", "update", "--restart", "no", container]


def nginx_test_and_reload(container: str, config: str) -> list[str]:
    """Both in one exec (one round trip instead of two on the switch's critical path);
    `&&`: a configuration `nginx -t` refuses never reaches the running nginx."""
    return ["docker", "exec", container, "sh", "-c", f"nginx -t -q -c {config} && nginx -s reload -c {config}"]


def port_of(container: str, port: int = PROXY_CONTAINER_PORT) -> list[str]:
    return ["docker", "port", container, f"{port}/tcp"]


# The host's clock, to the nanosecond: docker's log timestamps and `--since` are in it.
HOST_CLOCK = ["date", "+%s.%N"]


def logs_since(container: str, since: float | str) -> list[str]:
    """The proxy's access log since an instant (epoch seconds, to the millisecond; a string
    is a dry run's placeholder), each line with docker's own timestamp: what the guard and
    the canary read (services/judging/watch.py)."""
    return ["docker", "logs", "--timestamps", "--since", since if isinstance(since, str) else f"{since:.3f}",
            container]


# The watchdog needs no more than this: write in the proxy directory (owned by the SSH user,
# so root in the container needs DAC_OVERRIDE) and HUP nginx's master (KILL, in case the
# proxy image runs nginx as another user than the watchdog's).
WATCHDOG_CAPS = ("DAC_OVERRIDE", "KILL")


def run_canary_watchdog(name: str, image: str, proxy_dir: str, nginx: str, seconds: int, *, config: str,
                        live_copy: str, fired: str, labels: dict[str, str]) -> list[str]:
    """The canary's watchdog: a container of the proxy's own image (on every host that runs
    the proxy) that sleeps until the canary's deadline, then puts the live-only
    configuration back (by rename, as deployctl writes it) and reloads nginx with SIGHUP:
    it shares nginx's process namespace, where nginx's master is process 1. The deploy
    removes it once the canary is decided; a killed deployctl cannot. Least privilege: it
    mounts only the proxy directory (at /proxy; file names relative to it), not the state
    directory with the secrets, the history and the lock; no network, a read-only root, no
    capability but WATCHDOG_CAPS, no privilege gained through exec."""
    script = (f"sleep {seconds} && cp /proxy/{live_copy} /proxy/{config}.watchdog && "
              f"mv -f /proxy/{config}.watchdog /proxy/{config} && kill -HUP 1 && "
              f"date -u +%Y-%m-%dT%H:%M:%SZ > /proxy/{fired}")
    return ["docker", "run", "--detach", "--rm", "--name", name, "--network", "none", "--pid", f"container:{nginx}",
            "--security-opt", "no-new-privileges", "--cap-drop", "ALL",
            *[arg for cap in WATCHDOG_CAPS for arg in ("--cap-add", cap)], "--read-only",
            *_labels(labels), "-v", f"{proxy_dir}:/proxy", "--entrypoint", "sh", image, "-c", script]
