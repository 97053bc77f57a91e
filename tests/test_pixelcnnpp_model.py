"""The ``pixelcnnpp`` model: size, initialisation, dropout, class conditioning, objective and a short training run."""

from __future__ import annotations

import json

import pytest
import torch
from locations import ROOT
from test_pixelcnnpp_reference import one_thread, recipe  # noqa: F401  (one_thread: a fixture)

from genkit.capabilities import DataDependentInit, capabilities
from genkit.errors import ConfigError, RecipeError
from genkit.interfaces import GenerativeModel, LossTerms
from genkit.models import build_model
from genkit.recipe import recipe_from_dict
from genkit_plugins.pixelcnnpp.kinds import InitialisedFromData
from genkit_plugins.pixelcnnpp.model import PixelCNNPP

FULL_SIZE = json.loads((ROOT / "tests" / "fixtures" / "pixelcnnpp-full-size.json").read_text())["cifar10"]


def random_images(n: int, shape=(8, 8, 3), seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_the_cifar10_architecture_has_the_references_53659080_parameters_in_the_same_parts():
    model = build_model(recipe_from_dict({"model": {"name": "pixelcnnpp", **FULL_SIZE["hyperparameters"]}}), "meta")
    net = model.network
    count = lambda *modules: sum(p.numel() for m in modules for p in m.parameters())  # noqa: E731
    assert count(model) == FULL_SIZE["n_parameters"] == 53_659_080
    assert [count(net.up_layers), count(net.down_layers)] == list(FULL_SIZE["parts"].values())[:2]
    assert count(net.downsize_u_stream, net.downsize_ul_stream) == 513_280
    assert count(net.upsize_u_stream, net.upsize_ul_stream) == 513_280
    assert count(net.u_init, net.ul_init) == 8_000 and count(net.nin_out) == 16_200


def test_genkit_show_reports_the_cifar10_recipes_parameter_count_samplers_and_capabilities(tmp_path):
    from genkit.cli import main

    assert main(["show", str(ROOT / "recipes" / "pixelcnnpp-cifar10.toml"), "--json", str(tmp_path / "show.json")]) == 0
    shown = json.loads((tmp_path / "show.json").read_text())
    assert shown["parameters"]["total"] == 53_659_080
    assert shown["model"] == {
        "objective": "exact negative log-likelihood",
        "samplers": ["cached", "row-truncated", "naive"],
        "capabilities": ["DataDependentInit", "Recomputable"],
    }
    train = shown["recipe"]["train"]
    official = dict(lr=0.001, lr_decay=0.999995, warmup_iters=0, betas=[0.95, 0.9995], grad_clip=0.0, batch_size=16)
    assert {k: train[k] for k in official} == official
    assert (train["skip_threshold"], train["weight_decay"], train["ema_rate"], train["init_images"]) == (
        0,
        0,
        0.9995,
        16,
    )
    assert shown["recipe"]["model"]["dropout"] == 0.5
    assert shown["recipe"]["data"]["validation_size"] == 0  # all 50,000 training images, validated on test


def test_the_digits_recipe_builds_a_small_categorical_pixelcnnpp_on_the_embedded_digits():
    from genkit.recipe import load_recipe

    recipe = load_recipe(ROOT / "recipes" / "pixelcnnpp-digits.toml")
    model = build_model(recipe, "meta")
    assert (recipe.data.name, model.image_shape, type(model.likelihood).__name__) == (
        "digits",
        (8, 8, 1),
        "Categorical",
    )
    assert sum(p.numel() for p in model.parameters()) == 979_456


def test_the_model_declares_an_exact_likelihood_data_dependent_initialisation_and_recomputable_units():
    model = build_model(recipe("rgb"))
    assert isinstance(model, GenerativeModel) and isinstance(model, DataDependentInit)
    assert capabilities(model) == ["DataDependentInit", "Recomputable"]
    assert model.objective.exact and model.objective.key == "nll" and model.objective.parts == ()


def test_forward_gives_the_nll_per_image_with_no_parts_and_no_randomness_in_eval_mode():
    model = build_model(recipe("rgb")).eval()
    images = random_images(3)
    terms = model(images)
    assert isinstance(terms, LossTerms) and terms.parts == {} and terms.layer_kl is None
    assert terms.nll.shape == (3,) and torch.isfinite(terms.nll).all() and (terms.nll > 0).all()
    assert torch.equal(terms.nll, model(images, latents="mean").nll)
    assert torch.allclose(terms.loss, terms.nll.mean())


def _weight_normalised_outputs(model: PixelCNNPP, images: torch.Tensor) -> dict[str, torch.Tensor]:
    layers = {n: m for n, m in model.named_modules() if isinstance(m, InitialisedFromData)}
    outputs = {}
    hooks = [m.register_forward_hook(lambda _, __, out, n=n: outputs.__setitem__(n, out)) for n, m in layers.items()]
    with torch.no_grad():
        model(images)
    for hook in hooks:
        hook.remove()
    return {n: (out, layers[n].init_scale) for n, out in outputs.items()}


def test_data_dependent_initialisation_gives_every_layer_mean_zero_and_std_init_scale_over_the_batch():
    """With dropout 0, one pass over 16 images sets g and b so that each weight-normalised layer's pre-activation has
    per-channel mean 0 and standard deviation 1 (0.1 for each gated block's second convolution)."""
    torch.manual_seed(0)
    model = build_model(recipe("rgb", dropout=0.0)).double()
    images = random_images(16)
    model.initialize(images)
    outputs = _weight_normalised_outputs(model.train(), images)
    assert len(outputs) == 57 and {scale for _, scale in outputs.values()} == {1.0, 0.1}
    for name, (out, scale) in outputs.items():
        per_channel = out.transpose(0, 1).flatten(1)
        assert per_channel.mean(1).abs().max() < 1e-10, name
        assert torch.allclose(per_channel.std(1, unbiased=False), torch.full_like(per_channel[:, 0], scale)), name


def test_initialisation_runs_with_dropout_on_and_leaves_the_mode_as_it_was():
    torch.manual_seed(0)
    model = build_model(recipe("rgb")).eval()
    before = {n: p.clone() for n, p in model.named_parameters()}
    model.initialize(random_images(16))
    assert not model.training
    changed = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert changed and all(n.endswith((".g", ".b")) for n in changed)


def test_dropout_is_element_wise_as_the_official_code_not_channel_wise():
    model = build_model(recipe("rgb")).train()
    block = model.network.up_layers[0].ul_stream[0]
    seen = {}
    hook = block.conv_out.register_forward_pre_hook(lambda _, args: seen.setdefault("input", args[0]))
    torch.manual_seed(0)
    model(random_images(2))
    hook.remove()
    dropped = seen["input"] == 0  # (B, 2F, H, W): concat_elu is never exactly 0 elsewhere
    per_channel = dropped.flatten(2).float().mean(2)
    assert 0.4 < dropped.float().mean() < 0.6
    assert ((per_channel > 0) & (per_channel < 1)).all(), "every channel keeps some values and drops others"


def test_class_conditioning_adds_h_times_w_to_every_gated_blocks_second_convolution():
    """The conditional model on label y equals the unconditional model with hw[y] added to each conv_out's bias."""
    torch.manual_seed(0)
    conditional = build_model(recipe("rgb", num_classes=4)).double().eval()
    unconditional = build_model(recipe("rgb")).double().eval()
    images = random_images(2)
    for y in (0, 3):
        state = conditional.state_dict()
        for key in [k for k in state if k.endswith(".hw")]:
            state[key.replace(".hw", ".conv_out.conv.b")] = (
                state[key.replace(".hw", ".conv_out.conv.b")] + state[key][y]
            )
            del state[key]
        unconditional.load_state_dict(state)
        with torch.no_grad():
            got = conditional(images, labels=torch.tensor([y, y])).nll
            assert torch.allclose(got, unconditional(images).nll, rtol=1e-12)
    n_classes_weights = sum(p.numel() for n, p in conditional.named_parameters() if n.endswith(".hw"))
    assert n_classes_weights == 16 * 4 * (2 * 8), "one (classes, 2F) matrix per gated block, 16 blocks"


def test_labels_are_needed_exactly_when_the_model_is_class_conditional():
    with pytest.raises(ConfigError, match="needs labels"):
        build_model(recipe("rgb", num_classes=4))(random_images(1))
    with pytest.raises(ConfigError, match="num_classes = 0"):
        build_model(recipe("rgb"))(random_images(1), labels=torch.tensor([1]))


def test_images_of_another_shape_or_type_fail_in_one_line():
    model = build_model(recipe("rgb"))
    for bad in (random_images(1, (8, 8, 1)), random_images(1).float()):
        with pytest.raises(ConfigError, match=r"expected uint8 images of shape \(B, 8, 8, 3\)"):
            model(bad)


@pytest.mark.parametrize(
    "changes,key",
    [({"image_size": 30}, "model.image_size"), ({"likelihood": {"name": "dmol", "num_mixtures": 5}}, "num_mixtures")],
)
def test_bad_settings_fail_naming_the_key(changes, key):
    with pytest.raises(RecipeError, match=key):
        recipe_from_dict({"model": {"name": "pixelcnnpp", **changes}})


def test_under_bf16_autocast_the_parameters_and_the_likelihood_stay_in_float32():
    model = build_model(recipe("rgb")).eval()
    images = random_images(2)
    with torch.no_grad():
        reference = model(images).nll
        with torch.autocast("cpu", dtype=torch.bfloat16):
            params = model.likelihood_params(images)
            nll = model(images).nll
    assert params.dtype == torch.float32 and nll.dtype == torch.float32
    assert torch.allclose(nll, reference, rtol=2e-2)


def test_forty_steps_of_training_on_the_digits_bring_the_loss_well_below_its_start():
    """8×8 digits, 2 blocks per resolution, 16 filters: data-dependent init, then Adam with the official betas."""
    from genkit.registry import get_registry

    digits = get_registry().build("dataset", "digits").split("train")
    images = torch.stack([digits[i] for i in range(320)])
    train, held_out = images[:256], images[256:]
    torch.manual_seed(0)
    model = build_model(recipe("grey", nr_resnet=2, nr_filters=16, nr_logistic_mix=5))
    model.initialize(train[:16])
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3, betas=(0.95, 0.9995))

    def held_out_nll() -> float:
        with torch.no_grad():
            return model.eval()(held_out).loss.item()

    start = held_out_nll()
    model.train()
    for step in range(40):
        loss = model(train[16 * (step % 16) : 16 * (step % 16 + 1)]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    end = held_out_nll()
    assert end < start - 0.4, (start, end)  # nats per dimension


def test_a_short_digits_run_initialises_trains_evaluates_and_samples_through_the_cli(tmp_path):
    from genkit.cli import main

    run = tmp_path / "run"
    settings = [
        "train.steps=4",
        "train.eval_every=2",
        "train.batch_size=8",
        "train.init_images=16",
        "train.n_samples=2",
        "eval.max_images=16",
        "eval.validation_max_images=8",
    ]
    args = ["run", str(ROOT / "recipes" / "pixelcnnpp-digits.toml"), "--out", str(run)]
    assert main([*args, *[item for s in settings for item in ("--set", s)]]) == 0
    results = json.loads((run / "results.json").read_text())
    assert results["objective"] == "exact negative log-likelihood"
    report = tmp_path / "eval.json"
    assert main(["eval", str(run), "--split", "test", "--max-images", "16", "--json", str(report)]) == 0
    assert json.loads(report.read_text())["bits_per_dim"] == pytest.approx(results["bits_per_dim"], rel=1e-6)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert sum(r["split"] == "validation" for r in records) == 2
    assert (run / "samples" / "step-00000004-samples.png").is_file()
    out = tmp_path / "cached.png"
    assert main(["sample", str(run), "--n", "2", "--sampler", "row-truncated", "--out", str(out)]) == 0
    assert out.is_file()
