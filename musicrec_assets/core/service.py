"""Old import path of :class:`musicrec_assets.serving.recommender.Recommender`.

Kept because every model version registered before the restructure was logged as code
(``pyfunc_model.py``) that imports ``musicrec_assets.core.service``: without this module those
versions, champions among them, would no longer load or ``mlflow models serve``.
"""

from musicrec_assets.serving.recommender import Recommender

__all__ = ["Recommender"]
