"""Dependencies point one way: a module may import only from its own layer or the layers below
(docs/architecture.md, "Layers"). The imports of every module under jgen/ are read with ast
(module level and inside functions, so lazy imports count too); the test fails on an import of
a higher layer and on a module that no layer claims (a new package must be placed)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "jgen"

# Lowest first. A module belongs to the layer of the longest prefix that names it; a family's
# experiment-level modules are listed with the experiment layer.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("jgen.typing", "jgen.validation")),
    (
        "shared",
        (
            "jgen.nets",
            "jgen.masked",
            "jgen.data",
            "jgen.parallel",
            "jgen.plotting",
            "jgen.probes",
            "jgen.records",
            "jgen.image_metrics",
        ),
    ),
    ("bijectors", ("jgen.bijectors",)),
    ("models", ("jgen.cnf", "jgen.distributions")),
    ("training", ("jgen.train", "jgen.binding")),
    (
        "families",
        (
            "jgen.flow_matching",
            "jgen.vae",
            "jgen.vi",
            "jgen.gan",
            "jgen.seq2seq",
            "jgen.autoregressive",
            "jgen.flows",
        ),
    ),
    (
        "experiments",
        (
            "jgen.experiment",
            "jgen.config",
            "jgen.cnf.experiment",
            "jgen.flow_matching.experiment",
            "jgen.vae.experiment",
            "jgen.vi.experiment",
            "jgen.vi.study",
            "jgen.vi.variance_study",
            "jgen.gan.experiment",
            "jgen.gan.study",
            "jgen.seq2seq.experiment",
            "jgen.autoregressive.experiment",
            "jgen.flows.experiment",
        ),
    ),
    ("entry points", ("jgen.cli", "jgen")),
]
# Pairs inside one layer that must not depend on each other (importer, imported), for importers
# in that layer (jgen.cnf.experiment sits in the experiment layer and may use distributions).
FORBIDDEN_SIDEWAYS = [
    ("jgen.distributions", "jgen.cnf"),  # distributions know no CNF statistic names
    ("jgen.flows", "jgen.cnf"),  # nor does DensityObjective
    ("jgen.cnf", "jgen.distributions"),
    ("jgen.train", "jgen.binding"),
]


def _layer(module: str) -> int:
    best, level = -1, None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            matches = module == prefix or (prefix != "jgen" and module.startswith(prefix + "."))
            if matches and len(prefix) > best:
                best, level = len(prefix), index
    if level is None:
        raise AssertionError(f"{module} belongs to no layer: add it to LAYERS")
    return level


def _modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(source: str, module: str, is_package: bool) -> set[str]:
    """Every jgen name imported anywhere in ``source`` (relative imports resolved)."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            # `from jgen import bijectors` imports the subpackage jgen.bijectors.
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return {n for n in names if n == "jgen" or n.startswith("jgen.")}


def _violations(module: str, imported: set[str], known: set[str]) -> list[str]:
    level, found, targets = _layer(module), [], set()
    for name in imported:
        while name not in known and "." in name:  # jgen.cnf.trace.sample_probes -> jgen.cnf.trace
            name = name.rpartition(".")[0]
        targets.add(name)
    for name in sorted(targets - {"jgen", module}):
        if name not in known:
            continue
        if _layer(name) > level:
            found.append(
                f"{module} ({LAYERS[level][0]}) imports {name} ({LAYERS[_layer(name)][0]})"
            )
        for low, high in FORBIDDEN_SIDEWAYS:
            in_layer = module.startswith(low) and _layer(module) == _layer(low)
            if in_layer and (name == high or name.startswith(high + ".")):
                found.append(f"{module} imports {name}: {low} must not use {high}")
    return found


def test_every_import_points_down_or_sideways():
    modules = _modules()
    violations = []
    for module, path in sorted(modules.items()):
        imported = _imports(path.read_text(), module, path.name == "__init__.py")
        violations += _violations(module, imported, set(modules))
    assert not violations, "imports against the layer order:\n" + "\n".join(violations)


def test_the_checker_catches_each_import_form():
    source = (
        "from jgen.cnf.trace import sample_probes\n"
        "def f():\n    import jgen.train\n"
        "from ..experiment import build_experiment\n"
        "from jgen.nets import MLP\n"
    )
    imported = _imports(source, "jgen.bijectors.fake", is_package=False)
    found = _violations("jgen.bijectors.fake", imported, set(_modules()))
    assert len(found) == 3 and all("jgen.bijectors.fake (bijectors) imports" in f for f in found)
    assert _violations("jgen.distributions.x", {"jgen.cnf.cnf"}, set(_modules()))
    assert not _violations("jgen.cnf.experiment", {"jgen.distributions.flow"}, set(_modules()))


def test_the_trainer_reads_no_config_section():
    """jgen.train knows no config schema: no module of it looks up a config section (the
    resume policy that compares saved configs is the experiment layer's)."""
    sections = {"family", "data", "model", "optim", "train"}
    found = []
    for path in sorted((ROOT / "train").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            key = None
            if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
                key = node.slice.value
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                  and node.func.attr == "get" and node.args
                  and isinstance(node.args[0], ast.Constant)):  # fmt: skip
                key = node.args[0].value
            if key in sections:
                found.append(f"{path.name}:{node.lineno} reads the config section {key!r}")
    assert not found, "\n".join(found)
