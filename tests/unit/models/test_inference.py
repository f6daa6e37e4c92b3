"""Modules compiled for requests: TorchScript with the eager module's very numbers, eager when it cannot."""

import logging

import torch
from torch import nn

from flywheel.config.training import RankerConfig
from flywheel.models.inference import for_requests, run
from flywheel.models.ranker import MultiTaskRanker
from flywheel.models.two_tower import UserTower


def _ranker_inputs(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    sparse = torch.stack([torch.randint(0, c, (n,), generator=generator) for c in (5, 40, 9, 4)], dim=1)
    return sparse, torch.randn(n, 12, generator=generator), torch.randint(0, 40, (n, 6), generator=generator)


def test_the_scripted_ranker_gives_the_eager_rankers_bits_at_every_size() -> None:
    torch.manual_seed(0)
    ranker = MultiTaskRanker((5, 40, 9, 4), 12, RankerConfig(cross_layers=2)).eval()
    compiled = for_requests(ranker)
    assert isinstance(compiled, torch.jit.ScriptModule)
    generator = torch.Generator().manual_seed(1)
    for n in (1, 7, 210, 1000):  # the first calls of the TorchScript executor and the later ones alike
        inputs = _ranker_inputs(n, generator)
        for _ in range(3):
            assert torch.equal(run(compiled, *inputs), run(ranker, *inputs))


def test_the_scripted_user_tower_gives_the_eager_towers_bits() -> None:
    torch.manual_seed(0)
    tower = UserTower(n_users=30, n_items=50, dense_dim=10, id_dim=8, hidden=32, out_dim=16).eval()
    compiled = for_requests(tower)
    generator = torch.Generator().manual_seed(2)
    for n in (1, 64):
        inputs = (
            torch.randint(0, 30, (n,), generator=generator),
            torch.randn(n, 10, generator=generator),
            torch.randint(0, 50, (n, 5), generator=generator),
        )
        for _ in range(3):
            assert torch.equal(run(compiled, *inputs), run(tower, *inputs))


class _Unscriptable(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(x.numpy() * 2)  # NumPy inside forward: TorchScript cannot compile it


def test_a_module_torchscript_cannot_compile_is_served_eagerly_with_a_warning(caplog) -> None:
    module = _Unscriptable().train()
    with caplog.at_level(logging.WARNING, logger="flywheel.models.inference"):
        compiled = for_requests(module)
    assert compiled is module and not module.training
    assert "_Unscriptable: TorchScript failed" in caplog.text
    assert run(compiled, torch.ones(2)).tolist() == [2.0, 2.0]
