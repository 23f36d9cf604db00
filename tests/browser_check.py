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
- ``link``: the previous/next links resolve to pages of the site;
- ``alt``: every picture of the column has an alt text, and not a file path;
- ``size``: (desktop) no picture is shown narrower than its own pixels;
- ``slider``: every ``img-comparison-slider`` is defined (its script loaded
  offline) and shows its two images;
- ``first-screen``: a step page 02-11 and the summary (13) show a figure before
  the reader scrolls, on the desktop (1400x900) and on the phone (390x844);
- ``weight``: (with ``--max-mb``) the whole site weighs at most that much.

The rules are pure functions over what the page script collects
(:func:`page_defects`), tested without a browser. One screenshot per page and width
is written to a temporary folder, printed at the end. Chromium runs with a fresh
profile and no network beyond the loopback server (no host name resolves).

Usage: ``python tests/browser_check.py _build/html [--banner "Smoke build"]
[--max-mb 30]``.
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
    # offline: no host name resolves, so a CDN script fails as it would for a
    # reader without network; the site itself is served on 127.0.0.1
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
]
SKIPPED_PAGES = ("genindex.html", "search.html", "py-modindex.html")
START_TIMEOUT_S = 30.0  # Chromium writes its DevTools port within seconds
PAGE_TIMEOUT_S = 30.0  # load, MathJax and images of one page

# Runs in the page after load: waits for MathJax and the images, then measures.
MEASURE = r"""
(async () => {
  const SLIDER = "img-comparison-slider";
  for (const img of document.images) { img.loading = "eager"; }
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  const wait = (img) => img.complete ? null : new Promise((done) => {
    img.addEventListener("load", done); img.addEventListener("error", done);
    setTimeout(done, 5000);
  });
  await Promise.all([...document.images].map(wait));
  // a slider's script may define the element after the load event
  if (document.querySelector(SLIDER) && window.customElements) {
    await Promise.race([customElements.whenDefined(SLIDER),
                        new Promise((done) => setTimeout(done, 2000))]);
  }
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
  // the column's pictures, with their place on the page (document coordinates)
  const pictures = [...main.querySelectorAll("img")].map((img) => {
    const box = img.getBoundingClientRect();
    return {
      src: img.getAttribute("src"), alt: img.getAttribute("alt"),
      decorative: ["presentation", "none"].includes(img.getAttribute("role")) ||
                  img.closest("[aria-hidden=true]") !== null,
      naturalWidth: img.naturalWidth, width: box.width, height: box.height,
      top: box.top + window.scrollY,
    };
  });
  const sliders = [...document.querySelectorAll(SLIDER)].map((el) => ({
    defined: el.matches(":defined"), width: el.getBoundingClientRect().width,
    images: [...el.querySelectorAll("img")].map((img) => ({
      src: img.getAttribute("src"), loaded: img.complete && img.naturalWidth > 0,
    })),
  }));
  const bar = document.querySelector(".bd-header-announcement");
  const links = [...document.querySelectorAll(".prev-next-area a")]
    .map((a) => a.href);
  return {
    images, sticking: sticking.slice(0, 5), hidden: hidden.slice(0, 5), raw,
    // the screen's size (a phone's window grows to content wider than the screen:
    // innerWidth would hide that overflow)
    pageWidth: document.documentElement.scrollWidth,
    viewport: document.documentElement.clientWidth,
    viewportHeight: document.documentElement.clientHeight, pictures, sliders,
    banner: bar ? bar.textContent.trim() : null, links,
  };
})()
"""


@dataclass(frozen=True)
class Defect:
    """One problem a reader would see: which page, at which width, what."""

    page: str
    width: str
    # image | console | overflow | math | banner | link | alt | size | slider
    # | first-screen | weight
    kind: str
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
                if entry.get("url", "").endswith("/favicon.ico"):
                    continue  # the browser asks for it by itself; no page links it
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


def site_bytes(site: Path) -> int:
    """What a reader's browser could download: every file of the built site."""
    return sum(f.stat().st_size for f in Path(site).rglob("*") if f.is_file())


def weight_defects(total_bytes: int, max_mb: float | None) -> list[Defect]:
    """The site heavier than ``max_mb`` megabytes (10**6 bytes; None: no limit)."""
    if max_mb is None or total_bytes <= max_mb * 1e6:
        return []
    detail = f"the site weighs {total_bytes / 1e6:.1f} MB, more than {max_mb:g} MB"
    return [Defect("-", "-", "weight", detail)]


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


# ------------------------------------------------------------------ the rules
# Pure functions over what MEASURE collects, so each rule is tested without a browser
# (tests/test_browser_rules.py). A picture is a dict with src, alt, decorative,
# naturalWidth, width, height and top (CSS px from the top of the page); a slider is
# a dict with defined, width and images (each with src and loaded).

#: An alt text that is a file name or path: what Sphinx writes when none was given.
PATH_ALT = re.compile(
    r"^\S*(/|\\)\S*$|^\S+\.(png|jpe?g|gif|svg|webp|avif)$", re.IGNORECASE
)
#: Pages whose first screen must show a figure: steps 02-11 and the summary (13);
#: 01 shows data and 12 benchmark tables.
FIRST_SCREEN_PAGE = re.compile(r"(^|/)steps/(0[2-9]|1[013])_[^/]*\.html$")
#: How much of a picture the first screen must show (all of a smaller one), in px.
FIRST_SCREEN_MIN_PX = 100
SHRINK_TOLERANCE_PX = 1  # sub-pixel layout rounding


def _name(src: str | None) -> str:
    return (src or "?").rsplit("/", 1)[-1]


def alt_defects(pictures: list[dict]) -> list[str]:
    """Content pictures whose alt text is missing, empty or a file path.

    A picture marked decorative (``role="presentation"`` or inside
    ``aria-hidden="true"``) may have an empty alt.
    """
    defects = []
    for picture in pictures:
        alt = (picture.get("alt") or "").strip()
        if picture.get("decorative"):
            continue
        if not alt:
            defects.append(f"no alt text: {_name(picture['src'])}")
        elif PATH_ALT.match(alt):
            defects.append(f"alt text is a file path: {alt}")
    return defects


def size_defects(pictures: list[dict]) -> list[str]:
    """Pictures shown narrower than their own pixels (downsampled by the page).

    Hidden pictures (width 0, e.g. in a closed toggle) and pictures that did not
    load (natural width 0, reported as ``image``) are left out.
    """
    defects = []
    for picture in pictures:
        natural, shown = picture.get("naturalWidth") or 0, picture.get("width") or 0
        if natural and shown and shown < natural - SHRINK_TOLERANCE_PX:
            defects.append(
                f"{_name(picture['src'])} shown {round(shown)} px wide, "
                f"its image is {natural} px (downsampled {natural / shown:.1f}x)"
            )
    return defects


def slider_defects(sliders: list[dict]) -> list[str]:
    """Before/after sliders that do not work: element undefined, images missing.

    The browser runs offline (:data:`CHROMIUM_FLAGS` resolve no host but the
    loopback server), so a slider whose script comes from a CDN is undefined.
    """
    defects = []
    for number, slider in enumerate(sliders, 1):
        name = f"slider {number}"
        if not slider.get("defined"):
            defects.append(f"{name}: img-comparison-slider is not defined (no script)")
        elif not slider.get("width"):
            defects.append(f"{name}: shown 0 px wide")
        images = slider.get("images") or []
        if len(images) < 2:
            defects.append(f"{name}: {len(images)} image(s), a comparison needs 2")
        defects += [
            f"{name}: image not loaded: {_name(image['src'])}"
            for image in images
            if not image.get("loaded")
        ]
    return defects


def first_screen_defects(page: str, pictures: list[dict], height: int) -> list[str]:
    """A step page (02-11, 13) whose first screen (``height`` px) shows no picture.

    A picture counts when it is shown (width > 0), is not decorative, and at least
    :data:`FIRST_SCREEN_MIN_PX` of it (all of a smaller one) lies above ``height``.
    """
    if not FIRST_SCREEN_PAGE.search(page):
        return []
    for picture in pictures:
        if picture.get("decorative") or not picture.get("width"):
            continue
        needed = min(picture.get("height") or 0, FIRST_SCREEN_MIN_PX)
        if picture["top"] >= 0 and picture["top"] + needed <= height:
            return []
    shown = [p for p in pictures if p.get("width") and not p.get("decorative")]
    first = min((p["top"] for p in shown), default=None)
    where = f"the first starts at {round(first)} px" if first is not None else "none"
    return [f"no figure in the first {height} px ({where})"]


def page_defects(page: str, width_name: str, found: dict, banner=None) -> list[Defect]:
    """Every defect that the measurements of one page show (console and links aside).

    Args:
        page: the page, relative to the site (``book/steps/02_x.html``).
        width_name: a key of :data:`WIDTHS`.
        found: what :data:`MEASURE` returned for the page.
        banner: words the announcement bar must hold (None: not checked).
    """

    def named(kind, details):
        return [Defect(page, width_name, kind, detail) for detail in details]

    defects = named("image", [f"not loaded: {s}" for s in found["images"]])
    if found["pageWidth"] > found["viewport"] + 1:
        defects.append(
            Defect(
                page,
                width_name,
                "overflow",
                f"page {found['pageWidth']} px wide in a {found['viewport']} px window",
            )
        )
    defects += named(
        "overflow", [f"sticks out of the column: {s}" for s in found["sticking"]]
    )
    if width_name == "desktop":
        defects += named(
            "overflow", [f"wider than its column: {s}" for s in found["hidden"]]
        )
    defects += named("math", [f"raw math: {s}" for s in found["raw"]])
    if banner is not None and banner not in (found["banner"] or ""):
        defects.append(
            Defect(page, width_name, "banner", f"{banner!r} not in {found['banner']!r}")
        )
    pictures = found.get("pictures", [])
    defects += named("alt", alt_defects(pictures))
    defects += named("slider", slider_defects(found.get("sliders", [])))
    if width_name == "desktop":  # a phone shrinks wide figures to its column
        defects += named("size", size_defects(pictures))
    defects += named(
        "first-screen", first_screen_defects(page, pictures, found["viewportHeight"])
    )
    return defects


def check_page(browser, server_url, page, width_name, banner, shots) -> list[Defect]:
    """Open one page at one width and list what a reader would see wrong."""
    width, height = WIDTHS[width_name]
    found = browser.open(server_url + page, width, height)
    defects = [Defect(page, width_name, "console", e) for e in browser.console_errors()]
    defects += page_defects(page, width_name, found, banner)
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
    parser.add_argument(
        "--max-mb", type=float, help="the most the whole site may weigh, in MB"
    )
    args = parser.parse_args(argv)
    shots = args.shots or tempfile.mkdtemp(prefix="srkit-book-shots-")
    pages = site_pages(Path(args.site))
    defects = check_site(args.site, banner=args.banner, shots=shots, pages=pages)
    total = site_bytes(Path(args.site))
    defects += weight_defects(total, args.max_mb)
    for defect in defects:
        print(defect)
    print(
        f"{len(pages)} pages x {len(WIDTHS)} widths checked, {len(defects)} defects; "
        f"site {total / 1e6:.1f} MB; screenshots in {shots}"
    )
    return 1 if defects else 0


if __name__ == "__main__":
    sys.exit(main())
