"""Build notebooks/<name>.ipynb from its readable source notebooks/<name>.py (jupytext's percent format: `# %%`
code cells, `# %% [markdown]` text cells, the papermill `parameters` cell tagged). The sources are what you edit and
review; the .ipynb is what papermill executes (dvc.yaml depends on it), rebuilt here with stable cell ids and
kernel metadata so the same source gives the same bytes. tests/test_pipeline.py fails when a .ipynb differs from
its source or a notebook stage has no source. Run from the repository root:

    python scripts/make_notebooks.py            # every notebook stage of the registry
"""
from __future__ import annotations

import sys
from pathlib import Path

import jupytext
import nbformat

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nriqa_lib.stages.registry import registry  # noqa: E402

KERNEL = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
          "language_info": {"name": "python"}}


def build(name: str, folder: Path = REPO / "notebooks") -> nbformat.NotebookNode:
    """The notebook of ``folder/<name>.py``: its cells, ids ``<name[:20]>-NN``, tags only, the python3 kernel."""
    nb = jupytext.read(folder / f"{name}.py", fmt="py:percent")
    for i, c in enumerate(nb.cells):
        tags = c.metadata.get("tags")
        c.metadata = nbformat.NotebookNode({"tags": tags} if tags else {})
        c["id"] = f"{name[:20]}-{i:02d}"
        if c.cell_type == "code":
            c.outputs, c.execution_count = [], None
    nb.metadata = nbformat.from_dict(KERNEL)
    nb.nbformat, nb.nbformat_minor = 4, 5
    return nb


def main() -> int:
    for name, st in registry().items():
        if st.is_notebook:
            nbformat.write(build(name), str(REPO / "notebooks" / f"{name}.ipynb"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
