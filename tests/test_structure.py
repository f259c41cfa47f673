"""The package's layout rules (issue #13): a study module never imports another study module, shared tools have one
home."""

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "astronb"
STUDIES = {"deepspace", "starfield", "asteroids"}


def imported_modules(path):
    "The astronb modules a file imports, at any depth (top level or inside functions)."
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if mod == "astronb":
                out |= {a.name for a in node.names}
            elif node.level or mod.startswith("astronb."):  # `from .x import y` or `from astronb.x import y`
                out.add(mod.removeprefix("astronb.").split(".")[0])
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[1] for a in node.names if a.name.startswith("astronb.")}
    return out


def test_no_study_module_imports_another():
    bad = {s: sorted(imported_modules(PKG / f"{s}.py") & (STUDIES - {s})) for s in STUDIES}
    assert not any(bad.values()), (
        f"study modules import other study modules: {bad}; move the shared tool to a 0x notebook"
    )


def test_the_import_reader_sees_every_form(tmp_path):
    "The check above would miss nothing: relative, absolute and nested imports are all read."
    f = tmp_path / "m.py"
    f.write_text(
        "from .deepspace import a\ndef g():\n    from astronb.starfield import b\n    import astronb.asteroids\n"
        "from astronb import sliced\n"
    )
    assert imported_modules(f) == {"deepspace", "starfield", "asteroids", "sliced"}


def test_each_public_name_has_one_home():
    "No public function or class is defined in two modules."
    homes = {}
    for p in PKG.glob("*.py"):
        for node in ast.parse(p.read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
                homes.setdefault(node.name, []).append(p.stem)
    twice = {k: v for k, v in homes.items() if len(v) > 1}
    assert not twice, f"defined in more than one module: {twice}"


def private_uses(path):
    "Private names (`_x`) a file takes from other astronb modules: imported by name, or read off an imported module."
    tree, out, aliases = ast.parse(path.read_text()), [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("astronb")):
            out += [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
            if node.module in (None, "astronb"):
                aliases |= {a.asname or a.name for a in node.names}
        elif isinstance(node, ast.Import):
            aliases |= {a.asname for a in node.names if a.name.startswith("astronb.") and a.asname}
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            out.append(f"{node.value.id}.{node.attr}")
    return out


def test_no_module_uses_another_modules_private_helpers():
    bad = {p.name: private_uses(p) for p in PKG.glob("*.py") if p.name != "_modidx.py"}
    assert not any(bad.values()), (
        f"private helpers used across modules (make them public or move them): { {k: v for k, v in bad.items() if v} }"
    )


def test_the_private_use_reader_sees_both_forms(tmp_path):
    f = tmp_path / "m.py"
    f.write_text(
        "from .core import atomic_write, _now\nfrom astronb import starfield as sf\n"
        "def g(c, h): sf._add_radec(c, h); sf.detect_sep()\n"
    )
    assert private_uses(f) == ["_now", "sf._add_radec"]


def test_one_public_definition_per_export_cell():
    "Each export cell of a library notebook defines at most one public function or class (private helpers go with it)."
    import json

    many = []
    for nb in sorted((PKG.parent / "nbs").glob("*.ipynb")):
        for i, c in enumerate(json.loads(nb.read_text())["cells"]):
            s = "".join(c["source"])
            if c["cell_type"] != "code" or not s.startswith("#| export"):
                continue
            pub = [
                n.name
                for n in ast.parse(s).body
                if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and not n.name.startswith("_")
            ]
            if len(pub) > 1:
                many.append(f"{nb.name} cell {i}: {pub}")
    assert not many, "split these export cells, one public definition each:\n" + "\n".join(many)


def test_study_notebooks_define_no_functions():
    "Study notebooks call the library; a function or class defined in one belongs in a library notebook."
    import json

    defs = []
    for nb in sorted((PKG.parent / "nbs" / "studies").glob("*.ipynb")):
        for i, c in enumerate(json.loads(nb.read_text())["cells"]):
            if c["cell_type"] != "code":
                continue
            src = "\n".join(ln for ln in "".join(c["source"]).splitlines() if not ln.lstrip().startswith(("%", "!")))
            defs += [
                f"{nb.name} cell {i}: {n.name}"
                for n in ast.walk(ast.parse(src))
                if isinstance(n, (ast.FunctionDef, ast.ClassDef))
            ]
    assert not defs, "move these into the library: " + ", ".join(defs)
