"""scripts/train_default_model.py: the loss weightings, and a resumed run keeping the weighting it was trained with."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from unittest import mock

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_default_model.py"


def _train_module():
    spec = importlib.util.spec_from_file_location("train_default_model_script", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    with mock.patch.dict(os.environ):  # the script's import-time os.environ defaults stay in the script's run
        spec.loader.exec_module(mod)
    return mod


def _tiny_run(tmp_path, out: str = "out", ckpt: str = "ck") -> list[str]:
    """Arguments of a seconds-long training run (4 × 16 × 16 videos, a two-level UNet) exporting to tmp_path/out
    with its checkpoints in tmp_path/ckpt."""
    return ["--out", str(tmp_path / out), "--ckpt-dir", str(tmp_path / ckpt), "--frames", "4", "--size", "16",
            "--block-channels", "8,16", "--batch-size", "2", "--norm-videos", "8", "--data-workers", "0",
            "--log-every", "1", "--ckpt-every", "1e9"]


def test_v_weighting_is_the_v_prediction_loss_up_to_one_constant():
    """|ε̂ − ε|² w(t) ∝ |v̂ − v|² with v = a ε − b x0 and v̂ = a ε̂ − b x̂0, x̂0 = (z − b ε̂) / a, for every t."""
    from freeinit_lab.embedded.pipelines import default_scheduler

    train = _train_module()
    ac = default_scheduler().alphas_cumprod
    for kind in ("epsilon", "v"):
        assert train.loss_weights(ac, kind).double().mean().item() == pytest.approx(1.0, abs=1e-6)
    assert torch.all(train.loss_weights(ac, "epsilon") == 1)
    w = train.loss_weights(ac, "v").double()
    assert torch.all(w[1:] > w[:-1])  # noisier steps weigh more
    g = torch.Generator().manual_seed(0)
    x0, eps, eps_hat = (torch.randn(1000, 64, generator=g, dtype=torch.float64) for _ in range(3))
    a, b = ac.double().sqrt()[:, None], (1 - ac.double()).sqrt()[:, None]
    z = a * x0 + b * eps
    x0_hat = (z - b * eps_hat) / a
    v_mse = ((a * eps_hat - b * x0_hat) - (a * eps - b * x0)).pow(2).mean(1)
    weighted = w * (eps_hat - eps).pow(2).mean(1)
    ratio = v_mse / weighted
    assert torch.allclose(ratio, ratio[0].expand_as(ratio), rtol=1e-6)  # weights are float32
    with pytest.raises(ValueError, match="unknown loss weighting"):
        train.loss_weights(ac, "snr")


def test_resumed_run_keeps_its_weighting_and_logs_plain_eps_mse(tmp_path):
    train = _train_module()
    common = _tiny_run(tmp_path) + ["--amp", "off"]
    train.main(common + ["--max-steps", "2", "--loss-weighting", "v"])
    train.main(common + ["--max-steps", "3"])  # resumed from the checkpoint: keeps v
    log = json.loads((tmp_path / "out" / "training_log.json").read_text())
    assert log["steps"] == 3 and log["loss_weighting"] == "v"
    assert [s["loss_weighting"] for s in log["sessions"]] == ["v", "v"]
    assert "plain epsilon" in log["loss_curve_is"] and len(log["loss_curve"]["loss"]) == 3
    (tmp_path / "ck" / "checkpoint.pt").unlink()  # resumed from the exported folder, weighting switched
    train.main(common + ["--max-steps", "4", "--loss-weighting", "epsilon", "--lr", "2.5e-4"])  # and cools down
    log = json.loads((tmp_path / "out" / "training_log.json").read_text())
    assert log["steps"] == 4 and [s["loss_weighting"] for s in log["sessions"]] == ["v", "v", "epsilon"]
    assert [s["lr"] for s in log["sessions"]] == [1e-3, 1e-3, 2.5e-4]  # each session's own learning rate
    assert log["objective"].startswith("epsilon MSE, t")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_resumes_from_its_checkpoint_on_a_gpu(tmp_path):
    """A checkpoint's optimiser state lands where the parameters are (it once stayed on the CPU: AdamW failed)."""
    train = _train_module()
    common = _tiny_run(tmp_path) + ["--device", "cuda"]
    train.main(common + ["--max-steps", "2"])
    train.main(common + ["--max-steps", "4"])  # from the checkpoint, Adam state included
    assert json.loads((tmp_path / "out" / "training_log.json").read_text())["steps"] == 4


def test_session_lr_anneals_log_linearly_from_lr_to_lr_end():
    train = _train_module()
    assert train.session_lr(1e-3, None, 0.7) == 1e-3
    assert train.session_lr(4e-4, 4e-5, 0.0) == pytest.approx(4e-4)
    assert train.session_lr(4e-4, 4e-5, 0.5) == pytest.approx(4e-4 * 10 ** -0.5)
    assert train.session_lr(4e-4, 4e-5, 1.0) == pytest.approx(4e-5)
    assert train.session_lr(4e-4, 4e-5, 3.0) == pytest.approx(4e-5)  # past the budget: stays at the end value
    with pytest.raises(SystemExit):
        train.parse_args(["--lr-end", "1e-5"])  # no time budget to anneal over


def test_amp_auto_uses_bfloat16_only_where_the_cpu_computes_it_natively(tmp_path, monkeypatch):
    """--amp auto (the default): bf16 autocast on a CPU whose flags list avx512_bf16 or amx_bf16, float32 on one
    with AVX2 only (where torch emulates bf16, 30-50x slower); an explicit --amp is kept; the run logs its choice."""
    train = _train_module()
    real_read = Path.read_text
    cpu = torch.device("cpu")
    for flags, want in (("fpu sse avx2 fma", "off"), ("avx2 avx512f avx512_bf16", "bf16"),
                        ("avx2 amx_tile amx_bf16", "bf16"), ("avx2 avx512f avx512bw", "off")):
        monkeypatch.setattr(Path, "read_text", lambda self, *a, _f=flags, **k: (
            f"processor : 0\nflags : {_f}\n" if str(self) == "/proc/cpuinfo" else real_read(self, *a, **k)))
        assert train.native_bf16(cpu) is (want == "bf16")
        assert train.resolve_amp("auto", cpu) == want
        assert train.resolve_amp("off", cpu) == "off" and train.resolve_amp("bf16", cpu) == "bf16"
    assert train.resolve_amp("auto", torch.device("meta")) == "off"
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: (
        "flags : avx2\n" if str(self) == "/proc/cpuinfo" else real_read(self, *a, **k)))
    train.main(_tiny_run(tmp_path) + ["--max-steps", "1"])
    log = json.loads((tmp_path / "out" / "training_log.json").read_text())
    assert log["amp"] == "off" and log["sessions"][-1]["amp"] == "off"


def test_rendering_on_the_device_gives_the_workers_videos_in_step_order(monkeypatch):
    """--render device (parameters drawn in 2 worker processes, rendered in the main process) yields exactly the
    batches --render worker (drawn and rendered in line) does, step by step."""
    monkeypatch.syspath_prepend(str(SCRIPT.parent))  # spawned workers import the script by its module name
    with mock.patch.dict(os.environ):  # the script's import-time os.environ defaults stay in the script's run
        train = importlib.import_module(SCRIPT.stem)
    common = ["--frames", "4", "--size", "16", "--batch-size", "3", "--data-seed-base", "5"]
    inline = train.batches(train.parse_args(common + ["--render", "worker", "--data-workers", "0"]), start=7)
    split = train.batches(train.parse_args(common + ["--render", "device", "--data-workers", "2"]), start=7)
    for want_step in (7, 8, 9):
        (s1, x1), (s2, x2) = next(inline), next(split)
        assert s1 == s2 == want_step
        assert x1.shape == (3, 3, 4, 16, 16) and torch.equal(x1, x2)
    with pytest.raises(SystemExit):
        train.parse_args(["--render", "device", "--data", "dead-leaves-v1"])


def test_export_keeps_a_multistep_sampler_chosen_in_the_folder(tmp_path):
    """Resuming into a folder whose sampler.json names UniPC (as the card once chose for the default) exports it
    again: the folder's scheduler is that class, loadable by the default loader's rule (it once assumed DDIM's
    keys)."""
    from freeinit_lab.embedded.pipelines import TinyVideoPipeline

    train = _train_module()
    common = _tiny_run(tmp_path) + ["--amp", "off"]
    train.main(common + ["--max-steps", "1"])
    unipc = {"scheduler": "UniPCMultistepScheduler", "num_inference_steps": 7, "timestep_spacing": "linspace",
             "eta": 0.0}
    (tmp_path / "out" / "sampler.json").write_text(json.dumps(unipc))
    (tmp_path / "ck" / "checkpoint.pt").unlink()                 # resume from the exported folder
    train.main(common + ["--max-steps", "2"])
    out = tmp_path / "out"
    assert json.loads((out / "sampler.json").read_text()) == unipc
    assert json.loads((out / "training_log.json").read_text())["default_sampler"] == unipc
    pipe = TinyVideoPipeline.from_pretrained(out)
    assert type(pipe.scheduler).__name__ == "UniPCMultistepScheduler"
    assert pipe.scheduler.config.timestep_spacing == "linspace"


def test_float16_export_is_kept_by_a_resumed_run_and_loads_as_float32(tmp_path):
    """--export-dtype float16 writes half-precision weights (the log says so); a run resumed into that folder
    without the flag keeps float16; the loader computes in float32 with the weights' float16 values; float32
    can be asked for again."""
    from safetensors import safe_open

    from freeinit_lab.embedded.models import TinyVideoUNet

    train = _train_module()
    common = _tiny_run(tmp_path) + ["--amp", "off"]
    out = tmp_path / "out"
    weights = out / "unet" / "diffusion_pytorch_model.safetensors"

    def stored():
        with safe_open(str(weights), framework="pt") as f:
            return {f.get_slice(k).get_dtype() for k in f.keys()}

    train.main(common + ["--max-steps", "1"])
    assert stored() == {"F32"} and train.exported_dtype(out) == "float32"
    full = TinyVideoUNet.from_pretrained(out / "unet").state_dict()
    (tmp_path / "ck" / "checkpoint.pt").unlink()
    train.main(common + ["--max-steps", "1", "--export-dtype", "float16"])  # nothing to train: the same weights
    assert stored() == {"F16"} and json.loads((out / "training_log.json").read_text())["export_dtype"] == "float16"
    half = TinyVideoUNet.from_pretrained(out / "unet")
    assert all(p.dtype == torch.float32 for p in half.parameters())
    for k, v in half.state_dict().items():
        assert torch.equal(v, full[k].half().float()), k  # float16 rounding of the same weights, nothing else
    (tmp_path / "ck" / "checkpoint.pt").unlink()
    train.main(common + ["--max-steps", "2"])  # resumed from the float16 folder, no flag: stays float16
    assert stored() == {"F16"}
    train.main(common + ["--max-steps", "3", "--export-dtype", "float32"])
    assert stored() == {"F32"} and train.exported_dtype(out) == "float32"


def test_a_spent_time_budget_is_refused_naming_the_total_to_pass(tmp_path):
    """--time-budget-min is the run's total over all sessions; a resume that has already used it says so."""
    train = _train_module()
    common = _tiny_run(tmp_path) + ["--amp", "off"]
    train.main(common + ["--max-steps", "1"])
    log = tmp_path / "out" / "training_log.json"
    with pytest.raises(SystemExit, match=r"pass --time-budget-min \d+\.\d to train 1e-06 minutes more"):
        train.main(common + ["--max-steps", "5", "--time-budget-min", "1e-6"])
    assert json.loads(log.read_text())["steps"] == 1                                    # nothing trained


def test_a_checkpoint_of_another_run_is_not_written_over_the_exported_folder(tmp_path):
    """--ckpt-dir defaults to one folder for every --out: continuing run B's export with run A's checkpoint there
    once resumed A at its step and overwrote B's weights and log; it is refused, and B's folder is left as it was."""
    train = _train_module()
    run_a = _tiny_run(tmp_path, "out", "ck") + ["--amp", "off"]
    run_b = _tiny_run(tmp_path, "out_b", "ck_b") + ["--amp", "off"]
    b_with_a_ckpt = _tiny_run(tmp_path, "out_b", "ck") + ["--amp", "off"]
    train.main(run_a + ["--max-steps", "3"])
    train.main(run_b + ["--max-steps", "5"])
    log_b = tmp_path / "out_b" / "training_log.json"
    before = log_b.read_text()
    with pytest.raises(SystemExit, match=r"not the run exported in .*out_b: the folder holds step 5, ahead"):
        train.main(b_with_a_ckpt + ["--max-steps", "7"])
    assert log_b.read_text() == before                                   # B's export untouched
    # an export behind the checkpoint but from another run (another seed: another loss curve) is refused too
    train.main(_tiny_run(tmp_path, "out_b", "ck_c") + ["--amp", "off", "--max-steps", "2", "--fresh", "--seed", "1"])
    with pytest.raises(SystemExit, match="loss curve is not the checkpoint's"):
        train.main(b_with_a_ckpt + ["--max-steps", "7"])
    # the run's own checkpoint, its export behind it (killed between checkpoint and export), still resumes
    (tmp_path / "out" / "training_log.json").write_text(json.dumps(dict(
        json.loads((tmp_path / "out" / "training_log.json").read_text()), steps=2,
        loss_curve={"step": [1, 2], "loss": [h[1] for h in torch.load(tmp_path / "ck" / "checkpoint.pt",
                                                                       weights_only=False)["history"][:2]]})))
    train.main(run_a + ["--max-steps", "4"])
    assert json.loads((tmp_path / "out" / "training_log.json").read_text())["steps"] == 4


def test_a_resumed_run_keeps_its_seeds_and_refuses_others(tmp_path):
    """Step s trains on data seed data_seed_base + s and the log records one base for all steps: a resume given
    another --data-seed-base (or --seed) replaced the logged value, so the log misstated the earlier steps' data.
    Left out, the run's own values are kept (they defaulted to 0); given and different, the resume is refused."""
    train = _train_module()
    common = _tiny_run(tmp_path) + ["--amp", "off"]
    log = tmp_path / "out" / "training_log.json"
    train.main(common + ["--max-steps", "2", "--data-seed-base", "5", "--seed", "2"])
    train.main(common + ["--max-steps", "3"])                                      # from the checkpoint
    assert (json.loads(log.read_text())["data_seed_base"], json.loads(log.read_text())["seed"]) == (5, 2)
    before = log.read_text()
    with pytest.raises(SystemExit, match="trained with --data-seed-base 5, not 7"):
        train.main(common + ["--max-steps", "4", "--data-seed-base", "7"])
    (tmp_path / "ck" / "checkpoint.pt").unlink()                                   # from the export
    with pytest.raises(SystemExit, match="trained with --seed 2, not 0"):
        train.main(common + ["--max-steps", "4", "--seed", "0"])
    assert log.read_text() == before
    train.main(common + ["--max-steps", "4", "--data-seed-base", "5"])             # the same value is fine
    assert json.loads(log.read_text())["steps"] == 4 and json.loads(log.read_text())["data_seed_base"] == 5


def test_a_widened_run_starts_from_the_narrow_function_and_continues_its_steps(tmp_path):
    """--widen-from: the wide network exported before any step of its own computes the folder's ε̂; the run
    continues the folder's step count, seeds, normaliser and loss curve, records what it widened, trains on, and
    refuses a width that is not a whole multiple, or a folder it would write over."""
    from freeinit_lab.embedded.pipelines import ChannelNormalizer, load_default_pipeline, store_sampler
    from freeinit_lab.models import TinyVideoUNet

    train = _train_module()
    narrow = _tiny_run(tmp_path) + ["--amp", "off"]
    train.main(narrow + ["--max-steps", "3", "--seed", "4", "--data-seed-base", "11"])
    unipc = dict(scheduler="UniPCMultistepScheduler", num_inference_steps=7, timestep_spacing="linspace", eta=0.0)
    store_sampler(tmp_path / "out", unipc)                       # as a model card that chose a sampler does
    wide = _tiny_run(tmp_path, out="wide", ckpt="wide_ck") + ["--amp", "off", "--widen-from", str(tmp_path / "out")]
    wide = [a if a != "8,16" else "16,32" for a in wide]
    train.main(wide + ["--max-steps", "3"])                        # exported at the folder's step: no step of its own
    src, dst = tmp_path / "out", tmp_path / "wide"
    a = TinyVideoUNet.from_pretrained(src / "unet", local_files_only=True, low_cpu_mem_usage=False)
    b = TinyVideoUNet.from_pretrained(dst / "unet", local_files_only=True, low_cpu_mem_usage=False)
    assert list(b.config.block_channels) == [16, 32]
    x, t = torch.randn(2, 3, 4, 16, 16), torch.tensor([50, 950])
    with torch.no_grad():
        torch.testing.assert_close(b(x, t).sample, a(x, t).sample, atol=1e-5, rtol=1e-5)
    log, src_log = (json.loads((d / "training_log.json").read_text()) for d in (dst, src))
    assert log["widened_from"] == dict(source=str(src), step=3, from_block_channels=[8, 16], factor=2,
                                       split_noise=0.1, split_seed=4)
    assert (log["steps"], log["seed"], log["data_seed_base"]) == (3, 4, 11)
    assert log["loss_curve"] == src_log["loss_curve"] and log["normalization"] == src_log["normalization"]
    assert json.loads((dst / "sampler.json").read_text()) == unipc == log["default_sampler"]
    assert load_default_pipeline(dst).default_num_inference_steps == 7
    norm = [ChannelNormalizer.from_pretrained(d / "normalizer", local_files_only=True).config.scale for d in (src, dst)]
    assert list(norm[0]) == list(norm[1])
    with pytest.raises(SystemExit, match="would resume from checkpoint"):
        train.main(wide + ["--max-steps", "5"])
    train.main([a for a in wide if a not in ("--widen-from", str(src))] + ["--max-steps", "5"])  # resumes as usual
    log = json.loads((dst / "training_log.json").read_text())
    assert log["steps"] == 5 and log["widened_from"]["step"] == 3 and log["loss_curve"]["step"][-1] == 5

    def other(out, channels, source):
        args = [a if a != "8,16" else channels for a in _tiny_run(tmp_path, out=out, ckpt=out + "_ck")]
        return args + ["--amp", "off", "--widen-from", str(source), "--max-steps", "5"]

    with pytest.raises(SystemExit, match="whole multiple"):
        train.main(other("bad", "16,24", src))
    with pytest.raises(SystemExit, match="not an exported model folder"):
        train.main(other("bad2", "16,32", tmp_path))


def test_compare_denoisers_pairs_two_folders_and_refuses_other_model_spaces(tmp_path, capsys):
    """scripts/compare_denoisers.py: a widened folder exported before any step of its own denoises exactly as its
    source (0.00 dB at every timestep, equal MSEs); a run trained on another normaliser is refused by name."""
    spec = importlib.util.spec_from_file_location("compare_denoisers_script", SCRIPT.parent / "compare_denoisers.py")
    compare = importlib.util.module_from_spec(spec)
    with mock.patch.dict(os.environ):
        spec.loader.exec_module(compare)
    train = _train_module()
    train.main(_tiny_run(tmp_path) + ["--amp", "off", "--max-steps", "3"])
    wide = [a if a != "8,16" else "16,32" for a in _tiny_run(tmp_path, out="wide", ckpt="wide_ck")]
    train.main(wide + ["--amp", "off", "--widen-from", str(tmp_path / "out"), "--max-steps", "3"])
    compare.main(["--model", str(tmp_path / "wide"), "--reference", str(tmp_path / "out"), "--num-videos", "4",
                  "--timesteps", "10,990", "--threads", "1"])
    lines = capsys.readouterr().out.splitlines()
    rows = [ln for ln in lines if ln.strip().startswith("t=")]
    assert len(rows) == 2 and all("+0.00 [" in r or "-0.00 [" in r for r in rows), lines
    a, b = (float(v) for v in rows[1].split(":")[1].split()[:2])
    assert a == pytest.approx(b, rel=1e-4) and a > 0
    other = _tiny_run(tmp_path, out="other", ckpt="other_ck")
    train.main(other + ["--amp", "off", "--max-steps", "1", "--norm-videos", "128"])  # fitted on more videos
    with pytest.raises(SystemExit, match="not comparable: normalization differs"):
        compare.main(["--model", str(tmp_path / "other"), "--reference", str(tmp_path / "out")])
    with pytest.raises(SystemExit):
        compare.main(["--model", str(tmp_path / "wide"), "--seed", "5"])   # a training seed


def test_a_run_grown_with_temporal_attention_starts_from_the_folder_function(tmp_path):
    """--widen-from with --temporal-attention: the folder's network with self-attention along frames added computes
    the folder's ε̂ exactly before any step of its own, continues its steps, records the levels, trains the new
    layers, and is refused where it would add nothing."""
    from freeinit_lab.models import TinyVideoUNet

    train = _train_module()
    train.main(_tiny_run(tmp_path) + ["--amp", "off", "--max-steps", "3", "--seed", "4"])
    src, dst = tmp_path / "out", tmp_path / "grown"
    grown = _tiny_run(tmp_path, out="grown", ckpt="grown_ck") + ["--amp", "off", "--temporal-attention", "0,1"]
    train.main(grown + ["--widen-from", str(src), "--max-steps", "3"])
    a = TinyVideoUNet.from_pretrained(src / "unet", local_files_only=True, low_cpu_mem_usage=False)
    b = TinyVideoUNet.from_pretrained(dst / "unet", local_files_only=True, low_cpu_mem_usage=False)
    assert list(b.config.temporal_attention) == [0, 1] and list(b.config.block_channels) == [8, 16]
    x, t = torch.randn(2, 3, 4, 16, 16), torch.tensor([50, 950])
    with torch.no_grad():
        torch.testing.assert_close(b(x, t).sample, a(x, t).sample, atol=0, rtol=0)
    log = json.loads((dst / "training_log.json").read_text())
    assert log["widened_from"]["added_temporal_attention"] == [0, 1] and log["widened_from"]["factor"] == 1
    assert log["steps"] == 3 and log["model_config"]["temporal_attention"] == [0, 1]
    train.main(grown + ["--max-steps", "5"])                                       # resumes as usual, and learns
    c = TinyVideoUNet.from_pretrained(dst / "unet", local_files_only=True, low_cpu_mem_usage=False)
    assert c.down_tattn[0][0].out.weight.abs().max() > 0
    assert json.loads((dst / "training_log.json").read_text())["steps"] == 5
    both = [a if a != "8,16" else "16,32" for a in _tiny_run(tmp_path, out="both", ckpt="both_ck")]
    train.main(both + ["--amp", "off", "--temporal-attention", "0", "--widen-from", str(src), "--max-steps", "3"])
    w = TinyVideoUNet.from_pretrained(tmp_path / "both" / "unet", local_files_only=True, low_cpu_mem_usage=False)
    assert list(w.config.block_channels) == [16, 32] and list(w.config.temporal_attention) == [0]
    with torch.no_grad():                                  # widened, then given attention: still the folder's ε̂
        torch.testing.assert_close(w(x, t).sample, a(x, t).sample, atol=1e-5, rtol=1e-5)
    wlog = json.loads((tmp_path / "both" / "training_log.json").read_text())["widened_from"]
    assert wlog["factor"] == 2 and wlog["added_temporal_attention"] == [0]
    same = _tiny_run(tmp_path, out="same", ckpt="same_ck") + ["--amp", "off", "--max-steps", "5"]
    with pytest.raises(SystemExit, match="temporal-attention levels it lacks"):
        train.main(same + ["--widen-from", str(src)])                             # nothing to grow
    with pytest.raises(SystemExit, match="is not widened"):
        train.main([a if a != "8,16" else "16,32" for a in _tiny_run(tmp_path, out="w2", ckpt="w2_ck")]
                   + ["--amp", "off", "--max-steps", "5", "--temporal-attention", "0", "--widen-from", str(dst)])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusals of a machine without a GPU")
@pytest.mark.parametrize("args, message", [
    (["1"], "no CUDA device"),
    (["0"], "MINUTES must be a positive number"),
    (["1", "no/such/folder"], "holds no exported model"),
    (["1", "data/default_model", "", "GUIDE_MINUTES=-1"], "GUIDE_MINUTES must be a number >= 0"),
])
def test_gpu_round_refuses_before_it_trains(tmp_path, args, message):
    """scripts/gpu_round.sh says what is wrong before any training, and leaves nothing behind."""
    import subprocess
    import sys

    root = SCRIPT.parents[1]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.update(a.split("=", 1) for a in args if "=" in a)
    args = [a for a in args if "=" not in a][:2]
    run = subprocess.run(["bash", str(root / "scripts" / "gpu_round.sh"), str(tmp_path / "round"), *args], cwd=root,
                         env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode != 0 and message in run.stderr, run.stderr
    assert not (tmp_path / "round").exists()
