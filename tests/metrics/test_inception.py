import pytest
import torch
from safetensors.torch import save_file

from genlab.errors import GenlabError
from genlab.metrics.features import extract
from genlab.metrics.inception import FIDInceptionV3, inception_feature_net, load_inception

# a few entries of the pt_inception-2015-12-05 state dict (pytorch-fid's FID weights), by name and shape
KNOWN = {
    "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
    "Conv2d_4a_3x3.bn.running_var": (192,),
    "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
    "Mixed_6e.branch7x7dbl_5.conv.weight": (192, 192, 1, 7),
    "Mixed_7a.branch7x7x3_4.conv.weight": (192, 192, 3, 3),
    "Mixed_7c.branch3x3dbl_3b.conv.weight": (384, 384, 3, 1),
    "fc.weight": (1008, 2048),
}


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """Random tensors with the full key set, as the user's converted file would hold (plus the extras it may hold)."""
    gen = torch.Generator().manual_seed(0)
    tensors = {
        k: torch.randn(v.shape, generator=gen) * 0.05 if v.is_floating_point() else v
        for k, v in FIDInceptionV3().state_dict().items()
        if "num_batches_tracked" not in k
    }
    tensors.update({k: v.abs() + 0.5 for k, v in tensors.items() if k.endswith("running_var")})
    path = tmp_path_factory.mktemp("inception") / "pt_inception.safetensors"
    save_file(tensors, str(path))
    return path, tensors


def test_key_set_and_shapes(weights):
    _, tensors = weights
    assert all(tuple(tensors[k].shape) == shape for k, shape in KNOWN.items())
    assert len(tensors) == 94 * 5 + 2  # 94 conv+bn units (weight, bn weight/bias/mean/var) and the fc head


def test_loads_and_extracts_2048_features(weights):
    path, tensors = weights
    net = load_inception(path)
    assert torch.equal(net.Mixed_7c.branch_pool.conv.weight, tensors["Mixed_7c.branch_pool.conv.weight"])
    feats, logits = extract(inception_feature_net(path), torch.rand(1, 1, 8, 8) * 2 - 1)  # grey → RGB, 299×299
    assert feats.shape == (1, 2048) and logits is None and torch.isfinite(feats).all() and feats.std() > 0


def test_wrong_files_are_user_errors(weights, tmp_path):
    path, tensors = weights
    with pytest.raises(GenlabError, match="convert the pytorch-fid weights once"):
        load_inception(tmp_path / "w.pth")
    save_file({k: v for k, v in tensors.items() if not k.startswith("fc.")}, str(tmp_path / "nohead.safetensors"))
    with pytest.raises(GenlabError, match="2 keys missing"):
        load_inception(tmp_path / "nohead.safetensors")
    bad = dict(tensors, **{"fc.bias": torch.zeros(1000)})
    save_file(bad, str(tmp_path / "bad.safetensors"))
    with pytest.raises(GenlabError, match="wrong shape"):
        load_inception(tmp_path / "bad.safetensors")
