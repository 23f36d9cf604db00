"""Read a built book in headless Chromium, as a reader would, and list its defects.

The checker serves the site on 127.0.0.1, drives Debian's ``chromium`` through the
DevTools protocol (a websocket, ``websocket-client``), and opens every page at a
desktop width (1400 px) and a phone width (390 px). On each page it checks:

- ``image``: every ``<img>`` loaded (lazy images are made eager first);
- ``console``: no console error, uncaught exception or failed resource load;
- ``overflow``: the page does not scroll sideways, nothing sticks out of the main
  column, and (at the desktop width) no table or image is wider than the column
  that holds it, which would hide its last columns behind a scroll bar;
- ``math``: no raw ``$``, ``\\(`` or ``\\[`` left in the text once MathJax is done
  (code blocks aside);
- ``banner``: the announcement bar holds the expected words (the smoke warning);
- ``link``: the previous/next links resolve to pages of the site.

One screenshot per page and width is written to a temporary folder, printed at the
end. Chromium runs with no network beyond the loopback server and a fresh profile.

Usage: ``python tests/browser_check.py _build/html [--banner "Smoke build"]``.
"""

from __future__ import annotations

import argparse
import base64
import functools
import http.server
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import websocket

WIDTHS = {"desktop": (1400, 900), "phone": (390, 844)}
# Debian's package first; GitHub's hosted Ubuntu runners ship Google Chrome instead.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
SKIPPED_PAGES = ("genindex.html", "search.html", "py-modindex.html")
START_TIMEOUT_S = 30.0  # Chromium writes its DevTools port within seconds
PAGE_TIMEOUT_S = 30.0  # load, MathJax and images of one page

# Runs in the page after load: waits for MathJax and the images, then measures.
MEASURE = r"""
(async () => {
  for (const img of document.images) { img.loading = "eager"; }
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  const wait = (img) => img.complete ? null : new Promise((done) => {
    img.addEventListener("load", done); img.addEventListener("error", done);
    setTimeout(done, 5000);
  });
  await Promise.all([...document.images].map(wait));
  await document.fonts.ready;
  const main = document.querySelector(".bd-article") ||
               document.querySelector("main") || document.body;
  const column = main.getBoundingClientRect();
  const images = [...document.images]
    .filter((img) => !img.complete || img.naturalWidth === 0)
    .map((img) => img.getAttribute("src"));
  const scrolls = (el) => ["auto", "scroll", "hidden"].includes(
    getComputedStyle(el).overflowX);
  const insideScroller = (el) => {
    for (let p = el.parentElement; p && p !== main; p = p.parentElement) {
      if (scrolls(p)) return true;
    }
    return false;
  };
  const sticking = [];
  for (const el of main.querySelectorAll("*")) {
    const box = el.getBoundingClientRect();
    // the heading anchors (a pilcrow) show only on hover
    if (box.width === 0 || el.matches(".headerlink") || insideScroller(el)) continue;
    if (box.right > column.right + 1 || box.left < column.left - 1) {
      sticking.push(`${el.tagName.toLowerCase()}.${el.className} ` +
                    `${Math.round(box.width)} px`);
    }
  }
  const hidden = [];
  for (const el of main.querySelectorAll("table, img")) {
    const holder = el.parentElement;
    if (holder && scrolls(holder) && holder.scrollWidth > holder.clientWidth + 1) {
      hidden.push(`${el.tagName.toLowerCase()} ${holder.scrollWidth} px in ` +
                  `${holder.clientWidth} px`);
    }
  }
  const copy = main.cloneNode(true);
  for (const el of copy.querySelectorAll(
      "pre, code, script, style, mjx-container, .MathJax, .highlight")) {
    el.remove();
  }
  const text = copy.textContent;
  const raw = [];
  for (const token of ["$", "\\(", "\\["]) {
    const at = text.indexOf(token);
    if (at >= 0) raw.push(JSON.stringify(text.slice(Math.max(0, at - 30), at + 30)));
  }
  const bar = document.querySelector(".bd-header-announcement");
  const links = [...document.querySelectorAll(".prev-next-area a")]
    .map((a) => a.href);
  return {
    images, sticking: sticking.slice(0, 5), hidden: hidden.slice(0, 5), raw,
    pageWidth: document.documentElement.scrollWidth, viewport: window.innerWidth,
    banner: bar ? bar.textContent.trim() : null, links,
  };
})()
"""


@dataclass(frozen=True)
class Defect:
    """One problem a reader would see: which page, at which width, what."""

    page: str
    width: str
    kind: str  # image | console | overflow | math | banner | link
    detail: str

    def __str__(self) -> str:
        return f"{self.page} [{self.width}] {self.kind}: {self.detail}"


def find_chromium() -> str | None:
    """The path of Debian's chromium, or None when it is not installed."""
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # the checker reports; the server stays silent
        pass


class QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a browser that drops a connection early is not a defect of the book


class Server:
    """The site served on 127.0.0.1 at a free port, in a background thread."""

    def __init__(self, site: Path):
        handler = functools.partial(QuietHandler, directory=str(site))
        self.httpd = QuietServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


class Browser:
    """Headless Chromium with a fresh profile, driven over one DevTools websocket."""

    def __init__(self, chromium: str):
        self.profile = tempfile.mkdtemp(prefix="srkit-chromium-")
        command = [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={self.profile}",
            "--remote-debugging-port=0",
            "about:blank",
        ]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        port = self._devtools_port()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as answer:
            targets = json.load(answer)
        page = next(t for t in targets if t["type"] == "page")
        self.socket = websocket.create_connection(
            page["webSocketDebuggerUrl"], timeout=PAGE_TIMEOUT_S, suppress_origin=True
        )
        self.next_id = 0
        self.events: list[dict] = []
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")

    def _devtools_port(self) -> int:
        marker = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if marker.is_file() and marker.read_text().strip():
                return int(marker.read_text().split()[0])
            if self.process.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.process.returncode}")
            time.sleep(0.1)
        raise RuntimeError(f"chromium wrote no {marker.name} in {START_TIMEOUT_S} s")

    def send(self, method: str, **params) -> dict:
        """Call a DevTools method; events that arrive meanwhile are kept."""
        self.next_id += 1
        self.socket.send(
            json.dumps({"id": self.next_id, "method": method, "params": params})
        )
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method: str) -> None:
        """Block until an event named ``method`` arrives (or the socket times out)."""
        while not any(e.get("method") == method for e in self.events):
            self.events.append(json.loads(self.socket.recv()))

    def open(self, url: str, width: int, height: int) -> dict:
        """Load ``url`` at a viewport size and return the page's measurements."""
        self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=width < 600,
        )
        self.events = []
        self.send("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired")
        result = self.send(
            "Runtime.evaluate",
            expression=MEASURE,
            awaitPromise=True,
            returnByValue=True,
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"measuring {url}: {result['exceptionDetails']}")
        return result["result"]["value"]

    def console_errors(self) -> list[str]:
        """Errors logged since the last :meth:`open`."""
        errors = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                text = details.get("exception", {}).get("description")
                errors.append(text or details.get("text", "exception"))
            elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
                errors.append(" ".join(str(a.get("value", "")) for a in params["args"]))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                entry = params["entry"]
                errors.append(f"{entry.get('text', '')} {entry.get('url', '')}".strip())
        return errors

    def screenshot(self, path: Path) -> None:
        data = self.send("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))

    def element_screenshot(self, selector: str, path: Path) -> None:
        """A screenshot of the window scrolled to the first ``selector`` match."""
        self.send(
            "Runtime.evaluate",
            expression=(
                f"(() => {{ const el = document.querySelector({json.dumps(selector)});"
                " const top = el ? el.getBoundingClientRect().top + scrollY : 0;"
                " window.scrollTo(0, Math.max(0, top - 72)); })()"
            ),
            awaitPromise=False,
        )
        time.sleep(0.3)  # let the scroll repaint before the capture
        self.screenshot(path)

    def close(self) -> None:
        try:
            self.socket.close()
        finally:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
            shutil.rmtree(self.profile, ignore_errors=True)


REDIRECT = re.compile(r'http-equiv="refresh"[^>]*url=([^"\'>]+)', re.IGNORECASE)


def redirect_target(path: Path) -> str | None:
    """Where a redirect-only page (``<meta http-equiv="refresh">``) sends a reader."""
    match = REDIRECT.search(path.read_text(errors="replace")[:2000])
    return match.group(1).strip() if match else None


def site_pages(site: Path) -> list[str]:
    """Every HTML page of a built book, relative to its root.

    The generated indexes (search, general index) and redirect-only pages (the
    book's root ``index.html``) are left out; :func:`check_site` checks that a
    redirect's target exists instead.
    """
    pages = []
    for path in sorted(site.rglob("*.html")):
        relative = path.relative_to(site).as_posix()
        if relative.startswith("_") or path.name in SKIPPED_PAGES:
            continue
        if redirect_target(path) is not None:
            continue
        pages.append(relative)
    return pages


def redirect_defects(site: Path) -> list[Defect]:
    """Redirect-only pages whose target is not a file of the site."""
    defects = []
    for path in sorted(site.rglob("*.html")):
        target = redirect_target(path)
        if target is not None and not (path.parent / target.split("#")[0]).is_file():
            page = path.relative_to(site).as_posix()
            defects.append(Defect(page, "-", "link", f"redirects to missing {target}"))
    return defects


def _resolves(link: str, server_url: str) -> bool:
    if not link.startswith(server_url):
        return False  # prev/next must stay inside the site
    try:
        with urllib.request.urlopen(link.split("#")[0], timeout=10) as answer:
            return answer.status == 200
    except (urllib.error.URLError, OSError):
        return False


def check_page(browser, server_url, page, width_name, banner, shots) -> list[Defect]:
    """Open one page at one width and list what a reader would see wrong."""
    width, height = WIDTHS[width_name]
    found = browser.open(server_url + page, width, height)
    defects = [Defect(page, width_name, "console", e) for e in browser.console_errors()]
    defects += [
        Defect(page, width_name, "image", f"not loaded: {s}") for s in found["images"]
    ]
    if found["pageWidth"] > found["viewport"] + 1:
        defects.append(
            Defect(
                page,
                width_name,
                "overflow",
                f"page {found['pageWidth']} px wide in a {found['viewport']} px window",
            )
        )
    defects += [
        Defect(page, width_name, "overflow", f"sticks out of the column: {s}")
        for s in found["sticking"]
    ]
    if width_name == "desktop":
        defects += [
            Defect(page, width_name, "overflow", f"wider than its column: {s}")
            for s in found["hidden"]
        ]
    defects += [
        Defect(page, width_name, "math", f"raw math: {s}") for s in found["raw"]
    ]
    if banner is not None and banner not in (found["banner"] or ""):
        defects.append(
            Defect(page, width_name, "banner", f"{banner!r} not in {found['banner']!r}")
        )
    for link in found["links"]:
        if not _resolves(link, server_url):
            defects.append(
                Defect(page, width_name, "link", f"does not resolve: {link}")
            )
    if shots is not None:
        name = page.replace("/", "__").removesuffix(".html")
        browser.screenshot(Path(shots) / f"{name}.{width_name}.png")
    return defects


def check_site(
    site: str | Path,
    banner: str | None = None,
    shots: str | Path | None = None,
    pages: list[str] | None = None,
    chromium: str | None = None,
) -> list[Defect]:
    """Check every page of a built book at both widths.

    Args:
        site: the built site (``_build/html``).
        banner: words the announcement bar must hold on every page (None: not
            checked).
        shots: folder for one screenshot per page and width (None: none taken).
        pages: pages to check, relative to ``site`` (default: all).
        chromium: the browser binary (default: found on PATH).

    Returns:
        The defects, empty for a book that reads well.

    Raises:
        RuntimeError: when chromium is missing or does not start.
    """
    site = Path(site)
    chromium = chromium or find_chromium()
    if chromium is None:
        raise RuntimeError("chromium is not installed (apt-get install -y chromium)")
    if shots is not None:
        Path(shots).mkdir(parents=True, exist_ok=True)
    defects = redirect_defects(site)
    with Server(site) as server:
        browser = Browser(chromium)
        try:
            for page in pages or site_pages(site):
                for width_name in WIDTHS:
                    defects += check_page(
                        browser, server.url, page, width_name, banner, shots
                    )
        finally:
            browser.close()
    return defects


def shoot(
    site: str | Path, shots: dict[str, tuple[str, str, str]], folder: str | Path
) -> list[Path]:
    """Screenshots of chosen parts of pages, for a report.

    Args:
        site: the built site.
        shots: file stem -> (page, CSS selector, width name of ``WIDTHS``).
        folder: where the PNG files go.

    Returns:
        The written files.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    with Server(Path(site)) as server:
        browser = Browser(find_chromium() or "chromium")
        try:
            for stem, (page, selector, width_name) in shots.items():
                browser.open(server.url + page, *WIDTHS[width_name])
                path = folder / f"{stem}.png"
                browser.element_screenshot(selector, path)
                written.append(path)
        finally:
            browser.close()
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("site", help="the built book, e.g. _build/html")
    parser.add_argument("--banner", help="words every announcement bar must hold")
    parser.add_argument("--shots", help="screenshot folder (default: a new temp one)")
    args = parser.parse_args(argv)
    shots = args.shots or tempfile.mkdtemp(prefix="srkit-book-shots-")
    pages = site_pages(Path(args.site))
    defects = check_site(args.site, banner=args.banner, shots=shots, pages=pages)
    for defect in defects:
        print(defect)
    print(
        f"{len(pages)} pages x {len(WIDTHS)} widths checked, {len(defects)} defects; "
        f"screenshots in {shots}"
    )
    return 1 if defects else 0


if __name__ == "__main__":
    sys.exit(main())
