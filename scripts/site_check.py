"""Check the committed site (docs/site) as a reader's browser shows it (issue 40): every page in headless Chromium at
1280 and 390 px wide, a full-page screenshot each, and three measurements per page and width:

- network: every request the page makes that is not a file:// or data: URL (the site must work offline);
- clipped: tables and images whose right edge lies beyond the window and that no horizontally scrollable box holds
  (content a reader cannot reach), and whether the page itself scrolls sideways;
- smallest label: for each figure, the smallest font in its PNG (``nriqa-min-font-px``, written by
  ``nriqa_lib.reporting.plots.save``) times the width the page shows it at over its natural width.

Not part of the test suite (it needs Chromium and Playwright, which the study does not install):

    pip install playwright pillow   # any Python; Chromium from the OS (apt install chromium)
    python scripts/site_check.py [--site docs/site] [--chromium /usr/bin/chromium] [--shots DIR] [--json OUT]

Exit status 1 when a page requests the network, clips content or shows a label under ``--min-px`` (9).
"""
from __future__ import annotations

import argparse
import base64
import io
import json
import sys
from pathlib import Path

_PROBE = """() => {
  const W = window.innerWidth;
  const scrollable = (el) => { for (let e = el.parentElement; e; e = e.parentElement) {
      const s = getComputedStyle(e);
      if ((s.overflowX === 'auto' || s.overflowX === 'scroll') && e.clientWidth < e.scrollWidth + 1) return true;
      if ((s.overflowX === 'auto' || s.overflowX === 'scroll')) return true; }
    return false; };
  const clipped = [];
  for (const el of document.querySelectorAll('table, img, pre')) {
    const r = el.getBoundingClientRect();
    if (r.width === 0) continue;
    if (r.right > W + 1 && !scrollable(el)) clipped.push(el.tagName + ' ' + Math.round(r.right) + 'px');
  }
  const imgs = [...document.querySelectorAll('img')].map((im) => ({src: im.currentSrc || im.src,
      natural: im.naturalWidth, shown: im.getBoundingClientRect().width}));
  return {clipped, imgs, page_scrolls_sideways: document.scrollingElement.scrollWidth > W + 1};
}"""


def _png_min_font(src: str, site: Path) -> float | None:
    """The ``nriqa-min-font-px`` of a PNG given as a data: URI or a file URL under the site."""
    from PIL import Image
    if src.startswith("data:image/png;base64,"):
        raw = base64.b64decode(src.split(",", 1)[1])
    elif src.startswith("file://"):
        f = Path(src[len("file://"):])
        if f.suffix != ".png" or not f.is_file():
            return None
        raw = f.read_bytes()
    else:
        return None
    with Image.open(io.BytesIO(raw)) as im:
        v = im.info.get("nriqa-min-font-px")
    return float(v) if v not in (None, "", "nan") else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--site", default="docs/site")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--widths", default="1280,390")
    ap.add_argument("--min-px", type=float, default=9.0)
    ap.add_argument("--shots", default="", help="folder for the screenshots (none if empty)")
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    from playwright.sync_api import sync_playwright
    site = Path(a.site).resolve()
    pages = sorted(site.glob("*.html"))
    rows, bad = [], 0
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=a.chromium, args=["--no-sandbox"])
        for width in map(int, a.widths.split(",")):
            ctx = browser.new_context(viewport={"width": width, "height": 900}, device_scale_factor=1)
            for page_file in pages:
                page = ctx.new_page()
                requests = []
                page.on("request", lambda r: requests.append(r.url))
                page.goto(page_file.as_uri(), wait_until="load")
                probe = page.evaluate(_PROBE)
                if a.shots:
                    Path(a.shots).mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(Path(a.shots) / f"{page_file.stem}_{width}.png"), full_page=True)
                page.close()
                remote = [u for u in requests if not u.startswith(("file://", "data:"))]
                fonts = []
                for im in probe["imgs"]:
                    m = _png_min_font(im["src"], site)
                    if m is not None and im["natural"]:
                        fonts.append(round(m * im["shown"] / im["natural"], 2))
                row = {"page": page_file.name, "width": width, "requests_remote": remote,
                       "clipped": probe["clipped"], "page_scrolls_sideways": probe["page_scrolls_sideways"],
                       "figures": len(fonts), "smallest_label_px": min(fonts) if fonts else None}
                ok = not remote and not probe["clipped"] and (not fonts or min(fonts) >= a.min_px)
                bad += not ok
                rows.append({**row, "ok": ok})
                print(f"{'ok  ' if ok else 'FAIL'} {width:>4}px {page_file.name:<22} remote {len(remote)}, clipped "
                      f"{len(probe['clipped'])}, sideways {probe['page_scrolls_sideways']}, {len(fonts)} figures, "
                      f"smallest label {row['smallest_label_px']} px")
            ctx.close()
        browser.close()
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
