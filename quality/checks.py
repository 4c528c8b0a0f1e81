"""Dagster asset checks that run the Great Expectations suites on each landed partition range.

One multi-asset check per bronze table, partitioned like the table. Blocking checks
(integrity) fail with ERROR severity and stop downstream assets of that partition in the same
run; the others are warnings, recorded but not blocking. Every outcome is appended to
``quality/check_outcomes`` and the GX validation results are rendered as Data Docs HTML in
``WATTLAKE_DATA_DOCS`` (default ``./data_docs``; open ``index.html``).
"""

import dataclasses
import os
from pathlib import Path
from typing import Optional

import dagster as dg
import polars as pl

from assets.registry import key
from pipelines.partitions import daily
from pipelines.resources import LakeResource
from quality.suites import SUITES, CheckOutcome, validate
from wattlake import tables as T
from wattlake.lake import Lake

DEFAULT_DOCS = "./data_docs"


class QualityResource(dg.ConfigurableResource):
    """Where GX Data Docs are written (a local folder an analyst opens in a browser)."""

    docs_dir: Optional[str] = None

    def docs_path(self) -> Path:
        return Path(self.docs_dir or os.environ.get("WATTLAKE_DATA_DOCS") or DEFAULT_DOCS).expanduser().resolve()


def record_outcomes(lake: Lake, outcomes: list[CheckOutcome]) -> None:
    """Append outcomes to ``quality/check_outcomes``."""
    if outcomes:
        frame = pl.DataFrame([dataclasses.asdict(o) for o in outcomes])
        frame = frame.with_columns(pl.col("evaluated_at_utc").dt.convert_time_zone("UTC"))
        lake.append(T.CHECK_OUTCOMES.name, frame, T.CHECK_OUTCOMES.schema,
                    configuration=T.CHECK_OUTCOMES.configuration)


def _checks_for(spec: T.TableSpec):
    suite = SUITES[spec.name]

    @dg.multi_asset_check(
        name=f"gx_{spec.name.replace('/', '_')}",
        description=f"Great Expectations suite for {spec.name}",
        specs=[dg.AssetCheckSpec(c.name, asset=key(spec.name), blocking=c.blocking,
                                 description=c.description + (" (blocking)" if c.blocking else " (warning)"),
                                 partitions_def=daily)
               for c in suite.checks],
    )
    def _check(context: dg.AssetCheckExecutionContext, lake: LakeResource, quality: QualityResource):
        the_lake = lake.lake()
        start, end = context.partition_key_range.start, context.partition_key_range.end
        frame = the_lake.read(spec.name, filter=pl.col("day").is_between(
            pl.lit(start).str.to_date(), pl.lit(end).str.to_date()))
        systems = the_lake.read(T.SYSTEMS.name) if the_lake.exists(T.SYSTEMS.name) else None
        outcomes = validate(spec.name, frame, systems=systems, partition=(start, end),
                            docs_dir=quality.docs_path(), run_id=context.run.run_id)
        record_outcomes(the_lake, outcomes)
        for o in outcomes:
            yield dg.AssetCheckResult(
                asset_key=key(spec.name), check_name=o.check, passed=o.passed,
                severity=dg.AssetCheckSeverity.ERROR if o.blocking else dg.AssetCheckSeverity.WARN,
                metadata={"rows_checked": o.element_count, "unexpected": o.unexpected_count,
                          "sample": o.unexpected_sample, "partitions": f"{start}..{end}"},
            )

    return _check


QUALITY_CHECKS = [_checks_for(T.TABLES[name]) for name in SUITES]
