"""Early stopping keeps the best weights and stops after `patience` epochs without improvement."""

from __future__ import annotations

import torch

from flywheel.models.early_stopping import EarlyStopping


def test_stops_after_patience_and_restores_the_best_weights() -> None:
    model = torch.nn.Linear(1, 1)
    stopping = EarlyStopping(patience=2)
    decisions = []
    for epoch, loss in enumerate([1.0, 0.5, 0.6, 0.7, 0.8]):
        with torch.no_grad():
            model.weight.fill_(float(epoch))
        decisions.append(stopping.should_stop(loss, model))
    assert decisions == [False, False, False, False, True]
    assert stopping.best_loss == 0.5
    stopping.restore_best(model)
    assert model.weight.item() == 1.0  # the weights of the best epoch, not the last


def test_improvements_below_min_delta_do_not_count() -> None:
    model = torch.nn.Linear(1, 1)
    stopping = EarlyStopping(patience=0, min_delta=0.1)
    assert stopping.should_stop(1.0, model) is False
    assert stopping.should_stop(0.95, model) is True
