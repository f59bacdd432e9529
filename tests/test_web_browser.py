"""The web page in a real browser: headless Debian Chromium driven by Selenium through
Debian's chromedriver (nothing downloads a browser or a driver).

``fabricscope serve`` runs as a subprocess on a free port of 127.0.0.1 over a real store.
Two stores: a small one built from decoded frames with an exactly known path
(test_api_support), and the demo (``fabricscope sim --preset demo`` + ``fabricscope
ingest``) with its featured flow. The page must show nothing but the token prompt until a
token is given, refuse a wrong one, draw the fabric, run a trace and light the path's
switches hop by hop (the VNF too), open the impact panel from a link, load nothing from
anywhere but the server, and raise no console error (a Content-Security-Policy violation
would be one). Screenshots are saved to test-artifacts/ (web-trace.png, web-impact.png,
web-demo-trace.png).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from test_api_support import EXAMPLE, FLOW, PATH_SWITCHES, TOKEN, build_store

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"

pytestmark = [
    pytest.mark.skipif(not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
                       reason="chromium and chromium-driver are not installed "
                              "(apt-get install chromium chromium-driver)"),
    pytest.mark.slow,
]
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(tmp: Path, db: str, inventory: str) -> Iterator[str]:
    """``fabricscope serve`` as a subprocess on a free port; yields its base URL."""
    port = free_port()
    env = {**os.environ, "FABRICSCOPE_TOKEN": TOKEN, "FABRICSCOPE_HOME": str(tmp / "home")}
    log = open(tmp / "serve.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "fabricscope", "serve", "--db", db, "--inventory",
         inventory, "--listen", f"127.0.0.1:{port}", "--log-level", "warning"],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(base + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail("fabricscope serve did not start:\n"
                            + (tmp / "serve.log").read_text())
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("web")
    yield from serve(tmp, build_store(tmp / "store"), str(EXAMPLE))


def fabricscope(*args: str, cwd: Path) -> str:
    res = subprocess.run([sys.executable, "-m", "fabricscope", *args], cwd=cwd,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f"fabricscope {' '.join(args)}: {res.stderr[-2000:]}"
    return res.stdout


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, Any],
                                                                       set[str]]]:
    """The demo store and its first featured flow with the switches it truly crossed."""
    tmp = tmp_path_factory.mktemp("demo")
    fabricscope("sim", "--out", str(tmp / "sim"), "--preset", "demo", cwd=tmp)
    fabricscope("ingest", str(tmp / "sim" / "sflow.pcap"), "--db", str(tmp / "store"),
                cwd=tmp)
    truth = json.loads((tmp / "sim" / "truth.json").read_text())
    flow = truth["featured"][0]
    path = json.loads(fabricscope("sim", "truth", str(tmp / "sim"), "--featured", "0",
                                  cwd=tmp))
    devices = {h["device"] for p in path["path"] for s in p["segments"] for h in s["hops"]}
    for base in serve(tmp, str(tmp / "store"), str(tmp / "sim" / "inventory.yaml")):
        yield base, flow, devices


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    profile = tmp_path_factory.mktemp("chromium-profile")
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
              "--no-first-run", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
              f"--user-data-dir={profile}", "--window-size=1500,900"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    drv.set_page_load_timeout(30)
    try:
        yield drv
    finally:
        drv.quit()


def wait_for(drv: Any, cond: Any, timeout: float = 30, what: str = "") -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(drv, timeout, poll_frequency=0.1).until(cond, message=what)


def graph_attr(drv: Any, name: str) -> str:
    from selenium.webdriver.common.by import By

    return drv.find_element(By.ID, "graph").get_attribute(name) or ""


def test_trace_lights_the_path(server: str, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    drv = browser
    drv.get(server + "/")
    # the shell shows nothing but the token prompt
    assert drv.find_element(By.ID, "login").is_displayed()
    assert not drv.find_element(By.ID, "main").is_displayed()
    drv.find_element(By.ID, "token").send_keys("not-the-token-0123456789")
    drv.find_element(By.ID, "login-go").click()
    wait_for(drv, lambda d: "did not accept" in d.find_element(By.ID, "login-error").text,
             what="a wrong token is refused")
    assert not drv.find_element(By.ID, "main").is_displayed()

    drv.find_element(By.ID, "token").send_keys(TOKEN)
    drv.find_element(By.ID, "login-go").click()
    wait_for(drv, lambda d: int(graph_attr(d, "data-nodes") or 0) > 0, 60,
             "the topology is drawn")
    assert drv.find_element(By.ID, "main").is_displayed()
    n_nodes = drv.execute_script("return window.fabricscope.cy.nodes().length")
    assert n_nodes == int(graph_attr(drv, "data-nodes")) >= 15
    assert "10:01:5" in drv.find_element(By.ID, "time-label").text  # at the newest data

    drv.find_element(By.ID, "trace-src").send_keys(FLOW["src"])
    drv.find_element(By.ID, "trace-dst").send_keys(FLOW["dst"])
    drv.find_element(By.ID, "trace-dport").send_keys(str(FLOW["dport"]))
    drv.find_element(By.CSS_SELECTOR, "#trace-proto option[value=tcp]").click()
    drv.find_element(By.ID, "trace-go").click()
    wait_for(drv, lambda d: graph_attr(d, "data-trace-state") == "done", 60,
             "the trace is lit hop by hop")

    lit = set(graph_attr(drv, "data-highlighted").split(","))
    assert lit == PATH_SWITCHES
    cy_lit = set(drv.execute_script(
        "return window.fabricscope.cy.nodes('.device.hl').map(n => n.data('label'))"))
    assert cy_lit == PATH_SWITCHES
    off_path = drv.execute_script(
        "return window.fabricscope.cy.getElementById('dev:spine-1').hasClass('hl')")
    assert off_path is False
    edges = set(drv.execute_script(
        "return window.fabricscope.cy.edges('.link.hl').map(e => e.id())"))
    assert {"link:leaf-2:eth50--spine-2:eth2", "link:leaf-1:eth50--spine-2:eth1",
            "link:gw-1-uplink", "link:hv-1:eth0--leaf-1:eth1"} <= edges
    assert drv.execute_script(
        "return window.fabricscope.cy.getElementById('vnf:fw-1').hasClass('hl-vnf')")
    hops = drv.find_elements(By.CSS_SELECTOR, "#trace-result li.hop")
    assert [h.get_attribute("data-device") for h in hops] == ["leaf-2", "leaf-2", "spine-2",
                                                             "leaf-1"]
    assert all("lit" in (h.get_attribute("class") or "") for h in hops)
    assert "VNF fw-1 on hv-4" in drv.find_element(By.ID, "trace-result").text

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "web-trace.png"
    drv.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000

    # a link: what crossed it
    drv.execute_script("window.fabricscope.cy.getElementById("
                       "'link:leaf-2:eth50--spine-2:eth2').emit('tap')")
    wait_for(drv, lambda d: "Crossed leaf-2 eth50" in d.find_element(By.ID, "details").text,
             30, "the impact panel")
    details = drv.find_element(By.ID, "details").text
    assert "acme" in details and "10.1.0.1:43512 → 10.1.0.5:443" in details
    drv.save_screenshot(str(ARTIFACTS / "web-impact.png"))

    # nothing loaded from anywhere but the server, no console errors (CSP included)
    urls = drv.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)")
    assert urls and all(u.startswith(server + "/") for u in urls), urls
    errors = [e for e in drv.get_log("browser") if e["level"] == "SEVERE"
              and "401" not in e["message"]]
    assert errors == []


def login(drv: Any, base: str) -> None:
    from selenium.webdriver.common.by import By

    drv.get(base + "/")
    drv.execute_script("sessionStorage.clear()")
    drv.get(base + "/")
    drv.find_element(By.ID, "token").send_keys(TOKEN)
    drv.find_element(By.ID, "login-go").click()
    wait_for(drv, lambda d: int(graph_attr(d, "data-nodes") or 0) > 0, 60,
             "the topology is drawn")


def test_demo_featured_flow(demo: tuple[str, dict[str, Any], set[str]], browser: Any
                            ) -> None:
    from selenium.webdriver.common.by import By

    base, flow, true_devices = demo
    drv = browser
    login(drv, base)
    drv.find_element(By.ID, "trace-src").send_keys(flow["src"])
    drv.find_element(By.ID, "trace-dst").send_keys(flow["dst"])
    drv.find_element(By.ID, "trace-dport").send_keys(str(flow["dport"]))
    drv.find_element(By.ID, "trace-go").click()
    wait_for(drv, lambda d: graph_attr(d, "data-trace-state") == "done", 60,
             "the featured flow is traced")
    result = drv.execute_script("return window.fabricscope.state.traceResult")
    path = result["paths"][0]
    hops = [h["device"] for s in path["segments"] for h in s["hops"]]
    lit = graph_attr(drv, "data-highlighted").split(",")
    assert lit == list(dict.fromkeys(hops))  # every switch of the path, in path order
    assert set(lit) <= true_devices
    assert any(d.startswith("spine") for d in lit)
    lit_vnfs = drv.execute_script(
        "return window.fabricscope.cy.nodes('.vnf.hl-vnf').map(n => n.data('label'))")
    assert lit_vnfs and set(lit_vnfs) <= set(path["vnfs"])
    ARTIFACTS.mkdir(exist_ok=True)
    drv.save_screenshot(str(ARTIFACTS / "web-demo-trace.png"))
    errors = [e for e in drv.get_log("browser") if e["level"] == "SEVERE"
              and "401" not in e["message"]]
    assert errors == []
