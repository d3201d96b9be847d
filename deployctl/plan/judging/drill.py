"""`deployctl drill`: the failing release a drill deploys, and what its history line says.

Pure: config in, config out. A drill deploys the LIVE release's images again, changed only
by deploy.toml-level settings of this one release, so any app can be drilled with no app
change (docs/release-safety.md, "Drills"):

- `health`: the routed service, same image, with a health check that fails in every image
  (`docker exec` of a program no image has: exit 126/127);
- `5xx`, `slow`, `crash`: a small fault-injecting nginx (the proxy image deployctl already
  runs, so nothing new is pulled) becomes the routed service, in front of the app's port on
  the release's own network. `5xx`: `split_clients` answers `rate` of the requests 500
  itself; `slow`: the same share waits `SLOW_DELAY` seconds first (the echo module's
  `echo_sleep`: nginx core has no delay of its own; deployctl checks the proxy image has it
  before any change); `crash`: the wrapper passes every request through and exits after
  `CRASH_AFTER` seconds, as a process that dies while serving.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from ...config.models import Config, Environment, HealthCheck, Service
from ..pipeline.images import PROXY
from ..lifecycle.target_limits import refuse as refuse_target
from ..lifecycle.releases import DRILL  # noqa: F401 - the history line's action, for the drill's callers

KINDS = ("5xx", "slow", "crash", "health")
WRAPPED = ("5xx", "slow", "crash")  # the kinds with the fault-injecting nginx in front
WRAPPER = "drill-fault"  # the wrapper's service name in the drill release
WRAPPER_PORT = 8080
WRAPPER_HEALTH = "/.deployctl-drill-health"  # the wrapper's own readiness; the app keeps its own check
FAILING_PROBE = "/.deployctl-drill/no-such-program"  # in no image: `docker exec` of it always fails
SLOW_DELAY = 2.0  # seconds: over the default 2x p95 ratio wherever the live p95 is under 2 s
CRASH_AFTER = 1.0  # seconds: the wrapper exits, Docker restarts it (unless-stopped), it exits again...
CRASH_EXIT = 70
# The share of requests that fail when --rate is not given. `slow` delays every request (a
# release slow for everyone is the usual regression): a shadow window judges only the copies
# already answered, and before rollout.shadow_timeout cut copies off, a delayed fifth was
# missing from its first seconds of log and the window passed it (docs/release-safety.md).
DEFAULT_RATE = {"5xx": 0.2, "slow": 1.0}


def rate_for(kind: str, rate: float | None) -> float:
    return rate if rate is not None else DEFAULT_RATE.get(kind, 0.2)
PRODUCTION_NAMES = ("production", "prod")
# Where the echo module may sit in an nginx image (Debian's libnginx-mod-http-echo, Alpine's
# nginx-mod-http-echo); the first that exists is loaded.
ECHO_MODULES = ("/usr/lib/nginx/modules/ngx_http_echo_module.so", "/etc/nginx/modules/ngx_http_echo_module.so",
                "/usr/local/nginx/modules/ngx_http_echo_module.so")

# The steps of the one transaction that judge a release, by the name their events carry
# (services/lifecycle/switch.py, shadow.py, canary.py, watch.py), and the net each belongs to.
# The switch step's failure is its verify through the proxy (or the route itself) failing.
# `start` is not one: the engine refusing to start a container judges nothing (a crash at
# start is seen by the health wait, which fails fast on an exited container).
NET_OF_STEP = {"health": "health", "shadow": "shadow", "canary": "canary",
               "switch": "verify", "guard": "guard"}
# A net's first step, which fails when the proxy's `nginx -t` cannot resolve the new release's
# container (it exited: a crash loop caught between two starts); its success is no verdict.
SETUP_OF_NET = {"mirror": "shadow", "split": "canary"}
# The step that put the live release back alone after a net caught the drill (the shadow's,
# the canary's, the guard's). A failed verify's switch back emits no step of its own: its
# restore runs to the deploy's end, as a health gate's does.
PUT_BACK_STEPS = ("stop", "abort", "revert")

# A drill's outcome: a net stopped it; none did and the drill rolled back itself; it failed
# before any net judged it (exit 6, nothing was switched); what serves is uncertain (exit 7);
# an interrupt stopped it (the deploy's own exit 6: the live release serves).
CAUGHT, ROLLED_BACK, FAILED_UNJUDGED, NOT_RESTORED = "caught", "rolled back", "failed", "uncertain"
INTERRUPTED = "interrupted"


class DrillRefused(ValueError):
    """The drill cannot run here as asked (the message says why and what to do)."""


def is_production(name: str, environment: Environment) -> bool:
    """`production = true|false` in the environment's table decides; unset, the name does:
    `production` or `prod` (any case)."""
    if environment.production is not None:
        return environment.production
    return name.lower() in PRODUCTION_NAMES


def check_request(name: str, environment: Environment, kind: str, rate: float, *, i_mean_it: bool) -> None:
    if kind not in KINDS:
        raise DrillRefused(f"--fail {kind!r}: expected one of {', '.join(KINDS)}")
    if not 0 < rate <= 1:
        raise DrillRefused(f"--rate {rate:g}: expected a share of the requests above 0 and at most 1 (0.2 = 20%)")
    if is_production(name, environment) and not i_mean_it:
        why = ("environments.%s.production = true" % name if environment.production
               else f"the environment is named {name!r}")
        raise DrillRefused(f"{name} is a production environment ({why}): a drill there puts a failing release "
                           "through its safety nets in front of real users; add --i-mean-it to run it")
    refuse_target(environment.target, name, "drill")  # a Swarm (plan/lifecycle/target_limits.py): UsageError, exit 2


def drill_config(config: Config, kind: str, rate: float) -> Config:
    """deploy.toml as the drill release sees it: the routed service made to fail as `kind`
    says. model_copy: the changes are deployctl's own, not the user's to validate."""
    name = config.routed_service
    routed = config.services[name]
    if kind == "health":
        failing = HealthCheck(type="command", command=[FAILING_PROBE], interval=routed.healthcheck.interval,
                              timeout=routed.healthcheck.timeout)
        services = {**config.services, name: routed.model_copy(update={"healthcheck": failing})}
        return config.model_copy(update={"services": services})
    wrapper = Service(context=routed.context, port=WRAPPER_PORT, routed=True, verify_path=routed.verify_path,
                      healthcheck=HealthCheck(path=WRAPPER_HEALTH, timeout=routed.healthcheck.timeout),
                      command=["sh", "-c", wrapper_script(kind, rate, name, routed.port)])
    services = {**config.services, name: routed.model_copy(update={"routed": False, "verify_path": None}),
                WRAPPER: wrapper}
    return config.model_copy(update={"services": services})


def wrapper_config(kind: str, rate: float, upstream: str, port: int, echo_module: str = "") -> str:
    """The wrapper's whole nginx.conf. The app is found by its alias on the release network
    through Docker's DNS at each request (`resolver 127.0.0.11`), so the wrapper may start
    before the app does."""
    share = f"{rate * 100:g}%"
    if kind == "5xx":
        fault = f"        if ($drill_fault) {{ return 500 \"deployctl drill: injected 5xx ({share})\\n\"; }}\n"
        body = "        proxy_pass $drill_app;\n"
    elif kind == "slow":
        fault = f"        if ($drill_fault) {{ echo_sleep {SLOW_DELAY:g}; echo_exec @app; }}\n"
        body = "        proxy_pass $drill_app;\n"
    else:
        fault, body = "", "        proxy_pass $drill_app;\n"
    load = f"load_module {echo_module};\n" if echo_module else ""
    return (f"{load}worker_processes 1;\npid /tmp/deployctl-drill.pid;\nerror_log stderr warn;\n"
            "events { worker_connections 1024; }\n"
            "http {\n"
            "    access_log off;\n    client_max_body_size 0;\n"
            "    client_body_temp_path /tmp/drill-body;\n    proxy_temp_path /tmp/drill-proxy;\n"
            "    resolver 127.0.0.11 valid=5s ipv6=off;\n"
            f"    split_clients \"$request_id\" $drill_fault {{ {share} 1; * 0; }}\n"
            "    server {\n"
            f"        listen {port};\n"
            f"        set $drill_app http://{upstream};\n"
            "        proxy_http_version 1.1;\n        proxy_set_header Connection \"\";\n"
            "        proxy_set_header Host $http_host;\n        proxy_pass_request_headers on;\n"
            f"        location = {WRAPPER_HEALTH} {{ return 200 \"ok\\n\"; }}\n"
            "        location @app { proxy_pass $drill_app; }\n"
            f"        location / {{\n{fault}{body}        }}\n"
            "    }\n}\n")


def wrapper_script(kind: str, rate: float, service: str, port: int) -> str:
    """The wrapper container's `sh -c` script: write the configuration, run nginx; `crash`
    exits after CRASH_AFTER seconds (its nginx goes with the container)."""
    upstream = f"{service}:{port}"
    if kind == "slow":
        find = " ".join(shlex.quote(m) for m in ECHO_MODULES)
        lines = [f"m=''; for f in {find}; do [ -e \"$f\" ] && m=\"$f\" && break; done",
                 "[ -n \"$m\" ] || { echo 'deployctl drill: no echo module in this nginx image' >&2; exit 78; }",
                 f"cat > /tmp/deployctl-drill.conf <<EOF\n{_heredoc(wrapper_config(kind, rate, upstream, WRAPPER_PORT, '@ECHO@'))}EOF",
                 "sed -i \"s#@ECHO@#$m#\" /tmp/deployctl-drill.conf"]
    else:
        lines = [f"cat > /tmp/deployctl-drill.conf <<'EOF'\n{wrapper_config(kind, rate, upstream, WRAPPER_PORT)}EOF"]
    run = "nginx -c /tmp/deployctl-drill.conf -g 'daemon off;'"
    if kind == "crash":
        lines.append(f"{run} & sleep {CRASH_AFTER:g}; echo 'deployctl drill: crashing now' >&2; exit {CRASH_EXIT}")
    else:
        lines.append(f"exec {run}")
    return "\n".join(lines) + "\n"


def _heredoc(text: str) -> str:
    # An unquoted heredoc expands $: nginx's variables must reach the file as written.
    return text.replace("\\", "\\\\").replace("$", "\\$").replace("`", "\\`")


def drill_images(live_images: dict[str, str], config: Config, kind: str, proxy_image: str) -> dict[str, str]:
    """The live release's images for today's services (the wrapper runs the proxy image).
    A service the live release did not run cannot be drilled from it."""
    missing = [s for s in config.services if s not in live_images]
    if missing:
        raise DrillRefused(f"the live release has no image for service {missing[0]!r} (deploy.toml's services "
                           "changed since it was deployed): deploy once, then drill")
    images = {s: live_images[s] for s in config.services}
    if PROXY in live_images:  # a project's own proxy image, built with the release
        images[PROXY] = live_images[PROXY]
    if kind in WRAPPED:
        images[WRAPPER] = proxy_image
    return images


@dataclass(frozen=True)
class NetResult:
    net: str  # health | shadow | canary | verify | guard | rollback (the drill's own)
    result: str  # passed | caught
    seconds: float  # how long the net judged (its step)
    detect_s: float | None = None  # caught: from the net's start to its verdict
    restore_s: float | None = None  # caught: from its verdict to the live release alone again

    def to_dict(self) -> dict[str, Any]:
        data = {"net": self.net, "result": self.result, "seconds": round(self.seconds, 3)}
        if self.detect_s is not None:
            data["detect_s"] = round(self.detect_s, 3)
        if self.restore_s is not None:
            data["restore_s"] = round(self.restore_s, 3)
        return data


@dataclass(frozen=True)
class Timed:
    """A step event as the drill saw it: (step, what: started | done | failed, when)."""

    step: str
    what: str
    at: float
    host: str | None = None  # a host's own step (health, mirror...); None: the fleet's (shadow, canary)


def nets_from(events: Sequence[Timed], ended: float) -> list[NetResult]:
    """Which nets judged the drill release and how: from the deploy's own step events.
    A net's step that failed caught it; its time to restore runs to the end of the step
    that put the live release back alone (`stop`, `abort`, `revert`), or else to the deploy's
    end (a health gate: nothing was routed; a failed verify: switched back and removed)."""
    results: list[NetResult] = []
    started: dict[tuple[str, str | None], float] = {}
    for i, e in enumerate(events):
        net = NET_OF_STEP.get(e.step)
        if net is None and e.what != "done":
            net = SETUP_OF_NET.get(e.step)
        if net is None:
            continue
        # Keyed by host too: on a fleet every host runs its own health step, and one host's
        # passing must not end another's (its failure then timed from itself: detect 0.00 s).
        if e.what == "started":
            started.setdefault((e.step, e.host), e.at)
            continue
        begin = started.pop((e.step, e.host), e.at)
        if e.what == "done":
            if not any(r.net == net for r in results):
                results.append(NetResult(net, "passed", e.at - begin))
            continue
        back = next((x.at for x in events[i + 1:] if x.step in PUT_BACK_STEPS and x.what == "done"), ended)
        results = [r for r in results if r.net != net]
        results.append(NetResult(net, CAUGHT, e.at - begin, detect_s=e.at - begin, restore_s=max(0.0, back - e.at)))
        break
    return results


def caught_by(nets: Iterable[NetResult]) -> NetResult | None:
    return next((n for n in nets if n.result == CAUGHT), None)
