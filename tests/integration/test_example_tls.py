"""HTTPS for an app we did not write (examples/bootcamp-users, issue 24's "the examples/ app
gets hosts and tls ... and a test"): `deployctl init` on its compose file as a user runs it,
the [proxy] lines its README gives (hosts, tls = "acme", acme_email) plus the test's own
ACME server, build, deploy to this machine's engine. The certificate comes from a real ACME
CA (pebble, validating HTTP-01 through deployctl's proxy for real: tests/support/pebble.py).

Then, in one test: the page over HTTPS with a chain Python's ssl verifies against pebble's
root alone (and the name checked); HTTP answers 301 to the same path on HTTPS; the app's one
stateful flow (it has no session cookie: a form POST to /add that redirects back to /) works
over HTTPS and never sends the browser to http://; and Chromium renders the page, submits
the form, and reports every response secure with no certificate or mixed-content complaint.
"""

from __future__ import annotations

import re
import ssl
import urllib.parse

import pytest

from tests.integration.test_example_deploy import example, git, ok, result  # noqa: F401 (a fixture)
from tests.support import browser
from tests.support.example_app import EXAMPLE
from tests.support.net import free_port, wait_until
from tests.support.pebble import http_get, https_get, pebble

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def readme_proxy_table(name: str) -> str:
    """The [proxy] table examples/bootcamp-users/README.md tells a user to add, as written
    there (the test's own name for users.example.com)."""
    text = (EXAMPLE / "README.md").read_text()
    table = re.search(r"(?ms)^```toml\n(\[proxy\]\n.*?)\n\n", text)
    assert table and 'tls = "acme"' in table.group(1), "the README's HTTPS section lost its [proxy] table"
    return "\n" + table.group(1).replace("users.example.com", name) + "\n"


def _https_config(project, tmp_path, name: str, http: int, https: int, ca) -> None:  # type: ignore[no-untyped-def]
    """The README's lines, then what only a test needs: its own ACME server and the trust for
    that server's API, free ports, a private state dir, no error-rate guard window."""
    toml = project / "deploy.toml"
    text = re.sub(r"(?m)^proxy_port = \d+.*$",
                  f'proxy_port = {http}\nproxy_tls_port = {https}\nstate_dir = "{tmp_path / "state"}"',
                  toml.read_text(), count=1)
    assert f"proxy_port = {http}" in text, "init no longer writes environments.local.proxy_port"
    text += readme_proxy_table(name)
    text += f'acme_directory = "{ca.directory}"\nacme_ca_bundle = "{ca.ca_bundle}"\n'
    text += "\n[environments.local.rollout]\nguard_window = 0\n"
    toml.write_text(text)
    git(project, "commit", "-qam", "https")


def test_the_example_over_https_from_acme_in_python_and_chromium(example, tmp_path):
    project, app, env = example
    http, https = free_port(), free_port()
    name = f"users.{app}.test"
    with pebble(tmp_path, http) as ca:
        _https_config(project, tmp_path, name, http, https, ca)

        ok(project, env, "build")
        deployed = ok(project, env, "deploy", "--env", "local", "--json")
        assert result(deployed)["ok"] and result(deployed)["hosts"][0]["outcome"] == "succeeded"
        assert env["DB_PASSWORD"] not in deployed.stdout + deployed.stderr

        # 1. HTTPS, verified against pebble's root only (a new root per pebble run), name checked.
        trust = ca.client_context(tmp_path)

        def page() -> tuple[int, dict, str, bytes, str]:
            status, headers, body, der, version = https_get(https, name, "/", trust, timeout=15)
            return status, headers, body.decode(), der, version

        def shows(text: str) -> bool:
            """The page lists `text` (the app renders an error instead while its backend or
            database is slow to answer: ask again)."""
            try:
                return text in page()[2]
            except ssl.SSLError:  # the chain did not verify: that is the failure, not a wait
                raise
            except OSError:  # a timeout or a reset on a loaded machine: ask again
                return False

        # The backend reaches the database a little after its TCP health check passed.
        wait_until(lambda: shows("Ada Lovelace"), 60, "the seeded user on the HTTPS page", interval=1)
        status, headers, body, leaf, version = page()
        assert status == 200 and "<h1>Users</h1>" in body and version in ("TLSv1.2", "TLSv1.3")
        assert headers["X-Deployctl-Release"] == result(deployed)["release"]

        # 2. HTTP: 301 to the same path on HTTPS (nginx's reload is asynchronous: test_tls.py).
        def redirected() -> bool:
            try:
                status, headers = http_get(http, name, "/?from=http")
            except OSError:
                return False
            return (status, headers.get("Location")) == (301, f"https://{name}:{https}/?from=http")

        wait_until(redirected, 10, "HTTP answering 301 to the same path on HTTPS")

        # 3. The app's form flow over HTTPS: POST, redirect back to the list on HTTPS.
        form = urllib.parse.urlencode({"name": "Grace Hopper", "email": "grace@example.com"}).encode()
        status, headers, _, _, _ = https_get(https, name, "/add", trust, method="POST", body=form, timeout=15,
                                             headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 302, (status, headers)
        assert headers["Location"] == "/"  # relative (Flask 3): the browser keeps https, as the README says
        wait_until(lambda: shows("Grace Hopper"), 30, "the added user on the HTTPS page", interval=1)

        # 4. Chromium: the same key as the chain verified above (pinned: Chromium takes no
        # root on its command line), the name mapped to this machine for the browser only.
        if (reason := browser.missing()) is not None:
            pytest.skip(f"the Chromium part: {reason}")
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        url = f"https://{name}:{https}/"

        def listing(driver) -> str:  # type: ignore[no-untyped-def]
            return driver.find_element(By.TAG_NAME, "tbody").text if driver.title == "Users" else ""

        def until_listed(session: browser.Browsing, *texts: str) -> None:
            """Load the page (a GET) until it lists `texts`: the app renders an error instead of
            its list while its backend is slow to answer (a loaded machine)."""
            def check(driver) -> bool:  # type: ignore[no-untyped-def]
                if all(text in listing(driver) for text in texts):
                    return True
                session.navigate(lambda d: d.get(url))
                return False
            WebDriverWait(session.driver, 60, poll_frequency=1).until(check)

        def submit(driver) -> None:  # type: ignore[no-untyped-def]
            """The form, as a person fills it in, on a freshly loaded page; then its next page."""
            driver.get(url)
            if driver.title != "Users":  # Chromium's own error page: navigate() looks at why
                return
            driver.execute_script("document.body.dataset.before = 'submit'")  # marks this document
            driver.find_element(By.NAME, "name").send_keys("Katherine Johnson")
            driver.find_element(By.NAME, "email").send_keys("katherine@example.com")
            driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
            # While the next document comes, chromedriver's answers about the old one are
            # errors of several kinds: ask again.
            WebDriverWait(driver, 30, ignored_exceptions=[WebDriverException]).until(lambda d: d.execute_script(
                "return document.readyState === 'complete' && !document.body.dataset.before"))

        with browser.chromium(browser.trust_leaf(leaf), browser.resolve(name), network_log=True) as driver:
            session = browser.Browsing(driver)
            session.navigate(lambda d: d.get(url))
            until_listed(session, "Ada Lovelace", "Grace Hopper")
            # The app answers 502 "Could not add user" when its backend is slower than its 5 s
            # timeout (a loaded machine): a person would press the button again.
            posted = [("POST", f"{url}add", 302)]
            for _ in range(3):
                made = session.navigate(submit)
                if [(r["method"], r["url"], r.get("status")) for r in made if r["method"] == "POST"] == posted:
                    break
            until_listed(session, "Katherine Johnson")
            assert driver.current_url == url
            session.read()
            # The app has no favicon (not ours to add): Chromium's request for one is a 404.
            problems = [p for p in browser.console_problems(driver.get_log("browser"))
                        if not p.startswith(f"{url}favicon.ico ")]
        # The pages and the POST (answered by a redirect to the page): every one over HTTPS to
        # this name, answered, and secure in Chromium's eyes (a valid certificate, no mixed
        # content), none failed or blocked (but NETWORK_CHANGED, tried again: tests/support/browser.py).
        requests = session.answered()
        pages = {(r["method"], r["url"], r["status"]) for r in requests if not r["url"].endswith("/favicon.ico")}
        assert pages - {("POST", f"{url}add", 502)} == {("GET", url, 200), ("POST", f"{url}add", 302)}, session.requests
        unsafe = [r for r in requests if not r["url"].startswith(url) or r["securityState"] != "secure"]
        assert unsafe == [] and session.failures() == [] and problems == [], (unsafe, session.failures(), problems)
        details = requests[0]["securityDetails"]
        assert details["subjectName"] == name and "Pebble" in details["issuer"], details

        # The control: without the pin Chromium does not trust pebble's root, and the
        # requests read above show it (the console does not).
        with browser.chromium(browser.resolve(name), network_log=True) as driver:
            refused = browser.Browsing(driver).navigate(lambda d: d.get(url))
        assert refused[0]["url"] == url and refused[0].get("error") == "net::ERR_CERT_AUTHORITY_INVALID", refused
