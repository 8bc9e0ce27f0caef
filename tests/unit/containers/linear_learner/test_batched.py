"""Linear Learner's batched models (sagedock.containers.linear_learner.batched) against
independent references: every loss and its closed-form gradient against torch.nn.functional,
scikit-learn and autograd; the models' gradients against autograd of the summed loss (through
the normalisation, sparse or dense, with row weights); the optimizers against torch.optim step
for step; M models trained together against each trained alone; the L1 proximal step, the
learning-rate schedule and the scaler against hand computations and numpy."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F  # noqa: N812 (the usual name)
from sklearn import metrics as sk
from sklearn.linear_model import LinearRegression
from sklearn.utils.class_weight import compute_class_weight

from sagedock.containers.linear_learner.batched import (
    LossSpec,
    Normaliser,
    ParallelLinear,
    Rows,
    class_weights,
    loss_and_gradient,
    positive_weights,
    row_weights,
)
from sagedock.containers.linear_learner.hyperparameters import (
    ModelSettings,
    parse_hyperparameters,
)

CPU = torch.device("cpu")
REGRESSION_LOSSES = (
    "squared_loss",
    "absolute_loss",
    "eps_insensitive_squared_loss",
    "eps_insensitive_absolute_loss",
    "quantile_loss",
    "huber_loss",
)
LOSSES = ("logistic", "hinge_loss", "softmax_loss", *REGRESSION_LOSSES)
#: Loss parameters whose kinks (0, +-insensitivity, +-huber_delta, margin) the test grids avoid.
SPEC_PARAMS: dict[str, Any] = {
    "margin": 1.0,
    "quantile": 0.3,
    "insensitivity": 0.2,
    "huber_delta": 1.0,
}
#: Residuals / scores at least 0.05 away from every kink of SPEC_PARAMS.
AWAY_FROM_KINKS = np.array([-2.7, -1.3, -0.55, -0.1, 0.05, 0.12, 0.45, 1.7, 3.1])


def predictor_of(loss: str) -> str:
    if loss in ("logistic", "hinge_loss"):
        return "binary_classifier"
    return "multiclass_classifier" if loss == "softmax_loss" else "regressor"


def model_settings(
    predictor: str = "binary_classifier", count: int = 1, **given: str
) -> tuple[ModelSettings, ...]:
    """Real per-model settings, as the hyperparameter parser resolves them."""
    raw = {
        "predictor_type": predictor,
        "num_models": str(count),
        "use_lr_scheduler": "false",
        **given,
    }
    if predictor == "multiclass_classifier":
        raw.setdefault("num_classes", "4")
    return parse_hyperparameters(raw, seed=0).models


# -- the reference losses ------------------------------------------------------------------------


def reference_loss(spec: LossSpec, score: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Per row and model (rows, models), from torch.nn.functional or the textbook formula;
    differentiable, so autograd of it is the reference gradient."""
    if spec.name == "softmax_loss":
        target = label.long()[:, None].expand(-1, score.shape[1])
        return F.cross_entropy(score.permute(0, 2, 1), target, reduction="none")
    s = score[:, :, 0]
    y = label[:, None].expand_as(s)
    if spec.name == "logistic":
        return F.binary_cross_entropy_with_logits(s, y, reduction="none")
    if spec.name == "hinge_loss":
        return torch.clamp(spec.margin - (2 * y - 1) * s, min=0)
    if spec.name == "squared_loss":
        return F.mse_loss(s, y, reduction="none")
    if spec.name == "absolute_loss":
        return F.l1_loss(s, y, reduction="none")
    if spec.name == "huber_loss":
        return F.huber_loss(s, y, delta=spec.huber_delta, reduction="none")
    if spec.name == "quantile_loss":
        u = y - s  # pinball: q * u above the prediction, (q - 1) * u below
        return torch.maximum(spec.quantile * u, (spec.quantile - 1) * u)
    excess = F.relu((s - y).abs() - spec.insensitivity)
    return excess**2 if spec.name == "eps_insensitive_squared_loss" else excess


def scores_and_labels(
    loss: str, rows: int = 9, models: int = 3, classes: int = 4, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores (rows, models, outputs) and labels whose residuals / margins avoid the kinks."""
    rng = np.random.default_rng(seed)
    if loss == "softmax_loss":
        score = rng.normal(size=(rows, models, classes)) * 2
        label = rng.integers(0, classes, rows)
    elif loss in ("logistic", "hinge_loss"):
        score = rng.choice(AWAY_FROM_KINKS, size=(rows, models, 1))
        label = np.arange(rows) % 2
    else:
        label = rng.normal(size=rows) * 3
        score = label[:, None, None] + rng.choice(AWAY_FROM_KINKS, size=(rows, models, 1))
    return (
        torch.tensor(score, dtype=torch.float32),
        torch.tensor(label, dtype=torch.float32),
    )


@pytest.mark.parametrize("loss", LOSSES)
def test_loss_values_are_the_reference_formula(loss: str) -> None:
    spec = LossSpec(loss, **SPEC_PARAMS)
    score, label = scores_and_labels(loss)
    value, grad = loss_and_gradient(spec, score, label)
    assert value.shape == score.shape[:2]
    assert grad.shape == score.shape
    torch.testing.assert_close(value, reference_loss(spec, score, label))


@pytest.mark.parametrize("loss", LOSSES)
def test_loss_gradient_is_autograd_of_the_loss(loss: str) -> None:
    spec = LossSpec(loss, **SPEC_PARAMS)
    score, label = scores_and_labels(loss, seed=1)
    _, grad = loss_and_gradient(spec, score, label)
    leaf = score.clone().requires_grad_(True)
    reference_loss(spec, leaf, label).sum().backward()
    assert leaf.grad is not None
    torch.testing.assert_close(grad, leaf.grad)


def test_loss_gradient_inside_the_insensitive_band_is_zero() -> None:
    label = torch.zeros(4)
    score = torch.tensor([-0.15, -0.01, 0.01, 0.15]).view(4, 1, 1)
    for name in ("eps_insensitive_squared_loss", "eps_insensitive_absolute_loss"):
        value, grad = loss_and_gradient(LossSpec(name, insensitivity=0.2), score, label)
        assert (value == 0).all() and (grad == 0).all()
    value, grad = loss_and_gradient(LossSpec("hinge_loss", margin=1.0), score + 2.0, label + 1)
    assert (value == 0).all() and (grad == 0).all()  # margins beyond 1: no loss


def test_mean_losses_match_scikit_learn() -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(size=40)
    prediction = y + rng.normal(size=40)
    score = torch.tensor(prediction, dtype=torch.float32).view(-1, 1, 1)
    label = torch.tensor(y, dtype=torch.float32)

    def mean(name: str, **params: float) -> float:
        return float(loss_and_gradient(LossSpec(name, **params), score, label)[0].mean())

    assert mean("squared_loss") == pytest.approx(sk.mean_squared_error(y, prediction), rel=1e-5)
    assert mean("absolute_loss") == pytest.approx(sk.mean_absolute_error(y, prediction), rel=1e-5)
    for q in (0.1, 0.5, 0.8):
        assert mean("quantile_loss", quantile=q) == pytest.approx(
            sk.mean_pinball_loss(y, prediction, alpha=q), rel=1e-5
        )
    binary = (y > 0).astype(np.float64)
    label = torch.tensor(binary, dtype=torch.float32)
    logistic = float(loss_and_gradient(LossSpec("logistic"), score, label)[0].mean())
    probability = 1 / (1 + np.exp(-prediction))
    assert logistic == pytest.approx(sk.log_loss(binary, probability), rel=1e-5)
    hinge = float(loss_and_gradient(LossSpec("hinge_loss", margin=1.0), score, label)[0].mean())
    assert hinge == pytest.approx(sk.hinge_loss(2 * binary - 1, prediction), rel=1e-5)


def test_softmax_loss_is_scikit_learns_log_loss() -> None:
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(30, 1, 5)) * 2
    label = rng.integers(0, 5, 30)
    value, _ = loss_and_gradient(
        LossSpec("softmax_loss"),
        torch.tensor(logits, dtype=torch.float32),
        torch.tensor(label, dtype=torch.float32),
    )
    p = np.exp(logits[:, 0]) / np.exp(logits[:, 0]).sum(axis=1, keepdims=True)
    expected = sk.log_loss(label, p, labels=range(5))
    assert float(value.mean()) == pytest.approx(expected, rel=1e-5)


def test_logistic_does_not_overflow_on_large_scores() -> None:
    score = torch.tensor([-200.0, 200.0, -200.0, 200.0]).view(4, 1, 1)
    label = torch.tensor([1.0, 0.0, 0.0, 1.0])
    value, grad = loss_and_gradient(LossSpec("logistic"), score, label)
    torch.testing.assert_close(value[:, 0], torch.tensor([200.0, 200.0, 0.0, 0.0]))
    torch.testing.assert_close(grad[:, 0, 0], torch.tensor([-1.0, 1.0, 0.0, 0.0]))


# -- the models' gradients -----------------------------------------------------------------------


def reference_scores(
    weights: torch.Tensor, bias: torch.Tensor, features: np.ndarray, normaliser: Normaliser
) -> torch.Tensor:
    """(rows, models, outputs) scores of the normalised features, the long way round."""
    x = torch.tensor(features, dtype=torch.float32)
    z = (x - torch.from_numpy(normaliser.feature_mean)) / torch.from_numpy(normaliser.feature_scale)
    return torch.einsum("rf,mfo->rmo", z, weights) + bias


def random_normaliser(dim: int, seed: int, **label: float) -> Normaliser:
    rng = np.random.default_rng(seed)
    return Normaliser(
        rng.normal(size=dim).astype(np.float32),
        rng.uniform(0.3, 3.0, size=dim).astype(np.float32),
        **label,
    )


def sparse_features(rows: int, dim: int, seed: int) -> np.ndarray:
    """Dense features with about half of them zero (to be given dense and as CSR)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, dim)) * 2
    x[rng.random((rows, dim)) < 0.5] = 0.0
    return x.astype(np.float32)


def labels_for(loss: str, rows: int, classes: int, rng: np.random.Generator) -> np.ndarray:
    if loss == "softmax_loss":
        return rng.integers(0, classes, rows).astype(np.float64)
    if loss in ("logistic", "hinge_loss"):
        return (rng.random(rows) < 0.4).astype(np.float64)
    return rng.normal(size=rows) * 5 + 2


CASES = [
    # loss, label mean, label scale
    ("logistic", 0.0, 1.0),
    ("hinge_loss", 0.0, 1.0),
    ("softmax_loss", 0.0, 1.0),
    ("squared_loss", 2.0, 4.5),
    ("huber_loss", 2.0, 4.5),
    ("quantile_loss", -1.0, 0.7),
    ("eps_insensitive_absolute_loss", 2.0, 4.5),
]


@pytest.mark.parametrize(("loss", "label_mean", "label_scale"), CASES)
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize("weighting", ["none", "rows", "rows_models"])
def test_gradients_are_autograd_of_the_summed_loss(
    loss: str, label_mean: float, label_scale: float, sparse: bool, weighting: str
) -> None:
    rows, dim, classes = 24, 6, 4
    rng = np.random.default_rng(7)
    outputs = classes if loss == "softmax_loss" else 1
    settings = model_settings(predictor_of(loss), count=3)
    normaliser = random_normaliser(dim, 5, label_mean=label_mean, label_scale=label_scale)
    spec = LossSpec(loss, margin=1.3, quantile=0.3, insensitivity=0.4, huber_delta=2.0)
    models = ParallelLinear(
        settings, dim, outputs, loss=spec, normaliser=normaliser, init_bias=0.2, seed=3
    )
    features = sparse_features(rows, dim, 11)
    label = labels_for(loss, rows, classes, rng)
    batch = Rows.of(sp.csr_matrix(features) if sparse else features, label, CPU)
    assert batch.features.is_sparse == sparse
    weight: torch.Tensor | None = None
    if weighting == "rows":
        weight = torch.tensor(rng.uniform(0.1, 3.0, rows), dtype=torch.float32)
    elif weighting == "rows_models":
        weight = torch.tensor(rng.uniform(0.1, 3.0, (rows, 3)), dtype=torch.float32)
    batch = Rows(batch.features, batch.label, weight)

    grad_w, grad_b, summed_loss = models.gradients(batch)

    w = models.weights.clone().requires_grad_(True)
    b = models.bias.clone().requires_grad_(True)
    score = reference_scores(w, b, features, normaliser)
    y = torch.tensor(label, dtype=torch.float32)
    if loss == "softmax_loss":
        train_label, train_spec = y, spec
    else:  # the regressor trains on the normalised label, widths in its units
        train_label = (y - label_mean) / label_scale
        train_spec = dataclasses.replace(
            spec,
            insensitivity=spec.insensitivity / label_scale,
            huber_delta=spec.huber_delta / label_scale,
        )
    per_row = reference_loss(train_spec, score, train_label)
    if weight is not None:
        per_row = per_row * (weight if weight.dim() == 2 else weight[:, None])
    per_row.sum().backward()
    assert w.grad is not None and b.grad is not None
    torch.testing.assert_close(grad_w.permute(1, 0, 2), w.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(grad_b, b.grad, rtol=1e-4, atol=1e-4)

    # the reported loss: unweighted, in the label's own units
    with torch.no_grad():
        label_units = score if loss == "softmax_loss" else score * label_scale + label_mean
        expected = reference_loss(spec, label_units, y).sum(dim=0)
    torch.testing.assert_close(summed_loss, expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(models.losses(batch), expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(models.label_scores(batch.features), label_units)


def test_sparse_gradients_equal_dense_gradients_with_shifted_sparse_features() -> None:
    features = sparse_features(30, 8, 2)
    label = (np.arange(30) % 3 == 0).astype(np.float64)
    normaliser = dataclasses.replace(random_normaliser(8, 1), shift_sparse=True)
    models = ParallelLinear(
        model_settings(count=2), 8, 1, loss=LossSpec("logistic"), normaliser=normaliser
    )
    dense = models.gradients(Rows.of(features, label, CPU))
    sparse = models.gradients(Rows.of(sp.csr_matrix(features), label, CPU))
    for a, b in zip(dense, sparse, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


# -- row weights ---------------------------------------------------------------------------------


def test_positive_weights_and_row_weights() -> None:
    label = np.array([1, 0, 0, 1, 0, 0, 0, 0], dtype=np.float64)  # 2 positives, 6 negatives
    base = model_settings(count=1)[0]
    settings = [
        dataclasses.replace(base, positive_example_weight_mult=value)
        for value in (1.0, "balanced", 2.5, 0.25)
    ]
    positive = positive_weights(settings, label, CPU)
    assert positive is not None
    torch.testing.assert_close(positive, torch.tensor([1.0, 3.0, 2.5, 0.25]))
    weight = row_weights(torch.tensor(label, dtype=torch.float32), positive=positive)
    assert weight is not None
    expected = np.where(label[:, None] == 1, [1.0, 3.0, 2.5, 0.25], 1.0)
    np.testing.assert_allclose(weight.numpy(), expected)

    assert positive_weights(settings[:1], label, CPU) is None  # every model weighs 1
    assert row_weights(torch.tensor(label)) is None
    # balanced without positives: weight 1
    no_positive = positive_weights(settings[1:2], np.zeros(4), CPU)
    assert no_positive is None


def test_class_weights_are_scikit_learns_balanced_weights() -> None:
    label = np.array([0, 0, 0, 1, 2, 2, 0, 1, 2, 0], dtype=np.float64)
    weights = class_weights(label, 3, CPU)
    expected = compute_class_weight("balanced", classes=np.arange(3), y=label.astype(int))
    np.testing.assert_allclose(weights.numpy(), expected, rtol=1e-6)
    per_row = row_weights(torch.tensor(label, dtype=torch.float32), classes=weights)
    assert per_row is not None
    np.testing.assert_allclose(per_row.numpy(), expected[label.astype(int)], rtol=1e-6)
    # a class absent from the sample weighs 1; the others rows / (classes * count)
    np.testing.assert_allclose(
        class_weights(np.array([0.0, 0.0, 1.0]), 3, CPU).numpy(), [3 / 6, 3 / 3, 1.0]
    )


# -- the optimizers ------------------------------------------------------------------------------


def batches(count: int, rows: int, dim: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    beta = rng.normal(size=dim)
    out = []
    for _ in range(count):
        x = (rng.normal(size=(rows, dim)) * 2 + 1).astype(np.float32)
        y = (x @ beta + rng.normal(size=rows) > 0).astype(np.float64)
        out.append((x, y))
    return out


OPTIMIZER_SETTINGS = {
    "sgd": {"momentum": "0.9", "learning_rate": "0.05"},
    "adam": {"beta_1": "0.8", "beta_2": "0.99", "learning_rate": "0.05"},
    "rmsprop": {"learning_rate": "0.01", "momentum": "0"},
    "rmsprop-momentum": {"learning_rate": "0.01", "momentum": "0.9"},
}


def torch_optimizer(
    name: str, s: ModelSettings, w: torch.Tensor, b: torch.Tensor
) -> torch.optim.Optimizer:
    groups: list[dict[str, Any]] = [
        {"params": [w], "weight_decay": s.wd},
        {
            "params": [b],
            "weight_decay": s.wd * s.bias_wd_mult,
            "lr": s.learning_rate * s.bias_lr_mult,
        },
    ]
    if name == "sgd":
        return torch.optim.SGD(groups, lr=s.learning_rate, momentum=s.momentum)
    if name == "adam":
        return torch.optim.Adam(groups, lr=s.learning_rate, betas=(s.beta_1, s.beta_2), eps=1e-8)
    # decay 0.9 (MXNet's), eps added to the root (as torch does), momentum on the scaled step
    return torch.optim.RMSprop(groups, lr=s.learning_rate, alpha=0.9, eps=1e-8, momentum=s.momentum)


@pytest.mark.parametrize("variant", ["sgd", "adam", "rmsprop", "rmsprop-momentum"])
def test_one_model_follows_torch_optim_step_for_step(variant: str) -> None:
    dim = 5
    optimizer = variant.split("-")[0]
    (s,) = model_settings(
        optimizer=optimizer,
        wd="0.03",
        l1="0",
        bias_wd_mult="0.5",
        bias_lr_mult="2.0",
        **OPTIMIZER_SETTINGS[variant],
    )
    assert s.optimizer == optimizer and not s.use_lr_scheduler
    normaliser = random_normaliser(dim, 2)
    models = ParallelLinear(
        [s], dim, 1, loss=LossSpec("logistic"), normaliser=normaliser, init_bias=0.3, seed=1
    )
    w = models.weights[0].clone().requires_grad_(True)  # (features, 1)
    b = models.bias[0].clone().requires_grad_(True)  # (1,)
    reference = torch_optimizer(optimizer, s, w, b)
    mean = torch.from_numpy(normaliser.feature_mean)
    scale = torch.from_numpy(normaliser.feature_scale)
    for x, y in batches(8, 16, dim, 0):
        models.step(Rows.of(x, y, CPU))
        reference.zero_grad()
        z = (torch.from_numpy(x) - mean) / scale
        target = torch.tensor(y, dtype=torch.float32)
        F.binary_cross_entropy_with_logits((z @ w)[:, 0] + b, target).backward()
        reference.step()
        torch.testing.assert_close(models.weights[0], w.detach(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(models.bias[0], b.detach(), rtol=1e-5, atol=1e-6)
    assert models.updates == 8


def rmsprop_by_hand(
    w: np.ndarray, grads: Sequence[np.ndarray], lr: float, decay: float = 0.9, eps: float = 1e-8
) -> np.ndarray:
    """Tieleman & Hinton's RMSProp: s = decay s + (1 - decay) g^2; w -= lr g / (sqrt(s) + eps)."""
    square = np.zeros_like(w)
    for g in grads:
        square = decay * square + (1 - decay) * g * g
        w = w - lr * g / (np.sqrt(square) + eps)
    return w


def test_rmsprop_is_the_hand_written_update() -> None:
    (s,) = model_settings(optimizer="rmsprop", learning_rate="0.01", wd="0", l1="0")
    models = ParallelLinear([s], 3, 1, loss=LossSpec("logistic"), normaliser=Normaliser.identity(3))
    start = models.weights[0, :, 0].numpy().astype(np.float64)
    rng = np.random.default_rng(0)
    grads = [rng.normal(size=3) * 10.0 ** rng.integers(-6, 1) for _ in range(6)]
    for g in grads:
        grad_w = torch.tensor(g, dtype=torch.float32).view(3, 1, 1)
        models.apply(grad_w, torch.zeros(1, 1), 1.0)
    expected = rmsprop_by_hand(start, grads, 0.01)
    np.testing.assert_allclose(models.weights[0, :, 0].numpy(), expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "rmsprop"])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_models_trained_together_equal_each_trained_alone(optimizer: str, sparse: bool) -> None:
    dim, count = 6, 5
    drawn = model_settings(
        count=count,
        optimizer=optimizer,
        use_lr_scheduler="true",
        positive_example_weight_mult="auto",
    )
    settings = [
        dataclasses.replace(
            s,
            lr_scheduler_step=1 + i,
            lr_scheduler_factor=0.8,
            bias_wd_mult=0.25 * i,
            bias_lr_mult=1.0 + 0.5 * i,
            l1=s.l1 * 100 if i % 2 else 0.0,
        )
        for i, s in enumerate(drawn)
    ]
    assert len({s.learning_rate for s in settings}) == count
    assert {s.positive_example_weight_mult for s in settings} > {1.0, "balanced"}
    data = batches(7, 20, dim, 3)
    sample = np.concatenate([y for _, y in data])
    normaliser = random_normaliser(dim, 4)
    spec = LossSpec("logistic")

    def train(group: Sequence[ModelSettings], start: tuple[torch.Tensor, torch.Tensor]) -> Any:
        models = ParallelLinear(group, dim, 1, loss=spec, normaliser=normaliser)
        models.restore(start)
        positive = positive_weights(group, sample, CPU)
        for x, y in data:
            rows = Rows.of(sp.csr_matrix(x) if sparse else x, y, CPU)
            rows = Rows(rows.features, rows.label, row_weights(rows.label, positive=positive))
            models.step(rows)
        return models

    together = ParallelLinear(settings, dim, 1, loss=spec, normaliser=normaliser, init_bias=0.1)
    weight, bias = together.snapshot()
    together = train(settings, (weight, bias))
    for i, s in enumerate(settings):
        alone = train([s], (weight[:, i : i + 1].clone(), bias[i : i + 1].clone()))
        torch.testing.assert_close(alone.weights[0], together.weights[i], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(alone.bias[0], together.bias[i], rtol=1e-5, atol=1e-6)
    # the models did differ from each other
    assert not torch.allclose(together.weights[0], together.weights[1])


def test_dense_and_sparse_training_give_the_same_weights() -> None:
    dim = 7
    rng = np.random.default_rng(5)
    features = sparse_features(200, dim, 6)
    label = (features @ rng.normal(size=dim) > 0).astype(np.float64)
    settings = model_settings(count=4, optimizer="adam")
    normaliser = Normaliser.fit(
        sp.csr_matrix(features),
        label,
        normalize_data=True,
        unbias_data=True,
        shift_sparse=True,
        normalize_label=False,
        unbias_label=False,
    )
    trained = []
    for make in (np.asarray, sp.csr_matrix):
        models = ParallelLinear(
            settings, dim, 1, loss=LossSpec("logistic"), normaliser=normaliser, seed=2
        )
        for _ in range(3):
            for start in range(0, 200, 25):
                end = start + 25
                models.step(Rows.of(make(features[start:end]), label[start:end], CPU))
        trained.append(models.snapshot())
    torch.testing.assert_close(trained[0][0], trained[1][0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(trained[0][1], trained[1][1], rtol=1e-4, atol=1e-5)


def test_zero_rows_is_no_step() -> None:
    models = ParallelLinear(
        model_settings(), 3, 1, loss=LossSpec("logistic"), normaliser=Normaliser.identity(3)
    )
    before = models.snapshot()
    models.apply(torch.ones(3, 1, 1), torch.ones(1, 1), 0.0)
    assert models.updates == 0
    torch.testing.assert_close(models.snapshot(), before)


# -- L1 ------------------------------------------------------------------------------------------


def soft_threshold(w: np.ndarray, amount: float) -> np.ndarray:
    return np.sign(w) * np.maximum(np.abs(w) - amount, 0.0)


@pytest.mark.parametrize("l1", [0.05, 0.5, 10.0])
def test_l1_is_a_soft_threshold_after_the_gradient_step(l1: float) -> None:
    dim, lr = 8, 0.1
    (s,) = model_settings(optimizer="sgd", momentum="0", wd="0", l1=str(l1), learning_rate="0.1")
    normaliser = random_normaliser(dim, 8)
    models = ParallelLinear(
        [s], dim, 1, loss=LossSpec("logistic"), normaliser=normaliser, init_scale=0.5, seed=4
    )
    w = models.weights.clone().requires_grad_(True)
    b = models.bias.clone().requires_grad_(True)
    ((x, y),) = batches(1, 32, dim, 9)
    score = reference_scores(w, b, x, normaliser)
    reference_loss(
        LossSpec("logistic"), score, torch.tensor(y, dtype=torch.float32)
    ).mean().backward()
    assert w.grad is not None and b.grad is not None
    models.step(Rows.of(x, y, CPU))

    moved = (w - lr * w.grad).detach().numpy()
    expected = soft_threshold(moved, lr * l1)
    np.testing.assert_allclose(models.weights.numpy(), expected, rtol=1e-5, atol=1e-6)
    zero = models.weights.numpy() == 0.0
    np.testing.assert_array_equal(zero, np.abs(moved) <= lr * l1)  # exactly 0, not tiny
    if l1 == 10.0:
        assert zero.all()
    elif l1 == 0.05:
        assert not zero.any()
    # the bias is not shrunk
    torch.testing.assert_close(models.bias, (b - lr * b.grad).detach())


def test_l1_shrinks_towards_zero_and_stops_there() -> None:
    lr, l1 = 0.1, 0.3  # shrink 0.03 per step
    (s,) = model_settings(optimizer="sgd", momentum="0", wd="0", l1=str(l1), learning_rate="0.1")
    models = ParallelLinear([s], 6, 1, loss=LossSpec("logistic"), normaliser=Normaliser.identity(6))
    start = np.array([0.2, -0.2, 0.07, -0.05, 0.01, 0.0], dtype=np.float32).reshape(6, 1, 1)
    models.restore((torch.from_numpy(start), torch.zeros(1, 1)))
    for step in range(1, 10):
        models.apply(torch.zeros(6, 1, 1), torch.zeros(1, 1), 1.0)
        expected = soft_threshold(start[:, 0, 0].astype(np.float64), step * lr * l1)
        np.testing.assert_allclose(models.weights[0, :, 0].numpy(), expected, atol=1e-6)
        assert ((models.weights[0, :, 0].numpy() == 0) == (expected == 0)).all()
    assert (models.weights == 0).all()


def test_l1_is_per_model() -> None:
    base = model_settings(optimizer="sgd", momentum="0", wd="0", learning_rate="1.0")[0]
    settings = [dataclasses.replace(base, l1=value) for value in (0.0, 0.05, 1.0)]
    models = ParallelLinear(
        settings, 4, 1, loss=LossSpec("logistic"), normaliser=Normaliser.identity(4)
    )
    start = torch.tensor([0.5, -0.3, 0.04, -0.01]).view(4, 1, 1).repeat(1, 3, 1)
    models.restore((start, torch.zeros(3, 1)))
    models.apply(torch.zeros(4, 3, 1), torch.zeros(3, 1), 1.0)
    values = start[:, 0, 0].numpy().astype(np.float64)
    for i, amount in enumerate((0.0, 0.05, 1.0)):
        np.testing.assert_allclose(
            models.weights[i, :, 0].numpy(), soft_threshold(values, amount), atol=1e-7
        )


# -- the learning-rate schedule ------------------------------------------------------------------


def test_learning_rate_schedule_against_a_hand_computed_sequence() -> None:
    base = model_settings(optimizer="sgd", momentum="0", wd="0", l1="0", use_lr_scheduler="true")[0]
    schedules = [
        # learning_rate, step, factor, minimum
        (0.1, 3, 0.5, 0.01),
        (0.05, 2, 0.9, 0.2),  # minimum above the learning rate: the rate stays
        (1.0, 1, 0.5, 0.1),
        (0.2, 100, 0.99, 1e-5),
    ]
    settings = [
        dataclasses.replace(
            base,
            learning_rate=lr,
            lr_scheduler_step=step,
            lr_scheduler_factor=factor,
            lr_scheduler_minimum_lr=minimum,
        )
        for lr, step, factor, minimum in schedules
    ]
    expected = np.array(
        [
            # updates 1..13
            [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.0125, 0.0125, 0.0125, 0.01],
            [0.05] * 13,
            [1.0, 0.5, 0.25, 0.125, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1],
            [0.2] * 13,
        ]
    ).T
    models = ParallelLinear(
        settings, 2, 1, loss=LossSpec("logistic"), normaliser=Normaliser.identity(2)
    )
    models.restore((torch.zeros(2, 4, 1), torch.zeros(4, 1)))
    used = []
    for _ in range(13):
        before = models.weights[:, 0, 0].clone()
        # a unit gradient: plain SGD moves each weight by exactly its learning rate
        models.apply(torch.ones(2, 4, 1), torch.zeros(4, 1), 1.0)
        used.append((before - models.weights[:, 0, 0]).numpy())
        np.testing.assert_allclose(models.learning_rates().numpy(), expected[len(used) - 1])
    np.testing.assert_allclose(np.array(used), expected, rtol=1e-4)

    # the schedule off: the learning rate throughout
    still = ParallelLinear(
        [dataclasses.replace(s, use_lr_scheduler=False) for s in settings],
        2,
        1,
        loss=LossSpec("logistic"),
        normaliser=Normaliser.identity(2),
    )
    for _ in range(13):
        still.apply(torch.zeros(2, 4, 1), torch.zeros(4, 1), 1.0)
    np.testing.assert_allclose(still.learning_rates().numpy(), [0.1, 0.05, 1.0, 0.2])


# -- the scaler ----------------------------------------------------------------------------------


def fit(features: Any, label: np.ndarray, **options: bool) -> Normaliser:
    defaults = {
        "normalize_data": True,
        "unbias_data": True,
        "shift_sparse": False,
        "normalize_label": False,
        "unbias_label": False,
    }
    return Normaliser.fit(features, label, **{**defaults, **options})


def test_normaliser_dense_mean_and_std_are_numpys() -> None:
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(50, 4)) * [1.0, 10.0, 0.1, 3.0] + [0.0, 5.0, -2.0, 100.0]).astype(
        np.float32
    )
    n = fit(x, np.zeros(50))
    np.testing.assert_allclose(n.feature_mean, x.astype(np.float64).mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(n.feature_scale, x.astype(np.float64).std(axis=0), rtol=1e-5)
    assert n.label_mean == 0.0 and n.label_scale == 1.0
    unshifted = fit(x, np.zeros(50), unbias_data=False)
    np.testing.assert_array_equal(unshifted.feature_mean, np.zeros(4))
    np.testing.assert_allclose(unshifted.feature_scale, n.feature_scale)
    unscaled = fit(x, np.zeros(50), normalize_data=False)
    np.testing.assert_array_equal(unscaled.feature_scale, np.ones(4))
    np.testing.assert_allclose(unscaled.feature_mean, n.feature_mean)
    assert n.to_dict()["stdev_weight"] == pytest.approx(n.feature_scale.tolist())


def test_normaliser_sparse_is_not_shifted_unless_asked() -> None:
    x = sparse_features(60, 5, 3)
    dense = x.astype(np.float64)
    n = fit(sp.csr_matrix(x), np.zeros(60))
    np.testing.assert_array_equal(n.feature_mean, np.zeros(5))
    np.testing.assert_allclose(n.feature_scale, dense.std(axis=0), rtol=1e-5)
    shifted = fit(sp.csr_matrix(x), np.zeros(60), shift_sparse=True)
    assert shifted.shift_sparse
    np.testing.assert_allclose(shifted.feature_mean, dense.mean(axis=0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(shifted.feature_scale, dense.std(axis=0), rtol=1e-5)
    # unbias_data=false shifts nothing, even with shift_sparse
    plain = fit(sp.csr_matrix(x), np.zeros(60), unbias_data=False, shift_sparse=True)
    np.testing.assert_array_equal(plain.feature_mean, np.zeros(5))


@pytest.mark.parametrize("value", [0.1, 3.7, 1.0, 0.0, -12345.678])
@pytest.mark.parametrize("rows", [7, 1000, 5000])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_normaliser_constant_column_keeps_scale_1(value: float, rows: int, sparse: bool) -> None:
    rng = np.random.default_rng(rows)
    x = rng.normal(size=(rows, 3)).astype(np.float32)
    x[:, 1] = value
    features: Any = sp.csr_matrix(x) if sparse else x
    n = fit(features, np.zeros(rows), shift_sparse=True)
    assert n.feature_scale[1] == 1.0
    np.testing.assert_allclose(n.feature_mean[1], value, rtol=1e-6)
    np.testing.assert_allclose(n.feature_scale[[0, 2]], x[:, [0, 2]].std(axis=0), rtol=1e-4)


def test_a_constant_column_does_not_blow_up_the_scores() -> None:
    # 0.1 in every one of 1000 rows: E[x^2] - E[x]^2 in float64 is about 1e-18, not 0
    x = np.random.default_rng(0).normal(size=(1000, 2)).astype(np.float32)
    x[:, 1] = 0.1
    label = (x[:, 0] > 0).astype(np.float64)
    n = fit(x, label)
    models = ParallelLinear(
        model_settings(), 2, 1, loss=LossSpec("logistic"), normaliser=n, init_scale=0.07
    )
    batch = Rows.of(x, label, CPU)
    w = models.weights[0, :, 0].numpy().astype(np.float64)
    b = float(models.bias[0, 0])
    expected = (x[:, 0] - n.feature_mean[0]) / n.feature_scale[0] * w[0] + b  # column 1 is 0
    np.testing.assert_allclose(models.scores(batch.features)[:, 0, 0].numpy(), expected, atol=1e-4)
    grad_w, _, _ = models.gradients(batch)
    assert abs(float(grad_w[1, 0, 0])) < 1e-2  # (x - mean) is 0 in every row


def test_normaliser_label_scaling_for_regressors() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    y = rng.normal(size=40) * 7 + 30
    n = fit(x, y, normalize_label=True, unbias_label=True)
    assert n.label_mean == pytest.approx(y.mean())
    assert n.label_scale == pytest.approx(y.std())
    assert fit(x, y, normalize_label=True).label_mean == 0.0
    assert fit(x, y, unbias_label=True).label_scale == 1.0
    constant = fit(x, np.full(40, 2.5), normalize_label=True, unbias_label=True)
    assert constant.label_scale == 1.0 and constant.label_mean == pytest.approx(2.5)


def test_loss_spec_scaled_divides_the_widths() -> None:
    spec = LossSpec("huber_loss", margin=2.0, quantile=0.2, insensitivity=0.5, huber_delta=3.0)
    assert spec.scaled(1.0) is spec
    assert spec.scaled(2.0) == LossSpec("huber_loss", 2.0, 0.2, 0.25, 1.5)


# -- training end to end -------------------------------------------------------------------------


def epochs(
    models: ParallelLinear, x: np.ndarray, y: np.ndarray, count: int, batch: int = 50
) -> None:
    for _ in range(count):
        for start in range(0, len(y), batch):
            models.step(Rows.of(x[start : start + batch], y[start : start + batch], CPU))


def test_training_separates_a_separable_dataset() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 5))
    margin = x @ np.array([1.5, -2.0, 0.5, 0.0, 1.0]) + 0.4
    keep = np.abs(margin) > 0.3
    x, y = x[keep].astype(np.float32), (margin[keep] > 0).astype(np.float64)
    settings = model_settings(count=4, use_lr_scheduler="true")
    models = ParallelLinear(settings, 5, 1, loss=LossSpec("logistic"), normaliser=fit(x, y))
    epochs(models, x, y, 5, batch=100)
    with torch.no_grad():
        predicted = torch.sigmoid(models.label_scores(torch.from_numpy(x))[:, :, 0]) >= 0.5
    accuracy = (predicted.numpy() == (y[:, None] == 1)).mean(axis=0)
    assert accuracy[0] >= 0.97
    assert accuracy.max() >= 0.98


def test_training_a_multiclass_classifier() -> None:
    rng = np.random.default_rng(1)
    centres = np.array([[3.0, 0.0], [-3.0, 0.0], [0.0, 3.0]])
    y = rng.integers(0, 3, 450)
    x = (centres[y] + rng.normal(size=(450, 2)) * 0.6).astype(np.float32)
    settings = model_settings("multiclass_classifier", count=2, num_classes="3")
    models = ParallelLinear(
        settings, 2, 3, loss=LossSpec("softmax_loss"), normaliser=fit(x, y.astype(np.float64))
    )
    epochs(models, x, y.astype(np.float64), 5)
    with torch.no_grad():
        predicted = models.label_scores(torch.from_numpy(x)).argmax(dim=2).numpy()
    assert (predicted[:, 0] == y).mean() >= 0.97


def test_training_a_regressor_recovers_least_squares() -> None:
    rng = np.random.default_rng(2)
    x = (rng.normal(size=(400, 4)) * [1.0, 5.0, 0.2, 2.0] + [0, 10, 0, -3]).astype(np.float32)
    y = x @ np.array([2.0, -0.5, 10.0, 1.0]) + 40 + rng.normal(size=400) * 0.1
    normaliser = fit(x, y, normalize_label=True, unbias_label=True)
    assert normaliser.label_scale > 1 and normaliser.label_mean > 30
    settings = model_settings("regressor", count=2, wd="0", l1="0", learning_rate="0.1")
    models = ParallelLinear(settings, 4, 1, loss=LossSpec("squared_loss"), normaliser=normaliser)
    epochs(models, x, y, 12, batch=100)
    least_squares = LinearRegression().fit(x, y).predict(x)
    with torch.no_grad():
        ours = models.label_scores(torch.from_numpy(x))[:, 0, 0].numpy()
    assert np.abs(ours - least_squares).mean() < 0.05 * y.std()


def test_keep_improved_takes_the_improved_models() -> None:
    settings = model_settings(count=3)
    models = ParallelLinear(
        settings, 2, 1, loss=LossSpec("logistic"), normaliser=Normaliser.identity(2)
    )
    best = (torch.zeros(2, 3, 1), torch.zeros(3, 1))
    weight, bias = models.keep_improved(best, torch.tensor([True, False, True]))
    torch.testing.assert_close(weight[:, [0, 2]], models.weights.permute(1, 0, 2)[:, [0, 2]])
    assert (weight[:, 1] == 0).all() and (bias[1] == 0).all()
    models.restore((weight, bias))
    w, b = models.model_arrays(1)
    assert w.shape == (2, 1) and b.shape == (1,) and not w.any()
