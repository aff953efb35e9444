"""Build notebooks/<name>.ipynb from its readable source notebooks/<name>.py (jupytext's percent format: `# %%`
code cells, `# %% [markdown]` text cells, the papermill `parameters` cell tagged). The sources are what you edit and
review; the .ipynb is what papermill executes (dvc.yaml depends on both; a notebook stage refuses an .ipynb that is
not its source's build), rebuilt here with stable cell ids and
kernel metadata so the same source gives the same bytes. tests/pipeline/test_pipeline.py fails when a .ipynb differs from
its source or a notebook stage has no source. Run from the repository root:

    python scripts/make_notebooks.py            # every notebook stage of the registry
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nriqa_lib.stages.notebook import build_notebook  # noqa: E402
from nriqa_lib.pipeline.registry import registry  # noqa: E402


def build(name: str, folder: Path = REPO / "notebooks") -> nbformat.NotebookNode:
    """The notebook of ``folder/<name>.py`` (:func:`nriqa_lib.stages.notebook.build_notebook`)."""
    return build_notebook(name, folder)


def main() -> int:
    for name, st in registry().items():
        if st.is_notebook:
            nbformat.write(build(name), str(REPO / "notebooks" / f"{name}.ipynb"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
