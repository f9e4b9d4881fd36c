"""Do the report's tables fit a 1,400-pixel window? Renders report.html from each results.json with the code on
PYTHONPATH, opens it in headless Chromium at 1,400 × 1,000 and prints, per table, its width against the width of
its box: a table wider than its box scrolls (with the technique column fixed, since issue 24).

    PYTHONPATH=. python bench/report_width.py docs/generated/demo/results.json docs/generated/mcu/results.json

Needs `chromium` (Debian: apt-get install -y chromium). The page measured is a copy of the report with one script
appended that writes the measurements into the page; the report itself has no script.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

MEASURE = """<script>
const out = [];
for (const t of document.querySelectorAll('table')) {
  const box = t.closest('.scroll') || t.parentElement;
  let title = (t.closest('.scroll') || t).previousElementSibling;
  while (title && title.tagName !== 'H2') title = title.previousElementSibling;
  out.push((title ? title.textContent : '?') + '|' + t.scrollWidth + '|' + box.clientWidth);
}
document.body.setAttribute('data-widths', out.join(';'));
</script>"""


def measure(page: Path, width: int = 1400) -> list[tuple[str, int, int]]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("chromium not found: apt-get install -y chromium")
    copy = page.with_name("measured.html")
    copy.write_text(page.read_text(encoding="utf-8").replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                          f"--window-size={width},1000", "--dump-dom", copy.as_uri()],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    found = re.search(r'data-widths="([^"]*)"', dom).group(1)
    return [(t, int(w), int(b)) for t, w, b in (item.rsplit("|", 2) for item in found.split(";"))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path)
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--smoke", action="store_true", help="the same (one page per results.json takes seconds)")
    args = parser.parse_args()
    if shutil.which("chromium") is None and shutil.which("chromium-browser") is None:
        print("skipped: chromium not found (apt-get install -y chromium); it measures the tables' widths")
        return 0
    from quantbench.record.results import Results
    from quantbench.report import report

    for path in args.results:
        with tempfile.TemporaryDirectory() as tmp:
            report.write(Results.load(path), tmp)
            rows = measure(Path(tmp) / "report.html", args.width)
        print(f"{path} at {args.width} px:")
        for title, table, box in rows:
            print(f"  {title:<28} table {table:>5} px in a {box:>5} px box: {'fits' if table <= box else 'scrolls'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
