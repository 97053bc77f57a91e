"""``train.cuda_graph``: the whole step captured in one CUDA graph.

On CPU: the capturable optimizer (a tensor learning rate filled in place by the scheduler) takes
the same updates as the plain one, checkpoints of either form resume in the other, and asking
for a graph without CUDA fails with one line. With CUDA: the replayed graph trains exactly like
the eager step, and a run with it checkpoints and resumes.
"""

from __future__ import annotations

import copy

import pytest
import torch
from locations import ROOT

from genkit.engine.distributed import Distributed
from genkit.engine.step import EMA, GraphedTrainStep, TrainStep, adapt_loaded_optimizer, build_optimizer
from genkit.recipe import TrainConfig, load_recipe

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def descend(model, optimizer, scheduler, steps, seed=1):
    generator = torch.Generator().manual_seed(seed)
    lrs = []
    for _ in range(steps):
        x = torch.randn(16, 4, generator=generator)
        model(x).square().mean().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        lrs.append(float(optimizer.param_groups[0]["lr"]))
    return lrs


def linear(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Linear(4, 3)


def test_the_capturable_optimizer_follows_the_plain_one_through_warmup():
    config = TrainConfig(lr=1e-2, warmup_iters=4)
    plain, graphable = linear(), linear()
    opt_a, sched_a = build_optimizer(plain, config)
    opt_b, sched_b = build_optimizer(graphable, TrainConfig(lr=1e-2, warmup_iters=4, cuda_graph=True))
    lr_tensor = opt_b.param_groups[0]["lr"]
    assert isinstance(lr_tensor, torch.Tensor) and opt_b.param_groups[0]["capturable"]
    lrs_a = descend(plain, opt_a, sched_a, 7)
    lrs_b = descend(graphable, opt_b, sched_b, 7)
    # the graph reads the learning rate from this very tensor: the scheduler must fill it, not replace it
    assert opt_b.param_groups[0]["lr"] is lr_tensor
    assert lrs_a == pytest.approx([0.25e-2, 0.5e-2, 0.75e-2, 1e-2, 1e-2, 1e-2, 1e-2], rel=1e-6)
    assert lrs_b == pytest.approx(lrs_a, rel=1e-6)
    for a, b in zip(plain.parameters(), graphable.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)  # float32 (tensor) against float64 (Python) lr


@pytest.mark.parametrize("saved_graph, resumed_graph", [(True, False), (False, True), (False, False)])
def test_optimizer_state_resumes_across_the_cuda_graph_setting(saved_graph, resumed_graph):
    saved_config = TrainConfig(lr=1e-2, warmup_iters=4, cuda_graph=saved_graph)
    resumed_config = TrainConfig(lr=1e-2, warmup_iters=4, cuda_graph=resumed_graph)
    straight = linear()
    opt, sched = build_optimizer(straight, saved_config)
    descend(straight, opt, sched, 3)
    # a checkpoint: copies, as torch.save makes them (state_dict() hands out the live moment tensors)
    state = copy.deepcopy(
        {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "weights": straight.state_dict()}
    )
    reference = descend(straight, opt, sched, 4, seed=2)

    resumed = linear(seed=5)  # different initial weights, replaced by the checkpoint's
    resumed.load_state_dict(state["weights"])
    opt2, sched2 = build_optimizer(resumed, resumed_config)
    opt2.load_state_dict(state["optimizer"])
    sched2.load_state_dict(state["scheduler"])
    adapt_loaded_optimizer(opt2, sched2, resumed_config)
    group = opt2.param_groups[0]
    assert group["capturable"] is resumed_graph and isinstance(group["lr"], torch.Tensor) is resumed_graph
    assert descend(resumed, opt2, sched2, 4, seed=2) == pytest.approx(reference, rel=1e-6)
    for a, b in zip(straight.parameters(), resumed.parameters()):
        if saved_graph == resumed_graph:
            assert torch.equal(a, b)
        else:
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_a_cuda_graph_without_cuda_fails_with_one_line(tmp_path, monkeypatch, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    from genkit.cli import main

    monkeypatch.chdir(tmp_path)
    assert (
        main(["run", str(ROOT / "recipes" / "digits.toml"), "--set", "train.cuda_graph=true", "--set", "train.steps=2"])
        == 2
    )
    captured = capsys.readouterr()
    lines = [line for line in (captured.out + captured.err).splitlines() if line.strip()]
    assert len(lines) == 1 and "train.cuda_graph = true needs a CUDA device" in lines[0], lines
    assert not any((tmp_path / "runs").glob("*/checkpoints"))


def tiny_vdvae(config: TrainConfig):
    from genkit.models import build_model

    recipe = load_recipe(ROOT / "recipes" / "digits.toml")
    torch.manual_seed(0)
    model = build_model(recipe, "cuda")
    optimizer, scheduler = build_optimizer(model, config)
    ema = EMA(model, config.ema_rate)
    step = TrainStep(model, model, optimizer, ema, config, Distributed(device=torch.device("cuda")))
    return model, ema, scheduler, step


def digit_batches(n, batch=32):
    from genkit_plugins.datasets.digits import Digits, DigitsSettings

    data = Digits(DigitsSettings()).split("train")
    generator = torch.Generator().manual_seed(0)
    return [
        torch.stack([data[int(i)] for i in torch.randint(0, len(data), (batch,), generator=generator)]).cuda()
        for _ in range(n)
    ]


@needs_cuda
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_the_replayed_graph_trains_like_the_eager_step(dtype):
    base = dict(lr=5e-3, warmup_iters=3, ema_rate=0.9, dtype=dtype)
    batches = digit_batches(10)
    results = []
    for graphed in (False, True):
        config = TrainConfig(**base, cuda_graph=graphed)
        model, ema, scheduler, step = tiny_vdvae(config)
        fn = GraphedTrainStep(step, warmup=3) if graphed else step
        torch.cuda.manual_seed(123)
        losses = []
        for images in batches:
            out = fn(images)
            losses.append(out["loss"].item())  # read before the next replay overwrites it
            scheduler.step()
        if graphed:
            assert fn.captured
        results.append(
            (losses, [p.detach().clone() for p in model.parameters()], [p.clone() for p in ema.model.parameters()])
        )
    (eager_losses, eager_w, eager_ema), (graph_losses, graph_w, graph_ema) = results
    # the same latent noise (the graph advances the default generator as eager kernels do) and the same updates
    assert graph_losses == pytest.approx(eager_losses, rel=1e-4)
    for a, b in zip(eager_w + eager_ema, graph_w + graph_ema):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@needs_cuda
def test_a_run_with_a_cuda_graph_checkpoints_and_resumes(tmp_path):
    from genkit.engine.trainer import train

    settings = [
        "train.cuda_graph=true",
        "train.num_workers=0",
        "train.log_every=2",
        "train.eval_every=1000",
        "eval.max_images=64",
        "eval.validation_max_images=64",
        f"train.out_dir={str(tmp_path)!r}".replace("'", '"'),
    ]
    recipe = load_recipe(ROOT / "recipes" / "digits.toml", [*settings, "train.steps=6"])
    first = train(recipe, run_dir=tmp_path / "run")
    assert first.step == 6
    longer = load_recipe(ROOT / "recipes" / "digits.toml", [*settings, "train.steps=10"])
    resumed = train(longer, resume=tmp_path / "run")
    assert resumed.step == 10
    assert all(torch.isfinite(p).all() for p in resumed.model.parameters())


@needs_cuda
def test_sampling_replayed_from_a_graph_draws_what_eager_sampling_draws():
    from genkit.engine.graphs import GraphedCall

    model, ema, _, _ = tiny_vdvae(TrainConfig())
    model.eval()
    with torch.no_grad():
        torch.cuda.manual_seed(7)
        eager = [model.sample(16, temperature=1.0) for _ in range(4)]
        torch.cuda.manual_seed(7)
        graphed = GraphedCall(lambda: model.sample(16, temperature=1.0), device=torch.device("cuda"), warmup=2)
        replayed = [graphed().clone() for _ in range(4)]
    assert graphed.captured
    for a, b in zip(eager, replayed):
        assert (a == b).float().mean() > 0.999  # the same noise through the same kernels
    assert not torch.equal(replayed[2], replayed[3])  # each replay draws new noise


def test_a_graph_refuses_a_cpu_device():
    from genkit.engine.graphs import GraphedCall

    with pytest.raises(ValueError, match="needs a CUDA device"):
        GraphedCall(lambda: None, device=torch.device("cpu"))
