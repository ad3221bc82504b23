"""The parts of `genlab serve` that need no web server: the job queue, PNG settings, limits, run discovery."""

import sys
import threading
import time

import numpy as np
import pytest
from PIL import Image

from genlab.cli import main
from genlab.errors import GenlabError
from genlab.generate import SHIPPED, SHIPPED_T2I
from genlab.runs import shipped_asset
from genlab.serve import core
from genlab.serve.jobs import Cancelled, Jobs, Refused
from genlab.serve.pngmeta import read_pixels, read_settings, write_png

RECORD = {"run": "shipped", "step": 1, "prompt": "a red circle", "label": None, "sampler": "heun", "steps": 4,
          "guidance": 4.0, "seed": 7}  # fmt: skip


def test_jobs_admit_one_per_user_up_to_capacity_and_run_in_order():
    jobs = Jobs(capacity=3, workers=1)
    a, b, c = jobs.admit("a"), jobs.admit("b"), jobs.admit("c")
    with pytest.raises(Refused, match="already have a job"):
        jobs.admit("a")
    with pytest.raises(Refused, match="server is busy"):
        jobs.admit("d")
    assert jobs.wait_turn(a, timeout=0.01)
    assert not jobs.wait_turn(b, timeout=0.01)  # one worker: b waits for a
    assert jobs.ahead(c) == 1 and jobs.counts() == {"running": 1, "waiting": 2}
    started = []
    t = threading.Thread(target=lambda: started.append(jobs.wait_turn(b, timeout=5)))
    t.start()
    time.sleep(0.05)
    assert not started
    jobs.done(a)
    t.join(5)
    assert started == [True] and b.running and not c.running
    jobs.admit("a")  # a's job is done: a may queue again


def test_cancel_raises_in_the_job_and_frees_a_waiting_one():
    jobs = Jobs(capacity=2, workers=1)
    a, b = jobs.admit("a"), jobs.admit("b")
    jobs.wait_turn(a)
    assert jobs.cancel("b") and not jobs.cancel("nobody")
    with pytest.raises(Cancelled):
        jobs.wait_turn(b, timeout=1)
    jobs.cancel("a")
    with pytest.raises(Cancelled):
        a.check()
    with pytest.raises(GenlabError):
        Jobs(capacity=1, workers=2)


def test_png_settings_round_trip_and_refusals(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    path = write_png(tmp_path / "x.png", image, RECORD)
    assert read_settings(path) == RECORD
    assert np.array_equal(read_pixels(path), image)
    assert Image.open(path).text["genlab.seed"] == "7"  # readable chunks for image viewers too
    grey = write_png(tmp_path / "g.png", image[:, :, :1], RECORD)
    assert read_pixels(grey).shape == (8, 8, 1)
    Image.new("RGB", (2, 2)).save(tmp_path / "plain.png")
    for bad, message in [(tmp_path / "plain.png", "no genlab settings"), (tmp_path / "none.png", "not found")]:
        with pytest.raises(GenlabError, match=message):
            read_settings(bad)
    (tmp_path / "text.png").write_text("not a png")
    with pytest.raises(GenlabError, match="not a readable PNG"):
        read_settings(tmp_path / "text.png")


def test_the_sliders_start_at_the_default_runs_sampling():
    from genlab.generate import text_run

    assert core.default_sampling() == text_run().settings  # read without loading the weights


def test_the_best_of_slider_starts_at_the_runs_own_default(digits_run):
    """The shipped run's recipe asks for the best of 4 (within the limit); a run whose recipe says nothing, as every
    class-conditional one, starts at 1, so that switching to it does not ask for a search it cannot do."""
    shipped = shipped_asset(SHIPPED)
    assert core.start_best_of(shipped, core.Limits()) == 4 == core.default_sampling().best_of
    assert core.start_best_of(shipped, core.Limits(best_of=2)) == 2
    assert core.start_best_of(digits_run, core.Limits()) == 1


def test_request_and_upload_limits(tmp_path):
    lim = core.Limits(prompt_chars=10, n=4, steps=8, image_side=64, image_bytes=10_000)
    core.check_request(lim, prompt="short", n=4, steps=8, guidance=4.0, seed=0)
    for kwargs, message in [
        ({"prompt": "x" * 11}, "at most 10"),
        ({"n": 5}, "between 1 and 4"),
        ({"steps": 9}, "between 1 and 8"),
        ({"guidance": -1.0}, "guidance"),
        ({"seed": 2**31}, "seed"),
        ({"best_of": 5}, "best of must be between 1 and 4"),
    ]:
        with pytest.raises(GenlabError, match=message):
            core.check_request(lim, **{"prompt": "", "n": 1, "steps": 1, "guidance": 1.0, "seed": 0, **kwargs})
    Image.new("RGB", (65, 10)).save(tmp_path / "wide.png")
    with pytest.raises(GenlabError, match="at most 64 pixels"):
        core.check_upload(lim, tmp_path / "wide.png")
    Image.new("RGB", (16, 16)).save(tmp_path / "pic.gif")
    with pytest.raises(GenlabError, match="GIF"):
        core.check_upload(lim, tmp_path / "pic.gif")
    (tmp_path / "noise.png").write_bytes(np.random.default_rng(0).bytes(20_000))
    with pytest.raises(GenlabError, match="MB"):
        core.check_upload(lim, tmp_path / "noise.png")


def test_find_runs_lists_the_shipped_runs_first_then_run_folders(tmp_path, digits_run):
    import shutil

    shutil.copytree(digits_run, tmp_path / "a" / "b")
    (tmp_path / "empty").mkdir()
    found = core.find_runs(tmp_path)
    assert core.SHIPPED_LABEL == f"{SHIPPED} (shipped)"  # the default run is listed first, and selected
    assert list(found) == [core.SHIPPED_LABEL, "shapes-t2i (shipped)", "a/b"]
    assert found["shapes-t2i (shipped)"] == shipped_asset("shapes-t2i")
    assert list(core.find_runs(tmp_path / "missing")) == [core.SHIPPED_LABEL, "shapes-t2i (shipped)"]


def test_a_record_names_a_shipped_run_by_name_and_finds_it_again(tmp_path, digits_run):
    for name in SHIPPED_T2I:
        folder = shipped_asset(name)
        assert core.record_name(folder) == f"shipped:{name}"
        assert core.recorded_folder(core.record_name(folder)) == folder
    assert core.recorded_folder("shipped") == shipped_asset("shapes-t2i")  # records from before a second shipped
    assert core.record_name(digits_run) == str(digits_run.resolve())  # a run folder: its absolute path
    with pytest.raises(GenlabError, match="no shipped checkpoint"):
        core.recorded_folder("shipped:gone")


def test_serve_without_gradio_is_a_one_line_error(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio now raises ImportError
    assert main(["serve", "--runs", "nowhere"]) == 2
    assert "pip install 'genlab[serve]'" in capsys.readouterr().err


@pytest.mark.parametrize("port", ["-5", "70000"])
def test_serve_bad_port_is_a_one_line_error(capsys, port):
    assert main(["serve", "--runs", "nowhere", "--port", port]) == 2
    err = capsys.readouterr().err.strip()
    assert "--port must be in 0..65535" in err and len(err.splitlines()) == 1
