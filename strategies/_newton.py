"""One Newton step for L2-regularised logistic regression: the cheap refit behind expected error
reduction. Adding one labeled row (x, k) moves the parameters by ``-H^-1 g(x, k)``, the classic
influence-function approximation; with the Hessian factored once, all candidate x class updates
are one triangular solve.

References
----------
Koh, P. W. & Liang, P. (2017). Understanding black-box predictions via influence functions. ICML.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.linalg import cho_factor, cho_solve
from scipy.special import expit, softmax

from strategies._distance import as_dense_float


def _split(model: Any) -> tuple[Any, Any]:
    steps = getattr(model, "steps", None)
    if steps is None:
        return None, model
    return (model[:-1] if len(steps) > 1 else None), model[-1]


def supports_newton(model: Any) -> bool:
    """True for a fitted (pipeline ending in) LogisticRegression with a pure L2 penalty."""
    from sklearn.linear_model import LogisticRegression

    _, final = _split(model)
    if not isinstance(final, LogisticRegression) or not hasattr(final, "coef_"):
        return False
    params = final.get_params()
    l1_ratio = params.get("l1_ratio")
    penalty = params.get("penalty", "l2")
    return penalty in ("l2", "deprecated", None) and l1_ratio in (None, 0, 0.0) and final.C > 0


class NewtonRefit:
    """Parameters and factored Hessian of a fitted logistic regression on its labeled set."""

    def __init__(self, model: Any, X_labeled: Any) -> None:
        self.pre, lr = _split(model)
        self.C = float(lr.C)
        self.classes_ = np.asarray(lr.classes_)
        self.W = np.column_stack([lr.coef_, lr.intercept_]).T  # (d + 1, K') with K' = 1 if binary
        self.binary = self.W.shape[1] == 1
        X = self._design(X_labeled)
        d1, k = self.W.shape
        p = self._probas(X @ self.W)
        if self.binary:
            w = p[:, 1] * p[:, 0]
            H = self.C * (X.T * w) @ X
        else:
            H = np.empty((k * d1, k * d1))
            for a in range(k):
                for b in range(a, k):
                    w = p[:, a] * ((a == b) - p[:, b])
                    block = self.C * (X.T * w) @ X
                    H[a * d1 : (a + 1) * d1, b * d1 : (b + 1) * d1] = block
                    H[b * d1 : (b + 1) * d1, a * d1 : (a + 1) * d1] = block.T
        reg = np.ones(H.shape[0])
        reg[d1 - 1 :: d1] = 1e-6  # the intercept is not penalised; keep H positive definite
        H[np.diag_indices_from(H)] += reg
        self.factor = cho_factor(H)

    def _design(self, X: Any) -> np.ndarray:
        if self.pre is not None:
            X = self.pre.transform(X)
        X = as_dense_float(X)
        return np.column_stack([X, np.ones(X.shape[0])])

    def _probas(self, logits: np.ndarray) -> np.ndarray:
        if self.binary:
            p1 = expit(logits[:, 0])
            return np.column_stack([1 - p1, p1])
        return softmax(logits, axis=1)

    def updated_probas(self, X_candidates: Any, X_eval: Any) -> np.ndarray:
        """Probabilities on ``X_eval`` after adding each candidate with each label.

        Returns
        -------
        probas : ndarray of shape (n_candidates, n_classes, n_eval, n_classes)
            ``[i, k]`` is the refit model's predict_proba after adding (candidate i, class k).
        """
        Xc, Xe = self._design(X_candidates), self._design(X_eval)
        d1, kw = self.W.shape
        n_classes = self.classes_.shape[0]
        pc = self._probas(Xc @ self.W)  # (m, K)
        m = Xc.shape[0]
        # Loss gradient of one new row (x, k): C (p(x) - e_k) x~ for each logit column.
        resid = pc[:, None, :] - np.eye(n_classes)[None, :, :]  # (m, K, K)
        if self.binary:
            resid = resid[:, :, 1:]  # the single logit is class 1's
        grads = self.C * resid[..., None] * Xc[:, None, None, :]  # (m, K, K', d1)
        G = grads.reshape(m * n_classes, kw * d1)
        delta = -cho_solve(self.factor, G.T).T  # (m K, K' d1)
        dW = delta.reshape(m, n_classes, kw, d1).transpose(0, 1, 3, 2)  # (m, K, d1, K')
        logits = (Xe @ self.W)[None, None] + np.einsum("ej,mkjc->mkec", Xe, dW, optimize=True)
        if self.binary:
            p1 = expit(logits[..., 0])
            return np.stack([1 - p1, p1], axis=-1)
        return softmax(logits, axis=-1)
