"""The training engine: data loading, the optimisation step, checkpoints, evaluation, metrics and the loop.

``trainer.train`` is what ``genkit run`` calls; ``evaluate.evaluate_dataset`` what ``genkit eval
--split`` and every validation call.
"""
