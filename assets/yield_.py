"""Silver: per system and UTC hour, measured vs pvlib-expected energy (see wattlake.yield_model)."""

import dagster as dg

from assets.registry import key
from pipelines.partitions import daily
from pipelines.resources import LakeResource
from wattlake import tables as T
from wattlake.modelling import write_pv_intervals
from wattlake.tables import PV_INTERVALS


@dg.asset(
    key=key(PV_INTERVALS.name),
    description=PV_INTERVALS.description,
    group_name="silver",
    partitions_def=daily,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[
        # an hour's last reading (hh+1:00) of a day's last hour can arrive in the next landing day
        dg.AssetDep(key(T.INVERTER_READINGS.name),
                    partition_mapping=dg.TimeWindowPartitionMapping(start_offset=0, end_offset=1)),
        key(T.WEATHER.name), key(T.SYSTEMS.name), key(T.STATIONS.name),
    ],
    metadata={"table": PV_INTERVALS.name, "keys": list(PV_INTERVALS.keys), "partition_column": "day"},
    kinds={"deltalake", "polars", "pvlib"},
    pool="lake_silver",
)
def silver_pv_intervals(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    the_lake = lake.lake()
    r = context.partition_key_range
    result = write_pv_intervals(the_lake, r.start, r.end, progress=context.log.info)
    return dg.MaterializeResult(metadata={**result, "delta_version": the_lake.version(PV_INTERVALS.name)})
