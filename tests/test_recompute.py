"""Activation checkpointing (``train.activation_checkpointing``): recomputed units give exactly the plain gradients.

Every family is run in float64, in train mode, with its random numbers drawn — the VDVAE's latents,
PixelCNN++'s and Flow++'s dropout, Flow++'s dequantization noise — under every policy that
recomputes a different set of units, against the same pass with nothing recomputed.
"""

from __future__ import annotations

import pytest
import torch
from locations import ROOT

from genkit.engine.recompute import Recomputed, apply_recompute, recomputing, selected_units
from genkit.errors import ConfigError
from genkit.models import build_model
from genkit.recipe import load_recipe
from genkit.recompute import distinct_policies
from genkit.testing import gradients_under

# each family's small recipe, with its random numbers switched on
FAMILIES = {
    "vdvae": (ROOT / "recipes" / "digits.toml", []),
    "pixelcnnpp": (ROOT / "recipes" / "pixelcnnpp-digits.toml", []),  # dropout 0.5
    "flowpp": (ROOT / "tests" / "recipes" / "flowpp-tiny.toml", ["model.dropout=0.3"]),  # variational dequantizer
}
# the digits VDVAE with three latent layers, where a test compiles or trains it
THREE_LAYERS = ['model.enc_blocks="8x1,8d2,4x1,4d4,1x1"', 'model.dec_blocks="1x1,4m1,8m4"']


def family_model(name: str, dtype=torch.float64):
    path, overrides = FAMILIES[name]
    torch.manual_seed(0)
    return build_model(load_recipe(path, overrides)).to(dtype).train()


def images_for(model, n: int = 2) -> torch.Tensor:
    h, w, c = model.image_shape
    return torch.randint(0, 256, (n, h, w, c), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))


def assert_same_gradients(model, images, *, generator: bool, dtype_rtol: float = 1e-12) -> None:
    plain_loss, plain, plain_after = gradients_under(model, images, "off", seed=4, generator=generator)
    policies = distinct_policies([unit.resolution for unit in model.recomputable_units()])[1:]
    assert len(policies) >= 2
    for policy in policies:
        loss, grads, after = gradients_under(model, images, policy.text, seed=4, generator=generator)
        assert loss == plain_loss and grads.keys() == plain.keys(), policy.text
        assert after == plain_after, f"{policy.text}: the generators end elsewhere than without recomputation"
        for name in plain:
            torch.testing.assert_close(grads[name], plain[name], rtol=dtype_rtol, atol=0, msg=f"{policy.text}: {name}")


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_policy_gives_the_plain_gradients_with_random_numbers_from_the_global_generator(family):
    model = family_model(family)
    assert_same_gradients(model, images_for(model), generator=False)


@pytest.mark.parametrize("family", ["vdvae", "flowpp"])
def test_every_policy_gives_the_plain_gradients_with_random_numbers_from_a_passed_generator(family):
    # the VDVAE draws z inside its decoder blocks from the generator it is given: the recomputation must draw them again
    model = family_model(family)
    assert_same_gradients(model, images_for(model), generator=True)


def test_under_bf16_autocast_every_policy_gives_the_plain_gradients_exactly():
    model = family_model("vdvae", torch.float32)
    images = images_for(model)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert_same_gradients(model, images, generator=True, dtype_rtol=0)


@pytest.mark.slow
def test_under_torch_compile_every_unit_recomputed_gives_the_plain_gradients():
    # aot_eager: Dynamo and AOTAutograd (which decide what a compiled graph saves and recomputes) without
    # a C++ build; a VDVAE of three latent layers keeps the compilation short
    recipe = load_recipe(FAMILIES["vdvae"][0], THREE_LAYERS)
    torch.manual_seed(0)
    model = build_model(recipe).double().train()
    images = images_for(model)
    results = []
    for policy in ("off", "all"):
        torch._dynamo.reset()
        with recomputing(model, policy, "test"):
            compiled = torch.compile(model, backend="aot_eager")
            torch.manual_seed(4)
            model.zero_grad(set_to_none=True)
            loss = compiled(images).loss
            loss.backward()
        results.append((loss.item(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    (plain_loss, plain), (loss, grads) = results
    assert loss == plain_loss
    for name in plain:
        torch.testing.assert_close(grads[name], plain[name], rtol=1e-12, atol=0, msg=name)


def test_a_recomputed_unit_runs_again_in_the_backward_pass():
    model = family_model("vdvae")
    unit = model.recomputable_units()[-1].module  # the last decoder block
    calls = []
    unit.resnet.register_forward_pre_hook(lambda *_: calls.append(torch.is_grad_enabled()))
    with recomputing(model, "all", "test"):
        loss = model(images_for(model)).loss
        assert len(calls) == 1
        loss.backward()
    assert len(calls) == 2


def test_recomputing_puts_back_what_the_model_recomputed_before():
    model = family_model("vdvae")
    units = apply_recompute(model, "resolution>=8", "test")
    with recomputing(model, "all", "test"):
        assert all(isinstance(u.module.__dict__.get("forward"), Recomputed) for u in model.recomputable_units())
    recomputed = [
        u.module for u in model.recomputable_units() if isinstance(u.module.__dict__.get("forward"), Recomputed)
    ]
    assert recomputed == [u.module for u in units]


def test_applying_a_policy_leaves_the_state_dict_as_it_was():
    model = family_model("vdvae")
    before = list(model.state_dict())
    apply_recompute(model, "all", "test")
    assert list(model.state_dict()) == before and not any(".stages." in key for key in before)


def test_a_policy_that_selects_no_unit_is_refused_naming_the_resolutions_there_are():
    model = family_model("vdvae")
    with pytest.raises(ConfigError, match=r"'resolution>=16' selects none of the \d+ units .*resolutions: 8, 4, 1\)"):
        selected_units(model, "resolution>=16", "train.activation_checkpointing")


def test_a_model_without_recomputable_units_is_refused_in_one_line(toy_registry):
    from genkit.recipe import recipe_from_dict

    model = build_model(recipe_from_dict({"model": {"name": "toy"}}))
    with pytest.raises(ConfigError, match="train.activation_checkpointing = 'all' needs a model with units declared"):
        selected_units(model, "all", "train.activation_checkpointing")


@pytest.mark.parametrize("text", ["blocks", "resolution>16", "resolution>=0", "segments:4", ""])
def test_a_recipe_with_an_unknown_policy_names_the_key_and_the_syntax(text):
    with pytest.raises(ConfigError, match=r'train.activation_checkpointing: expected "off", "all" or "resolution>=R"'):
        load_recipe(ROOT / "recipes" / "digits.toml", [f'train.activation_checkpointing="{text}"'])


def test_a_recipe_that_recomputes_inside_a_cuda_graph_is_refused():
    with pytest.raises(ConfigError, match='expected "off" when train.cuda_graph = true'):
        load_recipe(ROOT / "recipes" / "digits.toml", ["train.activation_checkpointing=all", "train.cuda_graph=true"])


def test_training_with_every_unit_recomputed_ends_on_the_weights_of_training_without(tmp_path):
    from genkit.engine.trainer import train

    finals = []
    for policy in ("off", "all"):
        recipe = load_recipe(
            ROOT / "recipes" / "digits.toml",
            [*THREE_LAYERS, "train.steps=2", "train.batch_size=4", "train.eval_every=100", "train.n_samples=4"]
            + ["eval.max_images=8", "eval.validation_max_images=8", f"train.activation_checkpointing={policy}"],
        )
        result = train(recipe, run_dir=tmp_path / policy)
        finals.append(result.model.state_dict())
    assert all(torch.equal(finals[0][key], finals[1][key]) for key in finals[0])


@pytest.mark.slow
def test_two_gloo_ranks_recomputing_every_unit_end_on_the_weights_of_two_ranks_recomputing_none(tmp_path):
    import engine_plugins
    import torch.multiprocessing as mp
    from test_engine_distributed import free_port

    from genkit.recipe import apply_overrides
    from genkit.recipefiles import read_recipe

    settings = [*THREE_LAYERS, "train.steps=2", "train.batch_size=2", "train.eval_every=100", "train.n_samples=4"]
    settings += ["eval.max_images=8", "eval.validation_max_images=8", "eval.batch_size=4"]  # a batch for each rank
    weights = {}
    for policy in ("off", "all"):
        raw = apply_overrides(
            read_recipe(FAMILIES["vdvae"][0]), [*settings, f"train.activation_checkpointing={policy}"]
        )
        out = tmp_path / policy
        mp.spawn(engine_plugins.ddp_worker, args=(2, free_port(), raw, str(out)), nprocs=2, join=True)
        weights[policy] = [torch.load(out / f"rank{rank}.pt") for rank in (0, 1)]
    for key, value in weights["off"][0].items():
        assert torch.equal(weights["all"][0][key], value) and torch.equal(weights["all"][1][key], value), key
