"""The layers of DESIGN.md, checked by import-linter on the installed package's source.

The contracts live in pyproject.toml; a module that imports upward (say, tailsam.data from
tailsam.train) or two modules that import each other fail this test.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold():
    from importlinter.cli import lint_imports   # in the test extra: pip install -e '.[test]'

    exit_code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True)
    assert exit_code == 0, "an import breaks the layers of DESIGN.md: see the report above"
