"""`etl_project` is the Dagster-free core: every module imports with Dagster unavailable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import importlib, pkgutil, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "dagster" or name.startswith("dagster."):
            raise ImportError("dagster is blocked in this test")
        return None
sys.meta_path.insert(0, Block())
import etl_project
names = [m.name for m in pkgutil.walk_packages(etl_project.__path__, "etl_project.")]
for name in names:
    importlib.import_module(name)
assert not any(m == "dagster" or m.startswith("dagster.") for m in sys.modules)
print(len(names))
"""


def test_every_core_module_imports_without_dagster() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) >= 15
