"""The table catalogue: every Delta table's schema, natural key and partitioning.

Units are in column names (``_w``, ``_kwh``, ``_w_m2``, ``_c``, ``_m_s``, ``_m3``); times are
UTC (``_utc``); ``day`` is the UTC calendar date of the reading and the partition column of
every time-series table.

Column statistics: Delta writes per-file min/max values of columns into ``_delta_log`` JSON,
where a DELETE cannot reach them. Each table therefore lists the only columns that get
statistics (``delta.dataSkippingStatsColumns``): dates, timestamps and pseudonymous ids,
never personal data or raw text.

File encoding: a table that names its ``dictionary_columns`` is written with dictionary encoding on
those columns only, and Parquet statistics on its statistics columns only (the Delta log's come
from them). Dictionaries pay for columns with few distinct values per file (ids, times of a 5-minute
grid, status text); on measured values they are built and then dropped, and statistics on them
serve no reader here. For a landing group of 864 k inverter rows that cut the file writing from
0.36 to 0.28 CPU-seconds, for files 16 % larger (measured 2026-11-24). A write that opens many
partitions at once pays for each dictionary column of each file in memory: a year of
``gold/system_daily`` for 100 homes (365 files of 100 rows) faulted in 123 k fresh pages (640 MB
peak) with a dictionary on every column, 26 k (275 MB) with dictionaries on its few low-cardinality
columns only: 0.27 -> 0.18 s, files 6 % larger (measured 2026-11-24).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

UTC_TS = pa.timestamp("us", tz="UTC")

#: commits between two Delta checkpoints (``delta.checkpointInterval``; delta-rs' default is 100,
#: the Delta protocol's reference implementation uses 10). Opening a table reads the last
#: checkpoint and replays every commit after it: 0.28 ms per landing commit of
#: ``bronze/inverter_readings`` with 1,000 homes (4.4 ms just after a checkpoint, 28.7 ms 99
#: commits later), and a landing commit opens its tables about six times. A year of 1,000
#: homes' inverter files landed in 90.2 s instead of 95.5 s (commits 87.8 s against 94.1 s in
#: total); writing a checkpoint of a table of 385 files took 12 ms (2026-11-24).
#: Tables created before this setting keep delta-rs' default.
CHECKPOINT_INTERVAL = 10


@dataclass(frozen=True)
class TableSpec:
    """Schema and layout of one Delta table."""

    name: str
    schema: pa.Schema
    keys: tuple[str, ...]
    partition_by: str | None
    stats_columns: tuple[str, ...]
    description: str
    #: columns written with dictionary encoding (None: the writer's default, every column)
    dictionary_columns: tuple[str, ...] | None = None
    #: inserts written by delta-rs' MERGE writer instead of an append (``Lake.merge_insert``)
    insert_by_merge: bool = False

    @property
    def polars_schema(self) -> "pl.Schema":
        """The schema in Polars types (for an empty frame or typed rows of this table)."""
        import polars as pl

        return pl.Schema(pl.from_arrow(self.schema.empty_table()).schema)

    @property
    def configuration(self) -> dict[str, str]:
        """Delta table properties set when the table is created: the statistics columns and
        :data:`CHECKPOINT_INTERVAL`."""
        return {"delta.dataSkippingStatsColumns": ",".join(self.stats_columns),
                "delta.checkpointInterval": str(CHECKPOINT_INTERVAL)}

    @property
    def writer_properties(self):
        """The ``deltalake.WriterProperties`` of this table's writes (None: delta-rs' defaults):
        see the module docstring. Nested columns' leaves keep the defaults."""
        if self.dictionary_columns is None:
            return None
        from deltalake import ColumnProperties, WriterProperties

        return WriterProperties(compression="SNAPPY", column_properties={
            name: ColumnProperties(dictionary_enabled=name in self.dictionary_columns,
                                   statistics_enabled="PAGE" if name in self.stats_columns else "NONE")
            for name in self.schema.names})


def _schema(*fields: tuple[str, pa.DataType]) -> pa.Schema:
    return pa.schema([pa.field(n, t) for n, t in fields])


DC_TYPE = pa.list_(pa.struct([("mppt", pa.int8()), ("voltage_v", pa.float64()), ("current_a", pa.float64())]))

_LINEAGE = (("source_file", pa.string()), ("line_no", pa.int32()), ("landed_at_utc", UTC_TS))

#: columns that carry device identifiers in raw form: the raw P1 telegram (meter equipment ids), the
#: raw text of a rejected record (serials, meter ids), landing file names (energy-manager ids). They
#: stay in bronze for lineage and erasure-by-content, and retention clears the raw text; analysts
#: get them only when they ask for personal data (``wattlake.query``, ``restricted=True``).
RAW_IDENTIFIER_COLUMNS = ("raw_telegram", "raw_text", "source_file")

INVERTER_READINGS = TableSpec(
    "bronze/inverter_readings",
    _schema(
        ("system_id", pa.string()), ("ts_utc", UTC_TS), ("day", pa.date32()),
        ("ac_power_w", pa.float64()), ("ac_energy_total_kwh", pa.float64()),
        ("dc", DC_TYPE), ("temperature_c", pa.float64()), ("status", pa.string()),
        ("utc_offset_min", pa.int16()),
        ("counter_reset", pa.bool_()), ("unit_corrected", pa.bool_()),
        *_LINEAGE,
    ),
    keys=("system_id", "ts_utc"), partition_by="day", stats_columns=("day", "ts_utc", "system_id"),
    description="Inverter stick messages (5-min), typed, deduplicated on (system_id, ts_utc). "
    "counter_reset marks a lifetime-counter restart; unit_corrected marks ac_power_w sent in kW "
    "and multiplied by 1000.",
    dictionary_columns=("system_id", "ts_utc", "status", "utc_offset_min", "source_file", "landed_at_utc"),
)

INVERTER_IPS = TableSpec(
    "restricted/inverter_ips",
    _schema(("system_id", pa.string()), ("day", pa.date32()), ("remote_ip", pa.string()),
            ("first_seen_utc", UTC_TS), ("last_seen_utc", UTC_TS)),
    keys=("system_id", "day", "remote_ip"), partition_by="day", stats_columns=("day",),
    description="Remote IP addresses the inverter sticks connected from, per system and day "
    "(personal data: kept apart from measurements; retention truncates and removes them).",
)

METER_READINGS = TableSpec(
    "bronze/meter_readings",
    _schema(
        ("system_id", pa.string()), ("ts_utc", UTC_TS), ("day", pa.date32()),
        ("imported_t1_kwh", pa.float64()), ("imported_t2_kwh", pa.float64()),
        ("exported_t1_kwh", pa.float64()), ("exported_t2_kwh", pa.float64()),
        ("active_tariff", pa.int8()), ("power_imported_kw", pa.float64()), ("power_exported_kw", pa.float64()),
        ("voltage_l1_v", pa.float64()), ("current_l1_a", pa.float64()),
        ("power_failures", pa.int32()), ("long_power_failures", pa.int32()),
        ("gas_m3", pa.float64()), ("gas_ts_utc", UTC_TS), ("dst_flag", pa.string()),
        ("dsmr_version", pa.string()), ("raw_telegram", pa.string()),
        ("source_file", pa.string()), ("telegram_no", pa.int32()), ("line_no", pa.int32()),
        ("landed_at_utc", UTC_TS),
    ),
    keys=("system_id", "ts_utc"), partition_by="day", stats_columns=("day", "ts_utc", "system_id"),
    description="DSMR 5 P1 telegrams (15-min), CRC-checked, deduplicated on (system_id, ts_utc); "
    "the raw telegram text is kept for 90 days (retention).",
    insert_by_merge=True,
)

DEVICE_READINGS = TableSpec(
    "bronze/device_readings",
    _schema(
        ("system_id", pa.string()), ("device_type", pa.string()), ("ts_utc", UTC_TS), ("day", pa.date32()),
        ("power_w", pa.float64()), ("energy_total_kwh", pa.float64()), ("utc_offset_min", pa.int16()),
        *_LINEAGE,
    ),
    keys=("system_id", "device_type", "ts_utc"), partition_by="day",
    stats_columns=("day", "ts_utc", "system_id"),
    description="EV charger and heat pump readings reported by the energy manager, deduplicated on "
    "(system_id, device_type, ts_utc).",
)

WEATHER = TableSpec(
    "bronze/weather",
    _schema(
        ("station_id", pa.int32()), ("ts_utc", UTC_TS), ("day", pa.date32()),
        ("ghi_w_m2", pa.float64()), ("temp_air_c", pa.float64()), ("wind_speed_m_s", pa.float64()),
        *_LINEAGE,
    ),
    keys=("station_id", "ts_utc"), partition_by="day", stats_columns=("day", "ts_utc", "station_id"),
    description="Hourly KNMI station observations; ts_utc is the START of the hour, values are hourly "
    "means (GHI from the hourly sum Q in J/cm2). Blank KNMI fields stay null (station gaps).",
)

QUARANTINE = TableSpec(
    "bronze/quarantine",
    _schema(
        ("source", pa.string()), ("source_file", pa.string()), ("line_no", pa.int32()),
        ("reason", pa.string()), ("raw_text", pa.string()), ("day", pa.date32()),
        ("landed_at_utc", UTC_TS),
    ),
    keys=("source", "source_file", "line_no"), partition_by="day", stats_columns=("day", "source"),
    description="Every rejected input record with its source file, line, reason and raw text; day is "
    "the landing partition that read it. Raw text is kept for 90 days (retention).",
)

LANDED_FILES = TableSpec(
    "bronze/landed_files",
    _schema(("source", pa.string()), ("source_file", pa.string()), ("size_bytes", pa.int64()),
            ("day", pa.date32()), ("landed_at_utc", UTC_TS)),
    keys=("source", "source_file", "size_bytes"), partition_by="day", stats_columns=("day", "source"),
    description="Every landing file a landing commit read, with its size as read; day is the landing "
    "day folder. A row is written after the commit of the file's records, so a file listed here "
    "(at this size) is in the lake; retention deletes only such raw files.",
)

SYSTEMS = TableSpec(
    "restricted/systems",
    _schema(
        ("system_id", pa.string()), ("subject_id", pa.string()), ("serial", pa.string()),
        ("meter_id", pa.string()), ("gas_meter_id", pa.string()), ("em_id", pa.string()),
        ("lat", pa.float64()), ("lon", pa.float64()), ("postcode", pa.string()),
        ("kwp", pa.float64()), ("tilt_deg", pa.float64()), ("azimuth_deg", pa.float64()),
        ("inverter_brand", pa.string()), ("inverter_model", pa.string()), ("inverter_ac_kw", pa.float64()),
        ("n_strings", pa.int8()), ("install_date", pa.date32()), ("guarantee_start", pa.date32()),
        ("guarantee_kwh_per_year", pa.float64()), ("guarantee_ref_irradiation_kwh_m2", pa.float64()),
        ("guarantee_tariff_eur_per_kwh", pa.float64()), ("insurer", pa.string()), ("policy_number", pa.string()),
        ("installer_id", pa.string()), ("has_ev_charger", pa.bool_()), ("has_heat_pump", pa.bool_()),
        ("station_id", pa.int32()),
    ),
    keys=("system_id",), partition_by=None, stats_columns=(),
    description="PV systems: metadata, device identifiers and contract terms (personal data: exact "
    "location, serials). The only link from system_id to a person.",
)

SUBJECTS = TableSpec(
    "restricted/subjects",
    _schema(
        ("subject_id", pa.string()), ("name", pa.string()), ("street", pa.string()),
        ("house_number", pa.string()), ("postcode", pa.string()), ("city", pa.string()),
        ("email", pa.string()), ("phone", pa.string()), ("iban", pa.string()),
        ("consent_research", pa.bool_()), ("restricted", pa.bool_()), ("objected", pa.bool_()),
        ("created_at", pa.string()),
    ),
    keys=("subject_id",), partition_by=None, stats_columns=(),
    description="Data subjects (customers): name, address, contact, bank details and their consent, "
    "restriction and objection flags.",
)

INSTALLATION_PHOTOS = TableSpec(
    "restricted/installation_photos",
    _schema(("system_id", pa.string()), ("file_name", pa.string()), ("sha256", pa.string())),
    keys=("system_id", "file_name"), partition_by=None, stats_columns=(),
    description="Installer's photographic proof of a quality installation (file and SHA-256).",
)

STATIONS = TableSpec(
    "bronze/weather_stations",
    _schema(("station_id", pa.int32()), ("name", pa.string()), ("lat", pa.float64()), ("lon", pa.float64())),
    keys=("station_id",), partition_by=None, stats_columns=("station_id",),
    description="KNMI weather stations and their coordinates.",
)

SILVER_SCHEMA = pa.schema([
    pa.field("system_id", pa.string()),
    pa.field("ts_utc", UTC_TS),                    # START of the UTC hour
    pa.field("day", pa.date32()),                  # UTC date of ts_utc (partition)
    pa.field("actual_energy_kwh", pa.float64()),   # null: no readings in the hour
    pa.field("n_readings", pa.int32()),            # 0..12
    pa.field("ac_power_mean_w", pa.float64()),     # mean of the readings present
    pa.field("ac_power_max_w", pa.float64()),
    pa.field("dc_current_min_ratio", pa.float64()),
    pa.field("status_fault_count", pa.int32()),
    pa.field("expected_energy_kwh", pa.float64()), # null: hour outside the weather frame
    pa.field("expected_dc_kwh", pa.float64()),
    pa.field("poa_irradiation_kwh_m2", pa.float64()),
    pa.field("ghi_irradiation_kwh_m2", pa.float64()),
    pa.field("cell_temp_c", pa.float64()),
    pa.field("temp_air_c", pa.float64()),
    pa.field("solar_zenith_deg", pa.float64()),
    pa.field("expected_clipped", pa.bool_()),
    pa.field("night", pa.bool_()),
    pa.field("low_sun", pa.bool_()),
    pa.field("estimated", pa.bool_()),
    pa.field("clipped", pa.bool_()),
    pa.field("missing_data", pa.bool_()),
])
"""Schema of ``silver/pv_intervals`` (one row per system and UTC hour)."""

PV_INTERVALS = TableSpec(
    "silver/pv_intervals",
    SILVER_SCHEMA,
    keys=("system_id", "ts_utc"),
    partition_by="day",
    stats_columns=("day", "ts_utc", "system_id"),
    description="Per system and UTC hour (ts_utc = hour start): measured AC energy [kWh] from the "
    "5-min readings, expected AC/DC energy [kWh] from pvlib (registry metadata + station weather), "
    "plane-of-array and horizontal irradiation [kWh/m2], cell and air temperature [degC], solar "
    "zenith [deg] at the hour midpoint and flags (night, low_sun, estimated, clipped, "
    "expected_clipped, missing_data).",
)


def _gold_specs() -> tuple[TableSpec, TableSpec]:
    # the schemas live beside the maths that fills them (no project imports there, so no cycle)
    from wattlake.alerts import ALERT_SCHEMA
    from wattlake.performance import SYSTEM_DAILY_SCHEMA

    daily = TableSpec(
        "gold/system_daily", SYSTEM_DAILY_SCHEMA, keys=("system_id", "day"), partition_by="day",
        stats_columns=("day", "system_id"),
        # a day file holds one row per system: only these columns repeat values within it
        dictionary_columns=("availability", "data_completeness", "daylight_hours", "readings", "fault_hours",
                            "clipped_hours", "estimated_hours"),
        description="Per system and UTC day: measured and expected AC energy [kWh], plane-of-array "
        "irradiation [kWh/m2], reference and final yield [h], performance ratio and temperature-"
        "corrected performance ratio (IEC 61724-1), availability and data completeness.",
    )
    alerts = TableSpec(
        "gold/underperformance_alerts", pl_schema_to_arrow(ALERT_SCHEMA),
        keys=("system_id", "first_day", "kind"), partition_by=None, stats_columns=("first_day", "last_day"),
        description="Underperformance episodes per system (outage, deficit, dead string, abnormal "
        "clipping, shading, wrong metadata, decline) with severity, energy deficit [kWh], a reason "
        "an installer understands and the installer to notify.",
    )
    return daily, alerts


def pl_schema_to_arrow(schema) -> pa.Schema:
    """A Polars schema as the Arrow schema Delta stores (large strings as strings)."""
    import polars as pl

    arrow = pl.DataFrame(schema=schema).to_arrow().schema
    return pa.schema([pa.field(f.name, pa.string() if f.type == pa.large_string() else f.type) for f in arrow])


SYSTEM_DAILY, ALERTS = _gold_specs()


def _notices_spec() -> TableSpec:
    from wattlake.notices import NOTICE_SCHEMA

    return TableSpec(
        "gold/installer_notices", pl_schema_to_arrow(NOTICE_SCHEMA), keys=("batch_id", "notice_id"),
        partition_by=None, stats_columns=("sent_at_utc", "first_day", "last_day"),
        description="Ledger of the underperformance notices sent to installers (new, escalated, ended, "
        "reopened, withdrawn episodes), one row per notice and delivery batch: what each installer was "
        "told, so the next delivery sends only changes. Pseudonymous system ids only.",
    )


INSTALLER_NOTICES = _notices_spec()


def _guarantee_spec() -> TableSpec:
    from wattlake.guarantee import GUARANTEE_SCHEMA

    return TableSpec(
        "gold/guarantee_evaluations", GUARANTEE_SCHEMA, keys=("system_id", "year_start"), partition_by=None,
        stats_columns=("year_start", "year_end", "system_id"),
        description="kWh guarantee per system and completed guarantee year (from guarantee_start, not "
        "1 January): measured and gap-modelled energy [kWh], guaranteed and weather-corrected guaranteed "
        "energy [kWh] (ratio of measured to reference horizontal irradiation [kWh/m2]), data completeness, "
        "verdict (met / shortfall / insufficient_data / not_eligible), shortfall [kWh] and its value at the "
        "contract tariff [EUR]. No policy numbers (those stay in restricted/systems and the insurer packs).",
    )


GUARANTEE_EVALUATIONS = _guarantee_spec()

CHECK_OUTCOMES = TableSpec(
    "quality/check_outcomes",
    _schema(
        ("table", pa.string()), ("check", pa.string()), ("blocking", pa.bool_()), ("passed", pa.bool_()),
        ("element_count", pa.int64()), ("unexpected_count", pa.int64()), ("unexpected_sample", pa.string()),
        ("expectation", pa.string()), ("partition_start", pa.string()), ("partition_end", pa.string()),
        ("evaluated_at_utc", UTC_TS), ("run_id", pa.string()),
    ),
    keys=("run_id", "table", "check"), partition_by=None, stats_columns=("evaluated_at_utc",),
    description="Every Great Expectations check run on a bronze partition range: outcome, counts and a "
    "sample of failing values (pseudonymous ids and measurements only).",
)

PRIVACY_AUDIT = TableSpec(
    "restricted/privacy_audit",
    _schema(
        ("request_id", pa.string()), ("request_type", pa.string()), ("subject_ref", pa.string()),
        ("requested_at_utc", UTC_TS), ("completed_at_utc", UTC_TS), ("operator", pa.string()),
        ("outcome", pa.string()), ("details", pa.string()),
    ),
    keys=("request_id",), partition_by=None, stats_columns=("requested_at_utc",),
    description="Every data-subject request (export, rectify, restrict, object, consent, erase) and "
    "every release or retention run: request id, time, operator, outcome and counts. The subject is "
    "named only by a keyed pseudonym (subject_ref), never by id or personal data.",
)

ERASURES = TableSpec(
    "restricted/erasures",
    _schema(
        ("subject_ref", pa.string()), ("request_id", pa.string()), ("status", pa.string()),
        ("started_at_utc", UTC_TS), ("updated_at_utc", UTC_TS), ("tables_planned", pa.string()),
        ("tables_done", pa.string()), ("identifier_refs", pa.string()),
    ),
    keys=("subject_ref",), partition_by=None, stats_columns=(),
    description="Erasure tombstones: one row per erased subject, named only by the keyed pseudonym "
    "(subject_ref), with the erasure's progress (tables done, status in_progress/done) and the keyed "
    "pseudonyms of the subject's device identifiers (identifier_refs: serials, meter and energy-manager "
    "ids) so landing can drop their future records. Re-landing the registry drops the subjects listed "
    "here; a crashed erasure resumes from tables_done.",
)

SUBJECT_OVERRIDES = TableSpec(
    "restricted/subject_overrides",
    _schema(
        ("subject_id", pa.string()), ("field", pa.string()), ("value", pa.string()),
        ("set_at_utc", UTC_TS), ("request_id", pa.string()),
    ),
    keys=("subject_id", "field"), partition_by=None, stats_columns=(),
    description="Rectified personal fields and restriction/objection/consent flags set by data-subject "
    "requests (personal data). Applied over every registry snapshot when it lands, so a re-landed "
    "CRM export does not undo a rectification.",
)

RESEARCH_AGREEMENTS = TableSpec(
    "governance/research_agreements",
    _schema(
        ("partner", pa.string()), ("agreement_ref", pa.string()), ("purpose", pa.string()),
        ("min_k", pa.int32()), ("valid_from", pa.date32()), ("valid_until", pa.date32()),
        ("registered_at_utc", UTC_TS), ("registered_by", pa.string()), ("revoked_at_utc", UTC_TS),
    ),
    keys=("partner", "agreement_ref"), partition_by=None, stats_columns=(),
    description="Data-sharing agreements with research partners (organisations, no personal data): a "
    "release is written only for a partner with an agreement in force on the day, not revoked, and at "
    "least the agreement's minimum k. The release's manifest and audit row name the agreement.",
)

TABLES: dict[str, TableSpec] = {
    t.name: t
    for t in (INVERTER_READINGS, METER_READINGS, DEVICE_READINGS, WEATHER, QUARANTINE, LANDED_FILES, STATIONS,
              SYSTEMS, SUBJECTS, INSTALLATION_PHOTOS, INVERTER_IPS, PV_INTERVALS, SYSTEM_DAILY, ALERTS, INSTALLER_NOTICES,
              GUARANTEE_EVALUATIONS, CHECK_OUTCOMES, PRIVACY_AUDIT, ERASURES, SUBJECT_OVERRIDES,
              RESEARCH_AGREEMENTS)
}

#: tables that hold personal data; everything else must be free of it
RESTRICTED = tuple(name for name in TABLES if name.startswith("restricted/"))
