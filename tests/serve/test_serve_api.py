"""`genlab serve` through its HTTP API (gradio_client), as a program would use it; plus `generate --from-png`."""

import time

import numpy as np
import pytest
from PIL import Image

from genlab.cli import main
from genlab.serve.app import DEFAULT
from genlab.serve.core import SHIPPED_LABEL
from genlab.serve.pngmeta import read_pixels, read_settings

gradio_client = pytest.importorskip("gradio_client")  # the serve extra; the browser tests fail loudly instead
AppError = gradio_client.exceptions.AppError


def client(url):
    return gradio_client.Client(url, verbose=False)


def generate(
    c, *, prompt="a red circle", run=SHIPPED_LABEL, label=None, steps=4, seed=5, n=2, sampler="euler", best_of=1
):
    return c.predict(run, prompt, label, sampler, steps, 4.0, seed, n, best_of, api_name="/generate")


def test_switching_runs_moves_the_best_of_slider_to_the_runs_default(served):
    _, app = served
    assert app.start_best_of(SHIPPED_LABEL)["value"] == 4  # the shipped recipe's sample.best_of
    assert app.start_best_of("digits")["value"] == 1  # class-conditional: no search
    assert "value" not in app.start_best_of("gone")  # a run no longer there: left as it is


def test_generate_embeds_settings_and_from_png_reproduces_each_image(served, tmp_path, capsys):
    url, _ = served
    c = client(url)
    preview, gallery, files, status = generate(c, seed=5, n=2)
    assert status.startswith("done: 2 image(s)")
    assert [g["caption"] for g in gallery] == ["seed 5", "seed 6"]
    # the live preview showed the estimates, then each finished image: the last one, enlarged, at the end
    shown = read_pixels(preview).astype(float)  # a lossy WebP of the display copy

    def off(path):  # mean absolute difference to an image enlarged as the preview enlarges it
        return np.abs(shown - read_pixels(path).repeat(8, axis=0).repeat(8, axis=1)).mean()

    assert off(files[-1]) < 2 < off(files[0])  # about 0.7 and 10 levels of 255 when written
    records = [read_settings(f) for f in files]
    assert [r["seed"] for r in records] == [5, 6]
    first = records[0]
    assert (
        first["run"] == "shipped:shapes-t2i-curriculum"
        and first["prompt"] == "a red circle"
        and first["sampler"] == "euler"
    )
    assert first["steps"] == 4 and first["guidance"] == 4.0 and first["step"] == 6000
    assert read_pixels(files[0]).shape == (32, 32, 3)  # the image itself, not an upscaled display copy
    # image 1 of the request on its own: the same pixels from n=1 at its seed (so its recorded seed is enough)
    _, _, alone, _ = generate(c, seed=6, n=1)
    assert np.array_equal(read_pixels(alone[0]), read_pixels(files[1]))
    assert not np.array_equal(read_pixels(files[0]), read_pixels(files[1]))
    out = tmp_path / "again.png"
    assert main(["generate", "--from-png", files[1], "-o", str(out)]) == 0
    assert "seed 6" in capsys.readouterr().out
    assert np.array_equal(read_pixels(out), read_pixels(files[1]))  # bit-identical pixels
    assert read_settings(out) == records[1]
    # the run's own sampler, the default's SDE (fresh noise at every step), reproduces from its PNG as well
    _, _, sde, _ = generate(c, seed=2, n=1, sampler=DEFAULT)
    assert read_settings(sde[0])["sampler"] == "euler_maruyama"
    assert main(["generate", "--from-png", sde[0], "-o", str(out)]) == 0
    assert np.array_equal(read_pixels(out), read_pixels(sde[0]))


def test_best_of_k_in_the_app_is_generate_best_of_k_and_reproduces(served, tmp_path):
    """Each image the best of 2 draws, as `generate(best_of=2)` chooses it at the same seed and settings; its PNG
    records best_of, and `--from-png` redoes the search to the same pixels."""
    from genlab.data.images import tensor_to_uint8
    from genlab.generate import generate as api_generate

    url, _ = served
    _, _, files, status = generate(client(url), prompt="a red circle above a blue square", seed=3, n=1, best_of=2)
    record = read_settings(files[0])
    assert record["best_of"] == 2 and status.startswith("done: 1 image(s)")
    same = api_generate(
        "a red circle above a blue square", n=1, seed=3, best_of=2, sampler="euler", steps=4, guidance_scale=4.0
    )
    assert np.array_equal(read_pixels(files[0]), tensor_to_uint8(same.x)[0])
    out = tmp_path / "again.png"
    assert main(["generate", "--from-png", files[0], "-o", str(out)]) == 0
    assert np.array_equal(read_pixels(out), read_pixels(files[0])) and read_settings(out) == record


def test_class_conditional_run_takes_a_class(served, tmp_path):
    url, _ = served
    _, gallery, files, _ = generate(client(url), run="digits", prompt="", label=3, steps=3, seed=0, n=1)
    record = read_settings(files[0])
    assert record["label"] == 3 and record["prompt"] is None and record["run"].endswith("digits")
    out = tmp_path / "again.png"
    assert main(["generate", "--from-png", files[0], "-o", str(out)]) == 0
    assert np.array_equal(read_pixels(out), read_pixels(files[0]))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"prompt": "x" * 201}, "at most 200"),
        ({"n": 9}, "greater than maximum value 8"),  # the sliders' bounds, checked by Gradio
        ({"steps": 0}, "less than minimum value 1"),
        ({"steps": 65}, "greater than maximum value 64"),
        ({"seed": -1}, "seed must be"),
        ({"prompt": "  "}, "non-empty prompt"),
        ({"run": "no-such-run"}, "not in the list of choices"),
        ({"best_of": 5}, "greater than maximum value 4"),
        ({"run": "digits", "prompt": "", "label": 3, "best_of": 2}, "not a text-to-image run: best of K"),
    ],
)
def test_input_limits_are_one_line_messages(served, kwargs, message):
    url, _ = served
    with pytest.raises(AppError, match=message) as e:
        generate(client(url), **kwargs)
    assert "Traceback" not in str(e.value)


def test_second_job_of_a_user_is_refused_and_cancel_stops_the_first(served):
    url, app = served
    c = client(url)
    job = c.submit(SHIPPED_LABEL, "a blue square", None, "heun", 64, 4.0, 0, 8, 1, api_name="/generate")
    deadline = time.time() + 30
    while app.jobs.counts()["running"] == 0 and time.time() < deadline:
        time.sleep(0.05)
    with pytest.raises(AppError, match="already have a job"):
        generate(c, n=1)
    assert "cancelling" in c.predict(api_name="/cancel")
    *_, files, status = job.result(timeout=60)
    assert status.startswith("cancelled after") and len(files) < 8
    assert app.jobs.counts() == {"running": 0, "waiting": 0}
    assert generate(c, n=1)[3].startswith("done")  # the user may start another job now


def test_a_full_queue_refuses_with_a_message(served):
    url, app = served
    clients = [client(url) for _ in range(4)]  # the fixture's queue holds 3 jobs
    jobs = [
        c.submit(SHIPPED_LABEL, "a red circle", None, "heun", 64, 4.0, 0, 8, 1, api_name="/generate")
        for c in clients[:3]
    ]
    deadline = time.time() + 30
    while sum(app.jobs.counts().values()) < 3 and time.time() < deadline:
        time.sleep(0.05)
    assert app.jobs.counts() == {"running": 1, "waiting": 2}
    with pytest.raises(AppError, match="server is busy"):
        generate(clients[3], n=1)
    for c in clients[:3]:
        c.predict(api_name="/cancel")
    assert all(j.result(timeout=60)[3].startswith("cancelled") for j in jobs)


def test_edit_sdedit_and_inpaint_with_an_uploaded_mask(served, tmp_path):
    url, _ = served
    handle_file = gradio_client.handle_file
    img = tmp_path / "in.png"
    Image.fromarray((np.arange(28 * 28).reshape(28, 28) % 255).astype(np.uint8)).convert("RGB").save(img)
    mask = tmp_path / "mask.png"
    m = np.zeros((28, 28), np.uint8)
    m[8:20, 8:20] = 255
    Image.fromarray(m).save(mask)
    c = client(url)
    args = ["digits", "sdedit", handle_file(str(img)), None, None, 0.5, 0.5, "", 1, 2, 0, 4]
    out, status = c.predict(*args, api_name="/edit")
    assert "2 sdedit edit(s): strength 0.5" in status
    assert Image.open(out).size[0] > Image.open(out).size[1]  # one row: input, edits
    args[1], args[4] = "inpaint", handle_file(str(mask))
    out, status = c.predict(*args, api_name="/edit")
    assert "inpaint" in status and "NFE" in status
    layer = tmp_path / "strokes.png"  # a mask painted in the editor: its strokes' alpha
    Image.fromarray(np.dstack([m, m, m, m])).save(layer)
    args[3] = {"background": handle_file(str(img)), "layers": [handle_file(str(layer))], "composite": None}
    args[4] = None
    out, status = c.predict(*args, api_name="/edit")
    assert "inpaint" in status and Image.open(out).size[0] > Image.open(out).size[1]
    args[3] = None
    with pytest.raises(AppError, match="inpaint needs a mask"):
        c.predict(*args, api_name="/edit")
    big = tmp_path / "big.png"
    Image.new("RGB", (1100, 20)).save(big)
    args[1], args[2] = "sdedit", handle_file(str(big))
    with pytest.raises(AppError, match="at most 1024 pixels"):
        c.predict(*args, api_name="/edit")


def test_compare_runs_side_by_side_and_a_compare_folder(served):
    url, _ = served
    c = client(url)
    gallery, table, status = c.predict([SHIPPED_LABEL, "digits"], "a red circle", 2, "euler", 4, 0, api_name="/compare")
    assert status.startswith("done") and len(gallery) == 2
    assert f"| {SHIPPED_LABEL} | 4 |" in table and "| digits | 4 |" in table  # euler: NFE = steps
    md, grids = c.predict("cmp", api_name="/compare_folder")
    assert "tiny-digits" in md and any("tiny-digits" in g["caption"] for g in grids)


def test_inspect_shows_report_loss_and_metrics(served):
    url, _ = served
    report, loss, metrics, grids = client(url).predict("digits", api_name="/inspect")
    assert "method `flow`" in report and "genlab eval" in report  # no eval yet: says how to make one
    assert loss is not None and "| step |" in metrics
    assert any(g["caption"] == "samples.png" for g in grids)
    plot, table = client(url).predict("digits_samplers.png", api_name="/plot")
    assert Image.open(plot).size == (40, 30) and "| heun | 15 |" in table


def test_from_png_errors(tmp_path, capsys):
    plain = tmp_path / "plain.png"
    Image.new("RGB", (4, 4)).save(plain)
    assert main(["generate", "--from-png", str(plain)]) == 2
    assert "carries no genlab settings" in capsys.readouterr().err
    assert main(["generate", "a red circle", "--from-png", str(plain)]) == 2
    assert "drop prompt" in capsys.readouterr().err
    assert main(["generate"]) == 2
    assert "give a prompt" in capsys.readouterr().err
