"""Bronze assets: raw readings landed per landing day into Delta (see wattlake.landing)."""


import dagster as dg
import polars as pl

from assets.registry import key
from pipelines.partitions import daily
from pipelines.resources import LakeResource, LandingResource
from wattlake import tables as T
from wattlake.landing import LandingReport, iter_chunk_days, land_groups


def _metadata(reports: list[LandingReport]) -> dict:
    """Run totals (they add up: records = landed + duplicates + quarantined + erased) and reasons."""
    tot = {k: sum(getattr(r, k) for r in reports)
           for k in ("files", "records", "landed", "duplicates", "quarantined", "erased", "corrected",
                     "counter_resets")}
    reasons: dict[str, int] = {}
    for r in reports:
        for reason, n in r.reasons.items():
            reasons[reason] = reasons.get(reason, 0) + n
    meta: dict = {"files": tot["files"], "rows_read": tot["records"], "rows_landed": tot["landed"],
                  "duplicates": tot["duplicates"], "quarantined": tot["quarantined"],
                  "erased_subject_records_dropped": tot["erased"],
                  "corrected": tot["corrected"], "counter_resets": tot["counter_resets"]}
    meta["partitions"] = len(reports)
    meta["quarantine_reasons"] = dg.MetadataValue.json(reasons)
    meta["delta_version"] = reports[-1].table_version if reports else None
    return meta


def _land_range(context: dg.AssetExecutionContext, source: str, lake: LakeResource,
                landing: LandingResource) -> dg.MaterializeResult:
    """Land the run's landing days, several days per commit (bounded by raw bytes); the group after
    next is read and the next one parsed while the current one is committed."""
    the_lake, root = lake.lake(), landing.path()
    keys = context.partition_keys
    reports = []
    done = 0
    # the groups are planned (files listed and sized) on a background thread while landing runs
    for report in land_groups(the_lake, root, source, iter_chunk_days(root, source, keys)):
        reports.append(report)
        done += report.days
        context.log.info(f"{done}/{len(keys)} days: {report.summary()}")
    return dg.MaterializeResult(metadata=_metadata(reports))


def _bronze_asset(spec: T.TableSpec, source: str, deps: list[str], also: tuple[T.TableSpec, ...] = ()):
    """A partitioned landing asset for one source; ``also`` names tables the same step writes."""
    specs = [
        dg.AssetSpec(key(t.name), description=t.description,
                     group_name="restricted" if t.name.startswith("restricted/") else "bronze",
                     deps=[key(d) for d in deps],
                     metadata={"table": t.name, "keys": list(t.keys), "partition_column": t.partition_by},
                     kinds={"deltalake", "polars"})
        for t in (spec, *also)
    ]

    @dg.multi_asset(
        name=spec.name.replace("/", "__"),
        specs=specs,
        partitions_def=daily,
        backfill_policy=dg.BackfillPolicy.single_run(),
        can_subset=False,
        pool=f"lake_{source}",
    )
    def _asset(context: dg.AssetExecutionContext, lake: LakeResource, landing: LandingResource):
        result = _land_range(context, source, lake, landing)
        yield dg.MaterializeResult(asset_key=key(spec.name), metadata=result.metadata)
        for t in also:
            yield dg.MaterializeResult(asset_key=key(t.name),
                                       metadata={"delta_version": lake.lake().version(t.name)})

    return _asset


inverter_readings = _bronze_asset(T.INVERTER_READINGS, "inverter", [T.SYSTEMS.name], also=(T.INVERTER_IPS,))
meter_readings = _bronze_asset(T.METER_READINGS, "meter", [T.SYSTEMS.name])
device_readings = _bronze_asset(T.DEVICE_READINGS, "device", [T.SYSTEMS.name])
weather = _bronze_asset(T.WEATHER, "weather", [T.STATIONS.name])


@dg.asset(
    key=key(T.QUARANTINE.name),
    description=T.QUARANTINE.description + " Written by the landing steps; this asset reports the "
    "partition's quarantine by source and reason.",
    group_name="bronze",
    partitions_def=daily,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[key(t.name) for t in (T.INVERTER_READINGS, T.METER_READINGS, T.DEVICE_READINGS, T.WEATHER)],
    metadata={"table": T.QUARANTINE.name, "keys": list(T.QUARANTINE.keys)},
    kinds={"deltalake", "polars"},
)
def quarantine(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    the_lake = lake.lake()
    spec = T.QUARANTINE
    # landing creates the table with its first rejected record: a new deployment's clean nights
    # must still leave one to read (empty), or its checks fail on "table does not exist"
    the_lake.ensure(spec.name, spec.schema, [spec.partition_by], spec.configuration)
    start, end = context.partition_key_range.start, context.partition_key_range.end
    counts = (
        the_lake.scan(T.QUARANTINE.name)
        .filter(pl.col("day").is_between(pl.lit(start).str.to_date(), pl.lit(end).str.to_date()))
        .group_by("source", "reason").len().sort("source", "reason").collect()
    )
    by = {f"{s}:{r}": n for s, r, n in counts.iter_rows()}
    return dg.MaterializeResult(metadata={
        "rows": int(counts.get_column("len").sum()) if counts.height else 0,
        "by_source_reason": dg.MetadataValue.json(by),
        "delta_version": the_lake.version(T.QUARANTINE.name),
    })


BRONZE_ASSETS = [inverter_readings, meter_readings, device_readings, weather, quarantine]
