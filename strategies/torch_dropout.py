"""MC-dropout committees for PyTorch classifiers (optional: needs ``torch``, not a dependency).

``bald`` and ``qbc_*`` accept ``members=MCDropoutCommittee(module)``: each member is one
stochastic forward pass with the module's dropout layers active (batch-norm stays in eval mode).

References
----------
Gal, Y. & Ghahramani, Z. (2016). Dropout as a Bayesian approximation. ICML.
Gal, Y., Islam, R. & Ghahramani, Z. (2017). Deep Bayesian active learning with image data. ICML.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class MCDropoutCommittee:
    """``n_samples`` dropout-perturbed passes of ``module`` (logits out) as committee members.

    Cost: n_samples forward passes over the pool, in batches of ``batch_size`` rows.
    """

    def __init__(
        self, module: Any, n_samples: int = 20, batch_size: int = 4096, seed: int = 0
    ) -> None:
        self.module = module
        self.n_samples = n_samples
        self.batch_size = batch_size
        self.seed = seed

    def member_probas(self, X: Any) -> np.ndarray:
        """Shape (n_samples, n_rows, n_classes)."""
        try:
            import torch
        except ImportError:  # pragma: no cover - exercised only without the extra
            raise ImportError("MC dropout needs PyTorch: pip install 'labelwise[torch]'") from None
        dropouts = [
            m for m in self.module.modules() if isinstance(m, torch.nn.modules.dropout._DropoutNd)
        ]
        if not dropouts:
            raise ValueError("MCDropoutCommittee: the module has no dropout layer to sample from")
        was_training = [m.training for m in self.module.modules()]
        self.module.eval()
        for layer in dropouts:
            layer.train()
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(self.seed)
        try:
            # the module's device (a GPU-trained network stays there); results come back on the CPU
            device = next(self.module.parameters()).device
            X_t = torch.as_tensor(np.asarray(X, dtype=np.float32), device=device)
            with torch.no_grad():
                out = [
                    torch.cat(
                        [
                            torch.softmax(self.module(X_t[i : i + self.batch_size]), dim=1)
                            for i in range(0, X_t.shape[0], self.batch_size)
                        ]
                    )
                    .cpu()
                    .numpy()
                    for _ in range(self.n_samples)
                ]
        finally:
            torch.random.set_rng_state(generator_state)
            for module, training in zip(self.module.modules(), was_training, strict=True):
                module.train(training)
        return np.stack(out).astype(np.float64)
