"""Build docs/vendor/dvc_plots_offline.html: dvc-render's page template with Vega, Vega-Lite and Vega-Embed inlined
(issue 40 item 6). ``dvc plots show`` loads them from cdn.jsdelivr.net, so offline (this study's machines, a train)
the summary chart is blank; .dvc/config names this template (``plots.html_template``), and the page it writes makes
no network request. The versions are those dvc-render 1.x loads from the CDN.

    python scripts/vendor_vega.py          # needs npm (the npm registry); writes the template and the licences
"""
from __future__ import annotations

import subprocess
import tarfile
import tempfile
from pathlib import Path

PACKAGES = (("vega", "5.20.2", "vega.min.js"), ("vega-lite", "5.2.0", "vega-lite.min.js"),
            ("vega-embed", "6.18.2", "vega-embed.min.js"))
OUT = Path("docs/vendor")
PLACEHOLDERS = ("{scripts}", "{plot_divs}", "{refresh_tag}")     # dvc-render fills these by str.replace

TEMPLATE = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
    <title>DVC Plot</title>
<!-- Vega, Vega-Lite, Vega-Embed inlined (BSD-3-Clause; docs/vendor/VEGA_LICENSES.txt): no network request -->
%s
    <style>
        table {
            border-spacing: 15px;
        }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def main() -> None:
    scripts, licences = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name, version, build in PACKAGES:
            tgz = subprocess.run(["npm", "pack", f"{name}@{version}", "--silent"], cwd=tmp, check=True,
                                 capture_output=True, text=True).stdout.strip().splitlines()[-1]
            with tarfile.open(Path(tmp) / tgz) as t:
                js = t.extractfile(f"package/build/{build}").read().decode()
                lic = t.extractfile("package/LICENSE").read().decode()
            if any(p in js for p in PLACEHOLDERS) or "</script" in js.lower():
                raise SystemExit(f"{name} {version}: its build holds a placeholder or </script>; cannot inline it")
            scripts.append(f"<script>/* {name} {version} */\n{js}\n</script>")
            licences.append(f"== {name} {version} (npm) ==\n{lic}")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "dvc_plots_offline.html").write_text(TEMPLATE % "\n".join(scripts))
    (OUT / "VEGA_LICENSES.txt").write_text(
        "The builds inlined in dvc_plots_offline.html, under their licences:\n\n" + "\n\n".join(licences))
    print(f"{OUT / 'dvc_plots_offline.html'}: {(OUT / 'dvc_plots_offline.html').stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
