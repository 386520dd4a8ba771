"""The package layout shows the pipeline, and each layer imports only from the layers below it:
foundations -> data -> models -> objectives -> training -> runs -> evaluation -> recipes -> studies -> the API."""

from __future__ import annotations

import ast
from pathlib import Path

import genjax

PACKAGE = Path(genjax.__file__).parent
LAYERS = [
    {"genjax.errors", "genjax.prng", "genjax.devices", "genjax.presets"},  # foundations: no genjax imports above
    {"genjax.data"},
    {"genjax.models"},
    {"genjax.objectives"},
    {"genjax.training"},
    {"genjax.runs"},
    {"genjax.evaluation"},
    {"genjax.recipes"},
    {"genjax.studies"},  # experiments built from several recipes
    {"genjax"},  # the public API (genjax/__init__.py)
]


def layer_of(module: str) -> int:
    for depth in range(module.count(".") + 1, 0, -1):
        prefix = ".".join(module.split(".")[:depth])
        for i, names in enumerate(LAYERS):
            if prefix in names and (prefix != "genjax" or module == "genjax"):
                return i
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):  # function-level imports count too
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("genjax"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                names.add(full if (PACKAGE.parent / (full.replace(".", "/") + ".py")).exists()
                          or (PACKAGE.parent / full.replace(".", "/")).is_dir() else node.module)
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.startswith("genjax")}
    return names


def test_every_module_imports_only_downward():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        me = module_name(path)
        for other in imported(ast.parse(path.read_text())):
            if layer_of(other) > layer_of(me):
                wrong.append(f"{me} (layer {layer_of(me)}) imports {other} (layer {layer_of(other)})")
    assert not wrong, "\n".join(wrong)


def test_the_layers_are_the_packages_a_reader_sees():
    packages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages == {"data", "models", "objectives", "training", "runs", "evaluation", "recipes", "studies"}
    loose = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    assert loose == {"errors", "prng", "devices", "presets"}  # the foundations every layer may use


def test_the_public_api_holds_what_users_need_and_nothing_internal():
    assert set(genjax.__all__) == {"VAE", "Autoencoder", "PixelRNN", "GAN", "VAEConfig", "AEConfig", "PixelRNNConfig",
                                   "GANConfig", "load", "Scorer", "__version__"}
    for name in set(genjax.__all__) - {"__version__"}:
        obj = getattr(genjax, name)
        assert obj.__doc__ and len(obj.__doc__.strip()) > 20, name
