"""The shape of the code: which package may import which (DESIGN.md's arrows), and the old module names' messages.

Read from the source with `ast`, so a test fails the moment an import runs the wrong way, before anything uses it.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import cutellm

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "cutellm"
# The language model's own modules read top to bottom; the CLI and the package's front door may reach further.
FRONT_DOORS = {"__init__.py", "__main__.py"}
PAGES = ("train", "generate", "explore", "chat")


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(module imported, whether it is imported only for type checkers) for every import in `path`, with relative
    imports resolved to absolute names."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in typing_only) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # `from . import x` imports the module x
            names = [f"{module}.{a.name}" for a in node.names] if not node.module else [module]
            found += [(name, id(node) in typing_only) for name in names]
    return found


def _modules(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def test_the_core_never_imports_streamlit():
    offenders = [f"{p.relative_to(ROOT)} imports {m}" for p in _modules(CORE) for m, _ in _imports(p)
                 if m.split(".")[0] in ("streamlit", "ui", "app_pages")]
    assert not offenders, offenders


def test_the_language_model_never_imports_the_playground_or_the_pictures():
    """cutellm/*.py is the model, read alone: lab/ (the playground's machinery) and views/ (pictures) sit above it."""
    offenders = [f"{p.name} imports {m}" for p in sorted(CORE.glob("*.py")) if p.name not in FRONT_DOORS
                 for m, _ in _imports(p) if m.startswith(("cutellm.lab", "cutellm.views"))]
    assert not offenders, offenders


def test_the_pictures_never_import_the_playground_at_run_time():
    offenders = [f"{p.relative_to(ROOT)} imports {m}" for p in _modules(CORE / "views")
                 for m, typing_only in _imports(p) if m.startswith("cutellm.lab") and not typing_only]
    assert not offenders, offenders


@pytest.mark.parametrize("page", PAGES)
def test_a_page_folder_serves_its_page_only(page):
    """ui/<page>/ holds what one page uses; anything a second page needs belongs in ui/ itself."""
    users = [p for p in [*_modules(ROOT / "app_pages"), *_modules(ROOT / "ui"), ROOT / "streamlit_app.py"]
             if any(m.startswith(f"ui.{page}") for m, _ in _imports(p))]
    allowed = {ROOT / "app_pages" / f"{page}.py", *(_modules(ROOT / "ui" / page)),
               ROOT / "streamlit_app.py"}   # the entry point mounts the live view's route
    assert (ROOT / "ui" / page).is_dir()
    assert set(users) <= allowed, sorted(str(p.relative_to(ROOT)) for p in set(users) - allowed)


def test_pages_stay_short():
    """Pages hold layout and wiring; a long page means logic that belongs in ui/<page>/ or the core."""
    long = {p.name: n for p in _modules(ROOT / "app_pages") if (n := len(p.read_text().splitlines())) > 300}
    assert not long, long


@pytest.mark.parametrize("old, new", sorted(cutellm.MOVED_MODULES.items()))
def test_a_moved_module_names_its_new_place(old, new):
    with pytest.raises(ImportError, match=f"{old} moved to {new}"):
        importlib.import_module(old)
    with pytest.raises(ImportError, match=f"{old} moved to {new}"):
        exec(f"from cutellm import {old.rsplit('.', 1)[1]}", {})
    assert importlib.import_module(new).__name__ == new   # and the new place imports
