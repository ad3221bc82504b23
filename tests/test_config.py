import pytest

from genlab.config import apply_override, dump_recipe, load_recipe, recipe_from_dict, recipe_to_dict
from genlab.errors import GenlabError
from tests.conftest import ROOT, TINY_TOY, write_recipe


@pytest.mark.parametrize("name", ["toy2d-flow", "digits-flow", "digits-ddpm"])
def test_shipped_recipes_parse_and_round_trip(name):
    recipe = load_recipe(ROOT / "recipes" / f"{name}.yaml")
    assert recipe.name == name
    assert recipe_from_dict(recipe_to_dict(recipe), "x") == recipe
    assert "kind: flow" in dump_recipe(recipe)


def test_overrides_are_typed(toy_recipe):
    r = load_recipe(toy_recipe, ["--model.depth=3", "--train.lr=0.01", "--method.time.kind=logit_normal"])
    assert r.model.depth == 3 and r.train.lr == 0.01 and r.method.time.kind == "logit_normal"
    r = load_recipe(toy_recipe, ["--train.betas=[0.8, 0.9]"])
    assert r.train.betas == (0.8, 0.9)
    assert isinstance(load_recipe(toy_recipe, ["--train.lr=1"]).train.lr, float)  # int widens to float
    assert load_recipe(toy_recipe, ["--train.lr=5e-4"]).train.lr == 5e-4  # YAML 1.1 reads this as a string


@pytest.mark.parametrize(
    ("tree_change", "message"),
    [
        ({"model": {"kind": "mlp", "depht": 3}}, r"toy.yaml: model: unknown key 'depht'"),
        ({"train": {"steps": "many"}}, r"toy.yaml: train.steps: expected int, got str"),
        ({"train": {"steps": 1.5}}, r"train.steps: expected int"),
        ({"model": {"kind": "transformerzz"}}, r"model.kind: unknown kind 'transformerzz'"),
        ({"data": {"name": "moons"}}, r"data: needs a 'kind' key"),
        ({"train": {"mixed_precision": "fp8"}}, r"train.mixed_precision must be one of 'no', 'bf16', got 'fp8'"),
        ({"bogus": 1}, r"unknown key 'bogus'"),
    ],
)
def test_bad_recipes_name_key_and_file(tmp_path, tree_change, message):
    tree = {**TINY_TOY, **tree_change}
    with pytest.raises(GenlabError, match=message):
        load_recipe(write_recipe(tmp_path / "toy.yaml", tree))


def test_bad_files(tmp_path):
    with pytest.raises(GenlabError, match="not found"):
        load_recipe(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(GenlabError, match="not valid YAML"):
        load_recipe(bad)
    with pytest.raises(GenlabError, match="must look like"):
        apply_override({}, "--train.steps")
