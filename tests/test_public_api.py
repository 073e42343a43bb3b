"""A small public API per package: every jgen subpackage's ``__init__`` declares ``__all__``,
which lists exactly the public names it imports (read with ast, nothing is imported), and the
lazy top-level ``jgen`` knows every subpackage."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "jgen"
PACKAGES = sorted(p.parent.name for p in ROOT.glob("*/__init__.py"))


def _exports(init: Path) -> tuple[set[str], list[str] | None]:
    """(public names the module imports or defines at top level, its ``__all__``)."""
    names, declared = set(), None
    for node in ast.parse(init.read_text()).body:
        if isinstance(node, ast.ImportFrom | ast.Import):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id == "__all__":
                    declared = [ast.literal_eval(e) for e in node.value.elts]
                elif isinstance(target, ast.Name):
                    names.add(target.id)
    return {n for n in names if not n.startswith("_")} - {"annotations"}, declared


@pytest.mark.parametrize("package", PACKAGES)
def test_all_lists_exactly_the_public_imports(package):
    names, declared = _exports(ROOT / package / "__init__.py")
    assert declared is not None, f"jgen.{package} has no __all__"
    assert sorted(declared) == sorted(set(declared)), f"jgen.{package}.__all__ repeats names"
    assert not set(declared) - names, f"jgen.{package}.__all__ names what it does not import"
    assert not names - set(declared), f"jgen.{package} imports public names not in __all__"


def test_the_lazy_top_level_package_knows_every_subpackage():
    source = (ROOT / "__init__.py").read_text()
    tree = ast.parse(source)
    subpackages = next(
        node.value.args[0]
        for node in tree.body
        if isinstance(node, ast.Assign) and node.targets[0].id == "_SUBPACKAGES"
    )
    listed = {ast.literal_eval(e) for e in subpackages.elts}
    assert set(PACKAGES) <= listed, sorted(set(PACKAGES) - listed)
