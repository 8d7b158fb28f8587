"""The importance-sampled log-likelihood of a variational autoencoder (Burda, Grosse &
Salakhutdinov, 2016, "Importance Weighted Autoencoders"; the estimate pythae's ``get_nll`` makes).

``log p(x)`` is estimated as ``log (1/k) sum_i p(x | z_i) p(z_i) / q(z_i | x)`` with
``z_i ~ q(z | x)``: with ``k = 1`` it is one sample of the ELBO, and its expectation rises towards
``log p(x)`` as ``k`` grows. It lives beside the models, not in :mod:`aelab.metrics`, because it
needs the model itself (its posterior, its decoder and the observation model its config implies),
where the metrics are pure functions of arrays.

The observation model is the one the training loss implies. The variational families minimise
``mean((x_hat - x)^2) + beta * mean_j KL_j``: the per-pixel MSE over ``D`` values and the KL
averaged over ``d`` latent units. Multiplied by ``D / (2 sigma^2)`` that is the negative ELBO of a
Gaussian decoder ``p(x | z) = N(x_hat(z), sigma^2 I)`` up to a constant, exactly when
``sigma^2 = beta * D / (2 d)``. For a Gaussian decoder ``beta`` and ``sigma`` are one parameter: a
"beta-VAE" here is a VAE with that noise level, and the KL warm-up and capacity schedules change
the weighting only while they run (the estimate uses the final ``beta``).
"""

from __future__ import annotations

import math

import torch

from .base import BaseAutoencoder, flat_size

LOG_2PI = math.log(2 * math.pi)


def observation_sigma(model: BaseAutoencoder) -> float:
    """The standard deviation ``sigma`` of the Gaussian ``p(x | z)`` that ``model``'s training
    loss implies: ``sigma^2 = beta * D / (2 * latent_dim)`` with ``D`` values per image."""
    beta = model.config.beta
    if beta <= 0:
        raise ValueError(
            f"beta={beta!r} implies a noise-free decoder (sigma=0), under which log p(x) is not "
            "finite; pass sigma > 0 to choose the observation noise"
        )
    return math.sqrt(beta * flat_size(model.input_shape) / (2 * model.latent_dim))


def _gaussian(model: BaseAutoencoder, sigma: float | None) -> tuple[float, float]:
    """The decoder's ``sigma`` (given, or :func:`observation_sigma`) and the constant of
    ``log N(x; x_hat, sigma^2 I)`` per image; a model without a posterior is refused."""
    if not getattr(model, "variational", False):
        raise TypeError(f"{type(model).__name__} has no posterior (variational is False)")
    if sigma is None:
        sigma = observation_sigma(model)
    elif isinstance(sigma, bool) or not (isinstance(sigma, (int, float)) and 0 < sigma < math.inf):
        raise ValueError(f"sigma={sigma!r} is not valid; expected a finite number > 0")
    return sigma, -0.5 * flat_size(model.input_shape) * (LOG_2PI + 2 * math.log(sigma))


@torch.no_grad()
def log_likelihood(
    model: BaseAutoencoder,
    x: torch.Tensor,
    k: int = 1000,
    *,
    sigma: float | None = None,
    batch_size: int = 4096,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Importance-sampled ``log p(x)`` of each image, in nats.

    Parameters
    ----------
    model : a variational family (``model.variational``)
        Gives ``posterior(x) -> (mu, logvar)`` and ``decode(z)``.
    x : tensor ``(N, C, H, W)``
        Images, on the model's device.
    k : int
        Importance samples per image; ``k = 1`` is a single-sample ELBO.
    sigma : float, optional
        Standard deviation of the Gaussian ``p(x | z) = N(decode(z), sigma^2 I)``; by default the
        one the training loss implies (:func:`observation_sigma`).
    batch_size : int
        Codes decoded at once (images times samples): bounds the memory.
    generator : torch.Generator, optional
        The source of the samples, drawn as ``torch.randn((s, b, latent_dim))`` for ``s`` samples
        of ``b`` images at a time, in order; the global generator by default.

    Returns
    -------
    tensor ``(N,)``, float64
        The estimates of ``log p(x)``; ``-mean()`` is the negative log-likelihood.
    """
    for name, value in (("k", k), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} is not valid; expected an integer >= 1")
    sigma, log_norm = _gaussian(model, sigma)
    out = []
    for xb in x.split(max(1, batch_size // k)):  # (b, C, H, W)
        mu, logvar = model.posterior(xb)  # (b, d) each
        std = torch.exp(0.5 * logvar)
        per_pass = max(1, batch_size // len(xb))  # samples per decoder call
        log_w = []
        for start in range(0, k, per_pass):
            s = min(per_pass, k - start)
            eps = torch.randn(
                (s, *mu.shape), generator=generator, device=mu.device, dtype=mu.dtype
            )  # (s, b, d)
            z = mu + std * eps
            x_hat = model.decode(z.flatten(0, 1)).unflatten(0, (s, len(xb)))  # (s, b, C, H, W)
            sq = (x_hat - xb).square().flatten(2).sum(-1).double()  # (s, b)
            log_px_z = -0.5 * sq / sigma**2 + log_norm
            # log p(z) - log q(z | x); the (d/2) log 2 pi of both cancel, and (z - mu)/std = eps
            log_pz_qz = 0.5 * (eps.square() - z.square() + logvar).sum(-1).double()
            log_w.append(log_px_z + log_pz_qz)
        out.append(torch.logsumexp(torch.cat(log_w), 0) - math.log(k))  # (b,)
    return torch.cat(out)


@torch.no_grad()
def elbo(
    model: BaseAutoencoder,
    x: torch.Tensor,
    samples: int = 16,
    *,
    sigma: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The evidence lower bound of each image, in nats: ``E_q[log p(x | z)] - KL(q(z | x) ||
    p(z))`` with the KL in closed form and the expectation over ``samples`` draws of ``z``.

    The observation model is :func:`log_likelihood`'s (a Gaussian decoder with
    :func:`observation_sigma` unless ``sigma`` is given); ``elbo <= log p(x)`` in expectation.

    Returns
    -------
    tensor ``(N,)``, float64
    """
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples={samples!r} is not valid; expected an integer >= 1")
    sigma, log_norm = _gaussian(model, sigma)
    mu, logvar = model.posterior(x)  # (N, d)
    kl = 0.5 * (mu.square() + logvar.exp() - 1 - logvar).sum(-1).double()
    eps = torch.randn((samples, *mu.shape), generator=generator, device=mu.device, dtype=mu.dtype)
    z = mu + torch.exp(0.5 * logvar) * eps  # (s, N, d)
    x_hat = model.decode(z.flatten(0, 1)).unflatten(0, (samples, len(x)))
    sq = (x_hat - x).square().flatten(2).sum(-1).double()  # (s, N)
    return (-0.5 * sq / sigma**2 + log_norm).mean(0) - kl
