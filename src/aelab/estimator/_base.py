"""The scikit-learn side of an estimator that holds a trained :class:`~aelab.Run`: its tags,
when it counts as fitted, the model and history it exposes, pickling, and the way its samples
become the model's batches and back."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin

from aelab.estimator import _layout as layout
from aelab.models import BaseAutoencoder
from aelab.runs.run import Run


class RunEstimator(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """A transformer whose fitted state is ``run_`` (a :class:`~aelab.Run`) and the sample
    layout ``sample_shape_``, ``input_shape_``, ``data_format``, ``data_min_``, ``data_range_``."""

    # ------------------------------------------------------------------ scikit-learn plumbing

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # The network computes in float32; transform returns float32 for float32 input and
        # float64 for float64 input (values exact to float32 precision), as PCA does.
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    def _more_tags(self) -> dict[str, Any]:  # the same, for scikit-learn < 1.6
        return {"preserves_dtype": [np.float64, np.float32]}

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "run_")

    @property
    def model_(self) -> BaseAutoencoder:
        return self.run_.model

    @property
    def history_(self) -> list[dict[str, Any]]:
        return self.run_.history

    @property
    def _n_features_out(self) -> int:
        """Number of codes, for ``get_feature_names_out`` (``autoencoder0``, ...)."""
        return self.model_.latent_dim

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        run = state.get("run_")
        if run is not None and _device_of(run.model).type != "cpu":
            # Pickles open anywhere: a model trained on a GPU is stored on the CPU.
            state["run_"] = Run(copy.deepcopy(run.model).to("cpu"), run.config, run.history)
        return state

    # ------------------------------------------------------------------ data in and out

    @property
    def _scaling(self) -> tuple[np.ndarray, np.ndarray] | None:
        return None if self.data_min_ is None else (self.data_min_, self.data_range_)

    def _to_tensor(self, X: np.ndarray, dtype=np.float32) -> torch.Tensor:
        """Samples -> scaled ``(n, C, H, W)`` of ``dtype``."""
        return layout.to_batch(X, self.input_shape_, self.data_format, self._scaling, dtype)

    def _from_tensor(self, x: torch.Tensor, dtype, scaled: bool = True) -> np.ndarray:
        """Model output ``(n, C, H, W)`` -> samples of ``sample_shape_``, unscaled."""
        scaling = self._scaling if scaled else None
        return layout.from_batch(x, self.sample_shape_, self.data_format, scaling, dtype)

    def _map(self, fn, X: np.ndarray) -> torch.Tensor:
        """``fn(model, batch)`` over checked samples ``X``, in ``X``'s dtype."""
        return self.run_.map(fn, self._to_tensor(X, X.dtype))


def _device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device
