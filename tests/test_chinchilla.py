"""Epoch's refit of Chinchilla (Besiroglu et al. 2024) on their digitised data: SPEC.md section 5."""

import pytest

import mixlaw_jax as mj

EPOCH = {"A": 477.84, "B": 2143.86, "E": 1.8172, "alpha": 0.34731, "beta": 0.36718}
EPOCH_OBJECTIVE = 1.01827e-3


def test_chinchilla_epoch_refit(chinchilla_frame):
    runs = mj.load_runs(chinchilla_frame, weights=["h"], N="Model Size", D="D", targets=["loss"])
    assert runs.n_rows == 240
    result = mj.fit(
        runs,
        "chinchilla",
        objective=mj.Objective(loss_space="log", huber_delta=1e-3, reduction="sum"),
        parameter_bounds=None,
    )
    params = result.params["loss"]
    print({k: round(v, 5) for k, v in params.items()}, "objective", result.objective[0])
    for name, value in EPOCH.items():
        assert params[name] == pytest.approx(value, rel=5e-3), name
    assert result.objective[0] <= 1.01828e-3
