"""Great Expectations (1.x) suites for the bronze and silver tables, and the code that runs them.

Each table has a :class:`Suite`: a ``prepare`` function that turns the table's rows (Polars)
into the frames the expectations look at — the rows themselves with derived check columns
(``ts_day_ok``, ``ac_power_ratio``, ``counter_step_ok`` ...) and a per-system-day frame for
completeness — and a list of :class:`Check`, each one GX expectation with a name, a reason and
a severity. Blocking checks guard integrity (schema, keys, time placement, counters); warnings
flag physics that may be real but needs a look (ranges, completeness).

Thresholds, and why:

- inverter AC power within 0 .. 1.1 x the inverter's AC rating: the rating caps output; 10 %
  headroom covers meter tolerance and cold-weather overshoot of some inverters.
- meter power within 0 .. 17.25 kW: a household connection of 3 x 25 A at 230 V.
- device power within 0 .. 22 kW: a three-phase 32 A EV charger is the largest device.
- irradiance 0 .. 1,400 W/m2 (above the solar constant at the surface only briefly, with cloud
  enhancement); air temperature -30 .. 45 degC; wind 0 .. 50 m/s (Dutch records).
- completeness >= 95 % of the expected intervals per system (or station) and UTC day.
- silver hourly energy 0 .. 1.2 kWh per kWp (1 kW/m2 for an hour is 1 kWh/kWp at STC; 20 %
  margin for cloud enhancement and cold modules); plane-of-array irradiation 0 .. 1.4 kWh/m2.

GX is imported lazily (``import great_expectations`` takes ~5 s); it validates pandas frames,
so the prepared Polars frames are converted with only the columns the expectations use.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import polars as pl

from wattlake import tables as T
# the same limits landing applies: a reading landing accepts must pass these checks
from wattlake.parsing.inverter import COUNTER_RESET_TOLERANCE_KWH, future_limit

HOUSEHOLD_MAX_KW = 3 * 25 * 230 / 1000.0  # 17.25 kW
DEVICE_MAX_W = 22_000.0
INVERTER_HEADROOM = 1.1
COMPLETENESS_MIN = 0.95
SAMPLE_ROWS = 1000
SILVER_MAX_KWH_PER_KWP = 1.2


@dataclass(frozen=True)
class Check:
    """One named check: a GX expectation on one prepared frame."""

    name: str
    frame: str  # "sample" (table columns), "types" (column types), "rows" (with derived columns), "daily"
    blocking: bool
    description: str
    expectation: Callable[[], object]  # builds the GX expectation (GX imported lazily)


@dataclass
class CheckOutcome:
    """The result of one check on one partition range (a row of ``quality/check_outcomes``)."""

    table: str
    check: str
    blocking: bool
    passed: bool
    element_count: int
    unexpected_count: int
    unexpected_sample: str
    expectation: str
    partition_start: str
    partition_end: str
    evaluated_at_utc: dt.datetime
    run_id: str = ""


@dataclass
class Suite:
    table: str
    prepare: Callable[..., dict[str, pl.DataFrame]]
    checks: list[Check] = field(default_factory=list)


def _gxe():
    import great_expectations.expectations as gxe

    return gxe


# ---------------------------------------------------------------- expectation builders
def columns_match(spec: T.TableSpec) -> Callable[[], object]:
    return lambda: _gxe().ExpectTableColumnsToMatchSet(column_set=list(spec.schema.names), exact_match=True)


def unique(*cols: str) -> Callable[[], object]:
    return lambda: _gxe().ExpectCompoundColumnsToBeUnique(column_list=list(cols))


def all_true(col: str) -> Callable[[], object]:
    return lambda: _gxe().ExpectColumnValuesToBeInSet(column=col, value_set=[True])


def between(col: str, lo: float | None, hi: float | None) -> Callable[[], object]:
    return lambda: _gxe().ExpectColumnValuesToBeBetween(column=col, min_value=lo, max_value=hi)


def pair_equal(a: str, b: str) -> Callable[[], object]:
    return lambda: _gxe().ExpectColumnPairValuesToBeEqual(column_A=a, column_B=b)


def not_null(col: str) -> Callable[[], object]:
    return lambda: _gxe().ExpectColumnValuesToNotBeNull(column=col)


# ---------------------------------------------------------------- derived columns
def _time_checks(frame: pl.DataFrame, now: dt.datetime) -> pl.DataFrame:
    return frame.with_columns(
        (pl.col("ts_utc").dt.date() == pl.col("day")).fill_null(False).alias("ts_day_ok"),
        (pl.col("ts_utc") <= future_limit(now)).fill_null(False).alias("ts_not_future"),
    )


def _counter_ok(counter: str, key: list[str], reset: str | None = None) -> pl.Expr:
    prev = pl.col(counter).shift(1).over(key)
    ok = (pl.col(counter) >= prev - COUNTER_RESET_TOLERANCE_KWH) | prev.is_null() | pl.col(counter).is_null()
    if reset:
        ok = ok | pl.col(reset)
    return ok.fill_null(True)


def _completeness(frame: pl.DataFrame, key: str, per_day: int) -> pl.DataFrame:
    return (frame.group_by(key, "day").agg(pl.col("ts_utc").n_unique().alias("intervals"))
            .with_columns((pl.col("intervals") / per_day).alias("completeness")))


def prepare_inverter(frame: pl.DataFrame, systems: pl.DataFrame, now: dt.datetime) -> dict[str, pl.DataFrame]:
    rows = _time_checks(frame, now).join(
        systems.select("system_id", "inverter_ac_kw"), on="system_id", how="left"
    ).sort("system_id", "ts_utc").with_columns(
        (pl.col("ac_power_w") / (pl.col("inverter_ac_kw") * 1000.0)).alias("ac_power_ratio"),
        _counter_ok("ac_energy_total_kwh", ["system_id"], "counter_reset").alias("counter_step_ok"),
    )
    return {"rows": rows, "daily": _completeness(frame, "system_id", 288)}


def prepare_meter(frame: pl.DataFrame, systems: pl.DataFrame, now: dt.datetime) -> dict[str, pl.DataFrame]:
    rows = _time_checks(frame, now).sort("system_id", "ts_utc").with_columns(
        pl.all_horizontal(
            _counter_ok(c, ["system_id"]) for c in
            ("imported_t1_kwh", "imported_t2_kwh", "exported_t1_kwh", "exported_t2_kwh")
        ).alias("counter_step_ok"),
    )
    return {"rows": rows, "daily": _completeness(frame, "system_id", 96)}


def prepare_device(frame: pl.DataFrame, systems: pl.DataFrame, now: dt.datetime) -> dict[str, pl.DataFrame]:
    rows = _time_checks(frame, now).sort("system_id", "device_type", "ts_utc").with_columns(
        _counter_ok("energy_total_kwh", ["system_id", "device_type"]).alias("counter_step_ok"),
    )
    return {"rows": rows}


def prepare_weather(frame: pl.DataFrame, systems: pl.DataFrame, now: dt.datetime) -> dict[str, pl.DataFrame]:
    return {"rows": _time_checks(frame, now), "daily": _completeness(frame, "station_id", 24)}


def prepare_silver(frame: pl.DataFrame, systems: pl.DataFrame, now: dt.datetime) -> dict[str, pl.DataFrame]:
    rows = _time_checks(frame, now).join(systems.select("system_id", "kwp"), on="system_id", how="left").with_columns(
        (pl.col("actual_energy_kwh") / pl.col("kwp")).alias("actual_kwh_per_kwp"),
        (pl.col("expected_energy_kwh") / pl.col("kwp")).alias("expected_kwh_per_kwp"),
    )
    return {"rows": rows}


def prepare_plain(frame: pl.DataFrame, systems: pl.DataFrame, now: dt.datetime) -> dict[str, pl.DataFrame]:
    return {"rows": frame}


def _schema_checks(spec: T.TableSpec) -> list[Check]:
    return [
        Check("schema", "sample", True, f"columns are exactly those of {spec.name}", columns_match(spec)),
        Check("types", "types", True, "every column has the table's type (timestamps in UTC)",
              pair_equal("observed_type", "expected_type")),
    ]


def types_frame(frame: pl.DataFrame, spec: T.TableSpec) -> pl.DataFrame:
    """One row per table column: the frame's type and the table schema's type (as text)."""
    expected = pl.from_arrow(spec.schema.empty_table()).schema
    return pl.DataFrame({
        "column": list(expected),
        "observed_type": [str(frame.schema.get(c)) if c in frame.columns else "missing" for c in expected],
        "expected_type": [str(t) for t in expected.values()],
    })


def _integrity(spec: T.TableSpec) -> list[Check]:
    return [
        *_schema_checks(spec),
        Check("key_unique", "rows", True, f"natural key {list(spec.keys)} is unique", unique(*spec.keys)),
        Check("ts_in_partition", "rows", True, "every reading sits in the partition of its UTC day",
              all_true("ts_day_ok")),
        Check("ts_not_future", "rows", True, "no reading is later than landing time + 10 min",
              all_true("ts_not_future")),
    ]


SUITES: dict[str, Suite] = {
    T.INVERTER_READINGS.name: Suite(T.INVERTER_READINGS.name, prepare_inverter, [
        *_integrity(T.INVERTER_READINGS),
        Check("counter_monotonic", "rows", True,
              "lifetime energy never decreases except at a recorded counter_reset", all_true("counter_step_ok")),
        Check("ac_power_within_rating", "rows", False,
              "AC power between 0 and 1.1 x the inverter's AC rating", between("ac_power_ratio", 0.0, INVERTER_HEADROOM)),
        Check("completeness", "daily", False, "at least 95 % of the 288 five-minute readings per system-day",
              between("completeness", COMPLETENESS_MIN, None)),
    ]),
    T.METER_READINGS.name: Suite(T.METER_READINGS.name, prepare_meter, [
        *_integrity(T.METER_READINGS),
        Check("counter_monotonic", "rows", True, "the four energy counters never decrease", all_true("counter_step_ok")),
        Check("import_power_plausible", "rows", False, "import power within a 3 x 25 A connection (17.25 kW)",
              between("power_imported_kw", 0.0, HOUSEHOLD_MAX_KW)),
        Check("export_power_plausible", "rows", False, "export power within a 3 x 25 A connection (17.25 kW)",
              between("power_exported_kw", 0.0, HOUSEHOLD_MAX_KW)),
        Check("completeness", "daily", False, "at least 95 % of the 96 quarter-hour telegrams per system-day",
              between("completeness", COMPLETENESS_MIN, None)),
    ]),
    T.DEVICE_READINGS.name: Suite(T.DEVICE_READINGS.name, prepare_device, [
        *_integrity(T.DEVICE_READINGS),
        Check("counter_monotonic", "rows", True, "device energy counters never decrease", all_true("counter_step_ok")),
        Check("power_plausible", "rows", False, "device power between 0 and 22 kW", between("power_w", 0.0, DEVICE_MAX_W)),
    ]),
    T.WEATHER.name: Suite(T.WEATHER.name, prepare_weather, [
        *_integrity(T.WEATHER),
        Check("irradiance_range", "rows", False, "GHI between 0 and 1400 W/m2", between("ghi_w_m2", 0.0, 1400.0)),
        Check("temperature_range", "rows", False, "air temperature between -30 and 45 degC",
              between("temp_air_c", -30.0, 45.0)),
        Check("wind_range", "rows", False, "wind speed between 0 and 50 m/s", between("wind_speed_m_s", 0.0, 50.0)),
        Check("completeness", "daily", False, "at least 23 of 24 hourly observations per station-day",
              between("completeness", COMPLETENESS_MIN, None)),
    ]),
    T.PV_INTERVALS.name: Suite(T.PV_INTERVALS.name, prepare_silver, [
        *_integrity(T.PV_INTERVALS),
        Check("readings_per_hour", "rows", True, "0 to 12 five-minute readings behind each hour",
              between("n_readings", 0, 12)),
        Check("actual_energy_plausible", "rows", False,
              "measured energy 0 .. 1.2 kWh per kWp in an hour (1 kW/m2 x 1 h, with cloud-edge margin)",
              between("actual_kwh_per_kwp", 0.0, SILVER_MAX_KWH_PER_KWP)),
        Check("expected_energy_plausible", "rows", True, "modelled energy 0 .. 1.2 kWh per kWp in an hour",
              between("expected_kwh_per_kwp", 0.0, SILVER_MAX_KWH_PER_KWP)),
        Check("poa_range", "rows", False, "plane-of-array irradiation 0 .. 1.4 kWh/m2 in an hour",
              between("poa_irradiation_kwh_m2", 0.0, 1.4)),
    ]),
    T.QUARANTINE.name: Suite(T.QUARANTINE.name, prepare_plain, [
        *_schema_checks(T.QUARANTINE),
        Check("key_unique", "rows", True, "(source_file, line_no) is unique", unique(*T.QUARANTINE.keys)),
        Check("reason_present", "rows", True, "every quarantined record has a reason", not_null("reason")),
    ]),
}


# ---------------------------------------------------------------- running GX
class _GX:
    """One ephemeral GX context per process, with a validation definition per (table, frame)."""

    def __init__(self) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.gx = gx
        self.ctx = gx.get_context(mode="ephemeral")
        self.ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
        self.source = self.ctx.data_sources.add_pandas("wattlake")
        self.definitions: dict[tuple[str, str], object] = {}
        self.docs_sites: set[str] = set()

    def definition(self, suite: Suite, frame: str):
        key = (suite.table, frame)
        if key not in self.definitions:
            name = f"{suite.table.replace('/', '.')}.{frame}"
            batch = self.source.add_dataframe_asset(name).add_batch_definition_whole_dataframe(frame)
            gx_suite = self.ctx.suites.add(self.gx.ExpectationSuite(name=name))
            for check in suite.checks:
                if check.frame == frame:
                    exp = check.expectation()
                    exp.meta = {"check": check.name, "blocking": check.blocking, "description": check.description}
                    gx_suite.add_expectation(exp)
            self.definitions[key] = self.ctx.validation_definitions.add(
                self.gx.ValidationDefinition(name=name, data=batch, suite=gx_suite))
        return self.definitions[key]

    def run(self, suite: Suite, frame: str, data, docs_dir: Path | None):
        vd = self.definition(suite, frame)
        if docs_dir is None:
            return vd.run(batch_parameters={"dataframe": data}, result_format="SUMMARY")
        site = str(Path(docs_dir).resolve())
        if site not in self.docs_sites:
            self.ctx.add_data_docs_site(site_name=f"wattlake{len(self.docs_sites)}", site_config={
                "class_name": "SiteBuilder",
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": site},
            })
            self.docs_sites.add(site)
        cp_name = f"{vd.name}.checkpoint"
        try:
            cp = self.ctx.checkpoints.get(cp_name)
        except Exception:
            cp = self.ctx.checkpoints.add(self.gx.Checkpoint(
                name=cp_name, validation_definitions=[vd], result_format="SUMMARY",
                actions=[self.gx.checkpoint.UpdateDataDocsAction(name="data_docs")]))
        result = cp.run(batch_parameters={"dataframe": data})
        return next(iter(result.run_results.values()))


_gx: _GX | None = None


def _context() -> _GX:
    global _gx
    if _gx is None:
        _gx = _GX()
    return _gx


def _columns_used(suite: Suite, frame: str, available: list[str]) -> list[str]:
    """Columns a frame's expectations read (all of them for the schema sample)."""
    used: set[str] = set()
    for check in suite.checks:
        if check.frame != frame:
            continue
        exp = check.expectation()
        if type(exp).__name__ == "ExpectTableColumnsToMatchSet":
            return available
        for attr in ("column", "column_list", "column_A", "column_B"):
            v = getattr(exp, attr, None)
            if v:
                used |= {v} if isinstance(v, str) else set(v)
    return [c for c in available if c in used]


def validate(table: str, frame: pl.DataFrame, *, systems: pl.DataFrame | None = None,
             now: dt.datetime | None = None, partition: tuple[str, str] = ("", ""),
             docs_dir: Path | None = None, run_id: str = "") -> list[CheckOutcome]:
    """Run a table's suite on ``frame`` (that table's rows); one outcome per check.

    ``systems`` (restricted/systems) is needed for the inverter rating check; ``now`` is the
    reference for "not in the future" (default: the current time). With ``docs_dir`` the GX
    validation results are also rendered as Data Docs HTML there (``index.html``).
    """
    suite = SUITES[table]
    now = now or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    if systems is None:
        systems = pl.DataFrame(schema={"system_id": pl.Utf8, "inverter_ac_kw": pl.Float64})
    #: schema and type checks look at the table's own columns on a sample; the rest at all rows
    frames = {"sample": frame.head(SAMPLE_ROWS), "types": types_frame(frame, T.TABLES[table])}
    if all(str(frame.schema.get(c)) == t for c, t in types_frame(frame, T.TABLES[table]).select(
            "column", "expected_type").iter_rows() if c in frame.columns):
        frames.update(suite.prepare(frame, systems, now))
    else:  # derived checks need the right types: with a type defect only the schema checks run
        frames.update({name: None for name in {c.frame for c in suite.checks} - set(frames)})
    evaluated = dt.datetime.now(dt.timezone.utc)
    outcomes: list[CheckOutcome] = []
    for name, data in frames.items():
        if data is None:
            outcomes += [_not_run(table, c, partition, evaluated, run_id) for c in suite.checks if c.frame == name]
            continue
        cols = _columns_used(suite, name, data.columns)
        result = _context().run(suite, name, data.select(cols).to_pandas(), docs_dir)
        for res in result.results:  # one per expectation (a handful), not per row
            meta = res.expectation_config.meta or {}
            r = res.result or {}
            outcomes.append(CheckOutcome(
                table=table, check=meta.get("check", res.expectation_config.type),
                blocking=bool(meta.get("blocking")), passed=bool(res.success),
                element_count=int(r.get("element_count") or data.height),
                unexpected_count=int(r.get("unexpected_count") or 0),
                unexpected_sample=json.dumps(_jsonable(r.get("partial_unexpected_list") or r.get("details") or [])[:10])
                if not res.success else "[]",
                expectation=res.expectation_config.type,
                partition_start=partition[0], partition_end=partition[1],
                evaluated_at_utc=evaluated, run_id=run_id,
            ))
    return outcomes


def _not_run(table: str, check: Check, partition, evaluated, run_id) -> CheckOutcome:
    """A check that could not run because the types are wrong: it fails, saying so."""
    return CheckOutcome(table=table, check=check.name, blocking=check.blocking, passed=False, element_count=0,
                        unexpected_count=0, unexpected_sample='["not run: column types do not match the table"]',
                        expectation="not_run", partition_start=partition[0], partition_end=partition[1],
                        evaluated_at_utc=evaluated, run_id=run_id)


def _jsonable(v):
    if isinstance(v, dict):
        return [{str(k): str(x) for k, x in v.items()}]
    return [x if isinstance(x, (int, float, str, bool)) or x is None else str(x) for x in v]
