"""Drives the web console in Debian's headless Chromium (Selenium, Debian's chromedriver named
explicitly, so Selenium Manager never downloads anything) and checks what a person would see.

Reads its settings as JSON on stdin:
  {"base": "http://127.0.0.1:PORT", "key_id", "secret", "wrong_secret", "ram_key_id",
   "ram_secret", "cluster", "shots": DIR, "target_dir": DIR, "target_dir_time": DIR}
Prints one JSON object on stdout with what it saw (job and set ids, the progress it watched,
the policy it set, the codes of the refusals), for the Rust test to check against the SDK.
Every check failing here exits non-zero with a screenshot of the moment (`failure.png`).
"""

import base64
import json
import os
import re
import shutil
import sys
import tempfile
import time

os.environ.setdefault("SE_OFFLINE", "true")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

CHROMIUM = os.environ.get("POLARBACKUP_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("POLARBACKUP_CHROMEDRIVER", "/usr/bin/chromedriver")
DESKTOP = (1280, 900)
PHONE = (390, 844)

cfg = json.load(sys.stdin)
SHOTS = cfg["shots"]
os.makedirs(SHOTS, exist_ok=True)
result = {"screenshots": [], "progress": []}


def log(msg):
    print(f"browser: {msg}", file=sys.stderr, flush=True)


profile = tempfile.mkdtemp(prefix="polarbackup-chromium-")
opts = webdriver.ChromeOptions()
opts.binary_location = CHROMIUM
for arg in [
    "--headless=new",
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
    f"--user-data-dir={profile}",
]:
    opts.add_argument(arg)
# Every request the page makes, to show the secret is never sent.
opts.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
network = []


def drain_network():
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg["method"] in ("Network.requestWillBeSent", "Network.requestWillBeSentExtraInfo"):
            network.append(msg["params"])


def shot(name, size=DESKTOP):
    """A full-page screenshot, through the DevTools protocol (a window screenshot stops at
    the window's height)."""
    time.sleep(0.3)
    width, height = driver.execute_script(
        "return [document.documentElement.clientWidth,"
        " Math.max(document.documentElement.scrollHeight, document.body.scrollHeight)]"
    )
    png = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": min(height, 4000), "scale": 1},
        },
    )["data"]
    path = os.path.join(SHOTS, f"{name}.png")
    with open(path, "wb") as f:
        f.write(base64.b64decode(png))
    result["screenshots"].append(path)
    log(f"screenshot {path} ({size[0]} px wide)")


def fail(msg):
    try:
        driver.save_screenshot(os.path.join(SHOTS, "failure.png"))
        log("page at failure: " + driver.find_element(By.TAG_NAME, "body").text[:3000])
        for e in driver.get_log("browser"):
            log(f"console: {e}")
    except Exception as e:  # noqa: BLE001 - the report matters more
        log(f"no failure screenshot: {e}")
    raise AssertionError(msg)


def check(cond, msg):
    if not cond:
        fail(msg)


def wait(what, probe, secs=30, every=0.1):
    deadline = time.monotonic() + secs
    while True:
        try:
            v = probe()
        except Exception:  # noqa: BLE001 - elements come and go while the page renders
            v = None
        if v:
            return v
        if time.monotonic() > deadline:
            fail(f"timed out after {secs} s waiting for {what}")
        time.sleep(every)


def css(sel):
    return driver.find_element(By.CSS_SELECTOR, sel)


def csss(sel):
    return driver.find_elements(By.CSS_SELECTOR, sel)


def session_storage():
    return driver.execute_script(
        "return Object.fromEntries(Object.keys(sessionStorage).map(k => [k, sessionStorage.getItem(k)]))"
    )


def sign_in(key_id, secret):
    wait("the sign-in form", lambda: csss("#login-form"))
    css("#key-id").clear()
    css("#key-id").send_keys(key_id)
    css("#key-secret").send_keys(secret)
    css("#login-submit").click()


def sign_out():
    css("#logout").click()
    wait("the sign-in form after signing out", lambda: csss("#login-form"))
    check(session_storage() == {}, f"signing out left {session_storage()}")


def error_code(sel):
    box = wait(f"an error in {sel}", lambda: csss(f"{sel} .error"))[0]
    return box.get_attribute("data-code"), box.text


def no_sideways_scroll():
    over = driver.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    check(over <= 0, f"the page scrolls sideways by {over} px at {driver.get_window_size()}")


try:
    base = cfg["base"]
    cluster = cfg["cluster"]
    driver.get(f"{base}/console")

    # --- a wrong secret is refused, and nothing is kept ---
    sign_in(cfg["key_id"], cfg["wrong_secret"])
    code, text = error_code("#login-error")
    result["wrong_secret"] = {"code": code, "text": text}
    check(csss("#login-form"), "a wrong secret got past the sign-in form")
    check(session_storage() == {}, f"a refused key stayed in sessionStorage: {session_storage()}")
    shot("login-refused")

    # --- sign in with the key; the clusters ---
    sign_in(cfg["key_id"], cfg["secret"])
    row = f'#clusters tr[data-cluster="{cluster}"]'
    wait("the cluster's row", lambda: csss(row))
    stored = session_storage()
    check(
        any(cfg["secret"] in v for v in stored.values()),
        "the pair is kept in this tab's sessionStorage",
    )
    local = driver.execute_script("return localStorage.length")
    check(local == 0, f"localStorage holds {local} items")
    wait(
        "the row's cells",
        lambda: all(c.text and c.text != "…" for c in csss(f"{row} td")),
    )
    result["clusters_row_before"] = [c.text for c in csss(f"{row} td")]
    check("Running" in result["clusters_row_before"][1], result["clusters_row_before"])

    # --- a cluster: back up now, the progress bar to 100 %, the new set ---
    css(f"{row} a.cluster-link").click()
    wait("the cluster page", lambda: csss("#backup-now"))
    wait("the job list", lambda: csss("#jobs p, #jobs .job"))
    css("#backup-now").click()
    started = wait("the job to be queued", lambda: css("#backup-started").text)
    job = re.search(r"job (\d+)", started).group(1)
    result["job"] = job
    bar = f'.job[data-job="{job}"]'
    seen = []
    deadline = time.monotonic() + 300
    while True:
        try:
            el = css(bar)
            state = (el.get_attribute("data-status"), int(css(f"{bar} .bar").get_attribute("aria-valuenow")))
        except Exception:  # noqa: BLE001 - re-rendered between the two reads
            state = None
        if state and (not seen or seen[-1] != state):
            seen.append(state)
            log(f"job {job}: {state}")
        if state and state[0] in ("Finished", "Failed"):
            break
        if time.monotonic() > deadline:
            fail(f"job {job} did not end; seen {seen}")
        time.sleep(0.05)
    result["progress"] = seen
    check(seen[-1] == ("Finished", 100), f"the bar ended at {seen[-1]}")
    pcts = [p for _, p in seen]
    check(pcts == sorted(pcts), f"the bar went backwards: {seen}")
    set_row = f'#sets tr[data-backup="{job}"]'
    wait("the new set", lambda: csss(f'{set_row}[data-status="Success"]'), secs=30)
    result["set_row"] = [c.text for c in csss(f"{set_row} td")]
    wait("the chart's bar", lambda: csss("#chart svg rect.bar-size"))
    shot("cluster")

    # --- the policy, changed ---
    css("#tab-policy").click()
    wait("the policy form", lambda: csss("#policy-form"))
    want_days = ["Monday", "Wednesday", "Friday"]
    for box in csss('#policy-form input[name="day"]'):
        if box.is_selected() != (box.get_attribute("value") in want_days):
            box.click()
    Select(css("#policy-time")).select_by_value("03:00Z-04:00Z")
    css("#policy-retention").clear()
    css("#policy-retention").send_keys("9")
    css("#policy-save").click()
    saved = wait("the policy to be saved", lambda: css("#policy-saved").text)
    result["policy"] = {
        "PreferredBackupPeriod": ",".join(want_days),
        "PreferredBackupTime": "03:00Z-04:00Z",
        "DataLevel1BackupRetentionPeriod": "9",
        "shown": saved,
    }
    shot("policy")

    # --- the restore command ---
    css("#tab-restore").click()
    wait("the restore command", lambda: css("#restore-command").text)

    def window_shown():
        # The archiver may not have stored the WAL past the backup yet: the page again.
        if csss("#restore-by-time") and css("#restore-by-time").is_enabled():
            return True
        driver.refresh()
        wait("the restore command", lambda: css("#restore-command").text)
        return False

    wait("a recovery window", window_shown, secs=60, every=1)
    target = css("#restore-target")
    target.clear()
    target.send_keys(cfg["target_dir"])
    result["restore_by_set"] = css("#restore-command").text
    css("#restore-by-time").click()
    target.clear()
    target.send_keys(cfg["target_dir_time"])
    result["restore_by_time"] = css("#restore-command").text
    result["recovery_window"] = css("#recovery-window").text
    shot("restore")

    # --- the clusters page after the backup ---
    css("a.brand").click()
    wait(
        "the clusters with the new backup",
        lambda: csss(row) and "none yet" not in csss(f"{row} td")[2].text
        and all(c.text != "…" for c in csss(f"{row} td")),
    )
    shot("clusters")

    # --- a phone-sized screen ---
    driver.set_window_size(*PHONE)
    driver.get(f"{base}/console#/clusters")
    wait("the clusters on a phone", lambda: csss(row) and all(c.text != "…" for c in csss(f"{row} td")))
    no_sideways_scroll()
    result["clusters_row_after"] = [c.text for c in csss(f"{row} td")]
    shot("phone-clusters", PHONE)
    driver.get(f"{base}/console#/cluster/{cluster}/backups")
    wait("the cluster on a phone", lambda: csss(f'{set_row}[data-status="Success"]'))
    no_sideways_scroll()
    shot("phone-cluster", PHONE)
    driver.set_window_size(*DESKTOP)
    drain_network()
    sign_out()

    # --- a read-only RAM user: the denial, as the API states it ---
    sign_in(cfg["ram_key_id"], cfg["ram_secret"])
    wait("the clusters page", lambda: csss("#open-cluster-id"))
    driver.get(f"{base}/console#/cluster/{cluster}/backups")
    wait("the read-only user's view of the set", lambda: csss(f'{set_row}[data-status="Success"]'))
    css("#backup-now").click()
    code, text = error_code("#cluster-error")
    result["ram_denied"] = {"code": code, "text": text}
    shot("ram-denied")
    drain_network()
    sign_out()

    # --- the owner backs up again and deletes that set ---
    sign_in(cfg["key_id"], cfg["secret"])
    wait("the clusters page", lambda: csss(row))
    driver.get(f"{base}/console#/cluster/{cluster}/backups")
    wait("the first set", lambda: csss(f'{set_row}[data-status="Success"]'))
    css("#backup-now").click()
    second = re.search(r"job (\d+)", wait("a second job", lambda: css("#backup-started").text)).group(1)
    check(second != job, f"the second backup got the first one's id {job}")
    second_row = f'#sets tr[data-backup="{second}"]'
    wait("the second set", lambda: csss(f'{second_row}[data-status="Success"]'), secs=300, every=0.5)
    css(f"{second_row} button.delete-set").click()
    check(csss(second_row), "one click deleted the set without asking")
    css(f"{second_row} button.delete-set").click()
    wait("the second set to go", lambda: not csss(second_row) and csss(set_row), secs=60)
    result["deleted"] = second
    drain_network()

    # --- the secret never left the browser ---
    secrets = [cfg["secret"], cfg["ram_secret"]]
    signed = 0
    for req in network:
        blob = json.dumps(req)
        for s in secrets:
            check(s not in blob, f"a request carried a secret: {blob[:400]}")
        headers = (req.get("request") or {}).get("headers") or req.get("headers") or {}
        if any(k.lower() == "authorization" for k in headers):
            signed += 1
    check(signed > 10, f"only {signed} signed requests seen")
    result["signed_requests_seen"] = signed
    print(json.dumps(result))
finally:
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)
