"""`make ui` in a real browser: headless Chromium (Debian's, driven by Debian's
chromedriver through Selenium) against `foodops ui` started on 127.0.0.1.

An operator opens the asset graph, opens orders_valid, materialises partition
2026-11-20 from the UI, waits for the run to succeed and reads the new
materialisation and its row count on the asset page; then Ctrl-C (SIGINT) stops
the UI with its whole process tree. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import dagster as dg
import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from foodops_assets_tests.conftest import REPO_ROOT, materialize, subprocess_env
from foodops_assets_tests.factories import DAY, land_reference, line, order
from foodops_assets_tests.processes import BIN, _default_signals, free_port

pytestmark = pytest.mark.e2e

ARTIFACTS = REPO_ROOT / "test-artifacts" / "ui_browser"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
UI_TIMEOUT = 120  # seconds for one page or one run to show up


def _browser() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root in a container
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1600,1000",
    ):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def _xpath_text(text: str) -> str:
    return f"//*[normalize-space(text())='{text}']"


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def _children(pid: int) -> list[int]:
    with contextlib.suppress(OSError):
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return []


@contextlib.contextmanager
def foodops_ui(env: dict[str, str], log_dir: Path):
    """`foodops ui` (what `make ui` runs) on a free loopback port."""
    port = free_port()
    log = log_dir / "foodops-ui.log"
    out = open(log, "w")
    proc = subprocess.Popen(
        [str(BIN / "foodops"), "ui", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO_ROOT,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_default_signals,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            assert proc.poll() is None, f"foodops ui exited:\n{log.read_text()[-4000:]}"
            try:
                with urllib.request.urlopen(f"{url}/server_info", timeout=5) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            assert time.monotonic() < deadline, f"no UI:\n{log.read_text()[-4000:]}"
            time.sleep(1)
        yield url, proc, log
    finally:
        if proc.poll() is None:  # the test did not get to stop it: stop the tree by PID
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            for child in _children(proc.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child, signal.SIGKILL)
            proc.wait(timeout=30)
        out.close()


def test_materialise_a_partition_from_the_ui_in_a_real_browser(lake, spark_resource):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    env = subprocess_env(lake, FOODOPS_AUTOMATION="off")
    land_reference(lake)
    lake.land("orders", DAY, "batch-0001.jsonl", [line(order(n)) for n in range(1, 13)])
    # upstream of orders_valid, materialised in-process into the UI's own instance
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        materialize(lake, spark_resource, ["restaurants", "dishes"], instance=instance)
        materialize(
            lake, spark_resource, ["orders_raw"], partition_key=DAY.isoformat(), instance=instance
        )

    with foodops_ui(env, lake.root) as (url, ui, log):
        assert f"Dagster UI on {url} (Ctrl-C to stop)" in log.read_text()
        browser = _browser()
        wait = WebDriverWait(browser, UI_TIMEOUT)
        try:
            # the asset graph
            browser.get(f"{url}/asset-groups")
            wait.until(EC.presence_of_element_located((By.XPATH, _xpath_text("orders_valid"))))
            browser.save_screenshot(str(ARTIFACTS / "1-asset-graph.png"))

            # orders_valid: materialise partition 2026-11-20
            browser.get(f"{url}/assets/orders_valid")
            wait.until(
                EC.element_to_be_clickable(
                    (
                        By.XPATH,
                        "//button[.//*[text()='Materialize']] | //button[normalize-space(.)='Materialize']",
                    )
                )
            ).click()
            dialog = wait.until(
                EC.presence_of_element_located(
                    (By.XPATH, "//*[contains(., 'Partition selection')]")
                )
            )
            browser.save_screenshot(str(ARTIFACTS / "2-partition-dialog.png"))
            selector = wait.until(
                EC.element_to_be_clickable(
                    (
                        By.XPATH,
                        "//div[contains(@class,'bp5-dialog') or @role='dialog']//input[@type='text' or not(@type)]",
                    )
                )
            )
            selector.send_keys(Keys.CONTROL, "a")
            selector.send_keys(Keys.DELETE)
            selector.send_keys(DAY.isoformat(), Keys.ENTER)
            time.sleep(1)
            browser.save_screenshot(str(ARTIFACTS / "3-partition-selected.png"))
            launch = wait.until(
                EC.element_to_be_clickable(
                    (By.XPATH, "//button[starts-with(normalize-space(.), 'Launch')]")
                )
            )
            assert "1" in launch.text or "run" in launch.text.lower(), launch.text
            launch.click()
            del dialog

            # wait for the run to succeed, then read the materialisation on the asset page
            deadline = time.monotonic() + 300
            while True:
                browser.get(f"{url}/assets/orders_valid?view=events&partition={DAY}")
                time.sleep(3)
                body = browser.find_element(By.TAG_NAME, "body").text
                if "dagster/row_count" in body or "Row count" in body:
                    break
                assert time.monotonic() < deadline, body[-3000:]
                time.sleep(5)
            browser.save_screenshot(str(ARTIFACTS / "4-materialisation.png"))
            assert DAY.isoformat() in body and "12" in body
        except (TimeoutException, WebDriverException) as exc:
            browser.save_screenshot(str(ARTIFACTS / "failure.png"))
            (ARTIFACTS / "failure.txt").write_text(browser.find_element(By.TAG_NAME, "body").text)
            raise AssertionError(f"UI step failed ({exc.__class__.__name__}); see {ARTIFACTS}")
        finally:
            browser.quit()

        # Ctrl-C: the whole tree stops (webserver, daemon, code servers, run workers)
        [dagster_dev] = _children(ui.pid)
        os.kill(ui.pid, signal.SIGINT)
        assert ui.wait(timeout=90) == 0
        assert _group_members(dagster_dev) == []
        assert "Dagster UI stopped" in log.read_text()
