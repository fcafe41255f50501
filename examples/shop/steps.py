"""pandas steps of the sample shop pipeline (examples/shop/dataplump.yaml).

Each function gets one batch as a DataFrame of ``pandas.ArrowDtype`` columns, indexed
by the engine's row lineage (keep the index), and returns a DataFrame.
"""

from __future__ import annotations

import pandas as pd

BANDS = [0.0, 10.0, 50.0, 200.0, float("inf")]
LABELS = ["budget", "standard", "premium", "luxury"]


def price_band(df: pd.DataFrame) -> pd.DataFrame:
    """products: a price band from the price."""
    bands = pd.cut(df["price"].astype("float64"), BANDS, labels=LABELS, right=False)
    return df.assign(price_band=bands.astype("string"))


def order_flags(df: pd.DataFrame) -> pd.DataFrame:
    """orders: whether the customer left a note, and the order's month."""
    return df.assign(
        has_note=df["note"].notna(),
        order_month=df["ordered_at"].dt.strftime("%Y-%m").astype("string"),
    )
