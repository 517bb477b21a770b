"""scripts/model_card.py: the loss trend, the lr history, the discretisation diagnostic, the sampler choice and the gate."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "model_card.py"


def _card_module():
    spec = importlib.util.spec_from_file_location("model_card_script", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    with mock.patch.dict(os.environ):  # the script's import-time os.environ defaults stay in the script's run
        spec.loader.exec_module(mod)
    return mod


def _tiny_pipe():
    """A random-weight TinyVideoPipeline of 4 frames × 8 × 8 on DDIM, seeded (the card's functions only need one)."""
    import torch

    from freeinit_lab.embedded.models import TinyVideoUNet
    from freeinit_lab.embedded.pipelines import TinyVideoPipeline, default_scheduler

    torch.manual_seed(0)
    unet = TinyVideoUNet(block_channels=(8, 16), sample_size=8, num_frames=4, space_to_depth=2,
                         attention_heads=0, norm_groups=4).eval()
    pipe = TinyVideoPipeline(unet=unet, scheduler=default_scheduler(set_alpha_to_one=True))
    pipe.set_progress_bar_config(disable=True)
    return pipe


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


def test_loss_trend_of_a_widened_network_uses_its_own_steps_only():
    card = _card_module()
    steps = 25 * np.arange(1, 401)
    # the narrow network fell until step 8,000 (where it was widened); the wide one is flat after it
    log = _log(np.where(steps <= 8000, 0.3 - 2e-5 * steps, 0.1))
    mixed = card.loss_trend(log)
    assert mixed["change"] < -2 * mixed["change_se"] and mixed["first_step"] == 0  # windows reach into the narrow run
    log["widened_from"] = {"step": 8000}
    own = card.loss_trend(log)
    assert own["first_step"] == 8000 and own["window_steps"] == 500  # a quarter of the 2,000 own steps, at least 500
    np.testing.assert_allclose([own["last"], own["previous"], own["change"]], [0.1, 0.1, 0.0])
    log["widened_from"] = {"step": 9990}  # too few own points to judge
    assert card.loss_trend(log) is None


def test_a_widened_network_says_where_its_steps_come_from():
    card = _card_module()
    assert card.widened_text({"steps": 5}) == ""
    wf = dict(source="data/default_model", step=33338, from_block_channels=[32, 64, 96], factor=2, split_noise=0.1,
              split_seed=0)
    text = card.widened_text({"widened_from": wf})
    assert "Widened 2× from the [32, 64, 96] network of `data/default_model` at its step 33,338" in text
    assert "include the narrow network's" in text


def test_lr_history_names_each_sessions_learning_rate():
    card = _card_module()
    assert card.lr_history({"lr": 1e-3, "sessions": [{"start_step": 0}]}) == "0.001"
    log = {"lr": 2.5e-4, "sessions": [{"start_step": 0, "lr": 1e-3}, {"start_step": 900, "lr": 1e-3},
                                      {"start_step": 1800, "lr": 2.5e-4}]}
    assert card.lr_history(log) == "0.001 from step 0, 0.00025 from step 1,800"
    assert card.lr_history({"sessions": [{"start_step": 0}, {"start_step": 5, "lr": 1e-4}]}) == \
        "? from step 0, 0.0001 from step 5"


def test_discretisation_pairs_the_starts_and_isolates_the_step_size():
    import pytest
    import torch

    card = _card_module()
    pipe = _tiny_pipe()
    clean = torch.randn(16, 3, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    smp = dict(card.SAMPLERS["ddim25"], num_inference_steps=3)
    from freeinit_lab.analysis.fidelity import training_marginal_latents

    start = training_marginal_latents(clean, card.scheduler_for(smp), 3,
                                           generator=torch.Generator().manual_seed(7))
    coarse = card.sample(pipe, smp, start, seed=9)
    same = card.discretisation(pipe, smp, clean, coarse, factor=1, start_seed=7, seed=9)
    assert torch.equal(same["samples"], coarse)  # factor 1: the same sampler from the same starts
    np.testing.assert_array_equal(same["gap"].spatial_db, 0.0)
    finer = card.discretisation(pipe, smp, clean, coarse, factor=4, start_seed=7, seed=9)
    assert finer["sampler"]["num_inference_steps"] == 12 and not torch.equal(finer["samples"], coarse)
    assert np.all(np.isfinite(finer["gap"].spatial_db)) and np.any(finer["gap"].spatial_db != 0)
    with pytest.raises(ValueError, match="another timestep"):  # 'leading' spacing starts lower with more steps
        card.discretisation(pipe, dict(smp, timestep_spacing="leading"), clean, coarse, factor=4, start_seed=7, seed=9)
    with pytest.raises(ValueError, match="factor must be"):
        card.discretisation(pipe, smp, clean, coarse, factor=0, start_seed=7, seed=9)


def test_choose_sampler_prefers_more_gate_criteria_then_the_cheapest_equal_accuracy():
    from types import SimpleNamespace

    card = _card_module()

    def cand(steps, acc, lo, hi, passed, fd=10.0):
        gate = {f"c{i}": (i < passed, 0.0, 0.0) for i in range(6)}
        gate["passed"] = passed == 6
        return dict(sampler={"num_inference_steps": steps},
                    report=SimpleNamespace(accuracy=acc, accuracy_low=lo, accuracy_high=hi, frechet=fd), gate=gate)

    q = {"d25": cand(25, 0.91, 0.85, 0.95, 2), "d50": cand(50, 0.90, 0.84, 0.94, 2), "d100": cand(100, 0.90, 0.83, 0.94, 3)}
    assert card.choose_sampler(q) == "d100"  # passes more criteria, whatever it costs
    q["d100"] = cand(100, 0.90, 0.83, 0.94, 2)
    assert card.choose_sampler(q) == "d25"  # same criteria, overlapping accuracy: the cheapest
    q["d25"] = cand(25, 0.99, 0.96, 1.00, 2)
    assert card.choose_sampler(q) == "d50"  # d25's accuracy is worse beyond its interval
    # equal steps and accuracy (two 25-step solvers): the lower Fréchet distance, whatever the listing order
    q = {"a25": cand(25, 0.875, 0.81, 0.92, 3, fd=11.0), "b25": cand(25, 0.875, 0.81, 0.92, 3, fd=10.6)}
    assert card.choose_sampler(q) == "b25" and card.choose_sampler(dict(reversed(q.items()))) == "b25"
    import pytest

    with pytest.raises(ValueError, match="no sampler"):
        card.choose_sampler({})


def test_the_card_gate_is_part_one_alone_and_part_two_is_reported():
    """Part 2 (plain noise within ±1.5 dB of the exact-score *Gaussian* model) is a diagnostic: exact only for
    Gaussian data, it neither passes nor fails the card."""
    card = _card_module()
    near, far = SimpleNamespace(max_abs_db=0.4), SimpleNamespace(max_abs_db=3.8)
    for part1 in (True, False):
        for gap in (near, far):
            passed, diag = card.card_gate({"passed": part1}, gap)
            assert passed is part1
            assert diag["band_power_vs_exact_score_db"] == (gap is near, gap.max_abs_db, 1.5)


def test_repeat_seeds_keep_each_evaluation_apart():
    import pytest

    card = _card_module()
    assert card.repeat_seeds(910_000_000, 3, 64) == [911_000_000, 912_000_000, 913_000_000]
    assert card.repeat_seeds(910_000_000, 0, 64) == []
    # one evaluation of n videos reaches seed + 11 n (its plain noise): never into the next repeat's range
    n = 64
    used = [(sd, sd + 11 * n) for sd in [910_000_000, *card.repeat_seeds(910_000_000, 4, n)]]
    assert all(hi < lo2 for (_, hi), (lo2, _) in zip(used, used[1:]))
    with pytest.raises(ValueError, match="overlap the next repeat seed"):
        card.repeat_seeds(910_000_000, 2, card.REPEAT_SPACING // 11 + 1)
    with pytest.raises(ValueError, match=">= 0"):
        card.repeat_seeds(910_000_000, -1, 64)


def test_gate_row_shows_each_criterion_and_the_count():
    card = _card_module()
    gate = {"two_sample_accuracy": (False, 0.84, 0.7), "spatial_band_power_db": (True, 1.115, 1.5),
            "temporal_band_power_db": (False, 1.557, 1.5), "precision": (True, 0.844, 0.6),
            "recall": (False, 0.594, 0.6), "memorisation": (True, 0.0, 0.0), "passed": False}
    rep = SimpleNamespace(accuracy=0.84, accuracy_low=0.76, accuracy_high=0.89)
    row = card.gate_row(dict(seed=911_000_000, gate=gate, report=rep))
    assert row == "| 911,000,000 | 0.840 [0.760, 0.890] | 1.11 | 1.56 | 0.844 | 0.594 | 0.000 | 3 / 6 |"


def _tiny_folder(tmp_path) -> Path:
    """A model folder exported by scripts/train_default_model.py with no training step (4 × 16 × 16 videos, a
    two-level UNet): its training_log.json describes its unet/ and normalizer/."""
    spec = importlib.util.spec_from_file_location("train_default_model_script", SCRIPT.parent / "train_default_model.py")
    train = importlib.util.module_from_spec(spec)
    with mock.patch.dict(os.environ):
        spec.loader.exec_module(train)
    out = tmp_path / "model"
    train.main(["--out", str(out), "--ckpt-dir", str(tmp_path / "ck"), "--frames", "4", "--size", "16",
                "--block-channels", "8,16", "--norm-videos", "8", "--data-workers", "0", "--max-steps", "0"])
    return out


def test_the_card_refuses_a_training_log_that_describes_another_model(tmp_path):
    """The card quotes training_log.json's architecture, size and normalisation beside the numbers of the model in
    unet/; a log edited (or copied from another run) to say block_channels [32, 64, 128] and 3,000,000 parameters
    once gave a card saying so of the [32, 64, 96], 2,004,044-parameter default, after 2 min 44 s of evaluation.
    Now each disagreement is named and the card stops before sampling anything."""
    from freeinit_lab.embedded.pipelines import DEFAULT_MODEL_DIR, load_default_pipeline

    card = _card_module()
    shipped = json.loads((DEFAULT_MODEL_DIR / "training_log.json").read_text())
    assert card.folder_disagreements(shipped, load_default_pipeline()) == []
    folder = _tiny_folder(tmp_path)
    log = json.loads((folder / "training_log.json").read_text())
    pipe = load_default_pipeline(folder)
    assert card.folder_disagreements(log, pipe) == []
    edits = {"model_config": dict(log["model_config"], block_channels=[8, 32]), "frames": 8,
             "num_parameters": log["num_parameters"] + 1,
             "normalization": dict(log["normalization"], scale=[2.0 * v for v in log["normalization"]["scale"]])}
    for key, value in edits.items():
        wrong = card.folder_disagreements(dict(log, **{key: value}), pipe)
        assert len(wrong) == 1 and wrong[0].startswith({"model_config": "model_config block_channels",
                                                        "frames": "frames=8 but the UNet samples 4",
                                                        "num_parameters": "num_parameters",
                                                        "normalization": "normalization scale"}[key]), wrong
    # the video size is refused by the loader itself (load_default_pipeline), the rest by the card
    (folder / "training_log.json").write_text(json.dumps(dict(log, **{k: v for k, v in edits.items() if k != "frames"})))
    with mock.patch.object(card, "evaluation_videos", side_effect=AssertionError("evaluated")):
        with pytest.raises(SystemExit, match=r"training_log.json does not describe the model in .*block_channels"):
            card.main(["--model", str(folder), "--num-videos", "16", "--threads", "1"])
        (folder / "training_log.json").write_text(json.dumps(dict(log, **edits)))
        with pytest.raises(ValueError, match=r"frames 8 in training_log.json but 4 in unet/config.json"):
            card.main(["--model", str(folder), "--num-videos", "16", "--threads", "1"])


def test_too_few_videos_for_the_report_are_refused_before_sampling(tmp_path):
    """--num-videos 8 once sampled part 1 (22 s on the default) before fidelity_report refused fewer than 16."""
    card = _card_module()
    with mock.patch.object(card, "evaluation_videos", side_effect=AssertionError("evaluated")):
        with pytest.raises(SystemExit, match="at least 16 videos.*--num-videos 16"):
            card.main(["--model", str(tmp_path / "nothing_needed"), "--num-videos", "8"])


def test_the_trajectory_diagnostic_starts_part_one_at_k_zero_and_later_steps_on_the_marginal():
    """k = 0 is part 1's samples exactly (the same starts, the same scheduler calls); a later k starts at
    ``a_t x_0 + b_t ε`` of the k-th timestep and runs only the remaining steps, with the scheduler's step index
    begun at k (what diffusers' image-to-image pipelines do), so with a network that predicts ε exactly the last
    step alone returns ``x_0``; eps_scale is applied as the pipeline applies it; bad starts are refused."""
    import torch

    from freeinit_lab.analysis.fidelity import training_marginal_latents

    card = _card_module()
    pipe = _tiny_pipe()
    clean = torch.randn(6, 3, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    for name in ("ddim25", "unipc25", "unipc25_karras", "dpmpp2m25_karras", "unipc25_es1015"):
        smp = dict(card.SAMPLERS[name], num_inference_steps=5)
        start = training_marginal_latents(clean, card.scheduler_for(smp), 5,
                                          generator=torch.Generator().manual_seed(7))
        whole = card.sample(pipe, smp, start)
        part, t = card.partial_sample(pipe, smp, clean, 0, start_seed=7)
        assert t == 999 and torch.equal(part, whole), name
        # a later start: not the whole trajectory, and a different result
        later, t2 = card.partial_sample(pipe, smp, clean, 3, start_seed=7)
        sch = card.scheduler_for(smp)
        sch.set_timesteps(5)
        assert t2 == int(sch.timesteps[3]) < 999 and not torch.allclose(later, whole), name

    class Oracle(torch.nn.Module):  # predicts the true ε of the noised clean videos at every timestep
        dtype = torch.float32

        def __init__(self, acp):
            super().__init__()
            self.acp = acp

        def forward(self, z, t):
            ac = float(self.acp[int(t)])
            eps = (z - ac ** 0.5 * clean) / (1 - ac) ** 0.5
            return SimpleNamespace(sample=eps)

    for name in ("ddim25", "unipc25_karras"):
        smp = dict(card.SAMPLERS[name], num_inference_steps=5)
        oracle = SimpleNamespace(unet=Oracle(card.scheduler_for(smp).alphas_cumprod))
        last, _ = card.partial_sample(oracle, smp, clean, 4, start_seed=7)
        torch.testing.assert_close(last, clean, atol=1e-4, rtol=1e-4)  # the last step alone: x_0 back
    assert card.start_steps(25) == [0, 5, 10, 14, 19, 24] and card.start_steps(3, 6) == [0, 1, 2]
    smp = dict(card.SAMPLERS["ddim25"], num_inference_steps=5)
    with pytest.raises(ValueError, match="outside the sampler's 5 steps"):
        card.partial_sample(pipe, smp, clean, 5, start_seed=7)
    with pytest.raises(ValueError, match="deterministic sampler"):
        card.partial_sample(pipe, dict(card.SAMPLERS["ddim25_eta1"], num_inference_steps=5), clean, 1, start_seed=7)
    reference = torch.randn(36, 3, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    rows = card.trajectory(pipe, smp, reference[:18] + 0.1, reference, start_seed=7, space="test", points=2)
    assert [r["k"] for r in rows] == [0, 4, None] and rows[-1]["t"] == 0
    assert all(card.trajectory_row(r).count("|") == 7 for r in rows)


def test_the_evaluation_videos_of_a_seed_are_rendered_once():
    """Every sampler judged at a seed (and diagnostic 6) uses the same held-out videos; they are rendered once per
    (folder, size, seed), not once per use, and another seed renders its own."""
    import torch

    card = _card_module()
    calls = []

    def fake(n, seed, path):
        calls.append((n, seed))
        return torch.zeros(n, 3, 2, 4, 4)

    with mock.patch("freeinit_lab.embedded.pipelines.default_training_videos", side_effect=fake):
        a = card.evaluation_videos("folder", 8, 910_000_000)
        b = card.evaluation_videos("folder", 8, 910_000_000)
        assert a is b and calls == [(16, 910_000_001), (8, 910_000_002)]
        card.evaluation_videos("folder", 8, 911_000_000)
        assert calls[2:] == [(16, 911_000_001), (8, 911_000_002)]


def test_the_autoguidance_gate_is_the_cards_part_one_at_w_one_and_refuses_bad_input_first(tmp_path):
    """scripts/autoguidance_gate.py runs the card's part 1 (training_quality) with the stored sampler guided by
    --guide: at w = 1 its row is the card's own, at w = 1.5 the samples move, and a --guidance-interval holding
    every timestep changes nothing; seeds in the training range, a folder without a network, a guide of another
    video size and malformed intervals are refused before anything is sampled."""
    import torch

    from freeinit_lab.embedded.models import TinyVideoUNet
    from freeinit_lab.embedded.pipelines import default_training_videos, load_default_pipeline

    spec = importlib.util.spec_from_file_location("autoguidance_gate", SCRIPT.parent / "autoguidance_gate.py")
    gate = importlib.util.module_from_spec(spec)
    with mock.patch.dict(os.environ):
        spec.loader.exec_module(gate)
    folder = _tiny_folder(tmp_path)
    pipe = load_default_pipeline(folder)
    guide = TinyVideoUNet(**{k: v for k, v in pipe.unet.config.items() if not k.startswith("_")})
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # fresh networks predict 0 (their last layer starts at zero): give both weights
        for net in (pipe.unet, guide):
            for w in net.parameters():
                w.copy_(0.05 * torch.randn(w.shape, generator=g))
    pipe.unet.save_pretrained(folder / "unet")
    guide.save_pretrained(tmp_path / "guide")
    other = TinyVideoUNet(**{**{k: v for k, v in guide.config.items() if not k.startswith("_")}, "num_frames": 8})
    other.save_pretrained(tmp_path / "other")

    base = ["--model", str(folder), "--num-videos", "16"]
    with mock.patch.object(gate, "_model_card", side_effect=AssertionError("evaluated")):
        for argv, message in (
                (["--guide", str(tmp_path / "guide"), "--seeds", "5"], "evaluation seeds are >= 900,000,000"),
                (["--guide", str(tmp_path / "nothing")], "config.json missing"),
                (["--guide", str(tmp_path / "other")], r"frames 4 \(unet\) vs 8 \(guide\)"),
                (["--guide", str(tmp_path / "guide"), "--scales", "-1"], "must be a finite number >= 0"),
                (["--guide", str(tmp_path / "guide"), "--guidance-interval", "500,100"],
                 r"--guidance-interval=.* 0 <= t_low <= t_high"),
                (["--guide", str(tmp_path / "guide"), "--guidance-interval", "250"], r"--guidance-interval=\[250.0\]")):
            with pytest.raises((SystemExit, ValueError), match=message):
                gate.main(base + argv)

    out = tmp_path / "rows.json"
    with mock.patch.dict(os.environ):  # the card module sets its thread policy when loaded
        assert gate.main(base + ["--guide", str(tmp_path / "guide"), "--scales", "1,1.5", "--seeds", "930000000",
                                 "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    card = _card_module()
    log = json.loads((folder / "training_log.json").read_text())
    training = default_training_videos(int(log.get("batch_size", 16)), seed=int(log.get("data_seed_base", 0)),
                                       path=folder)
    q = card.training_quality(load_default_pipeline(folder), json.loads((folder / "sampler.json").read_text()),
                              path=folder, num_videos=16, seed=930_000_000, training=training, space="model space")
    assert rows[0]["guidance_scale"] == 1.0 and rows[0]["accuracy"] == q["report"].accuracy
    assert rows[0]["frechet"] == q["report"].frechet
    assert rows[1]["guidance_scale"] == 1.5 and rows[1]["frechet"] != rows[0]["frechet"]
    assert rows[0]["guidance_interval"] is None
    # guided at every timestep the sampler has: the same samples as guiding at every step
    out2 = tmp_path / "rows2.json"
    with mock.patch.dict(os.environ):
        assert gate.main(base + ["--guide", str(tmp_path / "guide"), "--scales", "1.5", "--seeds", "930000000",
                                 "--guidance-interval", "0,999", "--json", str(out2)]) == 0
    row = json.loads(out2.read_text())["rows"][0]
    assert row["guidance_interval"] == [0.0, 999.0] and row["frechet"] == rows[1]["frechet"]
