"""An app with its own proxy on the shared port moves to the host's shared proxy on its next
deploy (plan/edge/shared_move.py, services/edge/shared_move.py), on fake hosts: the cut is one
host command; a failure before it leaves the old proxy serving (exit 6); a failure after it
puts the old proxy back (exit 6 when it answers, 7 when not); a fleet moves host by host;
a canary with a move is refused by name; the history says the move. An HTTPS app moves
with both ports and its certificate (the PROXY-protocol version), and any failure leaves the
plain version live for the old proxy."""

from __future__ import annotations

import pytest

from deployctl.errors import DeployError, ExitCode, UncertainError, UsageError
from deployctl.events import Message, Recorder, StepDone
from deployctl.plan.edge import shared_move as plan
from deployctl.plan.edge import shared_proxy as sp
from deployctl.plan.edge import tls_config as tc
from deployctl.plan.lifecycle.releases import LIVE, REVERTED, History
from deployctl.services.lifecycle.deploy import deploy
from deployctl.services.lifecycle.rollback import rollback
from deployctl.services.env import Env
from tests.support.fake_host import FakeHost, Fault, wrong_release
from tests.support.virtual_time import virtual_time
from tests.unit.test_shared_proxy import PROXY_IMAGE, SHARED, TLS_FILES, config, images, shop_pair  # noqa: F401 (a fixture)

virtual_time = pytest.fixture(autouse=True)(virtual_time)

OWN = config("shop", 80, '["shop.example.com"]', shared=False)  # one app per host: its own proxy on 80
MOVED = config("shop", 8080, '["shop.example.com"]')  # the same app, now behind the shared proxy "edge"
SHARED_NAME = "deployctl-shared-proxy-edge"
HISTORY = "/srv/state/shop/local/releases.jsonl"


@pytest.fixture
def host():
    host = FakeHost("local", images=[PROXY_IMAGE] + [f"sha256:shop{n}" for n in range(1, 4)])
    yield host
    assert not host.unknown, host.unknown


def ship(loaded, hosts, n: int, emit=None, **options) -> str:  # type: ignore[no-untyped-def]
    from deployctl.services.lifecycle.deploy_result import DeployOptions

    return deploy(Env.resolve(loaded, "local"), images("shop", n), {}, emit or Recorder(), connectors=list(hosts),
                  now=1_780_000_000 + 60 * n, options=DeployOptions(**options)).release


def port_80(host: FakeHost, name: str | None = "shop.example.com") -> tuple[int, str]:
    """What a client of port 80 gets (through the shared proxy by Host, or the old proxy)."""
    answer = host.http_get("127.0.0.1", 80, "/", headers={"Host": name} if name else {})
    return answer.status, answer.headers.get("x-deployctl-release", "")


def cuts(host: FakeHost) -> list[str]:
    return [text for call, text in host.calls if call == "run" and text.startswith("sh -c docker kill")]


def test_the_argvs_of_the_move_exact():
    assert plan.premove_name("a-e-proxy", "a-e-proxy-nginx-1f2e") == "a-e-proxy-premove-nginx-1f2e"
    assert plan.cut(["a-e-proxy-premove-nginx-1f"], "a-e-proxy-premove", "deployctl-shared-proxy-edge") == [
        "sh", "-c", "docker kill --signal QUIT a-e-proxy-premove-nginx-1f ; timeout 2 docker wait "
        "a-e-proxy-premove-nginx-1f ; docker stop --time 0 a-e-proxy-premove-nginx-1f a-e-proxy-premove && "
        "docker start deployctl-shared-proxy-edge"]
    created = plan.create_shared_proxy("edge", "nginx:x", SHARED)
    assert created[:4] == ["docker", "create", "--name", "deployctl-shared-proxy-edge"] and "--detach" not in created
    assert plan.put_back(["a-e-proxy-nginx-1f"], "a-e-proxy") == [
        ["docker", "start", "a-e-proxy"], ["docker", "start", "a-e-proxy-nginx-1f"],
        ["docker", "update", "--restart", "unless-stopped", "a-e-proxy", "a-e-proxy-nginx-1f"]]


def test_the_next_deploy_moves_the_app_in_one_cut_and_rollback_goes_through_the_shared_proxy(host):
    first = ship(OWN, [host], 1)
    assert port_80(host, None) == (200, first)
    events = Recorder()
    second = ship(MOVED, [host], 2, events)
    assert port_80(host) == (200, second)  # through the shared proxy, by name
    assert port_80(host, "nobody.test")[0] == 404
    assert len(cuts(host)) == 1
    assert [t for c, t in host.calls if c == "run" and t.startswith(f"docker create --name {SHARED_NAME}")]
    assert not [n for n in host.containers if plan.PREMOVE in n]  # the old proxy's containers went
    # its own proxy, on its new port, on the host's loopback only (the X-Forwarded-For it believes)
    assert host.containers["shop-local-proxy"].publish == "127.0.0.1:8080:80"
    record = History.parse(host.text(HISTORY)).deployed(second)
    assert record.outcome == LIVE and record.extra["shared_proxy"]["moved"] is True
    assert [m for m in events.of(Message) if "one host, requests in that moment are refused" in m.text]
    third = ship(MOVED, [host], 3)  # an ordinary deploy now: no cut, the route unchanged
    assert len(cuts(host)) == 1 and port_80(host) == (200, third)
    rollback(Env.resolve(MOVED, "local"), Recorder(), connectors=[host])
    assert port_80(host) == (200, second)


@pytest.mark.parametrize("failing", [f"^docker create --name {SHARED_NAME}", f"^docker run --rm --network none -v {SHARED}:"])
def test_a_failure_before_the_cut_leaves_the_old_proxy_serving(host, failing):
    first = ship(OWN, [host], 1)
    host.faults.append(Fault("run", failing))
    with pytest.raises(DeployError) as info:
        ship(MOVED, [host], 2)
    assert info.value.exit_code == ExitCode.DEPLOY_FAILED and "switched back" in info.value.message
    assert not cuts(host)
    assert port_80(host, None) == (200, first)
    assert host.containers["shop-local-proxy"].publish.startswith("80:")  # renamed back, never stopped
    assert not [n for n in host.containers if plan.PREMOVE in n] and SHARED_NAME not in host.containers
    assert History.parse(host.text(HISTORY)).records[-1].outcome == REVERTED
    assert ship(OWN, [host], 3)  # the app deploys on its own proxy as before


def wrong_through_the_shared_proxy(host: FakeHost) -> Fault:
    """The shared proxy answers a wrong release while it runs (the verify after the cut fails)."""
    def effect(address, port, path):  # type: ignore[no-untyped-def]
        if SHARED_NAME in host.containers and host.containers[SHARED_NAME].status == "running":
            return wrong_release(address, port, path)
        host.faults.remove(fault)
        return host.http_get(address, port, path)

    fault = Fault("http_get", r"^127\.0\.0\.1:80/healthz$", times=0, effect=effect)
    return fault


def test_a_failure_after_the_cut_puts_the_old_proxy_back(host):
    first = ship(OWN, [host], 1)
    host.faults.append(wrong_through_the_shared_proxy(host))
    with pytest.raises(DeployError) as info:
        ship(MOVED, [host], 2)
    assert info.value.exit_code == ExitCode.DEPLOY_FAILED and "switched back" in info.value.message
    assert len(cuts(host)) == 1
    assert port_80(host, None) == (200, first)  # the old proxy again, on the port
    assert SHARED_NAME not in host.containers
    assert host.containers["shop-local-proxy"].publish.startswith("80:")
    assert History.parse(host.text(HISTORY)).records[-1].outcome == REVERTED


def test_an_old_proxy_that_cannot_be_put_back_is_uncertain(host):
    ship(OWN, [host], 1)
    host.faults += [wrong_through_the_shared_proxy(host), Fault("run", "^docker start shop-local-proxy$")]
    with pytest.raises(UncertainError) as info:
        ship(MOVED, [host], 2)
    assert info.value.exit_code == ExitCode.ROLLBACK_FAILED and "putting the old proxy back failed" in info.value.message


def test_a_fleet_moves_one_host_at_a_time_and_a_canary_is_refused_with_the_move():
    hosts = [FakeHost(f"h{i}", images=[PROXY_IMAGE] + [f"sha256:shop{n}" for n in range(1, 4)]) for i in (1, 2, 3)]
    ship(OWN, hosts, 1)
    with pytest.raises(UsageError) as refused:
        ship(MOVED, hosts, 2, canary=20)
    assert refused.value.exit_code == ExitCode.USAGE and "canary with a move to the shared proxy" in refused.value.message
    events = Recorder()
    second = ship(MOVED, hosts, 2, events)
    assert [m for m in events.of(Message) if "one host at a time" in m.text]
    for host in hosts:
        assert port_80(host) == (200, second) and len(cuts(host)) == 1
    # One host at a time: each host's cut came before the next host's new containers started.
    order = [(e.host, e.step) for e in events.events if getattr(e, "step", None) in ("start", "move")
             and type(e).__name__ == "StepDone"]
    assert [h for h, s in order] == ["h1", "h1", "h2", "h2", "h3", "h3"], order


def test_the_dry_run_shows_the_move_at_the_switch():
    from deployctl.services.lifecycle.deploy_result import DeployOptions
    from deployctl.services.lifecycle.dry_runs import deploy_plan

    _, plans = deploy_plan(Env.resolve(MOVED, "local"), images("shop", 2), None, DeployOptions())
    [steps] = [rows for name, rows in plans.items() if not name.startswith("hooks")]
    names = [s.step for s in steps]
    first, last = names.index("move"), len(names) - 1 - names[::-1].index("move")
    assert names[first:first + 4] == ["move"] * 4 and names[first + 4] == "route"  # set aside, then the route
    assert names[names.index("verify") + 1] == "move" and names[last + 1] == "record"  # the cut after its verify
    cut = next(s for s in steps if s.step == "move" and s.argv and s.argv[:2] == ("sh", "-c"))
    assert cut.argv == tuple(plan.cut(["shop-local-proxy-premove-nginx-<tag>"], "shop-local-proxy-premove", SHARED_NAME))
    assert "move" not in [s.step for s in deploy_plan(Env.resolve(OWN, "local"), images("shop", 2), None, DeployOptions())[1].popitem()[1]]


def killed_at_the_create(host: FakeHost, moved) -> None:  # type: ignore[no-untyped-def]
    """The connection goes as the shared proxy is created: nothing after it reaches the host,
    as when deployctl is killed there (the lock stays, the old proxy set aside, serving)."""
    host.faults.append(Fault("run", f"^docker create --name {SHARED_NAME}", effect="lost",
                             action=lambda: setattr(host, "gone", True)))
    with pytest.raises(Exception):
        ship(moved, [host], 2)
    host.gone = False


def test_a_move_a_stopped_deployctl_left_before_its_cut_is_taken_up_by_the_next_deploy(host):
    first = ship(OWN, [host], 1)
    killed_at_the_create(host, MOVED)
    assert "shop-local-proxy-premove" in host.containers and port_80(host, None) == (200, first)
    # Its shared proxy's lock stays too: the next deploy waits for it, then says to remove it
    # (another app's route change may hold it), and the old proxy still serves meanwhile.
    events = Recorder()
    with pytest.raises(DeployError) as info:
        ship(MOVED, [host], 3, events, force_unlock=True)
    assert [m for m in events.of(Message) if "has its name back" in m.text]  # the left move taken up first
    assert info.value.exit_code == ExitCode.DEPLOY_FAILED and f"remove {SHARED}/lock" in info.value.hint
    assert port_80(host, None) == (200, first) and not cuts(host)
    host.remove_tree(f"{SHARED}/lock")
    third = ship(MOVED, [host], 3, force_unlock=True)
    assert port_80(host) == (200, third) and len(cuts(host)) == 1
    assert not [n for n in host.containers if plan.PREMOVE in n]


# -- an HTTPS app: 80 and 443 handed over, its certificate with it -------------------------------------

OWN_TLS = config("shop", 80, '["shop.example.com"]', TLS_FILES, "proxy_tls_port = 443", shared=False)
MOVED_TLS = config("shop", 8080, '["shop.example.com"]', TLS_FILES, "proxy_tls_port = 8443")
PROXY_DIR = "/srv/state/shop/local/proxy"


def port_443(host: FakeHost) -> tuple[str, str]:
    """(release, certificate version) a client of port 443 gets asking for shop.example.com."""
    answer = host.https_get("127.0.0.1", 443, "/", "shop.example.com")
    return answer.headers.get("x-deployctl-release", ""), answer.headers.get("x-deployctl-certificate", "")


def test_an_https_app_moves_with_its_certificate_and_both_ports(host, shop_pair):
    first = ship(OWN_TLS, [host], 1)
    plain = tc.version_of(shop_pair[0])
    assert port_443(host) == (first, plain) and host.containers["shop-local-proxy"].published == ["80:80", "443:443"]
    events = Recorder()
    second = ship(MOVED_TLS, [host], 2, events)
    # Both shared ports answer from the new release: HTTP by Host, HTTPS by SNI with the same
    # certificate, now the version whose listener takes the shared proxy's PROXY protocol.
    proxied = tc.version_of(shop_pair[0], proxy_protocol=True)
    assert port_80(host) == (200, second) and port_443(host) == (second, proxied)
    assert tc.takes_proxy_protocol(host.text(f"{PROXY_DIR}/tls/{proxied}/server.conf"))
    assert host.text(f"{PROXY_DIR}/tls/{proxied}/{tc.KEY_FILE}") == shop_pair[1].decode()  # the same key, no CA
    assert len(cuts(host)) == 1 and not [n for n in host.containers if plan.PREMOVE in n]
    assert host.containers["shop-local-proxy"].published == ["127.0.0.1:8080:80", "127.0.0.1:8443:443"]
    assert sorted(p.rpartition("/")[2] for p in host.files if p.startswith(f"{SHARED}/routes/")) == [
        "z__shop__local.map", "z__shop__local.sni-pp"]
    assert sp.port_of(host.text(f"{SHARED}/nginx.conf"), "tls_port") == 443
    moved = [e for e in events.of(StepDone) if e.step == "move"]
    assert moved and "ports 80 and 443 closed for" in moved[0].detail and "HTTPS by SNI" in moved[0].detail
    assert History.parse(host.text(HISTORY)).deployed(second).extra["shared_proxy"]["moved"] is True
    assert [m for m in events.of(Message) if "ports 80 and 443 on local close for about a second" in m.text]
    # Then an ordinary deploy and a rollback through the shared proxy: no cut, nothing re-installed.
    third = ship(MOVED_TLS, [host], 3)
    assert len(cuts(host)) == 1 and port_443(host) == (third, proxied)
    rollback(Env.resolve(MOVED_TLS, "local"), Recorder(), connectors=[host])
    assert port_443(host) == (second, proxied) and port_80(host) == (200, second)


def test_an_https_move_that_fails_before_the_cut_keeps_the_plain_certificate_live(host, shop_pair):
    first = ship(OWN_TLS, [host], 1)
    host.faults.append(Fault("run", f"^docker run --rm --network none -v {SHARED}:"))  # the shared nginx -t
    with pytest.raises(DeployError) as info:
        ship(MOVED_TLS, [host], 2)
    assert info.value.exit_code == ExitCode.DEPLOY_FAILED and not cuts(host)
    plain = tc.version_of(shop_pair[0])
    assert host.links[f"{PROXY_DIR}/tls/live"] == plain  # what the old nginx loads if it starts again
    assert port_443(host) == (first, plain) and port_80(host, None) == (200, first)
    assert host.containers["shop-local-proxy"].published == ["80:80", "443:443"]


def test_an_https_move_whose_https_fails_after_the_cut_puts_the_old_proxy_back_on_both_ports(host, shop_pair):
    first = ship(OWN_TLS, [host], 1)
    host.faults.append(Fault("https_get", r"^127\.0\.0\.1:443/$", times=0))  # the shared proxy's HTTPS never answers
    with pytest.raises(DeployError) as info:
        ship(MOVED_TLS, [host], 2)
    assert info.value.exit_code == ExitCode.DEPLOY_FAILED and "switched back" in info.value.message
    assert "HTTPS through the shared proxy edge" in info.value.message
    host.faults.clear()
    plain = tc.version_of(shop_pair[0])
    assert len(cuts(host)) == 1 and SHARED_NAME not in host.containers
    assert host.links[f"{PROXY_DIR}/tls/live"] == plain
    assert port_443(host) == (first, plain) and port_80(host, None) == (200, first)
    assert History.parse(host.text(HISTORY)).records[-1].outcome == REVERTED


def test_an_https_move_a_stopped_deployctl_left_gets_the_plain_certificate_back_and_runs_again(host, shop_pair):
    ship(OWN_TLS, [host], 1)
    killed_at_the_create(host, MOVED_TLS)
    proxied, plain = tc.version_of(shop_pair[0], proxy_protocol=True), tc.version_of(shop_pair[0])
    assert host.links[f"{PROXY_DIR}/tls/live"] == proxied  # killed after the certificate followed
    host.remove_tree(f"{SHARED}/lock")
    events, before = Recorder(), len(host.calls)
    third = ship(MOVED_TLS, [host], 3, events, force_unlock=True)
    assert [m for m in events.of(Message) if "has its name back" in m.text]
    assert port_443(host) == (third, proxied) and len(cuts(host)) == 1
    # Before it ran again the old proxy had the plain certificate back (what it would load).
    relinks = [t for c, t in host.calls[before:] if c == "run" and f"ln -sfn {plain} " in t]
    assert relinks, "the plain version was never made live again"


def test_the_dry_run_of_an_https_move_shows_the_certificate_following_and_the_https_verify(shop_pair):
    from deployctl.services.lifecycle.deploy_result import DeployOptions
    from deployctl.services.lifecycle.dry_runs import deploy_plan

    _, plans = deploy_plan(Env.resolve(MOVED_TLS, "local"), images("shop", 2), None, DeployOptions())
    [steps] = [rows for name, rows in plans.items() if not name.startswith("hooks")]
    after = steps[[s.step for s in steps].index("verify") + 1]
    assert after.step == "move" and after.detail.startswith("the live certificate installed again (no CA order)")
    moves = [s.detail for s in steps if s.step == "move"]
    assert "publishes port 80 or 443" in moves[0]
    assert any("and HTTPS by SNI on port 443: the new release's stamp (and the certificate's)" in t for t in moves)


def test_an_https_app_in_maintenance_moves_and_stays_in_maintenance(host, shop_pair):
    """The move's verifies (HTTP and HTTPS) carry maintenance's token, as the switch's do."""
    from deployctl.services.edge.maintenance import set_maintenance
    from deployctl.services.env import Env

    ship(OWN_TLS, [host], 1)
    set_maintenance(Env.resolve(OWN_TLS, "local"), Recorder(), on=True, connectors=[host])
    ship(MOVED_TLS, [host], 2)
    assert len(cuts(host)) == 1 and SHARED_NAME in host.containers
    assert host.https_get("127.0.0.1", 443, "/", "shop.example.com").status == 503
    assert port_80(host)[0] == 503
