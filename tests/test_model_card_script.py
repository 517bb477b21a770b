"""scripts/model_card.py's training-loss trend: a falling loss is reported as not converged, a flat one is not."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "model_card.py"


def _card_module():
    spec = importlib.util.spec_from_file_location("model_card_script", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _log(loss):
    return {"loss_curve": {"step": [25 * (i + 1) for i in range(len(loss))], "loss": list(loss)}}


def test_loss_trend_tells_a_falling_loss_from_a_flat_one():
    card = _card_module()
    rng = np.random.default_rng(0)
    steps = 25 * np.arange(1, 401)
    falling = card.loss_trend(_log(0.2 * (steps / 25.0) ** -0.3 + rng.normal(0, 0.002, steps.size)))
    flat = card.loss_trend(_log(0.07 + rng.normal(0, 0.002, steps.size)))
    assert falling["window_steps"] == 2500 and falling["change"] < -2 * falling["change_se"]
    assert abs(flat["change"]) < 3 * flat["change_se"]
    # the windows are the last quarter of the run and the quarter before it
    quarters = card.loss_trend(_log(np.select([steps <= 5000, steps <= 7500], [0.3, 0.2], 0.1)))
    np.testing.assert_allclose([quarters["last"], quarters["previous"], quarters["change"]], [0.1, 0.2, -0.1])
    assert card.loss_trend({}) is None and card.loss_trend(_log([0.1, 0.09])) is None
