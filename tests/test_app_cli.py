"""The app's command line: `python -m app --help` answers without loading a model."""
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]


def test_help_works_without_loading_anything():
    out = subprocess.run([sys.executable, "-m", "app", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for flag in ("--host", "--port", "--model", "--data", "--runs", "--auth", "--share", "127.0.0.1"):
        assert flag in out.stdout
