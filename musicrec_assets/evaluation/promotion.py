"""Champion / challenger decisions: which model a candidate is compared with, and whether it wins.

No MLflow here: :mod:`musicrec_assets.tracking.registry` loads the champion and moves aliases.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix

from musicrec_assets.model.factors import FactorModel


@dataclass(frozen=True)
class Champion:
    """The current champion: its version, its train-part model, and the fingerprint of the
    split that model was trained on (None for versions logged before it was recorded)."""

    version: str
    evaluation_model: FactorModel
    split: str | None


@dataclass(frozen=True)
class StandIn:
    """What the candidate is compared with: ``model`` stands for the champion on this split
    (``refit`` when it is the champion's settings fit anew), or is None, and ``reason`` says
    why nothing is compared."""

    model: FactorModel | None
    refit: bool = False
    reason: str = ""


def comparable_champion(
    champion: Champion | None,
    split_id: str,
    candidate: FactorModel,
    fit: Callable[..., FactorModel],
    train: csr_matrix,
    ids: tuple[np.ndarray, np.ndarray],
) -> StandIn:
    """The model that stands for the champion on this split.

    The champion's own train-part model is fair only on the split it was trained on. On
    another split it has seen some of the held-out pairs and would score too well, so its
    settings are refit on this split instead: the candidate's own model when the settings
    are the same, and then a tie promotes, since the candidate has the newer data. Nothing
    stands in when there is no champion, when it was trained on other feedback (no score
    here compares with it), or when this backend cannot fit its settings.
    """
    if champion is None:
        return StandIn(None, reason="no champion yet")
    settings = champion.evaluation_model.params
    if settings.feedback != candidate.params.feedback:
        return StandIn(None, reason=f"the champion was trained on {settings.feedback} feedback")
    if champion.split == split_id:
        return StandIn(champion.evaluation_model)
    if settings == candidate.params:
        return StandIn(candidate, refit=True)
    try:
        return StandIn(fit(train, settings, *ids), refit=True)
    except ValueError as error:  # e.g. a local champion with biases under the Spark backend
        return StandIn(None, reason=f"the champion's settings cannot be refit here: {error}")


def should_promote(
    candidate: float,
    champion: float | None,
    higher_is_better: bool,
    tie_promotes: bool = False,
    no_champion: str = "no champion yet",
) -> tuple[bool, str]:
    """Promote when there is no champion score (``no_champion`` says why), or when the
    candidate scores better (or, with ``tie_promotes``, as well)."""
    if champion is None:
        return True, no_champion
    if candidate == champion and tie_promotes:
        return True, f"candidate {candidate:.4f} ties with champion {champion:.4f}"
    better = candidate > champion if higher_is_better else candidate < champion
    comparison = "better" if better else "not better"
    return better, f"candidate {candidate:.4f} is {comparison} than champion {champion:.4f}"
