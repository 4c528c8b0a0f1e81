"""Jobs: the registry refresh and the daily landing of every bronze source."""

from __future__ import annotations

import dagster as dg

from pipelines.partitions import daily

registry_job = dg.define_asset_job(
    "refresh_registry",
    selection=dg.AssetSelection.assets(["restricted", "systems"]).required_multi_asset_neighbors(),
    description="Land the registry snapshot (restricted/*, weather stations).",
)

land_job = dg.define_asset_job(
    "land_bronze",
    selection=(dg.AssetSelection.groups("bronze") - dg.AssetSelection.assets(["bronze", "weather_stations"]))
    .required_multi_asset_neighbors(),
    partitions_def=daily,
    description="Land one landing day of inverter, meter, device and weather files into bronze.",
)
