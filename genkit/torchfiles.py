"""Weights that other implementations saved with ``torch.save``, read for ``genkit convert``.

Such a file is a pickle. It is read with ``weights_only=True``, so none of its code runs, and
whatever it holds instead of a state dict of floating-point tensors — text, a damaged download, a
training checkpoint with the weights one level down, a file of another kind — fails in one line
naming the file and what was expected, never with the loader's own exception.
"""

from __future__ import annotations

from pathlib import Path

import torch

from genkit.errors import CheckpointError, is_out_of_memory

#: what ``nn.DataParallel`` and ``DistributedDataParallel`` put before every key of the model they wrap
WRAPPER_PREFIX = "module."


def read_state_dict(path: str | Path, expected: str) -> dict[str, torch.Tensor]:
    """The tensors of the ``torch.save``'d state dict at ``path`` by name, without the ``module.`` prefix.

    ``expected`` says what the file should be (``"an official openai/vdvae *-model.th file"``); every
    error names it.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found; expected {expected}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling bytes that are not a checkpoint fails in any exception type (KeyError: 101)
        # and torch's own message advises weights_only=False, which would run the file's pickled code
        if is_out_of_memory(exc):
            raise
        raise CheckpointError(
            f"{path}: not a PyTorch state dict that loads with weights_only=True ({type(exc).__name__}); "
            f"expected {expected}"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise CheckpointError(
            f"{path}: expected a state dict (names to tensors), found {_kind(state)}; expected {expected}"
        )
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(
                f"{path}: {key!r} holds {_kind(value)}, not a tensor; expected a state dict (names to tensors) of "
                f"{expected}"
            )
        if not value.is_floating_point():
            raise CheckpointError(f"{path}: tensor {key!r} is {value.dtype}, not floating point; expected {expected}")
    out = {key.removeprefix(WRAPPER_PREFIX): value for key, value in state.items()}
    if len(out) != len(state):
        raise CheckpointError(
            f"{path}: holds keys both with and without the {WRAPPER_PREFIX!r} prefix; expected {expected}"
        )
    return out


def _kind(value: object) -> str:
    if isinstance(value, dict):
        return f"a dict of {len(value)} entries"
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of {len(value)}"
    return f"a {type(value).__name__}"
