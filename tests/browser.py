"""Render a local HTML file in headless Chromium and collect what its console would show.

    shot = render(Path("report.html"), Path("report.png"))   # a full-page PNG
    shot.errors    # console errors, uncaught exceptions, failed loads (the network is blocked)

Chromium is driven over the DevTools protocol on a pipe (--remote-debugging-pipe:
commands on fd 3, replies on fd 4, each a JSON message ended by a NUL byte),
so no port is opened and no Python package is needed. Every host name
resolves to nothing, so a page that tries to fetch anything logs a failed load.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser")
WIDTH = 1200   # CSS pixels: a laptop browser window


def find_chromium() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


@dataclass
class Rendered:
    png: Path
    width: int
    height: int
    errors: list[str]


def render(page: Path, png: Path, *, timeout: float = 60) -> Rendered:
    """Load `page` (a file) at WIDTH CSS pixels, write a screenshot of the whole page to `png`."""
    with tempfile.TemporaryDirectory() as profile:
        to_browser_r, to_browser_w = os.pipe()
        from_browser_r, from_browser_w = os.pipe()

        def pipes_as_3_and_4():
            low, high = os.dup(to_browser_r), os.dup(from_browser_w)   # above 4: neither dup2 clobbers the other
            os.dup2(low, 3)
            os.dup2(high, 4)

        browser = subprocess.Popen(
            [find_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
             "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={profile}", "--no-first-run",
             f"--window-size={WIDTH},900", "about:blank"],
            pass_fds=(3, 4), preexec_fn=pipes_as_3_and_4, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        session = _Session(to_browser_w, from_browser_r, deadline=time.monotonic() + timeout)
        try:
            target = session.send("Target.createTarget", url="about:blank")["targetId"]
            session.id = session.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                session.send(f"{domain}.enable")
            session.send("Page.navigate", url=page.resolve().as_uri())
            session.wait_for("Page.loadEventFired")
            size = session.send("Page.getLayoutMetrics")["cssContentSize"]
            shot = session.send("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                                clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1})
            png.write_bytes(base64.b64decode(shot["data"]))
            session.id = None
            session.send("Browser.close")
            browser.wait(max(1.0, session.deadline - time.monotonic()))
        finally:
            if browser.poll() is None:
                browser.kill()
                browser.wait()
            os.close(to_browser_w)
            os.close(from_browser_r)
    return Rendered(png, int(size["width"]), int(size["height"]), session.errors())


class _Session:
    """Numbered commands and the events that arrive between their replies."""

    def __init__(self, write_fd: int, read_fd: int, deadline: float):
        self.write_fd, self.read_fd, self.deadline = write_fd, read_fd, deadline
        self.id: str | None = None
        self.events: list[dict] = []
        self._buffer = b""
        self._next = 0

    def send(self, method: str, **params) -> dict:
        self._next += 1
        message = {"id": self._next, "method": method, "params": params}
        if self.id is not None:
            message["sessionId"] = self.id
        os.write(self.write_fd, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._receive()
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def wait_for(self, event: str) -> None:
        while not any(e.get("method") == event for e in self.events):
            self.events.append(self._receive())

    def errors(self) -> list[str]:
        """What the DevTools console would show as errors."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                found.append(params["exceptionDetails"].get("text", "exception"))
            elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                found.append(" ".join(str(arg.get("value", arg.get("description"))) for arg in params["args"]))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                found.append(f"{params['entry']['text']} {params['entry'].get('url', '')}".strip())
        return found

    def _receive(self) -> dict:
        while b"\0" not in self._buffer:
            if not select.select([self.read_fd], [], [], max(0.0, self.deadline - time.monotonic()))[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self.read_fd, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)
