"""Gold: kWh-guarantee verdicts per system and completed guarantee year (see wattlake.guarantee)."""

import dagster as dg

from assets.registry import key
from pipelines.resources import LakeResource
from wattlake import tables as T
from wattlake.evidence import write_evaluations
from wattlake.tables import GUARANTEE_EVALUATIONS


@dg.asset(
    key=key(GUARANTEE_EVALUATIONS.name),
    description=GUARANTEE_EVALUATIONS.description,
    group_name="gold",
    deps=[key(T.SYSTEM_DAILY.name), key(T.PV_INTERVALS.name), key(T.SYSTEMS.name),
          key(T.INSTALLATION_PHOTOS.name)],
    metadata={"table": GUARANTEE_EVALUATIONS.name, "keys": list(GUARANTEE_EVALUATIONS.keys)},
    kinds={"deltalake", "polars"},
    pool="lake_gold",
)
def gold_guarantee_evaluations(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    """Every completed guarantee year is re-evaluated over the whole history, then replaces the table."""
    the_lake = lake.lake()
    evaluations, versions = write_evaluations(the_lake)
    verdicts = dict(evaluations.group_by("verdict").len().sort("verdict").iter_rows()) if evaluations.height else {}
    short = evaluations.filter(evaluations["verdict"] == "shortfall")
    context.log.info(f"guarantee years evaluated: {evaluations.height}"
                     + (" (" + ", ".join(f"{v} {n}" for v, n in verdicts.items()) + ")" if verdicts else ""))
    return dg.MaterializeResult(metadata={
        "evaluations": evaluations.height,
        "verdicts": dg.MetadataValue.json(verdicts),
        "shortfall_kwh": float(short.get_column("shortfall_kwh").sum() or 0.0),
        "shortfall_eur": float(short.get_column("shortfall_eur").sum() or 0.0),
        "source_versions": dg.MetadataValue.json(versions),
        "delta_version": the_lake.version(GUARANTEE_EVALUATIONS.name),
    })
