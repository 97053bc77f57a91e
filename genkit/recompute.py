"""Activation-checkpointing policies: which of a model's recomputable units run again in the backward pass.

A policy is a short string, ``train.activation_checkpointing`` in a recipe:

* ``"off"`` — nothing is recomputed; autograd keeps everything it saves (the default);
* ``"all"`` — every unit the model declares keeps only its inputs and is recomputed in backward;
* ``"resolution>=R"`` — the units at resolution ``R`` and above, where most of the memory is.

A model declares its units through :class:`genkit.capabilities.Recomputable`; the engine applies a
policy to them (:mod:`genkit.engine.recompute`).
"""

from __future__ import annotations

import re

import attrs

OFF, ALL = "off", "all"
_AT_LEAST = re.compile(r"^resolution\s*>=\s*([1-9][0-9]*)$")
#: what a policy may be, for messages
SYNTAX = '"off", "all" or "resolution>=R" (R a positive integer)'


@attrs.frozen
class RecomputePolicy:
    """A parsed policy: recompute every unit whose resolution is at least ``min_resolution`` (``None``: none)."""

    text: str
    min_resolution: int | None

    @property
    def off(self) -> bool:
        return self.min_resolution is None

    def selects(self, resolution: int) -> bool:
        """Whether a unit working at ``resolution`` is recomputed."""
        return self.min_resolution is not None and resolution >= self.min_resolution


def parse_policy(text: str) -> RecomputePolicy:
    """The policy ``text`` names; a ``ValueError`` saying what a policy may be when it names none."""
    cleaned = text.strip() if isinstance(text, str) else text
    if cleaned == OFF:
        return RecomputePolicy(OFF, None)
    if cleaned == ALL:
        return RecomputePolicy(ALL, 1)
    match = _AT_LEAST.match(cleaned) if isinstance(cleaned, str) else None
    if match is None:
        raise ValueError(f"expected {SYNTAX}, found {text!r}")
    return RecomputePolicy(f"resolution>={match.group(1)}", int(match.group(1)))


def distinct_policies(resolutions: list[int]) -> list[RecomputePolicy]:
    """Every policy that recomputes a different set of units working at ``resolutions``, least recomputation first:
    ``off``, ``resolution>=R`` from the highest ``R`` down, ``all``."""
    found = sorted(set(resolutions), reverse=True)
    chosen = [parse_policy(OFF)] + [parse_policy(f"resolution>={r}") for r in found[:-1]]
    return chosen + ([RecomputePolicy(ALL, found[-1])] if found else [])
