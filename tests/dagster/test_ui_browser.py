"""The Dagster UI in a real browser: dagster-webserver on loopback, Debian's headless Chromium.

The expected assets and checks come from `definitions.defs`, so the test follows the pipeline
as it grows. The browser is driven over the Chrome DevTools Protocol (a websocket, no extra
package); `scripts/ensure-chromium.sh` installs Chromium. The asset graph's screenshot is saved
in the test's tmp dir and copied to test-output/ui-asset-graph.png.
"""

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from dagster._core.definitions.assets.definition.asset_spec import (
    SYSTEM_METADATA_KEY_AUTO_CREATED_STUB_ASSET as AUTO_CREATED_STUB_ASSET,
)
from websockets.sync.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
SCREENSHOT = ROOT / "test-output" / "ui-asset-graph.png"
GRAPHQL_ASSETS = """{ assetNodes { assetKey { path }
  assetChecksOrError { ... on AssetChecks { checks { name } } } } }"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(probe: Callable[[], Any], timeout: float = 90) -> Any:
    """Poll until `probe` returns something truthy (None on timeout); OSError means not yet."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = probe()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(0.5)
    return None


def _start(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    out = log.open("w")
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )


def _stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def _graphql(base: str, query: str) -> dict:
    body = json.dumps({"query": query}).encode()
    req = urllib.request.Request(f"{base}/graphql", body, {"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(req, timeout=30).read())["data"]


class Browser:
    """Just enough of the DevTools Protocol: open a page, read its text, press a key, screenshot."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.last_id = 0

    def call(self, method: str, **params: Any) -> dict:
        self.last_id += 1
        self.ws.send(json.dumps({"id": self.last_id, "method": method, "params": params}))
        while True:  # events we did not subscribe to may arrive first
            msg = json.loads(self.ws.recv(timeout=60))
            if msg.get("id") == self.last_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def text(self) -> str:
        js = "document.body ? document.body.innerText : ''"
        result = self.call("Runtime.evaluate", expression=js, returnByValue=True)["result"]
        return result.get("value", "")

    def wait_for_words(self, words: set[str], what: str) -> None:
        if not _wait_for(lambda: words <= set(self.text().split()), timeout=60):
            missing = words - set(self.text().split())
            pytest.fail(f"{what}: not shown after 60s: {sorted(missing)}")

    def press_alt(self, key: str) -> None:
        code = {"key": key, "code": f"Key{key.upper()}", "windowsVirtualKeyCode": ord(key.upper())}
        for kind in ("keyDown", "keyUp"):
            self.call("Input.dispatchKeyEvent", type=kind, modifiers=1, **code)  # 1 = Alt

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))


@dataclass(frozen=True)
class Pipeline:
    checks: dict[str, set[str]]  # each defined asset, with the names of its checks
    groups: set[str]
    stubs: set[str]  # deps without a definition: listed by GraphQL, hidden in the graph


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    """What `definitions.defs` holds, which the UI should show."""
    from definitions import defs

    graph = defs.resolve_asset_graph()
    nodes = {key.to_user_string(): graph.get(key) for key in graph.get_all_asset_keys()}
    stubs = {name for name, n in nodes.items() if n.metadata.get(AUTO_CREATED_STUB_ASSET)}
    checks = {name: set() for name in nodes if name not in stubs}
    for check in graph.asset_check_keys:
        checks[check.asset_key.to_user_string()].add(check.name)
    groups = {nodes[name].group_name for name in checks}
    return Pipeline(checks, groups, stubs)


@pytest.fixture(scope="module")
def webserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("ui-home")
    (home / "dagster").mkdir()
    shutil.copyfile(ROOT / "dagster.yaml", home / "dagster" / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home / "dagster"), "NIGHTSHIFT_HOME": str(home)}
    port = _free_port()
    cmd = [str(BIN / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1"]
    proc = _start([*cmd, "-p", str(port)], home / "webserver.log", env)
    base = f"http://127.0.0.1:{port}"
    try:
        if not _wait_for(lambda: _graphql(base, GRAPHQL_ASSETS)["assetNodes"]):
            log = (home / "webserver.log").read_text(errors="replace")[-3000:]
            pytest.fail(f"dagster-webserver served no assets within 90s:\n{log}")
        # The community sign-up dialog opens on loopback until it has been seen once.
        _graphql(base, "mutation { setNuxSeen }")
        yield base
    finally:
        _stop(proc)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} not found: run scripts/ensure-chromium.sh (or set CHROMIUM)"
        if sys.platform != "linux":  # the script installs it on Debian-like hosts only
            pytest.skip(message)
        pytest.fail(message)
    port = _free_port()
    cmd = [str(CHROMIUM), "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run"]
    cmd += [f"--remote-debugging-port={port}", f"--user-data-dir={tmp_path / 'chromium'}"]
    proc = _start([*cmd, "--window-size=1600,1000", "about:blank"], tmp_path / "chromium.log")
    try:

        def page_socket() -> str | None:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
                pages = [t for t in json.loads(r.read()) if t["type"] == "page"]
            return pages[0]["webSocketDebuggerUrl"] if pages else None

        url = _wait_for(page_socket, timeout=60)
        if url is None:
            pytest.fail((tmp_path / "chromium.log").read_text(errors="replace")[-3000:])
        with connect(url, max_size=None, open_timeout=30) as ws:
            yield Browser(ws)
    finally:
        _stop(proc)


def test_graphql_lists_every_asset_and_its_checks(webserver, pipeline):
    nodes = _graphql(webserver, GRAPHQL_ASSETS)["assetNodes"]
    listed = {
        "/".join(n["assetKey"]["path"]): {c["name"] for c in n["assetChecksOrError"]["checks"]}
        for n in nodes
    }
    assert set(listed) - set(pipeline.checks) == pipeline.stubs
    assert {name: listed[name] for name in pipeline.checks} == pipeline.checks


def test_asset_graph_shows_every_asset_and_check(webserver, browser, pipeline, tmp_path):
    browser.open(f"{webserver}/asset-groups")
    browser.wait_for_words(pipeline.groups, "the asset graph's groups")  # drawn collapsed
    browser.press_alt("e")  # the graph's own shortcut: expand all groups
    browser.wait_for_words(set(pipeline.checks), "the expanded asset graph")
    shot = tmp_path / "ui-asset-graph.png"
    browser.screenshot(shot)
    SCREENSHOT.parent.mkdir(exist_ok=True)
    shutil.copyfile(shot, SCREENSHOT)
    assert shot.stat().st_size > 10_000  # a rendered graph, not a blank page
    for asset, checks in sorted(pipeline.checks.items()):
        if checks:
            browser.open(f"{webserver}/assets/{asset}?view=checks")
            browser.wait_for_words(checks, f"the checks of {asset}")
