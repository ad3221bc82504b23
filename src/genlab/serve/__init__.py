"""`genlab serve`: the web app (Gradio) over run folders. Gradio is imported only when the app is built.

import genlab.serve
demo = genlab.serve.build_app(runs_dir="runs")          # gradio.Blocks
genlab.serve.launch(runs_dir="runs", port=7860)          # serve it (blocks)
"""

from __future__ import annotations

from genlab.errors import GenlabError
from genlab.serve.core import Limits

__all__ = ["Limits", "build_app", "launch"]

INSTALL = "the web app needs gradio: pip install 'genlab[serve]'"
# the system Chromium and its flags for driving the app headless (the browser tests, benchmarks/serve_screenshots.py):
# no sandbox (root in CI), and no background fetches, so the page's own requests are the only traffic
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def _app_module():
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise GenlabError(INSTALL) from None
    from genlab.serve import app

    return app


def build_app(runs_dir="runs", limits: Limits | None = None, device=None, results_dir="benchmarks/results"):
    """The Gradio Blocks of the app (see genlab.serve.app.build_app)."""
    return _app_module().build_app(runs_dir, limits, device, results_dir)


def launch(runs_dir="runs", **kwargs):
    """Serve the app (see genlab.serve.app.launch: host, port, limits, results_dir, block, quiet)."""
    return _app_module().launch(runs_dir, **kwargs)
