"""The two demo models, trained at setup from data that ships with scikit-learn or is generated.

`iris`: RandomForest on scikit-learn's bundled Iris data. `house-price`: a pipeline (one-hot
categoricals -> random forest) on a SYNTHETIC, seeded data set shaped like the UK Land
Registry price-paid data (property type, new build, tenure). Both train in about a second.
"""

from __future__ import annotations

import numpy as np

from predictions.models import MLModel, ModelVersion

IRIS_FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
IRIS_SPECIES = np.array(["setosa", "versicolor", "virginica"])
HOUSE_CATEGORIES = {
    "property_type": ["D", "S", "T", "F", "O"],
    "old_new": ["Y", "N"],
    "duration": ["F", "L"],
}
# Median-ish prices by property type (detached, semi, terraced, flat, other), GBP.
BASE_PRICE = {"D": 430_000.0, "S": 275_000.0, "T": 235_000.0, "F": 215_000.0, "O": 340_000.0}
IRIS_DESCRIPTION = (
    "Iris species from sepal and petal measurements (cm). RandomForestClassifier trained on "
    "the Iris data set bundled with scikit-learn."
)
HOUSE_DESCRIPTION = (
    "House price (GBP) from property type (D detached, S semi-detached, T terraced, F flat, "
    "O other), old_new (Y new build, N established) and duration (F freehold, L leasehold). "
    "Trained on a SYNTHETIC, seeded data set shaped like the UK price-paid data; the prices "
    "are illustrative, not real."
)


def train_iris():
    """(fitted RandomForestClassifier, input schema): species labels, features 0-50 cm."""
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    data = load_iris()
    model = RandomForestClassifier(n_estimators=100, random_state=42, n_jobs=1)
    model.fit(data.data, IRIS_SPECIES[data.target])
    features = [
        {"name": n, "type": "number", "minimum": 0.0, "maximum": 50.0} for n in IRIS_FEATURES
    ]
    return model, {"features": features}


def synthetic_price_paid(rows: int = 20_000, seed: int = 0):
    """A seeded DataFrame shaped like price-paid data: categoricals and a log-normal price."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    kinds = rng.choice(list("DSTFO"), rows, p=[0.25, 0.27, 0.27, 0.19, 0.02])
    new = rng.choice(["Y", "N"], rows, p=[0.1, 0.9])
    flat = kinds == "F"
    lease = np.where(flat, rng.random(rows) < 0.9, rng.random(rows) < 0.08)
    base = np.array([BASE_PRICE[k] for k in kinds])
    price = base * np.where(new == "Y", 1.12, 1.0) * np.where(lease, 0.88, 1.0)
    price *= rng.lognormal(0.0, 0.35, rows)
    frame = pd.DataFrame(
        {"property_type": kinds, "old_new": new, "duration": np.where(lease, "L", "F")}
    )
    return frame, price.round(-2)


def train_house_price():
    """(fitted Pipeline, training frame): one-hot categoricals -> RandomForestRegressor."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    frame, price = synthetic_price_paid()
    columns = list(HOUSE_CATEGORIES)
    encoder = OneHotEncoder(categories=[HOUSE_CATEGORIES[c] for c in columns])
    pipeline = Pipeline(
        [
            ("encode", ColumnTransformer([("onehot", encoder, columns)])),
            (
                "regress",
                RandomForestRegressor(n_estimators=40, max_depth=6, random_state=0, n_jobs=1),
            ),
        ]
    )
    pipeline.fit(frame, price)
    return pipeline, frame


DEMO_EXAMPLES = {
    "iris": {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2},
    "house-price": {"property_type": "D", "old_new": "N", "duration": "F"},
}


def bootstrap_demo_models() -> list[ModelVersion]:
    """Train and register both demo models when the registry is empty; else do nothing."""
    from predictions.registry import register_model_version

    if MLModel.objects.exists():
        return []
    iris, iris_schema = train_iris()
    house, frame = train_house_price()
    versions = [
        register_model_version(
            name="iris",
            estimator=iris,
            input_schema=iris_schema,
            description=IRIS_DESCRIPTION,
            make_default=True,
        ),
        register_model_version(
            name="house-price",
            estimator=house,
            sample=frame.head(500),
            description=HOUSE_DESCRIPTION,
            make_default=True,
            output={"type": "number", "unit": "GBP"},
        ),
    ]
    for mv in versions:  # the portal's docs show these instead of made-up mid-range values
        mv.metadata = {**mv.metadata, "example": DEMO_EXAMPLES[mv.model.name]}
        mv.save(update_fields=["metadata"])
    return versions
