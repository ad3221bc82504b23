"""`genlab serve`: a Gradio web app over run folders: Generate, Edit, Compare, Inspect.

A thin layer: drawing goes through genlab.serve.core (the runs API), the queue through genlab.serve.jobs, PNG
downloads through genlab.serve.pngmeta. Offline: analytics off, a theme with system fonts only, no share link.
Each model job runs in a worker thread and reports to the page through a queue of events (a preview of x̂ from the
sampler's per-step callback, each finished image, the end); the Cancel button sets the job's flag, which the next
callback raises on.
"""

from __future__ import annotations

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # before gradio is imported: no telemetry, no version check

import contextlib  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import queue  # noqa: E402
import socket  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402

from genlab.errors import GenlabError  # noqa: E402
from genlab.serve import core  # noqa: E402
from genlab.serve.jobs import Cancelled, Jobs  # noqa: E402
from genlab.serve.pngmeta import write_png  # noqa: E402

log = logging.getLogger("genlab.serve")
DEFAULT = "(run default)"
TASKS = ("sdedit", "inpaint", "outpaint", "superres", "colorize", "translate")
PREVIEW_SECONDS = 0.25  # at most one preview of x̂ per this many seconds (the first at the second evaluation)


def theme():
    """Gradio's base theme with system fonts only (the default theme fetches Google fonts)."""
    return gr.themes.Base(
        font=["system-ui", "-apple-system", "Segoe UI", "sans-serif"],
        font_mono=["ui-monospace", "Menlo", "Consolas", "monospace"],
    )


def _int(value, name: str) -> int:
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise GenlabError(f"{name} must be a whole number, got {value!r}") from None
    if not f.is_integer():
        raise GenlabError(f"{name} must be a whole number, got {value!r}")
    return int(f)


def _opt_int(value, name: str) -> int | None:
    return None if value is None or value == "" else _int(value, name)


def display(image: np.ndarray) -> np.ndarray:
    """An image (uint8 H, W, C) as the preview shows it: enlarged to 256 pixels, grey ones as (H, W)."""
    shown = core.upscale(image, 256)
    return shown[:, :, 0] if shown.shape[2] == 1 else shown


def _user(request: gr.Request | None) -> str:
    if request is not None and getattr(request, "session_hash", None):
        return request.session_hash
    host = getattr(getattr(request, "client", None), "host", None)
    return f"host:{host}"


class App:
    """The state behind the page: where runs are, the run cache, the job queue, the output folder."""

    def __init__(
        self, runs_dir: str | Path | None = "runs", limits: core.Limits | None = None, device=None, results_dir=None
    ):
        self.runs_dir = None if runs_dir is None else Path(runs_dir)
        self.results_dir = None if results_dir is None else Path(results_dir)
        self.limits = limits or core.Limits()
        self.jobs = Jobs(capacity=self.limits.queue, workers=self.limits.workers)
        self.cache = core.RunCache(device=device)
        self.out = Path(tempfile.mkdtemp(prefix="genlab-serve-"))
        self._ids = itertools.count()

    # ---- runs -------------------------------------------------------------------------------------------------
    def runs(self) -> dict[str, Path]:
        return core.find_runs(self.runs_dir)

    def folder(self, label: str) -> Path:
        found = self.runs()
        if label not in found:
            raise GenlabError(f"run {label!r} is not under {self.runs_dir}: press Refresh and pick one from the list")
        return found[label]

    def job_dir(self) -> Path:
        d = self.out / f"job{next(self._ids):06d}"
        d.mkdir(parents=True)
        return d

    # ---- jobs -------------------------------------------------------------------------------------------------
    def run_job(self, user: str, work):
        """Admit a job for `user` (or raise gr.Error), run `work(job, emit)` in a worker thread once a slot is free,
        and yield its events: ("waiting", k ahead), whatever `work` emits, then ("done", None) or ("cancelled", None);
        an error becomes a gr.Error."""
        try:
            job = self.jobs.admit(user)
        except GenlabError as e:
            raise gr.Error(str(e), print_exception=False) from None
        events: queue.Queue = queue.Queue()

        def worker():
            final = ("done", None)
            try:
                while not self.jobs.wait_turn(job, timeout=0.5):
                    events.put(("waiting", self.jobs.ahead(job)))
                work(job, events.put)
            except Cancelled:
                final = ("cancelled", None)
            except GenlabError as e:
                final = ("error", str(e))
            except Exception as e:  # a bug: logged with its traceback here, one line in the page
                log.exception("job failed")
                final = ("error", f"internal error ({type(e).__name__}): {str(e)[:200]}; see the server log")
            finally:
                self.jobs.done(job)  # before the page hears of the end: the user's next job is then admitted
                events.put(final)

        thread = threading.Thread(target=worker, name=f"genlab-job-{user[:8]}", daemon=True)
        thread.start()
        try:
            while True:
                kind, value = events.get()
                if kind == "error":
                    raise gr.Error(value, print_exception=False)
                yield kind, value
                if kind in ("done", "cancelled"):
                    return
        finally:
            if thread.is_alive():  # the page went away mid-job: stop the work at its next step
                job.cancel_flag.set()

    def cancel(self, request: gr.Request):
        found = self.jobs.cancel(_user(request))
        return "cancelling…" if found else "no job of yours is running"

    # ---- Generate ---------------------------------------------------------------------------------------------
    def start_best_of(self, run_label):
        """The best-of slider when the run changes: the run's own default (1 for runs that are not text-to-image)."""
        try:
            return gr.update(value=core.start_best_of(self.folder(run_label), self.limits))
        except GenlabError:  # a run that went away: the generate call says so
            return gr.update()

    def generate(self, run_label, prompt, label, sampler, steps, guidance, seed, n, best_of, request: gr.Request):
        try:
            folder = self.folder(run_label)
            n, steps, seed = _int(n, "n"), _int(steps, "steps"), _int(seed, "seed")
            best_of = _int(best_of, "best of")
            label = _opt_int(label, "class")
            guidance = float(guidance)
            prompt = prompt or ""
            core.check_request(
                self.limits, prompt=prompt, n=n, steps=steps, guidance=guidance, seed=seed, best_of=best_of
            )
        except GenlabError as e:
            raise gr.Error(str(e), print_exception=False) from None
        sampler = None if sampler in (None, "", DEFAULT) else sampler
        out = self.job_dir()

        def work(job, emit):
            run = self.cache.get(folder)
            last = -float("inf")  # when the last preview was sent: at most one per PREVIEW_SECONDS
            for i in range(n):
                job.check()

                def callback(info, i=i):
                    nonlocal last
                    job.check()
                    if info.step >= 1 and time.perf_counter() - last >= PREVIEW_SECONDS:
                        image = core.preview(run, info.x_hat)
                        if image is not None:
                            last = time.perf_counter()
                            emit(("preview", (i, info.step, image)))

                t0 = time.perf_counter()
                image, record, nfe = core.draw_one(
                    run,
                    folder,
                    prompt=prompt,
                    label=label,
                    seed=seed + i,
                    sampler=sampler,
                    steps=steps,
                    guidance=guidance,
                    best_of=best_of,
                    callback=callback,
                )
                seconds = time.perf_counter() - t0
                path = write_png(out / f"genlab-seed{seed + i}.png", image, record)
                emit(("image", (path, record, nfe, seconds, image)))

        gallery, files, shown = [], [], None
        for kind, value in self.run_job(_user(request), work):
            # only what changed is sent (gr.skip() leaves a component as it is), except at the end
            if kind == "waiting":
                yield gr.skip(), gr.skip(), gr.skip(), f"queued: {value} job(s) ahead"
            elif kind == "preview":
                i, step, image = value
                shown = display(image)
                yield shown, gr.skip(), gr.skip(), f"image {i + 1}/{n}: evaluation {step + 1}"
            elif kind == "image":  # the preview then shows the finished image, not the last estimate sent
                path, record, nfe, seconds, image = value
                gallery = [*gallery, (str(path), f"seed {record['seed']}")]
                files = [*files, str(path)]
                shown = display(image)
                yield shown, gallery, files, f"{len(files)}/{n} images ({nfe} NFE, {seconds:.2f} s each)"
            elif kind == "cancelled":
                yield shown, gallery, files, f"cancelled after {len(files)} of {n} images"
            elif kind == "done":
                done = f"done: {n} image(s), seeds {seed}…{seed + n - 1}; each PNG embeds its settings"
                yield shown, gallery, files, done

    # ---- Edit -------------------------------------------------------------------------------------------------
    def edit(
        self,
        run_label,
        task,
        image,
        drawn,
        mask_file,
        strength,
        keep,
        prompt,
        label,
        n,
        seed,
        steps,
        request: gr.Request,
    ):
        from genlab.edit.translate import edit_files

        try:
            folder = self.folder(run_label)
            if not image:
                raise GenlabError("upload an image to edit")
            core.check_upload(self.limits, image, "the image")
            n, seed, steps = _int(n, "n"), _int(seed, "seed"), _int(steps, "steps")
            label = _opt_int(label, "class")
            prompt = (prompt or "").strip() or None
            core.check_request(self.limits, prompt=prompt, n=n, steps=steps, guidance=None, seed=seed)
            out = self.job_dir()
            mask = None
            if mask_file:
                core.check_upload(self.limits, mask_file, "the mask")
                mask = mask_file
            elif task in ("inpaint", "outpaint"):
                mask = self.drawn_mask(drawn, out)
            if task == "inpaint" and mask is None:
                raise GenlabError("inpaint needs a mask: paint over the region to make, or upload a mask")
        except GenlabError as e:
            raise gr.Error(str(e), print_exception=False) from None

        def work(job, emit):
            run = self.cache.get(folder)
            core.check_family(run)
            t0 = time.perf_counter()
            path, samples, used = edit_files(
                run,
                image,
                task=task,
                output=out / "edit.png",
                mask=mask if task != "sdedit" else None,
                resize=True,
                strength=float(strength) if task == "sdedit" else None,
                keep=float(keep),
                n=n,
                seed=seed,
                label=label if run.num_classes and not run.text_conditional else None,
                prompt=prompt if run.text_conditional else None,
                steps=steps if "steps" in run.method.sample_settings else None,
                callback=lambda info: job.check(),
            )
            emit(("result", (path, samples.nfe, used, time.perf_counter() - t0)))

        result, status = None, "queued"
        yield result, status
        for kind, value in self.run_job(_user(request), work):
            if kind == "waiting":
                status = f"queued: {value} job(s) ahead"
            elif kind == "result":
                path, nfe, used, seconds = value
                result = str(path)
                how = f"strength {used:g}, " if task == "sdedit" else ""
                status = f"{n} {task} edit(s): {how}{nfe} NFE, {seconds:.2f} s (rows: input, given, edits)"
            elif kind == "cancelled":
                status = "cancelled"
            yield result, status

    def drawn_mask(self, drawn, out: Path) -> str | None:
        """The strokes painted in the editor as a mask PNG (white = make); None if nothing was painted."""
        if not isinstance(drawn, dict):
            return None
        layers = [np.asarray(layer) for layer in drawn.get("layers") or [] if layer is not None]
        if not layers:
            return None
        painted = np.zeros(layers[0].shape[:2], dtype=bool)
        for layer in layers:
            if layer.ndim == 3 and layer.shape[2] == 4 and layer.shape[:2] == painted.shape:
                painted |= layer[:, :, 3] > 0
        if not painted.any():
            return None
        from PIL import Image

        from genlab.atomic import atomic_path

        path = out / "mask.png"
        with atomic_path(path) as tmp:
            Image.fromarray(painted.astype(np.uint8) * 255).save(tmp, format="PNG")
        return str(path)

    # ---- Compare ----------------------------------------------------------------------------------------------
    def compare(self, run_labels, prompt, label, sampler, steps, seed, request: gr.Request):
        try:
            run_labels = list(run_labels or [])
            if not run_labels:
                raise GenlabError("tick at least one run to compare")
            if len(run_labels) > self.limits.compare_runs:
                raise GenlabError(f"compare at most {self.limits.compare_runs} runs at once")
            folders = [(lab, self.folder(lab)) for lab in run_labels]
            steps, seed = _int(steps, "steps"), _int(seed, "seed")
            label = _opt_int(label, "class")
            core.check_request(self.limits, prompt=prompt or "", n=1, steps=steps, guidance=None, seed=seed)
        except GenlabError as e:
            raise gr.Error(str(e), print_exception=False) from None
        sampler = None if sampler in (None, "", DEFAULT) else sampler
        out = self.job_dir()

        def work(job, emit):
            for k, (lab, folder) in enumerate(folders):
                job.check()
                run = self.cache.get(folder)
                t0 = time.perf_counter()
                try:
                    image, record, nfe = core.draw_one(
                        run,
                        folder,
                        prompt=prompt,
                        label=label,
                        seed=seed,
                        sampler=sampler if "sampler" in run.method.sample_settings else None,
                        steps=steps if "steps" in run.method.sample_settings else None,
                        callback=lambda info: job.check(),
                    )
                except GenlabError as e:  # one run that cannot take the request: a row that says why
                    emit(("row", (lab, None, str(e), None, None)))
                    continue
                path = write_png(out / f"compare-{k}.png", image, record)
                emit(("row", (lab, path, None, nfe, time.perf_counter() - t0)))

        gallery, rows, status = [], [], "queued"
        yield gallery, _table(rows), status
        for kind, value in self.run_job(_user(request), work):
            if kind == "waiting":
                status = f"queued: {value} job(s) ahead"
            elif kind == "row":
                lab, path, error, nfe, seconds = value
                rows.append((lab, nfe, seconds, error))
                if path is not None:
                    gallery = [*gallery, (str(path), f"{lab} · {nfe} NFE · {seconds:.2f} s")]
                status = f"{len(rows)}/{len(folders)} runs"
            elif kind == "cancelled":
                status = "cancelled"
            elif kind == "done":
                status = f"done: seed {seed}, the same for every run (first call of a run includes loading it)"
            yield gallery, _table(rows), status

    def compare_folder(self, name):
        found = core.find_compares(self.runs_dir)
        if not name or name not in found:
            return "pick a compare folder (written by genlab compare)", []
        folder = found[name]
        table = (folder / "compare.md").read_text(encoding="utf-8")
        images = [(str(folder / "compare.png"), "compare.png")] if (folder / "compare.png").is_file() else []
        for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
            for grid in _grids(sub):
                images.append((str(grid), f"{sub.name}: {grid.relative_to(sub).as_posix()}"))
        return table, images

    # ---- Inspect ----------------------------------------------------------------------------------------------
    def inspect(self, run_label):
        try:
            folder = self.folder(run_label)
        except GenlabError as e:
            raise gr.Error(str(e), print_exception=False) from None
        from genlab.runs import read_run

        recipe, step = read_run(folder)
        head = f"**{run_label}**: method `{recipe.method.kind}`, data `{recipe.data.kind}`, step {step}\n\n"
        reports = sorted((folder / "eval").glob("*.md"), key=lambda p: (p.name != "eval.md", p.name))
        report = "\n\n".join(p.read_text(encoding="utf-8") for p in reports) or "no eval/eval.md: run genlab eval RUN"
        loss = str(folder / "loss.png") if (folder / "loss.png").is_file() else None
        return head + report, loss, _metrics_table(folder / "metrics.jsonl"), [(str(p), p.name) for p in _grids(folder)]

    def plots(self) -> dict[str, Path]:
        """{name: path} of the benchmark plots under results_dir, sampler-vs-NFE plots first."""
        if self.results_dir is None or not self.results_dir.is_dir():
            return {}
        pngs = sorted(
            self.results_dir.glob("*.png"), key=lambda p: ("sampler" not in p.name and "nfe" not in p.name, p.name)
        )
        return {p.name: p for p in pngs}

    def plot(self, name):
        found = self.plots()
        if not name or name not in found:
            return None, ""
        md = found[name].with_suffix(".md")
        return str(found[name]), md.read_text(encoding="utf-8") if md.is_file() else ""

    def refresh(self):
        runs = list(self.runs())
        compares = list(core.find_compares(self.runs_dir))
        return (
            gr.Dropdown(choices=runs),
            gr.Dropdown(choices=runs),
            gr.CheckboxGroup(choices=runs),
            gr.Dropdown(choices=runs),
            gr.Dropdown(choices=compares),
        )


def _table(rows) -> str:
    if not rows:
        return ""
    lines = ["| run | NFE | time (s) | note |", "|---|---:|---:|---|"]
    for lab, nfe, seconds, error in rows:
        lines.append(
            f"| {lab} | {'' if nfe is None else nfe} | {'' if seconds is None else f'{seconds:.2f}'} | {error or ''} |"
        )
    return "\n".join(lines)


def _grids(folder: Path, *, last: int = 4) -> list[Path]:
    """The sample grids and plots of a run folder: samples.png, the last `last` training grids, eval/ and any
    other PNG at the top (a sampler-vs-NFE plot, loss.png is shown apart)."""
    found = [p for p in sorted(folder.glob("*.png")) if p.name != "loss.png"]
    found += sorted((folder / "samples").glob("*.png"))[-last:] if (folder / "samples").is_dir() else []
    found += sorted((folder / "eval").glob("*.png")) if (folder / "eval").is_dir() else []
    return found


def _metrics_table(path: Path, last: int = 10) -> str:
    """The last rows of metrics.jsonl as a markdown table."""
    if not path.is_file():
        return "no metrics.jsonl"
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            row = json.loads(line)
            if isinstance(row, dict):
                rows.append(row)
    if not rows:
        return "metrics.jsonl is empty"
    rows = rows[-last:]
    keys = sorted({k for r in rows for k in r}, key=lambda k: (k != "step", k))

    def cell(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(cell(r.get(k, "")) for k in keys) + " |" for r in rows]
    return f"last {len(rows)} rows of metrics.jsonl\n\n" + "\n".join(lines)


def build_app(
    runs_dir: str | Path | None = "runs",
    limits: core.Limits | None = None,
    device=None,
    results_dir: str | Path | None = "benchmarks/results",
) -> gr.Blocks:
    """The Gradio Blocks of `genlab serve` over the run folders under `runs_dir` (the shipped text-to-image run is
    always listed first) and the benchmark plots in `results_dir` (if it exists). Launch with `genlab.serve.launch`
    (which sets the offline theme)."""
    from genlab.samplers import SAMPLERS

    app = App(runs_dir, limits, device, results_dir)
    lim = app.limits
    found = app.runs()
    runs = list(found)
    samplers = [DEFAULT, *sorted(SAMPLERS)]
    default = core.default_sampling()
    steps = min(default.steps, lim.steps)
    with gr.Blocks(title="genlab", analytics_enabled=False) as demo:
        demo.genlab = app  # for tests and the launcher
        gr.Markdown("# genlab\nGenerate, edit, compare and inspect runs. Everything runs on this machine.")
        refresh = gr.Button("Refresh runs", size="sm")
        with gr.Tab("Generate"):
            with gr.Row():
                with gr.Column():
                    g_run = gr.Dropdown(runs, value=core.SHIPPED_LABEL, label="run", elem_id="g_run")
                    g_prompt = gr.Textbox(
                        "a red circle above a blue square",
                        label="prompt (text-to-image runs)",
                        max_lines=2,
                        elem_id="g_prompt",
                    )
                    g_label = gr.Number(None, label="class (class-conditional runs; empty: 0)", precision=0)
                    with gr.Row():
                        g_sampler = gr.Dropdown(samplers, value=DEFAULT, label="sampler")
                        g_steps = gr.Slider(1, lim.steps, value=steps, step=1, label="steps", elem_id="g_steps")
                    with gr.Row():
                        g_guidance = gr.Slider(
                            0, lim.guidance, value=default.guidance_scale, step=0.5, label="guidance"
                        )
                        g_seed = gr.Number(0, label="seed", precision=0)
                        g_n = gr.Slider(1, lim.n, value=4, step=1, label="images", elem_id="g_n")
                    g_best = gr.Slider(
                        1,
                        lim.best_of,
                        value=core.start_best_of(found[core.SHIPPED_LABEL], lim),
                        step=1,
                        label="best of (text runs: each image the best of K draws, judged by the model itself)",
                        elem_id="g_best",
                    )
                    with gr.Row():
                        g_go = gr.Button("Generate", variant="primary", elem_id="g_go")
                        g_cancel = gr.Button("Cancel", variant="stop", elem_id="g_cancel")
                with gr.Column():
                    g_status = gr.Markdown("", elem_id="g_status")
                    g_note = gr.Markdown("", elem_id="g_note")  # Cancel's answer (apart: it may arrive last)
                    g_preview = gr.Image(
                        label="preview: the current estimate x̂", type="numpy", height=200, interactive=False
                    )
                    g_gallery = gr.Gallery(
                        label="images (caption: seed)", columns=4, format="png", elem_id="g_gallery", interactive=False
                    )
                    g_files = gr.File(
                        label="PNG downloads (settings embedded)",
                        file_count="multiple",
                        elem_id="g_files",
                        interactive=False,
                    )
            g_go.click(
                app.generate,
                [g_run, g_prompt, g_label, g_sampler, g_steps, g_guidance, g_seed, g_n, g_best],
                [g_preview, g_gallery, g_files, g_status],
                api_name="generate",
                concurrency_limit=None,  # admission is genlab.serve.jobs' (bounded queue, one job per user)
            )
            g_cancel.click(app.cancel, None, g_note, api_name="cancel", queue=False)
            g_run.change(app.start_best_of, g_run, g_best, queue=False, api_visibility="private")
        with gr.Tab("Edit"):
            with gr.Row():
                with gr.Column():
                    e_run = gr.Dropdown(runs, value=core.SHIPPED_LABEL, label="run", elem_id="e_run")
                    e_task = gr.Radio(
                        list(TASKS), value="sdedit", label="task (trained tasks need a run trained for them)"
                    )
                    e_image = gr.Image(type="filepath", label="image", format="png", elem_id="e_image")
                    e_draw = gr.ImageEditor(
                        type="numpy",
                        label="paint the region to make (inpaint / outpaint)",
                        brush=gr.Brush(colors=["#ffffff"]),
                        elem_id="e_draw",
                    )
                    e_mask = gr.Image(
                        type="filepath",
                        label="or upload a mask (white = make)",
                        format="png",
                        image_mode="L",
                        elem_id="e_mask",
                    )
                    e_strength = gr.Slider(0.05, 1.0, value=0.6, step=0.05, label="SDEdit strength")
                    e_keep = gr.Slider(0.1, 0.9, value=0.5, step=0.05, label="outpaint without a mask: kept centre")
                    e_prompt = gr.Textbox("", label="prompt (text-to-image runs)", max_lines=2, elem_id="e_prompt")
                    with gr.Row():
                        e_label = gr.Number(None, label="class", precision=0)
                        e_n = gr.Slider(1, lim.n, value=2, step=1, label="edits", elem_id="e_n")
                        e_seed = gr.Number(0, label="seed", precision=0)
                        e_steps = gr.Slider(1, lim.steps, value=16, step=1, label="steps", elem_id="e_steps")
                    with gr.Row():
                        e_go = gr.Button("Edit", variant="primary", elem_id="e_go")
                        e_cancel = gr.Button("Cancel", variant="stop")
                with gr.Column():
                    e_status = gr.Markdown("", elem_id="e_status")
                    e_note = gr.Markdown("")
                    e_out = gr.Image(
                        label="rows: input, given, edits", type="filepath", interactive=False, elem_id="e_out"
                    )
            e_image.change(
                lambda p: {"background": p, "layers": [], "composite": p} if p else None,
                e_image,
                e_draw,
                queue=False,
                api_visibility="private",
            )
            e_go.click(
                app.edit,
                [e_run, e_task, e_image, e_draw, e_mask, e_strength, e_keep, e_prompt, e_label, e_n, e_seed, e_steps],
                [e_out, e_status],
                api_name="edit",
                concurrency_limit=None,
            )
            e_cancel.click(app.cancel, None, e_note, queue=False, api_visibility="private")
        with gr.Tab("Compare"):
            with gr.Row():
                with gr.Column():
                    c_runs = gr.CheckboxGroup(runs, value=[core.SHIPPED_LABEL], label="runs", elem_id="c_runs")
                    c_prompt = gr.Textbox("a red circle", label="prompt (text-to-image runs)", max_lines=2)
                    with gr.Row():
                        c_label = gr.Number(None, label="class", precision=0)
                        c_sampler = gr.Dropdown(samplers, value=DEFAULT, label="sampler")
                        c_steps = gr.Slider(1, lim.steps, value=steps, step=1, label="steps")
                        c_seed = gr.Number(0, label="seed", precision=0)
                    c_go = gr.Button("Compare", variant="primary", elem_id="c_go")
                with gr.Column():
                    c_status = gr.Markdown("", elem_id="c_status")
                    c_table = gr.Markdown("", elem_id="c_table")
                    c_gallery = gr.Gallery(label="side by side", columns=4, format="png", interactive=False)
            c_go.click(
                app.compare,
                [c_runs, c_prompt, c_label, c_sampler, c_steps, c_seed],
                [c_gallery, c_table, c_status],
                api_name="compare",
                concurrency_limit=None,
            )
            gr.Markdown("### A `genlab compare` folder")
            cf_pick = gr.Dropdown(list(core.find_compares(app.runs_dir)), value=None, label="compare folder")
            cf_table = gr.Markdown("")
            cf_gallery = gr.Gallery(label="compare.png and sample grids", columns=3, interactive=False)
            cf_pick.change(app.compare_folder, cf_pick, [cf_table, cf_gallery], api_name="compare_folder")
        with gr.Tab("Inspect"):
            i_run = gr.Dropdown(runs, value=None, label="run", elem_id="i_run")
            i_report = gr.Markdown("", elem_id="i_report")
            with gr.Row():
                i_loss = gr.Image(label="loss.png", type="filepath", interactive=False)
                i_metrics = gr.Markdown("")
            i_grids = gr.Gallery(label="sample grids and plots", columns=4, interactive=False)
            i_run.change(app.inspect, i_run, [i_report, i_loss, i_metrics, i_grids], api_name="inspect")
            gr.Markdown("### Benchmark plots (e.g. sampler quality against NFE)")
            b_pick = gr.Dropdown(
                list(app.plots()), value=None, label="plot (the PNGs of the results folder)", elem_id="b_pick"
            )
            b_plot = gr.Image(label="plot", type="filepath", interactive=False, elem_id="b_plot")
            b_text = gr.Markdown("")
            b_pick.change(app.plot, b_pick, [b_plot, b_text], api_name="plot")
        refresh.click(app.refresh, None, [g_run, e_run, c_runs, i_run, cf_pick], api_visibility="private")
    demo.queue(max_size=4 * lim.queue)
    return demo


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def launch(
    runs_dir: str | Path | None = "runs",
    *,
    host: str = "127.0.0.1",
    port: int | None = 7860,
    limits: core.Limits | None = None,
    results_dir: str | Path | None = "benchmarks/results",
    block: bool = True,
    quiet: bool = False,
):
    """Serve the app on http://HOST:PORT (port None or 0: a free one). block=False returns (demo, url) with the
    server running in the background (demo.close() stops it)."""
    if port is not None and not 0 <= port <= 65535:
        raise GenlabError(f"--port must be in 0..65535 (0: a free one), got {port}")
    demo = build_app(runs_dir, limits, results_dir=results_dir)
    port = free_port(host) if not port else port
    lim = demo.genlab.limits
    try:
        demo.launch(
            server_name=host,
            server_port=port,
            share=False,
            theme=theme(),
            prevent_thread_lock=not block,
            ssr_mode=False,
            pwa=False,
            mcp_server=False,
            quiet=quiet,
            footer_links=["api", "settings"],
            max_file_size=lim.image_bytes,
            enable_monitoring=False,
            max_threads=max(40, 4 * lim.queue + 8),
        )
    except (OSError, OverflowError) as e:
        raise GenlabError(f"cannot serve on {host}:{port} ({e}); pick another --port") from None
    return demo, f"http://{host}:{port}/"
