"""The MLflow pyfunc model, logged as code: ``models:/musicrec-als@champion``.

``predict`` takes a DataFrame of requests (``user_id`` of a known listener, or ``ratings`` of
a new one, optional ``n``) and returns the top-N artists with names and scores; or, for an
``artist_id`` (trained, or placed by its tags), the top-N users to promote it to; see
:meth:`musicrec_assets.serving.recommender.Recommender.predict`.
"""

from pathlib import Path

import mlflow
import pandas as pd

from musicrec_assets.serving.recommender import Recommender


class MusicrecModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        # every artifact is copied into the same folder
        self.recommender = Recommender.from_folder(Path(context.artifacts["factors"]).parent)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return self.recommender.predict(model_input)


mlflow.models.set_model(MusicrecModel())
