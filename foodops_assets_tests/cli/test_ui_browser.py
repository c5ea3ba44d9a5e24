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
from collections.abc import Sequence
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
def foodops_ui(env: dict[str, str], log_dir: Path, args: Sequence[str] = ()):
    """`foodops ui` (what `make ui` runs, plus ``args``) on a free loopback port."""
    port = free_port()
    log = log_dir / "foodops-ui.log"
    out = open(log, "w")
    proc = subprocess.Popen(
        [str(BIN / "foodops"), "ui", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)]
        + list(args),
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
            children = _children(proc.pid)
            proc.send_signal(signal.SIGTERM)  # forwarded to dagster dev's process group
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)
            for child in children:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child, signal.SIGKILL)
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
            # the asset graph: every layer is there
            browser.get(f"{url}/asset-groups")
            for group in ("bronze", "silver", "gold", "ml_features"):
                wait.until(EC.presence_of_element_located((By.XPATH, _xpath_text(group))))
            _dismiss_welcome(browser, timeout=15)
            browser.save_screenshot(str(ARTIFACTS / "1-asset-graph.png"))
            # the silver layer's own graph shows its assets, orders_valid among them
            browser.get(f"{url}/locations/foodops/asset-groups/silver/lineage")
            node = WebDriverWait(browser, 45).until(
                EC.presence_of_element_located((By.XPATH, _xpath_text("orders_valid")))
            )
            browser.save_screenshot(str(ARTIFACTS / "2-silver-graph.png"))
            del node

            # orders_valid: its page shows the contract columns, then Materialize... -> partition
            browser.get(f"{url}/assets/orders_valid")
            wait.until(EC.presence_of_element_located((By.XPATH, _xpath_text("Columns"))))
            page = browser.find_element(By.TAG_NAME, "body").text
            assert "Unit price paid per portion" in page and "ordering" in page
            # launch from the dialog; a click the page was not ready for launches nothing, so
            # the launch is confirmed in the instance and tried again (at most three times)
            before = _runs_of_day(env["DAGSTER_HOME"])
            for attempt in range(3):
                if attempt:
                    browser.get(f"{url}/assets/orders_valid")
                    wait.until(EC.presence_of_element_located((By.XPATH, _xpath_text("Columns"))))
                _dismiss_welcome(browser, timeout=2)
                wait.until(
                    EC.element_to_be_clickable(
                        (By.XPATH, "//button[starts-with(normalize-space(.), 'Materialize')]")
                    )
                ).click()
                dialog = wait.until(
                    EC.presence_of_element_located(
                        (By.XPATH, "//*[@role='dialog'][.//*[contains(., 'Partition selection')]]")
                    )
                )
                selector = dialog.find_element(By.XPATH, ".//input[@type='text']")
                selector.click()
                selector.send_keys(DAY.isoformat(), Keys.ENTER)
                wait.until(
                    EC.text_to_be_present_in_element(
                        (By.XPATH, "//*[@role='dialog']"), "1 partition"
                    )
                )
                time.sleep(2)  # let the dialog settle on the new selection
                browser.save_screenshot(str(ARTIFACTS / "3-partition-selected.png"))
                launch = "//*[@role='dialog']//button[normalize-space(.)='Launch 1 run']"
                wait.until(EC.element_to_be_clickable((By.XPATH, launch))).click()
                with contextlib.suppress(TimeoutException):
                    WebDriverWait(browser, 15).until(
                        EC.invisibility_of_element_located((By.XPATH, launch))
                    )
                if browser.find_elements(By.XPATH, launch):  # the click did not land: once more
                    browser.execute_script(
                        "arguments[0].click();", browser.find_element(By.XPATH, launch)
                    )
                    WebDriverWait(browser, 15).until(
                        EC.invisibility_of_element_located((By.XPATH, launch))
                    )

                if _wait_for_ui_run(env["DAGSTER_HOME"], before, timeout=45):
                    break
            else:
                raise AssertionError("three launches from the UI created no run")

            # wait for the run's materialisation, then read it and its row count on the page
            deadline = time.monotonic() + 240
            while True:
                browser.get(f"{url}/assets/orders_valid?view=events&partition={DAY}")
                time.sleep(3)
                body = browser.find_element(By.TAG_NAME, "body").text
                if f"Partition {DAY} materialized in run" in body:
                    break
                assert time.monotonic() < deadline, body[-3000:]
                time.sleep(5)
            browser.save_screenshot(str(ARTIFACTS / "4-materialisation.png"))
            lines = body.splitlines()
            assert lines[lines.index("dagster/row_count") + 1] == "12"
            assert lines[lines.index("dlq_rows") + 1] == "0"
            assert lines[lines.index("conservation_holds") + 1] == "true"
        except (TimeoutException, WebDriverException) as exc:
            browser.save_screenshot(str(ARTIFACTS / "failure.png"))
            (ARTIFACTS / "failure.txt").write_text(browser.find_element(By.TAG_NAME, "body").text)
            raise AssertionError(
                f"UI step failed ({exc.__class__.__name__}); see {ARTIFACTS}"
            ) from exc
        finally:
            browser.quit()

        # the run really happened: the UI launched it through the daemon's queue
        with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
            event = instance.get_latest_materialization_event(dg.AssetKey("orders_valid"))
            assert event.asset_materialization.partition == DAY.isoformat()
            run = instance.get_run_by_id(event.run_id)
            assert run.status == dg.DagsterRunStatus.SUCCESS

        # Ctrl-C: the whole tree stops (webserver, daemon, code servers, run workers, and the
        # warm Spark and the warm run worker with its standbys, each in a group of its own)
        groups = _children(ui.pid)
        commands = {pid: Path(f"/proc/{pid}/cmdline").read_bytes() for pid in groups}
        [dagster_dev] = [pid for pid, cmd in commands.items() if b"dev\0" in cmd]
        assert any(b"warm_runs\0serve" in cmd for cmd in commands.values()), commands
        assert any(b"SparkConnectServer" in cmd for cmd in commands.values()), commands
        assert len(_group_members(dagster_dev)) >= 3
        os.kill(ui.pid, signal.SIGINT)
        assert ui.wait(timeout=90) == 0
        for group in groups:
            assert _group_members(group) == []
        assert "Dagster UI stopped" in log.read_text()


def _runs_of_day(dagster_home: str) -> set[str]:
    with dg.DagsterInstance.from_config(dagster_home) as instance:
        runs = instance.get_runs(dg.RunsFilter(tags={"dagster/partition": DAY.isoformat()}))
        return {r.run_id for r in runs}


def _wait_for_ui_run(dagster_home: str, before: set[str], timeout: float) -> bool:
    """True once the instance holds a run of DAY that was not there before (the UI's launch)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _runs_of_day(dagster_home) - before:
            return True
        time.sleep(3)
    return False


def _dismiss_welcome(browser, timeout: float) -> None:
    """The UI greets a new browser profile with a newsletter dialog over the page."""
    with contextlib.suppress(TimeoutException):
        WebDriverWait(browser, timeout).until(
            EC.element_to_be_clickable((By.XPATH, "//button[normalize-space(.)='Skip']"))
        ).click()
        WebDriverWait(browser, timeout).until(
            EC.invisibility_of_element_located((By.XPATH, "//button[normalize-space(.)='Skip']"))
        )
