"""Every benchmark script still imports against the library (they are not run here: they are slow by design), and
its command line parses, so an API change that breaks a script fails the suite instead of the next `make bench`."""

import importlib.util
import subprocess
import sys

import pytest

from tests.conftest import ROOT

SCRIPTS = sorted(p for p in (ROOT / "benchmarks").glob("*.py") if p.stem != "common")


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_benchmark_imports(script, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location(f"bench_{script.stem}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert callable(getattr(module, "main", None)), f"{script.name} has no main()"


def test_benchmark_help_runs():
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "classifier_accuracy.py"), "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0 and "usage" in done.stdout
