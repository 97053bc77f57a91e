"""The training engine: data loading, the optimisation step, checkpoints, metrics and the loop that joins them.

``trainer.train`` is what ``genkit run`` calls; ``checkpoint.export_latest`` is how a run
directory becomes a model directory.
"""
