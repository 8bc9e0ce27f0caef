"""Many linear models trained at once: one weight tensor, one pass per mini-batch for all.

SageMaker's Linear Learner trains ``num_models`` linear models side by side, each with its own
learning rate, L1/L2 strength and optimizer settings, and keeps the best. Here the weights of
every model live in one tensor (:attr:`ParallelLinear.weights` has shape (models, features,
outputs); it is stored features-first so that all models are scored by a single matrix
product ``X @ W`` of shape (rows, models * outputs)). Gradients are the closed form of each
loss (a linear model needs no autograd graph: ``dL/dW = X^T G``), so a step costs two matrix
products - forward and ``X^T G`` - however many models there are, and works the same for dense
and sparse (COO) features. The optimizers (SGD and RMSProp with momentum, Adam), L2 (``wd``),
L1 (a proximal step after each update), the bias multipliers and the learning-rate schedule
are applied to every model at once with per-model hyperparameter vectors: no Python loop
over models anywhere.

Models train on normalised features ``(x - mean) / scale`` (:class:`Normaliser`); the shift
and scale are folded into the product (``X @ (W / scale) - (mean / scale) @ W``) so sparse
features stay sparse. A regressor also trains on a normalised label.

Multi-host training splits :meth:`ParallelLinear.step` in two: :meth:`~ParallelLinear.gradients`
gives the gradient sums of this host's rows, :mod:`.distributed` sums them over the hosts (and
the row counts), and :meth:`~ParallelLinear.apply` takes one optimizer step with the mean: the
same update one host would make on the rows of all of them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .hyperparameters import ModelSettings

#: Adam's and RMSProp's denominator guard.
EPSILON = 1e-8
#: RMSProp's decay of the squared-gradient average (MXNet's ``gamma1`` default).
RMSPROP_DECAY = 0.9

#: Weights (features x models x outputs) below which one CPU thread trains fastest.
PARALLEL_WEIGHTS = 100_000


def cpu_threads(feature_dim: int, num_models: int, num_outputs: int, cpus: int) -> int:
    """The intra-op threads for training: one for small models, where a step is many tiny
    operations and threads only add synchronisation (measured: 2 threads made 32 models of
    100 features 14x slower on a 2-core machine with other work on it); every CPU otherwise."""
    if feature_dim * num_models * num_outputs < PARALLEL_WEIGHTS:
        return 1
    return max(1, cpus)


@dataclass(frozen=True)
class LossSpec:
    """A loss and its parameters (the same in every model)."""

    name: str
    margin: float = 1.0
    quantile: float = 0.5
    insensitivity: float = 0.01
    huber_delta: float = 1.0

    def scaled(self, label_scale: float) -> LossSpec:
        """The same loss on a label divided by *label_scale*: widths in label units shrink."""
        if label_scale == 1.0:
            return self
        return LossSpec(
            self.name,
            self.margin,
            self.quantile,
            self.insensitivity / label_scale,
            self.huber_delta / label_scale,
        )


def loss_and_gradient(
    spec: LossSpec, score: torch.Tensor, label: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row and model: the loss (rows, models) and its derivative by the score, shaped as
    *score* (rows, models, outputs). *label* has one value per row (a class index for
    ``softmax_loss``)."""
    name = spec.name
    if name == "softmax_loss":
        log_p = torch.log_softmax(score, dim=2)
        index = label.long().view(-1, 1, 1).expand(-1, score.shape[1], 1)
        loss = -log_p.gather(2, index).squeeze(2)
        grad = log_p.exp()
        grad.scatter_add_(2, index, torch.full_like(index, -1, dtype=grad.dtype))
        return loss, grad
    s = score[:, :, 0]
    y = label.view(-1, 1)
    if name == "logistic":
        # log(1 + exp(-s)) for y=1, log(1 + exp(s)) for y=0, without overflow
        loss = torch.nn.functional.softplus(s) - y * s
        grad = torch.sigmoid(s) - y
    elif name == "hinge_loss":
        sign = 2.0 * y - 1.0
        gap = spec.margin - sign * s
        loss = gap.clamp(min=0.0)
        grad = torch.where(gap > 0, -sign, torch.zeros_like(s))
    else:
        loss, grad = _regression(spec, s - y)
    return loss, grad.unsqueeze(2)


def _regression(spec: LossSpec, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss and derivative by the score of a regression loss of the residual ``score - y``."""
    name = spec.name
    if name == "squared_loss":
        return r * r, 2.0 * r
    if name == "absolute_loss":
        return r.abs(), torch.sign(r)
    if name in ("eps_insensitive_squared_loss", "eps_insensitive_absolute_loss"):
        excess = (r.abs() - spec.insensitivity).clamp(min=0.0)
        if name == "eps_insensitive_squared_loss":
            return excess * excess, 2.0 * excess * torch.sign(r)
        return excess, torch.where(excess > 0, torch.sign(r), torch.zeros_like(r))
    if name == "quantile_loss":
        q = spec.quantile
        # pinball loss of y - score: q above the quantile, 1 - q below
        return torch.maximum(-q * r, (1.0 - q) * r), torch.where(r < 0, -q, 1.0 - q)
    if name == "huber_loss":
        delta = spec.huber_delta
        if delta <= 0:  # the limit of Huber as delta -> 0 (per unit delta) is the absolute loss
            return r.abs(), torch.sign(r)
        small = r.abs() <= delta
        loss = torch.where(small, 0.5 * r * r, delta * (r.abs() - 0.5 * delta))
        return loss, torch.where(small, r, delta * torch.sign(r))
    raise ValueError(f"unknown loss {name!r}")


@dataclass(frozen=True)
class Normaliser:
    """Feature shift/scale (and the regressor's label shift/scale) the models train under."""

    feature_mean: np.ndarray
    feature_scale: np.ndarray
    label_mean: float = 0.0
    label_scale: float = 1.0
    #: Shift sparse features too (``unbias_data=true``); otherwise only dense ones are shifted.
    shift_sparse: bool = False

    @classmethod
    def identity(cls, feature_dim: int) -> Normaliser:
        return cls(np.zeros(feature_dim, np.float32), np.ones(feature_dim, np.float32))

    @classmethod
    def fit(
        cls,
        features: Any,
        label: np.ndarray,
        *,
        normalize_data: bool,
        unbias_data: bool,
        shift_sparse: bool,
        normalize_label: bool,
        unbias_label: bool,
    ) -> Normaliser:
        """Mean and standard deviation of a sample (dense array or scipy CSR); a feature that
        is constant in the sample keeps scale 1."""
        sparse = not isinstance(features, np.ndarray)
        rows = max(int(label.shape[0]), 1)
        # Two passes, the mean then the squares about it: E[x^2] - E[x]^2 leaves rounding
        # noise (1e-9 for 0.1 in 1000 rows) that a constant feature would be divided by.
        if sparse:
            coo = features.tocoo(copy=True)
            coo.sum_duplicates()
            values, column = coo.data.astype(np.float64), coo.col
            mean = np.bincount(column, weights=values, minlength=coo.shape[1]) / rows
            centred = values - mean[column]
            implicit = rows - np.bincount(column, minlength=coo.shape[1])  # zeros not stored
            stored = np.bincount(column, weights=centred * centred, minlength=coo.shape[1])
            squares = stored + implicit * mean * mean
        else:
            data = features.astype(np.float64, copy=False)
            mean = data.sum(axis=0) / rows
            squares = ((data - mean) ** 2).sum(axis=0)
        std = np.sqrt(np.maximum(squares / rows, 0.0))
        dim = mean.shape[0]
        shift = unbias_data and (shift_sparse or not sparse)
        scale = np.where(std > 1e-12, std, 1.0) if normalize_data else np.ones(dim)
        y = label.astype(np.float64)
        label_mean = float(y.mean()) if unbias_label and y.size else 0.0
        label_std = float(y.std()) if y.size else 0.0
        label_scale = label_std if normalize_label and label_std > 1e-12 else 1.0
        return cls(
            (mean if shift else np.zeros(dim)).astype(np.float32),
            scale.astype(np.float32),
            label_mean,
            label_scale,
            shift_sparse,
        )

    def to_dict(self) -> dict[str, Any]:
        """``Scaling model computed with parameters: {...}``, as SageMaker's log names it."""
        return {
            "stdev_weight": self.feature_scale.tolist(),
            "mean_weight": self.feature_mean.tolist(),
            "stdev_label": self.label_scale,
            "mean_label": self.label_mean,
        }


@dataclass(frozen=True)
class Rows:
    """A mini-batch on the training device: dense (rows, features) or sparse COO features."""

    features: torch.Tensor
    label: torch.Tensor
    #: Per-row weight for the gradient (``None``: 1 everywhere), shape (rows,) or (rows, models).
    weight: torch.Tensor | None = None

    @property
    def num_rows(self) -> int:
        return int(self.label.shape[0])

    @classmethod
    def of(cls, features: Any, label: np.ndarray, device: torch.device) -> Rows:
        if isinstance(features, np.ndarray):
            tensor = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
        else:
            coo = features.tocoo()
            index = np.vstack([coo.row, coo.col]).astype(np.int64)
            tensor = torch.sparse_coo_tensor(
                torch.from_numpy(index),
                torch.from_numpy(coo.data.astype(np.float32, copy=False)),
                coo.shape,
            ).coalesce()
        return cls(tensor.to(device), torch.from_numpy(label.astype(np.float32)).to(device))


def _matmul(features: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    product: torch.Tensor = (
        torch.sparse.mm(features, matrix) if features.is_sparse else features @ matrix
    )
    return product


def _transposed_matmul(features: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    product: torch.Tensor = (
        torch.sparse.mm(features.t(), matrix) if features.is_sparse else features.T @ matrix
    )
    return product


class ParallelLinear:
    """``len(settings)`` linear models of *feature_dim* inputs and *num_outputs* outputs."""

    def __init__(
        self,
        settings: Sequence[ModelSettings],
        feature_dim: int,
        num_outputs: int,
        *,
        loss: LossSpec,
        normaliser: Normaliser,
        use_bias: bool = True,
        init_method: str = "uniform",
        init_scale: float = 0.07,
        init_sigma: float = 0.01,
        init_bias: float = 0.0,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ) -> None:
        if not settings:
            raise ValueError("at least one model")
        self.settings = tuple(settings)
        self.device = torch.device(device)
        self.feature_dim = feature_dim
        self.num_outputs = num_outputs
        self.normaliser = normaliser
        self.use_bias = use_bias
        self.loss = loss
        #: The loss in the normalised label's units (what the gradient is taken of).
        self.train_loss = loss.scaled(normaliser.label_scale)
        self.optimizer = self.settings[0].optimizer
        count = len(self.settings)
        generator = torch.Generator().manual_seed(seed)
        shape = (feature_dim, count, num_outputs)
        if init_method == "normal":
            weight = torch.randn(shape, generator=generator) * init_sigma
        else:
            weight = (torch.rand(shape, generator=generator) * 2.0 - 1.0) * init_scale
        self._weight = weight.to(self.device)
        self._bias = torch.full((count, num_outputs), float(init_bias), device=self.device)
        if not use_bias:
            self._bias.zero_()
        self._hp = {name: self._vector(name) for name in _PER_MODEL}
        self._state: dict[str, torch.Tensor] = {}
        self.updates = 0
        self._inv_scale = torch.from_numpy(1.0 / normaliser.feature_scale).to(self.device)
        self._shift = torch.from_numpy(normaliser.feature_mean).to(self.device)
        # decided once, so that a step neither syncs with the device nor does no-op work
        self._scaled = bool((normaliser.feature_scale != 1.0).any())
        self._shifted = bool((normaliser.feature_mean != 0.0).any())
        self._has_l1 = any(s.l1 > 0 for s in self.settings)
        self._rmsprop_momentum = any(s.momentum > 0 for s in self.settings)

    def _vector(self, name: str) -> torch.Tensor:
        values = [float(getattr(s, name)) for s in self.settings]
        return torch.tensor(values, dtype=torch.float32, device=self.device)

    @property
    def num_models(self) -> int:
        return len(self.settings)

    @property
    def weights(self) -> torch.Tensor:
        """Every model's weights, (models, features, outputs) (a view)."""
        return self._weight.permute(1, 0, 2)

    @property
    def bias(self) -> torch.Tensor:
        """Every model's bias, (models, outputs)."""
        return self._bias

    # -- scoring -------------------------------------------------------------------------------
    def scores(self, features: torch.Tensor) -> torch.Tensor:
        """Raw scores (rows, models, outputs) in the normalised label's units."""
        flat = self._weight.reshape(self.feature_dim, -1)
        scaled = flat * self._inv_scale[:, None] if self._scaled else flat
        offset = self._bias.reshape(-1)
        if self._shifted:
            offset = offset - (self._shift * self._inv_scale) @ flat
        product = _matmul(features, scaled) + offset
        return product.view(-1, self.num_models, self.num_outputs)

    def label_scores(self, features: torch.Tensor) -> torch.Tensor:
        """Raw scores in the label's own units (de-normalised for a regressor)."""
        raw = self.scores(features)
        n = self.normaliser
        if n.label_scale != 1.0 or n.label_mean != 0.0:
            raw = raw * n.label_scale + n.label_mean
        return raw

    def losses(self, rows: Rows) -> torch.Tensor:
        """Each model's summed loss over *rows* (unweighted, in the label's units), (models,)."""
        loss, _ = loss_and_gradient(self.loss, self.label_scores(rows.features), rows.label)
        return loss.sum(dim=0)

    # -- training ------------------------------------------------------------------------------
    def gradients(self, rows: Rows) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Summed over *rows*: the weight gradient (features, models, outputs), the bias
        gradient (models, outputs) and each model's unweighted loss in label units (models,)."""
        score = self.scores(rows.features)
        n = self.normaliser
        label = rows.label
        if self.loss.name != "softmax_loss" and (n.label_scale != 1.0 or n.label_mean != 0.0):
            label = (label - n.label_mean) / n.label_scale
        loss, grad = loss_and_gradient(self.train_loss, score, label)
        if n.label_scale != 1.0 and self.loss.name != "softmax_loss":
            # the reported loss is in the label's units: rescale rather than evaluate twice
            loss = _loss_in_label_units(self.loss, loss, n.label_scale)
        if rows.weight is not None:
            weight = rows.weight if rows.weight.dim() == 2 else rows.weight[:, None]
            grad = grad * weight[:, :, None]
        flat_grad = grad.reshape(rows.num_rows, -1)
        # d(score)/dW through the folded normalisation: X / scale - mean / scale
        grad_w = _transposed_matmul(rows.features, flat_grad)
        summed = flat_grad.sum(dim=0)
        if self._shifted:
            grad_w = grad_w - torch.outer(self._shift, summed)
        if self._scaled:
            grad_w = grad_w * self._inv_scale[:, None]
        grad_b = summed.view(self.num_models, self.num_outputs)
        return grad_w.view_as(self._weight), grad_b, loss.sum(dim=0)

    def step(self, rows: Rows) -> torch.Tensor:
        """One update of every model on *rows*; returns each model's summed loss."""
        grad_w, grad_b, loss = self.gradients(rows)
        self.apply(grad_w, grad_b, float(rows.num_rows))
        return loss

    def apply(self, grad_w: torch.Tensor, grad_b: torch.Tensor, rows: float) -> None:
        """One optimizer step with gradient sums over *rows* rows (no step for zero rows)."""
        if rows <= 0:
            return
        self.updates += 1
        hp = self._hp
        lr = self.learning_rates()
        grad_w = grad_w / rows + hp["wd"].view(1, -1, 1) * self._weight
        grad_b = grad_b / rows + (hp["wd"] * hp["bias_wd_mult"]).view(-1, 1) * self._bias
        lr_w = lr.view(1, -1, 1)
        lr_b = (lr * hp["bias_lr_mult"]).view(-1, 1)
        self._weight -= self._direction("w", grad_w, (1, -1, 1)) * lr_w
        if self.use_bias:
            self._bias -= self._direction("b", grad_b, (-1, 1)) * lr_b
        if self._has_l1:
            # proximal step of the L1 penalty: shrink towards 0, stopping at 0
            shrink = lr_w * hp["l1"].view(1, -1, 1)
            self._weight = torch.sign(self._weight) * (self._weight.abs() - shrink).clamp(min=0.0)

    def _direction(self, key: str, grad: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        """The optimizer's update direction for *grad* (before the learning rate)."""
        hp = self._hp
        if self.optimizer == "sgd":
            momentum = hp["momentum"].view(shape)
            velocity = self._state.get(f"{key}.v")
            velocity = grad.clone() if velocity is None else momentum * velocity + grad
            self._state[f"{key}.v"] = velocity
            return velocity
        if self.optimizer == "rmsprop":
            square = self._state.get(f"{key}.s", torch.zeros_like(grad))
            square = RMSPROP_DECAY * square + (1.0 - RMSPROP_DECAY) * grad * grad
            self._state[f"{key}.s"] = square
            step = grad / (square.sqrt() + EPSILON)
            if not self._rmsprop_momentum:
                return step
            # momentum on the scaled step, as torch.optim.RMSprop(momentum=...) does
            buffer = self._state.get(f"{key}.b")
            buffer = step if buffer is None else hp["momentum"].view(shape) * buffer + step
            self._state[f"{key}.b"] = buffer
            return buffer
        beta_1, beta_2 = hp["beta_1"].view(shape), hp["beta_2"].view(shape)
        first = self._state.get(f"{key}.m", torch.zeros_like(grad))
        second = self._state.get(f"{key}.s", torch.zeros_like(grad))
        first = beta_1 * first + (1.0 - beta_1) * grad
        second = beta_2 * second + (1.0 - beta_2) * grad * grad
        self._state[f"{key}.m"], self._state[f"{key}.s"] = first, second
        t = float(self.updates)
        first_hat = first / (1.0 - beta_1**t)
        second_hat = second / (1.0 - beta_2**t)
        return first_hat / (second_hat.sqrt() + EPSILON)

    def learning_rates(self) -> torch.Tensor:
        """Each model's learning rate at the current update: ``learning_rate`` times
        ``lr_scheduler_factor`` once per ``lr_scheduler_step`` updates, never below
        ``lr_scheduler_minimum_lr`` (nor raised to it)."""
        hp = self._hp
        base = hp["learning_rate"]
        if not self.settings[0].use_lr_scheduler:
            return base
        decays = torch.floor((self.updates - 1) / hp["lr_scheduler_step"])
        decayed = base * hp["lr_scheduler_factor"] ** decays
        return torch.where(
            base > hp["lr_scheduler_minimum_lr"],
            torch.maximum(decayed, hp["lr_scheduler_minimum_lr"]),
            base,
        )

    # -- snapshots -----------------------------------------------------------------------------
    def snapshot(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._weight.clone(), self._bias.clone()

    def keep_improved(
        self, best: tuple[torch.Tensor, torch.Tensor], improved: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """*best* with the models where *improved* (models,) is true replaced by the current
        weights."""
        weight, bias = best
        weight = torch.where(improved.view(1, -1, 1), self._weight, weight)
        bias = torch.where(improved.view(-1, 1), self._bias, bias)
        return weight, bias

    def restore(self, snapshot: tuple[torch.Tensor, torch.Tensor]) -> None:
        self._weight, self._bias = snapshot[0].clone(), snapshot[1].clone()

    def model_arrays(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Model *index*'s weights (features, outputs) and bias (outputs,), in the normalised
        space it trained in, as float32 arrays."""
        weight = self._weight[:, index, :].detach().cpu().numpy().astype(np.float32)
        bias = self._bias[index].detach().cpu().numpy().astype(np.float32)
        return weight, bias


#: The ModelSettings fields held as per-model vectors.
_PER_MODEL = (
    "learning_rate",
    "wd",
    "l1",
    "momentum",
    "beta_1",
    "beta_2",
    "bias_lr_mult",
    "bias_wd_mult",
    "lr_scheduler_step",
    "lr_scheduler_factor",
    "lr_scheduler_minimum_lr",
)


def _loss_in_label_units(spec: LossSpec, loss: torch.Tensor, scale: float) -> torch.Tensor:
    """A regression loss computed on label/scale, in the label's own units: squared losses
    scale by scale**2, the others by scale (the widths were scaled with the label)."""
    if spec.name in ("squared_loss", "eps_insensitive_squared_loss"):
        return loss * (scale * scale)
    if spec.name == "huber_loss" and spec.huber_delta > 0:
        return loss * (scale * scale)
    return loss * scale


def positive_weights(
    settings: Sequence[ModelSettings], label: np.ndarray, device: torch.device
) -> torch.Tensor | None:
    """Per model, the weight of a positive example (``balanced``: negatives / positives of
    *label*, the scaler's sample); ``None`` when every model weighs them 1."""
    values = []
    positives = float((label == 1).sum())
    negatives = float(label.shape[0]) - positives
    for s in settings:
        mult = s.positive_example_weight_mult
        if mult == "balanced":
            values.append(negatives / positives if positives else 1.0)
        else:
            values.append(float(mult))
    if all(math.isclose(v, 1.0) for v in values):
        return None
    return torch.tensor(values, dtype=torch.float32, device=device)


def class_weights(label: np.ndarray, num_classes: int, device: torch.device) -> torch.Tensor:
    """``balance_multiclass_weights``: each class weighs rows / (classes * its count) in the
    sample, so every class contributes equally (a class absent from it weighs 1)."""
    counts = np.bincount(label.astype(np.int64), minlength=num_classes).astype(np.float64)
    total = counts.sum()
    weights = np.where(counts > 0, total / (num_classes * np.maximum(counts, 1)), 1.0)
    return torch.tensor(weights, dtype=torch.float32, device=device)


def row_weights(
    label: torch.Tensor,
    *,
    positive: torch.Tensor | None = None,
    classes: torch.Tensor | None = None,
) -> torch.Tensor | None:
    """The per-row (rows,) or per-row-and-model (rows, models) weights of a mini-batch."""
    if positive is not None:
        is_positive = (label == 1).float()[:, None]
        return 1.0 + is_positive * (positive[None, :] - 1.0)
    if classes is not None:
        return classes[label.long()]
    return None
