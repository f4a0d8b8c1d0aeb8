"""Drives `swiftclip serve`'s search page in headless Chromium (Debian's `chromium`) over the Chrome
DevTools Protocol: load the page, type a query into the box, press Enter, wait until the result
thumbnails have loaded, check their scores, and save a screenshot.

Usage: page_test.py URL QUERY SCREENSHOT.png [--min-results N]
Exit status 0 when at least N result images appeared with pixels; the JSON summary goes to stdout.
Needs `websocket-client` (scripts/setup.sh puts it in .venv-ci).
"""
import argparse
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import websocket


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CDP:
    def __init__(self, ws_url):
        self.ws = websocket.create_connection(ws_url, timeout=30)
        self.next_id = 0

    def call(self, method, **params):
        self.next_id += 1
        my_id = self.next_id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == my_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression):
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return r.get("result", {}).get("value")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("query")
    p.add_argument("screenshot")
    p.add_argument("--min-results", type=int, default=1)
    a = p.parse_args()
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        print("chromium not found (scripts/setup.sh installs it)", file=sys.stderr)
        return 2
    port = free_port()
    profile = tempfile.mkdtemp(prefix="swiftclip-chromium-")
    proc = subprocess.Popen([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                             f"--remote-debugging-port={port}", f"--user-data-dir={profile}", "--window-size=1100,800",
                             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        targets = None
        for _ in range(300):
            try:
                targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2))
                if any(t.get("type") == "page" for t in targets):
                    break
            except Exception:  # noqa: BLE001
                pass
            time.sleep(0.2)
        page = next(t for t in targets if t.get("type") == "page")
        cdp = CDP(page["webSocketDebuggerUrl"])
        cdp.call("Page.enable")
        cdp.call("Page.navigate", url=a.url)
        for _ in range(300):
            if cdp.evaluate("document.readyState === 'complete' && !!document.getElementById('query')"):
                break
            time.sleep(0.1)
        # Type the query as a user would: focus the box, insert the text, press Enter.
        cdp.evaluate("document.getElementById('query').focus()")
        cdp.call("Input.insertText", text=a.query)
        for kind in ("keyDown", "keyUp"):
            cdp.call("Input.dispatchKeyEvent", type=kind, key="Enter", code="Enter", windowsVirtualKeyCode=13,
                     nativeVirtualKeyCode=13, **({"text": "\r"} if kind == "keyDown" else {}))
        state = {}
        for _ in range(600):
            state = cdp.evaluate("""(() => {
                const imgs = [...document.querySelectorAll('img.result')];
                return { typed: document.getElementById('query').value,
                         results: imgs.length,
                         loaded: imgs.filter(i => i.complete && i.naturalWidth > 0).length,
                         scores: [...document.querySelectorAll('.score')].map(s => parseFloat(s.textContent)),
                         status: document.getElementById('status').textContent };
            })()""") or {}
            if state.get("results", 0) >= a.min_results and state.get("loaded") == state.get("results"):
                break
            time.sleep(0.1)
        shot = cdp.call("Page.captureScreenshot", format="png")
        with open(a.screenshot, "wb") as f:
            f.write(base64.b64decode(shot["data"]))
        print(json.dumps(state))
        ok = (state.get("typed") == a.query and state.get("results", 0) >= a.min_results
              and state.get("loaded") == state.get("results") and state.get("scores") == sorted(state.get("scores", []), reverse=True))
        return 0 if ok else 1
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
