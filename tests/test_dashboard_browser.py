"""The dashboard in a real browser: headless Chromium (Debian's ``chromium`` and ``chromium-driver``, which
``make system-deps`` installs) driven by Selenium, against ``edge-runtime run`` on the built-in video with the
real detector and the real SmolLM2.

One job, one browser, the steps in order (the video plays for about 80 s in "latest" mode, so they share it):
a wrong token is refused; the right one opens the page; the live image changes; counts rise as people cross;
a line drawn with mouse events is saved to the config file and starts counting (and a zone drawn by clicking
its corners is saved); the chat answers a count
question with the number the counters hold, and shows the facts it used.

Screenshots go to ``$EDGE_SCREENSHOTS_DIR`` when it is set (``EDGE_SCREENSHOTS_DIR=docs`` refreshes the
README's), else to the test's temporary folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Dict

import pytest

from edge_runtime.runtime.config import load_config

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "browser-test-token"

_CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
_DRIVER = shutil.which("chromedriver")
try:
    import selenium  # noqa: F401
    _SELENIUM = True
except ImportError:
    _SELENIUM = False

if os.environ.get("CI") and (_CHROMIUM is None or _DRIVER is None or not _SELENIUM):
    pytest.fail("the browser tests need chromium, chromedriver (make system-deps installs the Debian packages "
                "chromium and chromium-driver) and selenium (the dev extra)", pytrace=False)
pytestmark = [
    pytest.mark.slow, pytest.mark.llm,
    pytest.mark.skipif(_CHROMIUM is None or _DRIVER is None, reason="no chromium / chromedriver (make system-deps)"),
    pytest.mark.skipif(not _SELENIUM, reason="selenium is not installed (the dev extra)"),
]

SITE = """# the browser test's job
[source]
uri = "builtin:vtest-video"
mode = "latest"

[model]
path = "builtin:yolov8s-person"
classes = [0]
labels = ["person", "fallen person"]

[[lines]]
name = "walkway"
start = [400, 400]
end = [400, 150]

[output]
db = "{db}"
print_every_s = 0.0

[budget]
policy = "detection-first"

[chat]
enabled = true
port = 0
ctx = 1024
phrase = false
token = "{token}"

[dashboard]
enabled = true
snapshot_dir = "{snaps}"
"""


def _wait(what: str, check: Callable[[], Any], timeout_s: float, every_s: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            value = check()
        except Exception as exc:  # the page is loading (no such element yet, a stale one)
            if type(exc).__module__.startswith("selenium"):
                value = None
            else:
                raise
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(every_s)


def _api(base: str, path: str) -> Dict[str, Any]:
    req = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


@pytest.fixture
def job(tmp_path: Path):
    pytest.importorskip("llama_cpp", reason="the llm extra (llama-cpp-python) is not installed")
    config = tmp_path / "site.toml"
    config.write_text(SITE.format(db=tmp_path / "site.db", token=TOKEN, snaps=tmp_path / "snaps"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "edge_runtime.cli", "run", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=str(tmp_path))
    lines = []
    try:
        url = None
        deadline = time.monotonic() + 180
        while url is None and time.monotonic() < deadline:
            line = proc.stderr.readline().decode()
            lines.append(line)
            if not line and proc.poll() is not None:
                break
            m = re.search(r"dashboard at (http://\S+)/dashboard", line)
            url = m.group(1) if m else None
        assert url is not None, "the runtime never said where the dashboard is:\n" + "".join(lines)
        threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep the pipe drained
        yield url, config
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = _CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,2000", "--force-device-scale-factor=1"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=_DRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("EDGE_SCREENSHOTS_DIR") or tmp_path)
    if not folder.is_absolute():
        folder = ROOT / folder
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _total(driver: Any, place: str) -> int:
    cells = driver.find_elements("css selector", f'tr[data-place="{place}"] td.total')
    return sum(int(c.text) for c in cells if c.text.strip().isdigit())


def _live_pixels(driver: Any) -> str:
    return driver.execute_script("""
        const img = document.getElementById('live');
        if (!img.naturalWidth || img.naturalWidth < 10) return '';
        const c = document.createElement('canvas');
        c.width = img.naturalWidth; c.height = img.naturalHeight;
        const g = c.getContext('2d'); g.drawImage(img, 0, 0);
        return c.toDataURL('image/png');""")


def test_dashboard_in_a_real_browser(job, browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    base, config_path = job
    shots = _shots(tmp_path)
    t0 = time.monotonic()

    # A wrong token is refused: back on the login page with the message, and the API still answers 401.
    browser.get(base + "/dashboard")
    assert browser.current_url.endswith("/dashboard/login")
    browser.find_element(By.ID, "token").send_keys("not-the-token" + Keys.ENTER)
    _wait("the refusal", lambda: "Wrong token." in browser.find_element(By.ID, "login-error").text, 10)
    assert browser.current_url.endswith("/dashboard/login")
    status = browser.execute_async_script(
        "const done = arguments[0]; fetch('/dashboard/api/counts').then(r => done(r.status));")
    assert status == 401
    browser.get(base + "/dashboard")
    assert browser.current_url.endswith("/dashboard/login")

    # The right token opens the page.
    browser.find_element(By.ID, "token").send_keys(TOKEN + Keys.ENTER)
    _wait("the dashboard", lambda: browser.current_url.endswith("/dashboard"), 10)
    cookie = browser.get_cookie("edge_dashboard")
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    _wait("the counts table", lambda: browser.find_elements(By.CSS_SELECTOR, 'tr[data-place="walkway"]'), 20)
    walkway_at_load = _total(browser, "walkway")

    # The live image updates (two grabs of the MJPEG <img> differ), and the server encoded frames for it.
    first = _wait("a live frame", lambda: _live_pixels(browser), 20)
    _wait("the live image to change", lambda: _live_pixels(browser) not in ("", first), 15)
    assert _api(base, "/dashboard/api/live")["frames_encoded"] >= 2

    # Draw a second line with the mouse: press, drag, release on the live image, parallel to the walkway
    # 100 px to its left (x = 300 of the 768 px frame, from y = 420 up to y = 140: "in" is walking right).
    browser.find_element(By.ID, "draw-line").click()
    overlay = browser.find_element(By.ID, "overlay")
    rect = overlay.rect
    sx, sy = rect["width"] / 768, rect["height"] / 576

    def at(x: float, y: float):  # offsets from the element's centre, in CSS pixels
        return round(x * sx - rect["width"] / 2), round(y * sy - rect["height"] / 2)

    (ax, ay), (bx, by) = at(300, 420), at(300, 140)
    ActionChains(browser).move_to_element_with_offset(overlay, ax, ay).click_and_hold() \
        .move_to_element_with_offset(overlay, (ax + bx) // 2, (ay + by) // 2) \
        .move_to_element_with_offset(overlay, bx, by).release().perform()
    name = _wait("the new line's row", lambda: browser.find_elements(
        By.CSS_SELECTOR, '.place[data-kind="line"][data-index="1"] input.name'), 5)[0]
    name.clear()
    name.send_keys("plaza")
    browser.find_element(By.ID, "save-places").click()
    _wait("the save", lambda: "saved and applied" in browser.find_element(By.ID, "save-result").text, 15)
    assert "added 1" in browser.find_element(By.ID, "save-result").text
    saved = {line.name: line for line in load_config(config_path).lines}
    assert set(saved) == {"walkway", "plaza"}
    start, end = saved["plaza"].start, saved["plaza"].end
    assert abs(start[0] - 300) <= 3 and abs(end[0] - 300) <= 3, (start, end)
    assert abs(start[1] - 420) <= 3 and abs(end[1] - 140) <= 3, (start, end)
    assert saved["walkway"].start == (400.0, 400.0)  # the other line is untouched
    _wait("the new line in the counts", lambda: browser.find_elements(By.CSS_SELECTOR, 'tr[data-place="plaza"]'), 10)

    # A zone: click its corners on the image, finish, save (the line above is kept: "kept 2").
    browser.find_element(By.ID, "draw-zone").click()
    corners = [(460, 330), (740, 330), (740, 560), (460, 560)]
    for x, y in corners:
        ActionChains(browser).move_to_element_with_offset(overlay, *at(x, y)).click().perform()
    browser.find_element(By.ID, "finish-zone").click()
    browser.find_element(By.ID, "save-places").click()
    _wait("the zone's save", lambda: "kept 2" in browser.find_element(By.ID, "save-result").text, 15)
    zones = load_config(config_path).zones
    assert [z.name for z in zones] == ["zone1"] and len(zones[0].polygon) == 4
    assert all(abs(px - x) <= 3 and abs(py - y) <= 3 for (px, py), (x, y) in zip(zones[0].polygon, corners))
    _wait("the zone in the counts", lambda: browser.find_elements(By.CSS_SELECTOR, 'tr[data-place="zone1"]'), 10)

    # Counts rise as people cross: the walkway's, and the drawn line's (it counts from the moment it was saved).
    _wait("the walkway count to rise", lambda: _total(browser, "walkway") > walkway_at_load, 45, every_s=0.5)
    _wait("the drawn line to count a crossing", lambda: _total(browser, "plaza") >= 1, 50, every_s=0.5)

    # The chat answers a count question with the counters' number, and shows the facts on demand.
    def crossed() -> int:
        lines = {x["name"]: x for x in _api(base, "/dashboard/api/counts")["lines"]}
        return lines["walkway"]["in_total"] + lines["walkway"]["out_total"]

    before = crossed()
    browser.find_element(By.ID, "question").send_keys("How many people crossed the walkway line?" + Keys.ENTER)
    answer = _wait("the answer", lambda: browser.find_elements(By.CSS_SELECTOR, ".msg.a.done"), 60)[0].text
    after = crossed()
    m = re.match(r"^(\d+) (people|person) crossed the walkway line", answer)
    assert m, answer
    assert before <= int(m.group(1)) <= after, (before, answer, after)
    browser.find_element(By.CSS_SELECTOR, ".show-facts").click()
    facts = _wait("the facts", lambda: browser.find_element(By.CSS_SELECTOR, ".facts").text, 10)
    assert json.loads(facts)["value"] == int(m.group(1))

    # The system panel shows the /metrics figures; the events timeline has thumbnails.
    _wait("the system panel", lambda: browser.find_elements(By.CSS_SELECTOR, 'tr[data-metric="detection fps"]'), 10)
    browser.execute_script("refreshEvents && refreshEvents(); refreshChart && refreshChart();")
    _wait("an event thumbnail", lambda: browser.find_elements(By.CSS_SELECTOR, '#events img[alt="snapshot"]'), 15)
    _wait("the thumbnails to load", lambda: browser.execute_script(
        "return [...document.querySelectorAll('#events img[alt=snapshot]')]"
        ".every(i => i.complete && i.naturalWidth > 0);"), 10)
    png = tmp_path / "dashboard.png"
    browser.save_screenshot(str(png))
    import cv2

    image = cv2.imread(str(png))
    assert image is not None and image.shape[1] == 1400
    cv2.imwrite(str(shots / "dashboard.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert time.monotonic() - t0 < 180
