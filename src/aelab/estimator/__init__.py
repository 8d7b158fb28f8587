"""``Autoencoder``: a scikit-learn transformer that stands wherever ``PCA`` stands.

:mod:`._estimator` is the class; :mod:`._layout` turns its samples into the model's batches and
back (layouts, scaling); :mod:`._files` keeps it as a run directory.
"""

from ._estimator import Autoencoder
from ._files import estimator_section

__all__ = ["Autoencoder", "estimator_section"]
