"""A person's path through the shipped app in a real headless Chromium, through nginx:
add a user with the form, press "Generate Usernames!", delete a user; the release id
in the footer; and not one Content-Security-Policy complaint in the browser console."""
from __future__ import annotations

import pytest

from tests.support import browser
from tests.support.app_stack import build_app_images, running_app_stack

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def stack(docker_client, standin_images, mariadb):
    images = build_app_images(docker_client, standin_images)
    with running_app_stack(docker_client, images, mariadb) as running:
        yield running


@pytest.fixture
def driver():
    if (reason := browser.missing()) is not None:
        pytest.fail(reason, pytrace=False)
    with browser.chromium() as chromium:
        yield chromium


def wait_for(driver, condition, timeout=15):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # A click that submits a form loads a new page: an element read from the old one while
    # it goes is stale, which means "not yet", not a failure.
    return WebDriverWait(driver, timeout, ignored_exceptions=[StaleElementReferenceException]).until(condition)


def usernames(driver) -> list[str]:
    from selenium.webdriver.common.by import By

    return [row.get_attribute("data-username") for row in driver.find_elements(By.CSS_SELECTOR, "tr[data-username]")]


def flashes(driver) -> str:
    from selenium.webdriver.common.by import By

    return " ".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, ".flash"))


def test_add_generate_delete_in_a_real_browser(stack, driver, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    driver.get(stack.url + "/")
    assert driver.title == "User directory"
    assert driver.find_element(By.ID, "release-id").text == stack.release
    assert "No users yet" in driver.find_element(By.TAG_NAME, "main").text

    # Add a user with the form.
    driver.find_element(By.ID, "username").send_keys("grace_hopper")
    driver.find_element(By.ID, "add-user").click()
    wait_for(driver, ec.presence_of_element_located((By.CSS_SELECTOR, 'tr[data-username="grace_hopper"]')))
    assert usernames(driver) == ["grace_hopper"]
    assert "Added grace_hopper." in flashes(driver)
    assert driver.find_element(By.ID, "user-count").text == "1"

    # Press the button the app is named for (five is the form's default).
    assert driver.find_element(By.ID, "count").get_attribute("value") == "5"
    driver.find_element(By.ID, "generate").click()
    wait_for(driver, lambda d: "Generated 5 usernames" in flashes(d))
    names = usernames(driver)
    assert len(names) == 6 and "grace_hopper" in names
    assert driver.find_element(By.ID, "user-count").text == "6"

    # Delete one of the generated users with its row's button.
    victim = next(n for n in names if n != "grace_hopper")
    driver.find_element(By.CSS_SELECTOR, f'tr[data-username="{victim}"] button.delete').click()
    wait_for(driver, lambda d: f"Deleted {victim}." in flashes(d))
    assert victim not in usernames(driver) and len(usernames(driver)) == 5

    # The footer still names the release that answered, and the console stayed clean.
    assert driver.find_element(By.ID, "release-id").text == stack.release
    driver.save_screenshot(str(tmp_path / "after-delete.png"))
    assert browser.console_problems(driver.get_log("browser")) == []


def test_the_console_check_does_see_csp_violations(stack, driver):
    """A control for the test above: an inline script injected into the page is refused by
    the policy and the refusal shows up in the log we read."""
    driver.get(stack.url + "/")
    driver.get_log("browser")  # drain
    driver.execute_script(
        "const s = document.createElement('script'); s.textContent = 'window.injected = 1';"
        "document.body.appendChild(s);")
    assert driver.execute_script("return window.injected === undefined")
    messages = " ".join(browser.console_problems(driver.get_log("browser")))
    assert "Content Security Policy" in messages
