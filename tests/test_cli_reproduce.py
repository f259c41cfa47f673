"""The CLI end to end: download through the mirror, reproduce with a failing and a working study."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent


def astronb(*args, env=None, cwd=None):
    exe = Path(sys.executable).parent / "astronb"  # the console script that pip installed
    assert exe.exists(), f"{exe} missing: install the project with pip install -e ."
    return subprocess.run(
        [str(exe), *args], capture_output=True, text=True, env={**os.environ, **(env or {})}, cwd=cwd, timeout=900
    )


def test_cli_lists_datasets():
    r = astronb("datasets")
    assert r.returncode == 0 and "ztf-alerts" in r.stdout and "Zenodo record 8387071" in r.stdout


def test_download_from_mirror(shared_mirror, tmp_path):
    r = astronb("download", "wfsat", "sep-testdata", "--mirror", str(shared_mirror), "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "wfsat: 6 file(s) verified (mirror)" in r.stdout and "sep-testdata: 9 file(s) verified (mirror)" in r.stdout


def test_download_corrupt_mirror_fails_clearly(shared_mirror, tmp_path):
    m = tmp_path / "mirror"
    shutil.copytree(shared_mirror / "sep", m / "sep")
    os.chmod(m / "sep" / "image.fits", 0o644)
    with open(m / "sep" / "image.fits", "r+b") as f:
        f.seek(3000)
        f.write(b"\0\0\0\0")
    r = astronb("download", "sep-testdata", "--quiet", env={"ASTRONB_DATA_MIRROR": str(m)})
    assert r.returncode == 2
    assert "dataset 'sep-testdata', file 'image.fits'" in r.stderr and "restore it from" in r.stderr


def _notebook(path, cells, params):
    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell(params)
    p.metadata["tags"] = ["parameters"]
    nb.cells = [p] + [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "python3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))


@pytest.fixture
def toy_project(tmp_path):
    "A project folder with one study that fails in its third cell and one that works."
    root = tmp_path / "proj"
    (root / "nbs" / "studies").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[tool.nbdev]\n")
    _notebook(
        root / "nbs" / "studies" / "a_broken.ipynb",
        ["x = n + 1", "raise ValueError(f'bad value {x}')", "print('never')"],
        "n = 1",
    )
    _notebook(
        root / "nbs" / "studies" / "b_works.ipynb",
        [
            "import pandas as pd\nfrom astronb.report import StudyRun\n"
            "run = StudyRun('b_works', {'n': n})\nrun.table(pd.DataFrame({'n': [n]}), 'table')\nrun.finish()"
        ],
        "n = 1",
    )
    for s in ("a_broken", "b_works"):
        (root / "params" / s).mkdir(parents=True)
        (root / "params" / s / "smoke.yaml").write_text("n: 2\n")
        (root / "params" / s / "outputs.yaml").write_text("tables:\n  - table.csv\n  - table.md\n")
    return root


def test_reproduce_reports_failing_cell_and_runs_the_rest(toy_project, tmp_path):
    res = tmp_path / "res"
    r = astronb("reproduce", "--params", "smoke", env={"ASTRONB_HOME": str(toy_project), "ASTRONB_RESULTS": str(res)})
    assert r.returncode == 1
    assert "nbs/studies/a_broken.ipynb: cell 3 of 4 raised" in r.stdout and "ValueError: bad value 3" in r.stdout
    assert "1 of 2 studies reproduced" in r.stdout
    assert (res / "b_works" / "table.md").exists()  # the other study still ran
    man = json.loads((res / "b_works" / "manifest.json").read_text())
    assert man["params"] == {"n": 2} and man["outputs"] == ["b_works.html", "b_works.ipynb", "table.csv", "table.md"]
    import nbformat  # the executed notebook is published with its outputs

    pub = nbformat.read(str(res / "b_works" / "b_works.ipynb"), as_version=4)
    assert any(c.get("outputs") for c in pub.cells) and "<html" in (res / "b_works" / "b_works.html").read_text()
    assert not (res / "a_broken" / "a_broken.ipynb").exists()  # a failed run publishes nothing
    assert (
        Path(os.environ["ASTRONB_BUILD"]) / "executed" / "a_broken.ipynb"
    ).exists()  # executed copy, not over the source


def test_reproduce_detects_undeclared_output(toy_project, tmp_path):
    (toy_project / "params" / "b_works" / "outputs.yaml").write_text(
        "tables:\n  - table.csv\nfigures:\n  - missing.png\n"
    )
    r = astronb(
        "reproduce", "--only", "b_works", env={"ASTRONB_HOME": str(toy_project), "ASTRONB_RESULTS": str(tmp_path / "r")}
    )
    assert r.returncode == 1 and "did not regenerate: missing.png" in r.stdout


def test_reproduce_unknown_study(toy_project):
    r = astronb("reproduce", "--only", "nope", env={"ASTRONB_HOME": str(toy_project)})
    assert r.returncode == 2 and "unknown study" in r.stderr


def test_data_inventory_study_end_to_end(shared_mirror, tmp_path):
    res = tmp_path / "res"
    r = astronb(
        "reproduce",
        "--only",
        "data_inventory",
        env={"ASTRONB_RESULTS": str(res), "ASTRONB_DATA_MIRROR": str(shared_mirror)},
    )
    assert r.returncode == 0, r.stdout + r.stderr
    import pandas as pd

    inv = pd.read_csv(res / "data_inventory" / "inventory.csv").set_index("dataset")
    assert inv.loc["ztf-alerts", "files"] == 390 and "asteroids 75" in inv.loc["ztf-alerts", "labels"]
    assert inv.loc["wfsat", "checksums_verified"] == "6/6" and inv.loc["deepspaceyolo", "source"] == "unavailable"
    man = json.loads((res / "data_inventory" / "manifest.json").read_text())
    assert set(man["outputs"]) == {
        "inventory.csv",
        "inventory.md",
        "samples.png",
        "data_inventory.ipynb",
        "data_inventory.html",
    }
    assert len(man["inputs"]) == 7


def test_git_info_dirty_ignores_rewritten_results(tmp_path):
    "A study rewriting its tracked outputs under results/ leaves the manifest's checkout clean; a code change does not."
    import subprocess
    from astronb.core import git_info

    def g(*a):
        return subprocess.run(["git", *a], cwd=tmp_path, check=True, capture_output=True)

    g("init", "-q")
    (tmp_path / "results").mkdir()
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "results" / "t.md").write_text("| a |\n")
    g("add", ".")
    g("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    assert git_info(tmp_path)["dirty"] is False
    (tmp_path / "results" / "t.md").write_text("| b |\n")
    assert git_info(tmp_path)["dirty"] is False
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_info(tmp_path)["dirty"] is True


def test_reproduce_runs_every_seed_and_summarises_them(tmp_path):
    """A parameter file with `seeds:` runs the study once per seed; the metrics get mean and sd next to the per-seed
    values."""
    root = tmp_path / "proj"
    (root / "nbs" / "studies").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[tool.nbdev]\n")
    _notebook(
        root / "nbs" / "studies" / "c_seeds.ipynb",
        [
            "import pandas as pd\nfrom astronb.report import StudyRun\n"
            "run = StudyRun('c_seeds', {'seed': seed}, seed=seed)\n"
            "row = {'variant': ['a'], 'recall': [0.5 + 0.1 * seed], 'recall_lo': [0.0], 'recall_hi': [1.0]}\n"
            "run.table(pd.DataFrame(row), 'res')\n"
            "run.finish()"
        ],
        "seed = 0",
    )
    (root / "params" / "c_seeds").mkdir(parents=True)
    (root / "params" / "c_seeds" / "full.yaml").write_text("seed: 0\nseeds: [0, 1, 2]\n")
    (root / "params" / "c_seeds" / "outputs.yaml").write_text(
        "tables: [res.csv, res.md]\ncheck:\n  res: {key: [variant], metric: [recall]}\n"
    )
    res = tmp_path / "res"
    r = astronb("reproduce", "--params", "full", env={"ASTRONB_HOME": str(root), "ASTRONB_RESULTS": str(res)})
    assert r.returncode == 0, r.stdout + r.stderr
    assert (
        "c_seeds (full, seed 2): ok" in r.stdout and not (res / "c_seeds").exists()
    )  # full scale never overwrites smoke results
    import pandas as pd

    assert pd.read_csv(res / "full" / "c_seeds" / "res.csv").recall[0] == 0.5  # the first seed's results in place
    assert pd.read_csv(res / "full" / "c_seeds" / "seeds" / "seed_2" / "res.csv").recall[0] == 0.7
    s = pd.read_csv(res / "full" / "c_seeds" / "seeds.csv").iloc[0]
    assert (
        (s["seed_0"], s["seed_1"], s["seed_2"]) == (0.5, 0.6, 0.7)
        and abs(s["mean"] - 0.6) < 1e-12
        and abs(s["sd"] - 0.1) < 1e-12
    )
    man = json.loads((res / "full" / "c_seeds" / "manifest.json").read_text())
    assert man["seeds"] == [0, 1, 2] and {"seeds.csv", "seeds.md", "c_seeds.ipynb"} <= set(man["outputs"])
    assert json.loads((res / "full" / "c_seeds" / "seeds" / "seed_1" / "manifest.json").read_text())["seed"] == 1
