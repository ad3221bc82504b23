"""One app for all the serve tests (Gradio's import and the shipped run's text encoder load once): a runs folder
holding a copy of the tiny digits run (class-conditional) and a compare folder, queue limits small enough to fill."""

import os
import shutil

import pytest
from PIL import Image

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"


@pytest.fixture(scope="session")
def runs_dir(tmp_path_factory, digits_run):
    root = tmp_path_factory.mktemp("serve-runs")
    shutil.copytree(digits_run, root / "digits")
    cmp = root / "cmp"
    shutil.copytree(digits_run, cmp / "tiny-digits")
    (cmp / "compare.md").write_text("| run | fd |\n|---|---|\n| tiny-digits | 1.0 |\n")
    results = root / "results"  # a benchmark-results folder with a plot and its table (not a run: not listed)
    results.mkdir()
    Image.new("RGB", (40, 30), (255, 0, 0)).save(results / "digits_samplers.png")
    (results / "digits_samplers.md").write_text("| sampler | NFE |\n|---|---|\n| heun | 15 |\n")
    return root


@pytest.fixture(scope="session")
def served(runs_dir):
    """(url, app state) of an app on an ephemeral localhost port; closed at the end of the session."""
    from genlab.serve import Limits, launch

    limits = Limits(queue=3, workers=1)
    demo, url = launch(runs_dir, port=0, block=False, quiet=True, limits=limits, results_dir=runs_dir / "results")
    yield url, demo.genlab
    demo.close()
