"""The registry: systems, subjects (personal data), installation photos, weather stations.

The registry arrives as CSV snapshots in ``<landing>/registry/`` (systems.csv, subjects.csv,
installation_photos.csv) and ``<landing>/weather/stations.csv``. It lands into the
``restricted/*`` tables (and ``bronze/weather_stations``) whole: a snapshot equal to the
current table version writes nothing, so re-landing is idempotent.

A registry row that is not usable (missing key, duplicate key, unparseable date or number) is
an operator error: :class:`RegistryError` names the file and line, and nothing is written.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from wattlake import tables as T
from wattlake.lake import Lake

log = logging.getLogger(__name__)

EARTH_RADIUS_KM = 6371.0088


#: registry columns a snapshot may lack (older snapshots predate the guarantee terms)
OPTIONAL_COLUMNS = ("station_id", "guarantee_ref_irradiation_kwh_m2", "guarantee_tariff_eur_per_kwh")


class RegistryError(ValueError):
    """A registry file cannot be landed; the message names file and line."""


@dataclass
class RegistryReport:
    table: str
    rows: int
    written: bool
    version: int | None


def read_registry_csv(path: Path, spec: T.TableSpec) -> pl.DataFrame:
    """Read a registry CSV and cast it to the table schema, or raise :class:`RegistryError`."""
    if not path.is_file():
        raise RegistryError(f"{path}: registry file missing")
    raw = pl.read_csv(path, infer_schema=False)  # all Utf8: we cast and report failures ourselves
    missing = [f.name for f in spec.schema if f.name not in raw.columns and f.name not in OPTIONAL_COLUMNS]
    if missing:
        raise RegistryError(f"{path}: missing columns {missing}")
    # optional columns absent from an older snapshot are landed as nulls (station_id is filled later)
    raw = raw.with_columns(pl.lit(None, dtype=pl.String).alias(c) for c in OPTIONAL_COLUMNS
                           if c != "station_id" and c in spec.schema.names and c not in raw.columns)
    exprs = []
    for f in spec.schema:
        if f.name not in raw.columns:
            continue
        col = pl.col(f.name).str.strip_chars().replace("", None)
        dtype = pl.from_arrow(pa.array([], type=f.type)).dtype
        if dtype == pl.Boolean:
            exprs.append(col.str.to_lowercase().replace_strict(
                {"true": True, "false": False, "1": True, "0": False}, default=None, return_dtype=pl.Boolean
            ).alias(f.name))
        elif dtype == pl.Date:
            exprs.append(col.str.to_date("%Y-%m-%d", strict=False).alias(f.name))
        else:
            exprs.append(col.cast(dtype, strict=False).alias(f.name))
    typed = raw.select(exprs)
    # a value that was present but did not cast is an error, with its line (header is line 1)
    for f in typed.columns:
        lost = raw.get_column(f).str.strip_chars().replace("", None).is_not_null() & typed.get_column(f).is_null()
        if lost.any():
            line = int(lost.arg_true()[0]) + 2
            raise RegistryError(f"{path}:{line}: column {f!r} has a value that is not a valid {typed.schema[f]}")
    for k in spec.keys:
        nulls = typed.get_column(k).is_null()
        if nulls.any():
            raise RegistryError(f"{path}:{int(nulls.arg_true()[0]) + 2}: key column {k!r} is empty")
    dup = typed.select(spec.keys).is_duplicated()
    if dup.any():
        raise RegistryError(f"{path}:{int(dup.arg_true()[0]) + 2}: duplicate key {list(spec.keys)}")
    return typed


def nearest_station(lat: np.ndarray, lon: np.ndarray, stations: pl.DataFrame) -> np.ndarray:
    """Index of the nearest station (great-circle distance) for each (lat, lon) [deg]."""
    la1, lo1 = np.radians(lat)[:, None], np.radians(lon)[:, None]
    la2 = np.radians(stations.get_column("lat").to_numpy())[None, :]
    lo2 = np.radians(stations.get_column("lon").to_numpy())[None, :]
    a = np.sin((la2 - la1) / 2) ** 2 + np.cos(la1) * np.cos(la2) * np.sin((lo2 - lo1) / 2) ** 2
    d = 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(a))
    return np.argmin(d, axis=1)


def _write_if_changed(lake: Lake, spec: T.TableSpec, frame: pl.DataFrame) -> RegistryReport:
    current = lake.read(spec.name) if lake.exists(spec.name) else None
    cols = spec.schema.names
    new = frame.select(cols).sort(list(spec.keys))
    if current is not None and current.select(cols).sort(list(spec.keys)).equals(new):
        return RegistryReport(spec.name, new.height, False, lake.version(spec.name))
    lake.overwrite(spec.name, new, spec.schema, configuration=spec.configuration)
    return RegistryReport(spec.name, new.height, True, lake.version(spec.name))


def apply_privacy(lake: Lake, subjects: pl.DataFrame, systems: pl.DataFrame,
                  photos: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """A registry snapshot as the lake must hold it after data-subject requests.

    Subjects with a finished erasure (``restricted/erasures``, keyed by
    :func:`wattlake.keys.pseudonym` of the subject id) are dropped with their systems and
    photos, so re-landing a CRM export does not bring an erased person back; rectified fields
    and restriction/objection/consent flags (``restricted/subject_overrides``) are applied over
    the snapshot's values. Only counts are logged.
    """
    from wattlake.keys import pseudonym

    if lake.exists(T.ERASURES.name) and subjects.height:
        from wattlake.audit import check_key

        check_key(lake)  # with another key no tombstone matches: erased subjects would come back
        # an erasure still in progress needs the registry rows (its last step removes them)
        stones = lake.read(T.ERASURES.name)
        erased = set(stones.filter(pl.col("status") == "done").get_column("subject_ref").to_list())
        refs = pl.Series([pseudonym(s) for s in subjects.get_column("subject_id").to_list()], dtype=pl.String)
        gone = subjects.get_column("subject_id").filter(refs.is_in(list(erased)))
        if gone.len():
            subjects = subjects.filter(~pl.col("subject_id").is_in(gone.to_list()))
            dropped = systems.filter(pl.col("subject_id").is_in(gone.to_list())).get_column("system_id")
            systems = systems.filter(~pl.col("subject_id").is_in(gone.to_list()))
            photos = photos.filter(~pl.col("system_id").is_in(dropped.to_list()))
            log.info("registry: dropped %d erased subjects (%d systems) from the snapshot", gone.len(), dropped.len())
    if lake.exists(T.SUBJECT_OVERRIDES.name):
        overrides = lake.read(T.SUBJECT_OVERRIDES.name)
        for (name,), group in overrides.group_by("field"):
            if name not in subjects.columns:
                continue
            dtype = subjects.schema[name]
            value = pl.col("value")
            if dtype == pl.Boolean:
                value = value.str.to_lowercase() == "true"
            vals = group.select("subject_id", value.cast(dtype).alias("_override"))
            subjects = (subjects.join(vals, on="subject_id", how="left")
                        .with_columns(pl.coalesce("_override", name).alias(name)).drop("_override"))
        if overrides.height:
            log.info("registry: %d rectified fields/flags applied", overrides.height)
    return subjects, systems, photos


#: the registry's snapshot files, relative to the landing folder (each upload replaces the last)
STATIONS_FILE = "weather/stations.csv"
SYSTEMS_FILE = "registry/systems.csv"
SUBJECTS_FILE = "registry/subjects.csv"
PHOTOS_FILE = "registry/installation_photos.csv"
SNAPSHOTS = (SYSTEMS_FILE, SUBJECTS_FILE, PHOTOS_FILE, STATIONS_FILE)


def land_stations(lake: Lake, landing_root: Path) -> RegistryReport:
    path = Path(landing_root) / STATIONS_FILE
    return _write_if_changed(lake, T.STATIONS, read_registry_csv(path, T.STATIONS))


def land_registry(lake: Lake, landing_root: Path) -> dict[str, RegistryReport]:
    """Land systems, subjects and installation photos; fill ``station_id`` when absent.

    Every system must belong to a known subject (else :class:`RegistryError`). A snapshot that
    still lists erased subjects (a CRM export made before the erasure) is landed without them and
    their lines are removed from the landing folder's registry files
    (:func:`wattlake.privacy.scrub_landing`).
    """
    root = Path(landing_root)
    stations = read_registry_csv(root / STATIONS_FILE, T.STATIONS)
    systems = read_registry_csv(root / SYSTEMS_FILE, T.SYSTEMS)
    subjects = read_registry_csv(root / SUBJECTS_FILE, T.SUBJECTS)
    photos_path = root / PHOTOS_FILE
    photos = (read_registry_csv(photos_path, T.INSTALLATION_PHOTOS) if photos_path.is_file()
              else pl.DataFrame(schema=T.INSTALLATION_PHOTOS.polars_schema))

    idx = nearest_station(systems.get_column("lat").to_numpy(), systems.get_column("lon").to_numpy(), stations)
    nearest = stations.get_column("station_id").gather(idx)
    if "station_id" in systems.columns:
        systems = systems.with_columns(pl.coalesce(pl.col("station_id"), nearest).alias("station_id"))
    else:
        systems = systems.with_columns(nearest.alias("station_id"))
    n_subjects = subjects.height
    subjects, systems, photos = apply_privacy(lake, subjects, systems, photos)
    if subjects.height < n_subjects:  # the snapshot still lists erased subjects: out of the folder too
        from wattlake.privacy import scrub_landing

        scrub_landing(lake, root, folders=("registry",))
    orphans = systems.join(subjects, on="subject_id", how="anti")
    if orphans.height:
        raise RegistryError(f"{root / SYSTEMS_FILE}: {orphans.height} systems reference unknown subjects")
    reports = {
        T.STATIONS.name: _write_if_changed(lake, T.STATIONS, stations),
        T.SUBJECTS.name: _write_if_changed(lake, T.SUBJECTS, subjects),
        T.SYSTEMS.name: _write_if_changed(lake, T.SYSTEMS, systems),
        T.INSTALLATION_PHOTOS.name: _write_if_changed(lake, T.INSTALLATION_PHOTOS, photos),
    }
    for r in reports.values():
        log.info("%s: %d rows, %s", r.table, r.rows, "written" if r.written else "unchanged")
    return reports
