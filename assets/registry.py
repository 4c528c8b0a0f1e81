"""Registry assets: the ``restricted/*`` tables (personal data) and the weather stations."""


import dagster as dg

from pipelines.resources import LakeResource, LandingResource
from wattlake import tables as T
from wattlake.registry import land_registry

REGISTRY_TABLES = (T.SUBJECTS, T.SYSTEMS, T.INSTALLATION_PHOTOS, T.STATIONS)


def key(name: str) -> dg.AssetKey:
    """Asset key of a lake table ``layer/name``."""
    return dg.AssetKey(name.split("/"))


@dg.multi_asset(
    specs=[
        dg.AssetSpec(key(t.name), description=t.description,
                     group_name="restricted" if t.name.startswith("restricted/") else "bronze",
                     metadata={"table": t.name, "keys": list(t.keys)},
                     kinds={"deltalake", "polars"})
        for t in REGISTRY_TABLES
    ],
    can_subset=False,
    pool="lake_registry",
)
def registry(context: dg.AssetExecutionContext, lake: LakeResource, landing: LandingResource):
    """Land the registry snapshot (systems, subjects, photos, stations); unchanged tables are not rewritten."""
    reports = land_registry(lake.lake(), landing.path())
    for name, r in reports.items():
        yield dg.MaterializeResult(
            asset_key=key(name),
            metadata={"rows": r.rows, "written": r.written, "delta_version": r.version},
        )
