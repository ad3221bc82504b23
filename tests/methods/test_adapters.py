"""GLIGEN boxes and IP-Adapter image prompts on a frozen tiny text-to-image run trained here."""

import numpy as np
import pytest
import torch
from PIL import Image

from genlab.cli import main
from genlab.config import recipe_from_dict
from genlab.errors import GenlabError
from genlab.methods.adapters import GligenMethod, IPAdapterMethod, image_objects, parse_boxes
from genlab.runs import build_method, load_run
from genlab.train import resolve
from tests.t2i_fixtures import tiny_t2i_runs, train_recipe, use_hash_encoder

BOXES = "a red square:0.1,0.1,0.5,0.5;a blue square:0.55,0.5,0.95,0.9"


@pytest.fixture(autouse=True)
def hash_encoder(monkeypatch):
    use_hash_encoder(monkeypatch)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """(data .npz, text-to-image run) with the hashing encoder."""
    data, _, t2i = tiny_t2i_runs(tmp_path_factory.mktemp("adapters"), n=64, ae_steps=2, t2i_steps=2)
    return data, t2i


def adapter_tree(kind: str, data, t2i, **method) -> dict:
    return {
        "name": f"tiny-{kind}",
        "seed": 0,
        "data": {"kind": "npz", "path": str(data)},
        "model": {"kind": "none"},
        "method": {"kind": kind, "base": str(t2i), **method},
        "train": {"steps": 3, "batch_size": 8, "lr": 1e-2, "warmup_steps": 0, "log_every": 1, "checkpoint_every": 3},
        "sample": {"sampler": "euler", "steps": 2, "guidance_scale": 2.0},
    }


def build(tree: dict):
    from genlab.data import build_dataset

    recipe = recipe_from_dict(tree, "test")
    return build_method(resolve(recipe, build_dataset(recipe.data))).eval()


@pytest.fixture(scope="module")
def trained(base, tmp_path_factory):
    """{kind: run folder} of both adapters trained three steps on the tiny base."""
    data, t2i = base
    tmp = tmp_path_factory.mktemp("adapter-runs")
    with pytest.MonkeyPatch.context() as mp:
        use_hash_encoder(mp)
        return {kind: train_recipe(adapter_tree(kind, data, t2i), tmp, kind) for kind in ("gligen", "ip_adapter")}


def net_inputs(method, n: int = 3):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, *method.base.shape, generator=gen)
    t = torch.rand(n, generator=gen)
    return x, t, method.base.encode_text(["a red square"] * n, torch.device("cpu"))


def test_parse_boxes():
    assert parse_boxes(BOXES) == [("a red square", (0.1, 0.1, 0.5, 0.5)), ("a blue square", (0.55, 0.5, 0.95, 0.9))]
    assert parse_boxes("a: b:0,0,1,1;") == [("a: b", (0.0, 0.0, 1.0, 1.0))]  # the last ':' splits


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty"),
        ("0.1,0.1,0.5,0.5", "PHRASE:x0,y0,x1,y1"),
        ("a red square:0.1,0.1,0.5", "four coordinates"),
        ("a red square:0.1,0.1,x,0.5", "four numbers"),
        ("a red square:0.5,0.1,0.1,0.5", "x0 < x1"),
        ("a red square:0.1,0.1,0.5,1.5", "x0 < x1"),
    ],
)
def test_bad_boxes_say_what_to_write(text, message):
    with pytest.raises(GenlabError, match=message):
        parse_boxes(text)


def test_training_boxes_are_read_from_the_image():
    image = np.zeros((16, 16, 3), dtype=np.uint8)
    image[2:8, 4:10] = (255, 0, 0)
    [(colour, kind, box, mask)] = image_objects(image)
    assert (colour, kind, box, int(mask.sum())) == ("red", "square", (4 / 16, 2 / 16, 10 / 16, 8 / 16), 36)


def test_zero_gated_gligen_leaves_the_model_unchanged(base):
    method = build(adapter_tree("gligen", *base))
    x, t, text = net_inputs(method)
    plain = method.base.net(x, t, text)
    boxes = [parse_boxes(BOXES), [], parse_boxes(BOXES)[:1]]
    with method.attached(method.contexts(boxes)):
        assert torch.equal(method.base.net(x, t, text), plain)  # gates tanh(0) = 0
    with torch.no_grad():
        for layer in method.layers:
            layer.gate.fill_(1.0)
    with method.attached(method.contexts(boxes)):
        opened = method.base.net(x, t, text)
    assert not torch.allclose(opened[0], plain[0]) and not torch.allclose(opened[2], plain[2])
    assert torch.equal(opened[1], plain[1])  # a row without boxes stays the base's
    assert torch.equal(method.base.net(x, t, text), plain)  # detached after the call
    settings = load_run(base[1]).settings

    def draw(**opts):
        return method.sample(2, cond=["a red square"] * 2, settings=settings, generator=torch.Generator(), **opts).x

    plain_samples = method.base.sample(2, cond=["a red square"] * 2, settings=settings, generator=torch.Generator()).x
    assert torch.equal(draw(boxes=None), plain_samples)
    grounded = draw(boxes=parse_boxes(BOXES))
    assert not torch.allclose(grounded, plain_samples)
    method.cfg.ground_unconditional = False  # guidance's unconditional half without boxes: another prediction
    assert not torch.allclose(draw(boxes=parse_boxes(BOXES)), grounded)


def test_ip_adapter_with_a_zero_image_scale_is_text_only(base):
    method = build(adapter_tree("ip_adapter", *base))
    settings = load_run(base[1]).settings
    image = torch.rand(3, 16, 16) * 2 - 1

    def draw(**opts):
        return method.sample(2, cond=["a red square"] * 2, settings=settings, generator=torch.Generator(), **opts).x

    text_only = method.base.sample(2, cond=["a red square"] * 2, settings=settings, generator=torch.Generator()).x
    assert torch.equal(draw(image=image, image_scale=0.0), text_only)
    assert torch.equal(draw(image=image, image_scale=1.0), text_only)  # v' starts at zero: the start is a no-op
    with torch.no_grad():
        for layer in method.layers:
            layer.v.weight.normal_()
    assert torch.equal(draw(image=image, image_scale=0.0), text_only)
    assert not torch.allclose(draw(image=image, image_scale=1.0), text_only)


@pytest.mark.parametrize("kind, cls", [("gligen", GligenMethod), ("ip_adapter", IPAdapterMethod)])
def test_only_the_adapter_trains_and_the_run_is_self_contained(trained, base, kind, cls):
    run, start = load_run(trained[kind], weights="model"), build(adapter_tree(kind, *base))
    assert isinstance(run.method, cls)
    trainable = {name for name, p in start.named_parameters() if p.requires_grad}
    assert trainable and not any(name.startswith(("base.", "image_encoder.")) for name in trainable)
    now, before = run.method.state_dict(), start.state_dict()
    frozen = [k for k in before if k.startswith(("base.", "image_encoder."))]
    assert frozen and all(torch.equal(now[k], before[k]) for k in frozen)  # the base's weights, unchanged
    assert any(not torch.equal(now[k], before[k]) for k in trainable)  # the adapter learned


def test_generate_with_boxes_and_image_prompts(trained, base, tmp_path, capsys):
    common = ["--n", "2", "--steps", "2", "--sampler", "euler"]
    out = tmp_path / "boxes.png"
    assert (
        main(["generate", "a red square", "--run", str(trained["gligen"]), "--boxes", BOXES, *common, "-o", str(out)])
        == 0
    )
    assert np.asarray(Image.open(out)).ndim == 3
    ref = tmp_path / "ref.png"
    Image.fromarray(np.full((16, 16, 3), (255, 0, 0), dtype=np.uint8)).save(ref)
    args = ["generate", "a square", "--run", str(trained["ip_adapter"]), "--image-prompt", str(ref), *common]
    assert main([*args, "--image-scale", "0.5", "-o", str(tmp_path / "ip.png")]) == 0
    capsys.readouterr()
    for argv, message in (
        (["generate", "a red square", "--run", str(base[1]), "--boxes", BOXES], "needs a gligen run"),
        (["generate", "a red square", "--run", str(trained["gligen"]), "--boxes", "a red square:1,1"], "four"),
        (["generate", "a red square", "--run", str(trained["gligen"]), "--image-prompt", str(ref)], "ip_adapter run"),
        (["generate", "a red square", "--run", str(trained["ip_adapter"]), "--image-scale", "2"], "--image-prompt"),
    ):
        assert main([*argv, *common, "-o", str(tmp_path / "x.png")]) == 2, argv
        assert message in capsys.readouterr().err
