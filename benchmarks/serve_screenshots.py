"""Screenshots of each tab of `genlab serve` for the README: docs/images/serve_{generate,edit,compare,inspect}.png.

The app is started here on a free localhost port over --runs (default ./runs) and driven by Playwright with the
system Chromium (/usr/bin/chromium), as a user would: Generate (4 images of a prompt from the shipped run, 16 steps),
Edit (SDEdit of an image the shipped run drew), Compare (the shipped run beside the --compare runs that exist under
--runs), Inspect (--inspect run and the --plot benchmark plot from benchmarks/results). Each PNG is written atomically.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from genlab.atomic import atomic_path  # noqa: E402
from genlab.serve import CHROMIUM, CHROMIUM_FLAGS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def shot(page, out: Path) -> None:
    page.wait_for_timeout(500)  # let images finish fading in
    with atomic_path(out) as tmp:
        page.screenshot(path=str(tmp), full_page=True)
    print(f"wrote {out}")


def pick(page, elem_id: str, value: str) -> None:
    box = page.locator(f"#{elem_id} input").first
    box.click()
    box.fill(value)
    page.get_by_role("option", name=value, exact=True).click()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", default=str(ROOT / "runs"))
    ap.add_argument(
        "--compare", nargs="*", default=["shapes-parti", "shapes-text-gan", "bench-t2i-families/latent-DiT"]
    )
    ap.add_argument("--inspect", default="shapes-parti")
    ap.add_argument("--plot", default="digits_samplers.png", help="a benchmark plot to show in Inspect")
    ap.add_argument("--out", default=str(ROOT / "docs" / "images"))
    args = ap.parse_args()
    import tempfile

    import torch
    from playwright.sync_api import sync_playwright

    import genlab.serve
    from genlab.data.images import tensor_to_uint8
    from genlab.generate import generate

    torch.set_num_threads(1)
    out = Path(args.out)
    results = ROOT / "benchmarks" / "results"
    demo, url = genlab.serve.launch(args.runs, port=0, block=False, quiet=True, results_dir=results)
    runs = demo.genlab.runs()
    try:
        with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
            from PIL import Image

            source = Path(tmp) / "source.png"
            Image.fromarray(tensor_to_uint8(generate("a blue square", n=1, seed=3, steps=16, best_of=1).x)[0]).resize(
                (128, 128), Image.Resampling.NEAREST
            ).save(source)
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(120_000)
            page.goto(url)
            page.wait_for_selector("#g_go")

            page.locator("#g_prompt textarea").fill("a red circle above a blue square")
            page.locator("#g_go").click()
            page.wait_for_function("document.querySelector('#g_status')?.innerText.includes('done')")
            shot(page, out / "serve_generate.png")

            page.get_by_role("tab", name="Edit").click()
            page.locator("#e_image input[type=file]").set_input_files(str(source))
            page.locator("#e_prompt textarea").fill("a red square")
            page.locator("#e_go").click()
            page.wait_for_function("document.querySelector('#e_status')?.innerText.includes('NFE')")
            shot(page, out / "serve_edit.png")

            page.get_by_role("tab", name="Compare").click()
            for name in args.compare:
                if name in runs:
                    page.locator("#c_runs").get_by_label(name, exact=True).check()
            page.locator("#c_go").click()
            page.wait_for_function("document.querySelector('#c_status')?.innerText.includes('done')")
            shot(page, out / "serve_compare.png")

            page.get_by_role("tab", name="Inspect").click()
            if args.inspect in runs:
                pick(page, "i_run", args.inspect)
                page.wait_for_function(f"document.querySelector('#i_report')?.innerText.includes({args.inspect!r})")
            plots = demo.genlab.plots()
            if args.plot in plots:
                pick(page, "b_pick", args.plot)
                page.wait_for_selector("#b_plot img")
            shot(page, out / "serve_inspect.png")
            browser.close()
    finally:
        demo.close()


if __name__ == "__main__":
    main()
