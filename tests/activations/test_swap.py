"""swap_activations on arbitrary models, torchvision's resnet18 included."""
import pytest
import torch
import torchvision
from torch import nn

from harness.activations import DEFAULT_KINDS, ActivationPair, swap_activations


@pytest.mark.slow  # subprocess or large model: runs with make test-slow (CI)
def test_resnet18_every_relu_replaced_and_it_still_trains_one_step():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=4)
    relus = sum(isinstance(m, nn.ReLU) for m in model.modules())
    replaced = swap_activations(model, lambda: ActivationPair("relu", "b_silu"))
    assert replaced == relus == 9  # stem + one shared module per BasicBlock
    assert not any(isinstance(m, nn.ReLU) for m in model.modules())
    assert sum(isinstance(m, ActivationPair) for m in model.modules()) == 9
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([0, 3])
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    opt.step()
    assert torch.isfinite(loss) and all(not torch.equal(a, p) for a, p in zip(before, model.parameters()))


def test_swap_uses_the_pair_in_the_backward_pass():
    model = nn.Sequential(nn.Linear(3, 3), nn.ReLU())
    swap_activations(model, ActivationPair("relu", "constant", c=2.0))
    x = torch.randn(5, 3)
    model(x).sum().backward()
    torch.testing.assert_close(model[0].bias.grad, torch.full((3,), 10.0))


def test_kinds_select_which_modules_are_replaced():
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Tanh(), nn.Sequential(nn.GELU(), nn.ReLU()))
    assert swap_activations(model, lambda: ActivationPair("tanh", "exact"), kinds=(nn.Tanh,)) == 1
    assert swap_activations(model, lambda: ActivationPair("relu", "rectangular")) == 2
    assert swap_activations(model, lambda: ActivationPair("gelu", "exact"), kinds=DEFAULT_KINDS) == 1
    assert not any(isinstance(m, (nn.ReLU, nn.Tanh, nn.GELU)) for m in model.modules())


def test_bad_kinds_are_rejected():
    with pytest.raises(TypeError, match="kinds must be nn.Module classes"):
        swap_activations(nn.ReLU(), ActivationPair(), kinds=("ReLU",))
