"""Issue 40 item 6: `dvc exp run -S key=value` rewrites params.yaml through DVC's round-trip YAML writer; the
committed file is laid out so that writer changes only the line of the key set (it re-wrapped a flow list longer
than its 80 columns, with a trailing space, on every -S)."""
import shutil

import pytest

from conftest import REPO


def _scalars(d, path=()):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _scalars(v, (*path, k))
        elif isinstance(v, (int, float, str, bool)):
            yield (*path, k), v


def test_dvc_set_param_changes_one_line_of_params_yaml(tmp_path):
    pytest.importorskip("dvc")
    import yaml
    from dvc.utils.serialize._yaml import modify_yaml
    orig = (REPO / "params.yaml").read_text().splitlines()
    keys = list(_scalars(yaml.safe_load((REPO / "params.yaml").read_text())))
    assert len(keys) > 40
    f = tmp_path / "params.yaml"
    for path, v in keys:
        shutil.copy(REPO / "params.yaml", f)
        new = (not v) if isinstance(v, bool) else (v + 1 if isinstance(v, (int, float)) else f"{v}x")
        with modify_yaml(str(f)) as d:          # what `dvc exp run -S` calls
            node = d
            for k in path[:-1]:
                node = node[k]
            node[path[-1]] = new
        got = f.read_text().splitlines()
        changed = [i for i, (a, b) in enumerate(zip(orig, got)) if a != b]
        assert len(got) == len(orig) and len(changed) == 1, (".".join(path), changed[:5])
        assert got[changed[0]].split(":")[0].strip() == str(path[-1])
