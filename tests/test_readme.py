"""The README's Python examples, run as written: every fenced ``python`` block of README.md, in
order, in one namespace, in a fresh process whose working directory is empty."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import cli_env

ROOT = Path(__file__).resolve().parents[1]


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", path.read_text(), flags=re.S | re.M)


def test_the_readme_has_python_examples():
    assert len(python_blocks(ROOT / "README.md")) >= 2


@pytest.mark.slow
def test_readme_python_blocks_run_as_written(tmp_path):
    script = "\n\n".join(python_blocks(ROOT / "README.md"))
    env = {**cli_env(), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "my_vae" / "model.json").is_file()
