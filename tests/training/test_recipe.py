"""The recipe's options: weight averaging, schedules, gradient equilibrium, compiled steps, resuming with all of them."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from pipeline.checkpoint import read_checkpoint
from pipeline.models.loading import load_model  # noqa: E402
from pipeline.errors import PipelineError  # noqa: E402
from pipeline.training.ema import WeightAverage  # noqa: E402
from pipeline.training.equilibrium import forward_with_equilibrium, scale_gradient  # noqa: E402
from pipeline.training.options import TrainOptions  # noqa: E402
from pipeline.training.schedule import lr_at  # noqa: E402
from tests.training.conftest import run  # noqa: E402

EVERY_RECIPE_OPTION = ["--nesterov", "--schedule", "onecycle", "--warmup-epochs", "0.5", "--bn-bias-lr-scale", "4",
                       "--label-smoothing", "0.1", "--ema", "0.9", "--gradient-equilibrium", "--weight-decay", "5e-4",
                       "--cutout", "8"]


def tiny_model(seed: int = 0):
    from pipeline.models import create_model

    torch.manual_seed(seed)
    return create_model("msdnet_cifar", n_blocks=3, step=1, base=2, n_channels=8, growth_rate=4, num_classes=2)


def test_average_follows_its_formula():
    model = torch.nn.Linear(2, 1, bias=False)
    avg = WeightAverage(model, decay=0.5)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    avg.update(model)  # first decay is min(0.5, 1/10) = 0.1
    assert torch.allclose(avg.module.weight, 0.1 * start + 0.9 * (start + 1))
    assert avg.updates == 1 and avg.current_decay() == pytest.approx(2 / 11)


def test_the_average_of_a_whole_model_copies_counters_and_averages_buffers():
    model = tiny_model()
    avg = WeightAverage(model, decay=0.5)
    before = {k: v.clone() for k, v in avg.module.state_dict().items()}
    with torch.no_grad():
        for v in model.state_dict().values():
            v.add_(1) if v.dtype.is_floating_point else v.fill_(7)
    avg.update(model)
    for k, v in avg.module.state_dict().items():
        want = 0.1 * before[k] + 0.9 * model.state_dict()[k] if v.dtype.is_floating_point else torch.full_like(v, 7)
        assert torch.allclose(v, want, atol=1e-6), k


def test_the_fused_step_updates_the_weights_as_the_per_tensor_loop_and_keeps_it_after_a_resume():
    from pipeline.training.setup import load_optimizer_state, make_optimizer, parameter_groups

    opts = TrainOptions(out=Path("unused.pt"), lr=0.1, nesterov=True, weight_decay=5e-4, bn_bias_lr_scale=4)
    a, b = tiny_model(), tiny_model()
    fused = make_optimizer(parameter_groups(a, opts), opts)
    plain = torch.optim.SGD(parameter_groups(b, opts), lr=opts.lr, momentum=opts.momentum, nesterov=True,
                            weight_decay=opts.weight_decay)
    assert all(g["fused"] for g in fused.param_groups)
    x = torch.randint(0, 256, (4, 32, 32, 3), dtype=torch.uint8)
    for step in range(3):
        for model, opt in ((a, fused), (b, plain)):
            opt.zero_grad()
            sum(z.square().mean() for z in model(x)).backward()
            opt.step()
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.allclose(p, q, atol=1e-6), name
    again = make_optimizer(parameter_groups(a, opts), opts)
    load_optimizer_state(again, plain.state_dict())  # a state saved by a run whose steps were not fused
    assert all(g["fused"] for g in again.param_groups)
    pairs = [(p, q) for p, q in zip(a.parameters(), b.parameters()) if q in plain.state]
    assert pairs and all(torch.equal(again.state[p]["momentum_buffer"], plain.state[q]["momentum_buffer"])
                         for p, q in pairs)


def test_the_average_is_what_a_run_saves_and_evaluates(tmp_path):
    out = tmp_path / "m.pt"
    assert run(tmp_path, out, "--epochs", "2", "--ema", "0.9") == 0
    ckpt = read_checkpoint(out, resume=True)
    raw = ckpt["train_state"]["raw_state_dict"]
    shipped = ckpt["state_dict"]
    floats = [k for k, v in shipped.items() if v.dtype.is_floating_point]
    assert any(not torch.equal(shipped[k], raw[k]) for k in floats)
    model, _ = load_model(out)
    assert all(torch.equal(model.state_dict()[k], shipped[k]) for k in floats)
    assert ckpt["train_state"]["ema_updates"] == ckpt["train_state"]["step"]


def test_resume_with_every_recipe_option_continues_from_the_same_step(tmp_path):
    straight, resumed = tmp_path / "a.pt", tmp_path / "b.pt"
    run(tmp_path, straight, "--epochs", "2", *EVERY_RECIPE_OPTION)
    per_epoch = read_checkpoint(straight)["train_state"]["history"][0]["step"]
    run(tmp_path, resumed, "--epochs", "2", "--max-steps", str(per_epoch), *EVERY_RECIPE_OPTION)
    assert read_checkpoint(resumed)["train_state"]["epoch"] == 1
    run(tmp_path, resumed, "--epochs", "2", "--resume", *EVERY_RECIPE_OPTION)
    a, b = read_checkpoint(straight, resume=True), read_checkpoint(resumed, resume=True)
    assert b["train_state"]["step"] == a["train_state"]["step"] == 2 * per_epoch
    assert b["train_state"]["ema_updates"] == a["train_state"]["ema_updates"]
    for part in ("state_dict",):
        for key, value in a[part].items():
            assert torch.allclose(value.float(), b[part][key].float(), atol=1e-5), key
    for key, value in a["train_state"]["raw_state_dict"].items():
        assert torch.allclose(value.float(), b["train_state"]["raw_state_dict"][key].float(), atol=1e-5), key


def test_resume_refuses_a_changed_recipe_option(tmp_path, capsys):
    out = tmp_path / "m.pt"
    run(tmp_path, out, "--epochs", "2", "--max-steps", "1", "--ema", "0.9")
    with pytest.raises(SystemExit) as exc:
        run(tmp_path, out, "--epochs", "2", "--resume", "--ema", "0.99")
    assert exc.value.code == 2
    assert "--ema-decay 0.9 (now 0.99)" in capsys.readouterr().err


def test_a_checkpoint_from_before_an_option_existed_resumes_with_it_off():
    opts = TrainOptions(out=Path("x.pt"))
    old = {k: str(getattr(opts, k)) for k in TrainOptions.RUN_DEFINING if k not in ("nesterov", "ema_decay")}
    assert opts.changed_from(old) == []
    assert TrainOptions(out=Path("x.pt"), nesterov=True).changed_from(old) == ["--nesterov False (now True)"]


def test_schedules_start_peak_and_end_where_they_should():
    one = TrainOptions(out=Path("x"), epochs=10, lr=0.4, schedule="onecycle", warmup_epochs=2)
    assert [lr_at(one, e) for e in (0, 1, 2, 6, 10)] == pytest.approx([0, 0.2, 0.4, 0.2, 0])
    cos = TrainOptions(out=Path("x"), epochs=10, lr=0.4, schedule="cosine", warmup_epochs=2)
    assert lr_at(cos, 1) == pytest.approx(0.2) and lr_at(cos, 2) == pytest.approx(0.4)
    assert lr_at(cos, 6) == pytest.approx(0.2) and lr_at(cos, 10) == pytest.approx(0, abs=1e-12)
    step = TrainOptions(out=Path("x"), epochs=10, lr=0.4, schedule="step")
    assert [lr_at(step, e) for e in (0, 5, 7.5)] == pytest.approx([0.4, 0.04, 0.004])


@pytest.mark.parametrize("kw,message", [
    ({"ema_decay": 1.0}, "--ema must be a decay"), ({"label_smoothing": -0.1}, "--label-smoothing"),
    ({"warmup_epochs": 10}, "leaves no epoch"), ({"schedule": "linear"}, "--schedule must be one of"),
    ({"nesterov": True, "momentum": 0}, "--nesterov needs"), ({"bn_bias_lr_scale": 0}, "--bn-bias-lr-scale"),
    ({"cutout": -1}, "--cutout must not be negative"),
])
def test_bad_recipe_values_are_refused(kw, message):
    with pytest.raises(PipelineError, match=message):
        TrainOptions(out=Path("x"), epochs=10, **kw)


def test_equilibrium_keeps_the_outputs_and_averages_the_gradients():
    model = tiny_model()
    x = torch.randint(0, 255, (4, 32, 32, 3), dtype=torch.uint8)
    model.eval()  # BatchNorm in eval mode: both passes see the same statistics
    plain = model(x)
    balanced = forward_with_equilibrium(model, x)
    assert all(torch.allclose(a, b) for a, b in zip(plain, balanced))
    # Only exit 1's loss: its gradient reaches block 1 scaled by 1/K (K = 3 exits).
    first = next(model.stages[0].block.parameters())
    model.zero_grad()
    plain[0].sum().backward(retain_graph=True)
    g_plain = first.grad.clone()
    model.zero_grad()
    balanced[0].sum().backward()
    assert torch.allclose(first.grad, g_plain / 3, rtol=1e-4, atol=1e-7)


def test_scale_gradient_is_identity_forward_and_scales_backward():
    x = torch.ones(3, requires_grad=True)
    y = scale_gradient(x, 0.25)
    assert torch.equal(y, x.detach())
    y.sum().backward()
    assert torch.allclose(x.grad, torch.full((3,), 0.25))


def test_a_compiled_step_gives_the_eager_loss():
    """Two steps from the same weights and batch, eager and compiled: losses within 1e-4 (relative)."""
    from pipeline.training.loop import CompiledOrEager
    from pipeline.training.loss import multi_exit_loss

    x = torch.randint(0, 255, (8, 32, 32, 3), dtype=torch.uint8)
    y = torch.randint(0, 2, (8,))
    losses = {}
    for mode in ("eager", "compiled"):
        model = tiny_model().train()
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        notes: list[str] = []
        net = CompiledOrEager(model, notes.append) if mode == "compiled" else model
        seen = []
        for _ in range(2):
            loss = multi_exit_loss(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen.append(float(loss.detach()))
        assert notes == []  # the compiled path really ran
        losses[mode] = seen
    for a, b in zip(losses["eager"], losses["compiled"]):
        assert math.isclose(a, b, rel_tol=1e-4), losses


def test_a_failing_compile_falls_back_to_eager_with_a_note(monkeypatch):
    from pipeline.training.loop import CompiledOrEager

    def broken(net):
        def call(x):
            raise RuntimeError("no C++ compiler")
        return call

    monkeypatch.setattr(torch, "compile", broken)
    notes: list[str] = []
    net = CompiledOrEager(lambda x: x + 1, notes.append)
    assert net(1) == 2 and net(2) == 3
    assert len(notes) == 1 and "training eagerly" in notes[0] and "no C++ compiler" in notes[0]


def test_resume_only_state_lives_beside_the_checkpoint_and_is_checked(tmp_path):
    out = tmp_path / "m.pt"
    run(tmp_path, out, "--epochs", "1", "--ema", "0.9")
    side = tmp_path / "m.state.pt"
    bare = torch.load(out, weights_only=True)["train_state"]
    assert side.is_file() and "raw_state_dict" not in bare and "optimizer" not in bare
    assert set(read_checkpoint(out, resume=True)["train_state"]) >= {"raw_state_dict", "optimizer", "ema_updates"}
    assert "raw_state_dict" not in read_checkpoint(out)["train_state"]  # deploying reads the checkpoint alone
    side.write_bytes(side.read_bytes() + b"\0")
    with pytest.raises(PipelineError, match="not the file it was saved with"):
        read_checkpoint(out, resume=True)


def test_a_deployable_checkpoint_stands_alone_and_an_unfinished_one_needs_its_state(tmp_path):
    import shutil

    from pipeline.models.loading import load_model

    done, partial = tmp_path / "done.pt", tmp_path / "partial.pt"
    run(tmp_path, done, "--epochs", "1", "--ema", "0.9")
    copy = tmp_path / "copy" / "shipped.pt"
    copy.parent.mkdir()
    shutil.copy(done, copy)  # no resume state beside the copy
    model, ckpt = load_model(copy)
    assert ckpt["train_state"]["epoch"] == 1 and "resume_file" not in ckpt["train_state"]
    assert read_checkpoint(copy, resume=True)["train_state"]["epoch"] == 1  # finished: nothing left to resume
    run(tmp_path, partial, "--epochs", "2", "--max-steps", "4", "--ema", "0.9")  # 4 steps: epoch 1 of 2
    before = partial.read_bytes()
    (tmp_path / "partial.state.pt").unlink()
    with pytest.raises(PipelineError, match="missing or is not the file"):
        read_checkpoint(partial, resume=True)
    assert read_checkpoint(partial)["train_state"]["epoch"] == 1 and partial.read_bytes() == before


@pytest.mark.parametrize("native", [False, True])
def test_bf16_is_used_only_where_the_hardware_has_it(tmp_path, monkeypatch, capsys, native):
    """Without hardware bfloat16 the run trains in float32 with a note; with it, bf16 is used, no note."""
    import pipeline.training.loop as loop

    seen: list[bool] = []
    step = loop.train_step
    monkeypatch.setattr(loop, "bf16_is_native", lambda device: native)
    monkeypatch.setattr(loop, "train_step", lambda *a, **k: (seen.append(a[6]), step(*a, **k))[1])  # a[6]: bf16
    assert run(tmp_path, tmp_path / "m.pt", "--epochs", "1", "--max-steps", "2", "--bf16") == 0
    assert seen == [native, native]
    assert ("no hardware bfloat16" in capsys.readouterr().out) is not native
    assert read_checkpoint(tmp_path / "m.pt")["train_state"]["args"]["bf16"] == "True"  # what was asked for
