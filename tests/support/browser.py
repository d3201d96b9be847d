"""A real headless Chromium for tests (shared/testenv.md, "A real browser"): Debian's
/usr/bin/chromium driven through /usr/bin/chromedriver by Selenium (its own driver download
cannot work here, so both paths are given).

For HTTPS pages served with a certificate from a test CA (pebble, tests/support/pebble.py;
TestCa): Chromium takes no root certificate on its command line, so `trust_leaf(der)` pins
the served leaf's public key with `--ignore-certificate-errors-spki-list` (base64 SHA-256 of
its SubjectPublicKeyInfo): a certificate with any other key is still an error. Check the
chain itself against the CA's root with Python's ssl (tests/support/pebble.https_get)
before pinning it. `resolve(name, address)` maps a host name for the browser only
(`--host-resolver-rules`), so the page is asked for by its real name (SNI, Host, the
certificate's names) without touching /etc/hosts.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# What makes Chromium run headless as root in a container (shared/testenv.md).
CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-first-run", "--window-size=1100,900",
)


def missing() -> str | None:
    """Why Chromium cannot run here, or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            return f"{path} missing: apt-get install -y chromium chromium-driver"
    return None


def trust_leaf(der: bytes) -> str:
    """The flag that makes Chromium accept the certificate whose key is this leaf's."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    spki = x509.load_der_x509_certificate(der).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "--ignore-certificate-errors-spki-list=" + base64.b64encode(hashlib.sha256(spki).digest()).decode()


def resolve(name: str, address: str = "127.0.0.1") -> str:
    return f"--host-resolver-rules=MAP {name} {address}"


@contextmanager
def chromium(*flags: str, network_log: bool = False) -> Iterator:
    """A Selenium driver for headless Chromium with CHROMIUM_FLAGS and `flags`. The console is
    readable with get_log("browser"); with `network_log`, DevTools' Network events too
    (`requests_made`), which carry each answer's security state and each failure's reason."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, "--no-proxy-server", *flags):  # test servers are local
        options.add_argument(flag)
    logs = {"browser": "ALL", **({"performance": "ALL"} if network_log else {})}
    options.set_capability("goog:loggingPrefs", logs)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


def network_events(driver, methods: Iterable[str]) -> list[dict]:
    """DevTools events read from the performance log since the last read: each {"method", "params"}."""
    wanted = set(methods)
    events = (json.loads(entry["message"])["message"] for entry in driver.get_log("performance"))
    return [event for event in events if event.get("method") in wanted]


def requests_made(driver) -> list[dict]:
    """Every http(s) request since the last read, in order, each hop of a redirect its own:
    url, method, type ("Document" for a page), and either the answer
    (status, securityState, securityDetails) or the browser's error (`error`, e.g.
    net::ERR_CERT_AUTHORITY_INVALID, and `blocked`: why Chromium blocked it, e.g.
    mixed-content), or neither while it is still in flight. A certificate Chromium refuses shows up here only: the
    console stays silent and the page becomes an interstitial."""
    made: list[dict] = []
    current: dict[str, dict] = {}  # requestId -> its latest hop (a redirect keeps the id)

    def answered(entry: dict, response: dict) -> None:
        entry.update(url=response["url"], status=response["status"], securityState=response.get("securityState"),
                     securityDetails=response.get("securityDetails"))

    for event in network_events(driver, ("Network.requestWillBeSent", "Network.responseReceived",
                                         "Network.loadingFailed")):
        params = event["params"]
        if event["method"] == "Network.requestWillBeSent":
            if "redirectResponse" in params and params["requestId"] in current:
                answered(current[params["requestId"]], params["redirectResponse"])
            if params["request"]["url"].startswith(("http:", "https:")):
                current[params["requestId"]] = {"url": params["request"]["url"], "method": params["request"]["method"],
                                                "type": params.get("type", "")}
                made.append(current[params["requestId"]])
        elif (entry := current.get(params["requestId"])) is not None:
            if event["method"] == "Network.loadingFailed":
                entry["error"] = params["errorText"]
                if params.get("blockedReason"):  # e.g. "mixed-content"
                    entry["blocked"] = params["blockedReason"]
            else:
                answered(entry, params["response"])
    return made


# Chromium watches the machine's network interfaces (netlink) and fails what is in flight
# with this error when one changes: on a machine where other tests create and remove Docker
# networks all the time it happens to a page now and then (seen here about one run in five
# under load). It names the machine, not the server: navigate again.
NETWORK_CHANGED = "net::ERR_NETWORK_CHANGED"


class Browsing:
    """A driver and every request it made (`requests`, kept across reads of the log), with
    navigations tried again when Chromium failed the page for NETWORK_CHANGED only."""

    def __init__(self, driver, attempts: int = 3) -> None:  # type: ignore[no-untyped-def]
        self.driver, self.attempts, self.requests = driver, attempts, []

    def read(self) -> list[dict]:
        new = requests_made(self.driver)
        self.requests += new
        return new

    def navigate(self, action) -> list[dict]:  # type: ignore[no-untyped-def]
        """Runs `action(driver)` (a get, a form submitted and its next page awaited) until
        no page of it failed for NETWORK_CHANGED; the requests it made."""
        for _ in range(self.attempts):
            action(self.driver)
            new = self.read()
            if not [r for r in new if r["type"] == "Document" and r.get("error") == NETWORK_CHANGED]:
                break
        return new

    def failures(self) -> list[dict]:
        """Requests that failed for another reason than NETWORK_CHANGED or being cut short by
        the next navigation (net::ERR_ABORTED: a favicon still loading), and every blocked one."""
        return [r for r in self.requests
                if "blocked" in r or r.get("error", NETWORK_CHANGED) not in (NETWORK_CHANGED, "net::ERR_ABORTED")]

    def answered(self) -> list[dict]:
        return [r for r in self.requests if "status" in r]


def console_problems(log: list[dict]) -> list[str]:
    """Console messages that mean the page is not what it should be: errors, and every
    mixed-content or certificate complaint whatever its level."""
    words = ("mixed content", "certificate", "err_cert", "ssl", "content security policy")
    return [e["message"] for e in log if NETWORK_CHANGED not in e["message"]
            and (e["level"] == "SEVERE" or any(word in e["message"].lower() for word in words))]
