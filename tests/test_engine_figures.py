"""Evaluation figures are summed or maximised over images, then over ranks, whatever each rank saw."""

from __future__ import annotations

import pytest
import torch
import torch.multiprocessing as mp
from distributed_helpers import figures_worker, free_port

from genkit.engine.distributed import Distributed
from genkit.engine.figures import Figures
from genkit.errors import GenkitError


def test_one_process_sums_and_maximises_each_figure_in_float64():
    figures = Figures(torch.device("cpu"))
    figures.add("nll", torch.tensor(1.5, dtype=torch.float32))
    figures.add("nll", torch.tensor(2.25))
    figures.maximum("worst", torch.tensor([0.5, 0.125]))
    figures.maximum("worst", torch.tensor([0.25, 0.375]))
    totals = figures.reduced(Distributed())
    assert totals["nll"].dtype == torch.float64 and totals["nll"].item() == 3.75
    assert totals["worst"].tolist() == [0.5, 0.375]


def test_a_figure_given_again_with_another_shape_is_one_line_naming_it():
    figures = Figures(torch.device("cpu"))
    figures.add("layer_kl", torch.zeros(3))
    with pytest.raises(GenkitError, match=r"evaluation figure 'layer_kl': given as a sum of shape \(4,\)"):
        figures.add("layer_kl", torch.zeros(4))


@pytest.mark.slow
def test_a_rank_that_saw_no_image_reduces_to_the_same_figures_as_the_rank_that_did(tmp_path):
    mp.spawn(figures_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    for rank in (0, 1):
        totals = torch.load(tmp_path / f"figures{rank}.pt")
        assert totals["images"].item() == 5.0
        assert totals["layer_kl"].tolist() == [1.5, 2.5, 3.5]
        assert totals["worst"].item() == 0.25
