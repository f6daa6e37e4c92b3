"""Early stopping on a validation loss, keeping the best weights (shared by both models)."""

from __future__ import annotations

import torch


class EarlyStopping:
    """Tracks the best validation loss and the weights that gave it.

    Args:
        patience: Epochs without improvement tolerated before stopping.
        min_delta: Improvement smaller than this does not count.
    """

    def __init__(self, *, patience: int, min_delta: float = 1e-5) -> None:
        self.patience = patience
        self.min_delta = min_delta
        self.best_loss = float("inf")
        self.bad_epochs = 0
        self._best_state: dict[str, torch.Tensor] | None = None

    def should_stop(self, val_loss: float, model: torch.nn.Module) -> bool:
        """Record one epoch's validation loss; True when training should stop."""
        if val_loss < self.best_loss - self.min_delta:
            self.best_loss, self.bad_epochs = val_loss, 0
            self._best_state = {k: t.detach().clone() for k, t in model.state_dict().items()}
            return False
        self.bad_epochs += 1
        return self.bad_epochs > self.patience

    def restore_best(self, model: torch.nn.Module) -> None:
        """Load the best weights seen (no-op when no epoch was recorded)."""
        if self._best_state is not None:
            model.load_state_dict(self._best_state)
