"""Start-up: the modules every command loads do not drag in the heavy libraries only some commands use."""

import json
import subprocess
import sys

from tests.conftest import ROOT

HEAVY = ("sklearn", "matplotlib", "scipy", "ot", "transformers")


def test_core_modules_do_not_import_heavy_libraries():
    code = (
        "import genlab.cli, genlab.config, genlab.checkpoint, json, sys; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True, timeout=120
    )
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert not loaded & set(HEAVY), f"imported at start-up: {sorted(loaded & set(HEAVY))}"
