"""`dvc plots show` offline (issue 40 item 6): DVC's page loads Vega from a CDN; .dvc/config names a template that
inlines it. The page dvc-render builds from it names no remote script (checked in headless Chromium when it was
built: no request, the chart drawn; docs/pipeline.md)."""
from __future__ import annotations

import configparser
import re

from conftest import REPO


def test_dvc_config_names_the_offline_template_and_its_page_loads_nothing_remote():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / ".dvc" / "config")
    template = (REPO / ".dvc" / cfg["plots"]["html_template"]).resolve()
    assert template == (REPO / "docs" / "vendor" / "dvc_plots_offline.html").resolve() and template.is_file()
    from dvc_render.html import HTML
    from dvc_render.vega import VegaRenderer
    page = HTML(template.read_text()).with_scripts(VegaRenderer.SCRIPTS).with_element("<div id='x'></div>").embed()
    assert "cdn.jsdelivr" in VegaRenderer.SCRIPTS                         # what DVC would add, and the template drops
    assert re.search(r"<script[^>]*\bsrc=", page) is None and "https://" not in page.split("</head>")[0][:2000]
    assert "<div id='x'></div>" in page
    for lib in ("vega 5.20.2", "vega-lite 5.2.0", "vega-embed 6.18.2"):
        assert f"/* {lib} */" in page
