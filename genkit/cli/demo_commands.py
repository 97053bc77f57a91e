"""``genkit demo``: a web page on this machine to play with a model (Gradio, the ``demo`` extra).

The page has a tab for each thing the model can do (:func:`genkit.cli.demo.tabs`) and nothing else. It is served
on 127.0.0.1 unless ``--host`` says otherwise, with Gradio's telemetry off and system fonts, so neither the server
nor the page contacts the internet; ``--share`` (off by default) is the one option that does.
"""

from __future__ import annotations

import os
import socket

import click

from genkit.capabilities import LatentVariables, capabilities
from genkit.cli.demo import interpolation_picture, reconstruction_picture, sample_picture, tabs
from genkit.cli.model_options import device_option, load_model
from genkit.cli.options import SEED_MAX
from genkit.errors import ConfigError, GenkitError

INSTALL_GRADIO = "pip install 'genkit-torch[demo]'"
MAX_TEMPERATURE = 1.5
# small images are enlarged in whole pixels; the browser must not blur them when it fits them to the page
PIXELATED = "#samples img, #reconstructions img, #interpolation img { image-rendering: pixelated; }"


@click.command()
@click.argument("model_path", metavar="MODEL_OR_HUB_ID")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to serve the page on; 0.0.0.0 opens it to other machines on the network.",
)
@click.option("--port", type=click.IntRange(1, 65535), default=7860, show_default=True, help="Port of the page.")
@click.option(
    "--share",
    is_flag=True,
    help="Also publish the page through a temporary public link from Gradio's servers (the one option that "
    "contacts the internet).",
)
@device_option
def demo(model_path, host, port, share, device):
    """Serve a web page on this machine to play with a model: samples, reconstructions, interpolations.

    MODEL_OR_HUB_ID is a model directory, a run directory or a Hub repo id. The page draws samples with a
    temperature (one per latent layer for a model with latent variables), a seed and one of the model's samplers;
    for a model with latent variables it reconstructs an uploaded image keeping its first k latent layers, and for
    one that can map images to latents and back it interpolates between two uploads. Stop it with Ctrl-C.
    """
    check_port(host, port)
    gr = import_gradio()
    serve(gr, load_model(model_path, device), model_path, device, host=host, port=port, share=share)


def import_gradio():
    """Gradio, with its telemetry and version check off, or one line saying how to install it."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # read whenever Gradio would send telemetry or look for updates
    try:
        import gradio
    except ImportError:
        raise ConfigError(f"genkit demo needs Gradio, which is not installed: {INSTALL_GRADIO}") from None
    return gradio


def serve(gr, model, name: str, device: str, *, host: str, port: int, share: bool = False, block: bool = True):
    """Serve the page for ``model`` at ``host:port`` until Ctrl-C (or, with ``block=False``, in the background:
    the caller closes what this returns)."""
    page = build_page(gr, model, name, device)
    page.launch(
        server_name=host,
        server_port=port,
        share=share,
        prevent_thread_lock=not block,
        theme=offline_theme(gr),
        css=PIXELATED,
        show_error=True,
        ssr_mode=False,
        mcp_server=False,
        pwa=False,
        quiet=not block,
    )
    return page


def check_port(host: str, port: int) -> None:
    """Stop with one line when the page could not be served at ``host:port``."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(
                f"--host {host} --port {port}: cannot serve there ({exc.strerror}); try another --port"
            ) from None


def offline_theme(gr):
    """Gradio's default look in the system's fonts: the page loads no font from the internet."""
    return gr.themes.Default(
        font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "Consolas", "monospace"]
    )


def build_page(gr, model, name: str, device: str):
    """The page for ``model`` (its tabs as :func:`genkit.cli.demo.tabs` lists them), not yet served."""
    shown = tabs(model)
    h, w, c = model.image_shape
    about = (
        f"**{name}**: a {type(model).__name__} of {h}×{w}×{c} images; its figure is the {model.objective.label}. "
        f"Samplers: {', '.join(model.samplers)}. Capabilities: {', '.join(capabilities(model)) or 'none'}."
    )
    with gr.Blocks(title=f"genkit demo: {name}", analytics_enabled=False) as page:
        gr.Markdown(about)
        with gr.Tabs():
            with gr.Tab("Sample"):
                sample_tab(gr, model, device)
            if "Reconstruct" in shown:
                with gr.Tab("Reconstruct"):
                    reconstruct_tab(gr, model, device)
            if "Interpolate" in shown:
                with gr.Tab("Interpolate"):
                    interpolate_tab(gr, model, device)
    return page


def shown_as_error(gr, draw):
    """``draw`` with genkit's one-line errors shown on the page instead of failing the request."""

    def guarded(*args):
        try:
            return draw(*args)
        except GenkitError as exc:
            raise gr.Error(str(exc)) from None

    return guarded


def picture_box(gr, label: str, element_id: str):
    """Where a tab shows its picture: PNG (lossless, so pixels stay exact), to download or enlarge, never to share."""
    return gr.Image(
        label=label, format="png", interactive=False, elem_id=element_id, height=480, buttons=["download", "fullscreen"]
    )


def seed_box(gr):
    return gr.Number(value=0, precision=0, minimum=0, maximum=SEED_MAX, label="seed")


def sample_tab(gr, model, device: str) -> None:
    layered = isinstance(model, LatentVariables)
    with gr.Row():
        with gr.Column(scale=1):
            n = gr.Slider(1, 64, value=16, step=1, label="images")
            seed = seed_box(gr)
            sampler = gr.Dropdown(
                list(model.samplers), value=model.samplers[0], label="sampler", interactive=len(model.samplers) > 1
            )
            temperature = gr.Slider(
                0, MAX_TEMPERATURE, value=1.0, step=0.05, label="temperature" + (" (every layer)" if layered else "")
            )
            per_layer = []
            if layered:
                with gr.Accordion("temperature of each latent layer, top first", open=False):
                    per_layer = [
                        gr.Slider(0, MAX_TEMPERATURE, value=1.0, step=0.05, label=f"layer {i} ({r}×{r})")
                        for i, r in enumerate(model.layer_resolutions)
                    ]
                temperature.change(lambda t: [t] * len(per_layer), temperature, per_layer)
            button = gr.Button("Sample", variant="primary")
        with gr.Column(scale=2):
            out = picture_box(gr, "samples", "samples")

    def draw(n, seed, sampler, temperature, *layers):
        # one value for every layer is the plain temperature, as `genkit sample --temperature t` takes it
        chosen = list(layers) if len(set(layers)) > 1 else (layers[0] if layers else temperature)
        return sample_picture(model, int(n), chosen, int(seed), sampler, device)

    button.click(shown_as_error(gr, draw), [n, seed, sampler, temperature, *per_layer], out)


def reconstruct_tab(gr, model, device: str) -> None:
    layers = model.n_latent_layers
    with gr.Row():
        with gr.Column(scale=1):
            image = gr.Image(label="image", type="numpy", image_mode="RGB", sources=["upload", "clipboard"])
            keep = gr.Slider(0, layers, value=layers // 2, step=1, label=f"latent layers kept (k, of {layers})")
            temperature = gr.Slider(
                0, MAX_TEMPERATURE, value=0.1, step=0.05, label="temperature of the layers drawn from the prior"
            )
            draws = gr.Slider(1, 16, value=8, step=1, label="draws")
            seed = seed_box(gr)
            button = gr.Button("Reconstruct", variant="primary")
        with gr.Column(scale=2):
            out = picture_box(gr, "the image as the model sees it, then its reconstructions", "reconstructions")

    def draw(image, keep, temperature, draws, seed):
        return reconstruction_picture(model, image, int(keep), float(temperature), int(draws), int(seed), device)

    button.click(shown_as_error(gr, draw), [image, keep, temperature, draws, seed], out)


def interpolate_tab(gr, model, device: str) -> None:
    with gr.Row():
        with gr.Column(scale=1):
            with gr.Row():
                first = gr.Image(label="first image", type="numpy", image_mode="RGB", sources=["upload", "clipboard"])
                second = gr.Image(label="second image", type="numpy", image_mode="RGB", sources=["upload", "clipboard"])
            steps = gr.Slider(2, 16, value=8, step=1, label="steps")
            seed = seed_box(gr)
            button = gr.Button("Interpolate", variant="primary")
        with gr.Column(scale=2):
            out = picture_box(gr, "from the first image to the second", "interpolation")

    def draw(first, second, steps, seed):
        return interpolation_picture(model, first, second, int(steps), int(seed), device)

    button.click(shown_as_error(gr, draw), [first, second, steps, seed], out)


COMMANDS = [demo]
