"""The notebook stages (data_overview, t1 ... report): run notebooks/<name>.ipynb with papermill into
results/<dir>/<name>__<tag>.ipynb and render the same name as .html with nbconvert. Each notebook calls one
analysis function; its params are that function's module's ``PARAMS``."""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.io import umask

if TYPE_CHECKING:
    from ..analysis.inputs import TableInputs

__all__ = ["run_notebook", "render_html", "open_stage", "table_inputs", "NotebookInputError",
           "writes_pipeline_outputs"]


def open_stage(name: str, params_file: str = "params.yaml", out_dir: str | None = None,
               overrides: dict | None = None):
    """A notebook's setup: (the params stage ``name`` declares, its output folder). A kernel started elsewhere than
    the repository root (JupyterLab starts it in the notebook's folder: notebooks/, or results/<t>/ for an executed
    copy) first moves to the nearest folder above with dvc.yaml and ``params_file`` (an absolute ``params_file``:
    the nearest folder above with dvc.yaml), so the notebook's relative paths (params,
    results/, splits/) mean what they mean under papermill and DVC. ``overrides`` ({"t1.head": "B_Sig"}): values
    of params the stage declares, applied over ``params_file`` and validated as params.yaml is (a notebook's
    knobs; a key the stage does not read is a one-line error naming those it does)."""
    from ..core.params import load_params
    from ..pipeline.registry import stage, view
    here = Path.cwd()
    pf = Path(params_file)
    if pf.is_absolute():        # the repository is still the one the kernel was started in (or above it)
        if not pf.is_file():
            raise FileNotFoundError(f"params file not found: {params_file}")
        root = next((d for d in [here, *here.parents] if (d / "dvc.yaml").is_file()), here)
    elif pf.is_file():
        root = here
    else:
        root = next((d for d in [here, *here.parents] if (d / "dvc.yaml").is_file() and (d / pf).is_file()), None)
        if root is None:
            raise FileNotFoundError(f"params file not found: {params_file} (looked in {here} and the folders above "
                                    f"it for the repository root: dvc.yaml beside {params_file})")
    if root != here:
        os.chdir(root)
    p = load_params(pf)
    if overrides:
        p = _with_overrides(p, overrides, stage(name).params, name)
    return view(p, name), Path(out_dir or stage(name).out_dir)


def _with_overrides(p, overrides: dict, declared, name: str):
    """``p`` with ``overrides`` ("section.key" -> value) applied and validated."""
    from pydantic import ValidationError
    from ..core.config import ConfigError, Params, validation_message
    from ..core.params import ParamsView
    v = ParamsView(p, declared, f"stage {name}")
    raw = p.model_dump()
    for key, value in overrides.items():
        sec, _, sub = str(key).partition(".")
        if not sub or not v.declares(key) or sub not in raw.get(sec, {}):
            raise ConfigError(f"notebook {name}: override {key!r} is not a param it reads (it reads: "
                              f"{', '.join(declared)}; a key is 'section.key')")
        raw[sec][sub] = value
    try:
        return Params.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(f"notebook {name}: overrides: {validation_message(e)}") from None


def writes_pipeline_outputs(name: str, out: Path) -> bool:
    """Whether ``out`` is the stage's own output folder (the DVC run), not a notebook's scratch run."""
    from ..pipeline.registry import stage
    return Path(out) == Path(stage(name).out_dir)


def table_inputs(p) -> "TableInputs":
    """What a table reads of the run besides its own section (:class:`~nriqa_lib.analysis.inputs.TableInputs`),
    from the params its stage declares (a table that does not declare ``train.select_on``/``train.report_last``
    gets the clean protocol's defaults, which it does not read)."""
    from ..analysis.inputs import TableInputs
    from ..core.config import Stats
    protocol = {k: getattr(p.train, k) for k in ("select_on", "report_last") if p.declares(f"train.{k}")}
    return TableInputs(datasets=p.data.datasets, backbones=p.features.backbones,
                       stats=Stats(**{k: getattr(p.stats, k) for k in Stats.model_fields}),
                       pretrained=p.features.pretrained, **protocol)


def _deterministic(nb_path: Path, final: Path) -> None:
    """Drop what changes between two runs of the same inputs (papermill's timestamps and durations, the
    kernel's execution timestamps), so a rerun renders byte-identical .ipynb/.html and DVC sees no change."""
    import nbformat
    nb = nbformat.read(str(nb_path), as_version=4)
    pm_meta = nb.metadata.get("papermill", {})
    for k in ("start_time", "end_time", "duration", "exception"):
        pm_meta.pop(k, None)
    pm_meta["output_path"] = str(final)
    for i, c in enumerate(nb.cells):
        if "injected-parameters" in c.metadata.get("tags", []):
            c["id"] = f"injected-parameters-{i}"
        c.metadata.pop("execution", None)
        pmc = c.metadata.get("papermill", {})
        for k in ("start_time", "end_time", "duration", "exception", "status"):
            pmc.pop(k, None)
    nbformat.write(nb, str(nb_path))


_KERNEL = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
           "language_info": {"name": "python"}}


def build_notebook(name: str, folder: Path = Path("notebooks")):
    """The notebook of ``folder/<name>.py`` (jupytext's percent format: the source you edit and review): its cells,
    ids ``<name[:20]>-NN``, tags only, the python3 kernel; the same source gives the same bytes
    (``scripts/make_notebooks.py`` writes it as ``<name>.ipynb``, what papermill executes)."""
    import jupytext
    import nbformat
    nb = jupytext.read(Path(folder) / f"{name}.py", fmt="py:percent")
    for i, c in enumerate(nb.cells):
        tags = c.metadata.get("tags")
        c.metadata = nbformat.NotebookNode({"tags": tags} if tags else {})
        c["id"] = f"{name[:20]}-{i:02d}"
        if c.cell_type == "code":
            c.outputs, c.execution_count = [], None
    nb.metadata = nbformat.from_dict(_KERNEL)
    nb.nbformat, nb.nbformat_minor = 4, 5
    return nb


def check_built(name: str, folder: Path = Path("notebooks")) -> None:
    """Refuse, in one line, to run a notebook whose .ipynb is not the build of its source .py (an edited source
    would otherwise render the old code while DVC calls the stage up to date)."""
    import nbformat
    ipynb = Path(folder) / f"{name}.ipynb"
    if not ipynb.is_file() or nbformat.writes(build_notebook(name, folder)) + "\n" != ipynb.read_text(encoding="utf-8"):
        raise SystemExit(f"nriqa: {ipynb} is not the build of its source {Path(folder) / (name + '.py')}: run "
                         f"python scripts/make_notebooks.py, then rerun")


def remove_stale(out: Path, name: str, stem: str) -> list[str]:
    """The stage owns its folder: rendered notebooks of ``name`` under another tag (e.g. t1.head changed from B to
    B_Sig) are removed once the new ones are written, so a reader never opens a stale, untracked notebook."""
    gone = []
    for f in list(out.glob(f"{name}__*.ipynb")) + list(out.glob(f"{name}__*.html")):
        if f.stem != stem:
            f.unlink()
            gone.append(f.name)
    return gone


OFFLINE_TEMPLATES = Path(__file__).resolve().parents[1] / "reporting" / "templates"
USER_ERRORS = ("FileNotFoundError", "WeightsError", "ManifestError", "ConfigError", "FloatingPointError")


class NotebookInputError(RuntimeError):
    """A notebook stopped on something the user can fix (its cell raised one of :data:`USER_ERRORS`)."""


def render_html(nb: Path) -> str:
    """An executed notebook as the study's HTML page: outputs only, like a results section (the .ipynb keeps the
    code), and no script from the network (reporting/templates/offline: nbconvert's lab template without
    require.js, MathJax and mermaid; the README promises a study that reads offline)."""
    from nbconvert import HTMLExporter
    return HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True,
                        extra_template_basedirs=[str(OFFLINE_TEMPLATES)], template_name="offline").from_filename(str(nb))[0]


def run_notebook(name: str, out_dir: str, params_file: str, tag: str | None = None) -> None:
    """Run notebooks/<name>.ipynb with papermill into out_dir (created) and render HTML with nbconvert.

    The executed notebook is named after its parameters: <name>__<tag>.ipynb (dvc.yaml builds the tag).
    Work happens in ``out_dir/.tmp-nb-<pid>``; leftovers of killed runs are removed first, and SIGTERM
    (what ``kill`` and DVC send) unwinds through the same cleanup as an error.
    """
    import shutil
    import signal
    import papermill as pm
    check_built(name)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)      # papermill does not create output folders
    for old in out.glob(".tmp-nb-*"):           # our own work folders (this prefix) left by killed runs; nothing else
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    stem = f"{name}__{tag}" if tag else name
    target = out / f"{stem}.ipynb"
    tmp = Path(tempfile.mkdtemp(dir=out, prefix=".tmp-nb-"))
    try:
        nb_tmp = tmp / target.name
        try:
            pm.execute_notebook(f"notebooks/{name}.ipynb", str(nb_tmp), parameters={"params_file": params_file,
                                "out_dir": str(out)}, kernel_name="python3", progress_bar=False, cwd=os.getcwd(),
                                shutdown_kernel="immediate",   # nothing is left to flush: 0.7 s less per notebook
                                # the kernel's own "running over TCP without encryption" line on every run (a local
                                # kernel on the loopback) said nothing a reader can act on; its errors still show
                                extra_arguments=["--IPKernelApp.log_level=ERROR"])
        except pm.PapermillExecutionError as e:
            # what a user can fix (an input not yet made, a bad manifest or param) in one line, as every stage
            # says it; anything else (a bug) keeps papermill's report with the cell's traceback
            if e.ename in USER_ERRORS:
                raise NotebookInputError(f"notebook {name}: {e.ename}: {e.evalue}") from None
            raise
        _deterministic(nb_tmp, target)
        (tmp / f"{name}.html").write_text(render_html(nb_tmp), encoding="utf-8")
        for f in (nb_tmp, tmp / f"{name}.html"):
            os.chmod(f, 0o666 & ~umask())
        os.replace(nb_tmp, target)
        os.replace(tmp / f"{name}.html", out / f"{stem}.html")
        remove_stale(out, name, stem)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{target} and {out / (stem + '.html')}")


