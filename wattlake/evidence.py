"""Guarantee evaluations from the lake, and signed insurer evidence packs.

A *claim* is one eligible system's shortfall in one guarantee year; its id is
``<policy_number>-<year start YYYYMMDD>``. Its evidence pack is written to
``exports/insurers/<insurer slug>/<claim id>/`` (:class:`wattlake.exports.ExportRoot`):

- ``report.html`` (plots embedded as PNG) and ``report.pdf`` (a text page and one page per
  plot): monthly production vs the weather-corrected guarantee, daily performance ratio, data
  completeness calendar;
- ``evaluation.parquet``/``.csv`` (the verdict row), ``daily.parquet``/``.csv`` and
  ``monthly.parquet``/``.csv`` (the numbers behind it);
- ``manifest.json``: every file's ``{path, sha256}`` (relative to the pack folder; the manifest
  itself is not listed), the Delta versions of the source tables, ``as_of``, the code version,
  the model parameters, the creation time and an HMAC-SHA256 ``signature`` over the canonical
  JSON of the manifest without the signature, keyed with ``get_key("insurer-<insurer>")``.

Reproducibility: every hashed file is a function of the source table versions, ``as_of`` and the
parameters only (no wall-clock time, no random values; PDF dates unset, floats rounded by
:func:`wattlake.numerics.round_floats`), so :func:`recompute_pack` rebuilds byte-identical files
from the versions a manifest records (Delta time travel), whatever landed or was compacted since.

Privacy: a pack holds one system of its insurer; the only identifiers are the pseudonymous
``system_id`` and the ``policy_number``: no name, address, postcode, coordinates, serials or
installer. ``gold/guarantee_evaluations`` holds no policy number (it is joined in only here).
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import polars as pl

from wattlake import keys
from wattlake import tables as T
from wattlake.exports import ExportFolder, ExportRoot, code_version, sha256_bytes
from wattlake.guarantee import GUARANTEE_SCHEMA, INTERVAL_COLUMNS, GuaranteeParams, daily_terms, \
    evaluate_guarantees, monthly_breakdown
from wattlake.lake import Lake
from wattlake.numerics import round_floats

PACK_FORMAT = "wattlake-evidence-pack/1"
MANIFEST = "manifest.json"
#: the tables a verdict is computed from (their versions go into every manifest)
SOURCE_TABLES = (T.PV_INTERVALS.name, T.SYSTEM_DAILY.name, T.SYSTEMS.name, T.INSTALLATION_PHOTOS.name)
#: columns of gold/system_daily shown in a pack
DAILY_PERFORMANCE_COLUMNS = ("performance_ratio", "performance_ratio_temp_corr", "data_completeness",
                             "availability", "low_light")


class ClaimError(ValueError):
    """A claim cannot be built (unknown claim, no shortfall, missing tables)."""


# ---------------------------------------------------------------------------------- naming
def claim_id(policy_number: str, year_start: dt.date) -> str:
    """``<policy_number>-<YYYYMMDD>`` of the guarantee year's first day."""
    return f"{policy_number}-{year_start:%Y%m%d}"


def insurer_slug(insurer: str) -> str:
    """Folder name of an insurer: lower case, words joined by ``-``."""
    return re.sub(r"[^a-z0-9]+", "-", insurer.lower()).strip("-") or "unknown"


def insurer_key_name(insurer: str) -> str:
    return f"insurer-{insurer}"


def canonical_json(obj) -> bytes:
    """The bytes a signature covers: sorted keys, no whitespace, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sign_manifest(manifest: dict, key: bytes) -> dict:
    """``manifest`` with ``signature`` = HMAC-SHA256 over its canonical JSON without the signature."""
    body = {k: v for k, v in manifest.items() if k != "signature"}
    return {**body, "signature": keys.sign(key, canonical_json(body))}


# ---------------------------------------------------------------------------------- inputs
@dataclass
class Inputs:
    """Everything one evaluation reads, at pinned table versions."""

    versions: dict[str, int]
    as_of: dt.date | None
    daily: pl.DataFrame      # guarantee.daily_terms
    systems: pl.DataFrame
    photos: pl.DataFrame


def current_versions(lake: Lake) -> dict[str, int]:
    """The current version of every source table (a ClaimError if one is missing)."""
    out = {}
    for name in SOURCE_TABLES:
        v = lake.version(name)
        if v is None:
            raise ClaimError(f"table {name} does not exist in {lake.describe()}")
        out[name] = v
    return out


def load_inputs(lake: Lake, versions: dict[str, int] | None = None, system_ids: Iterable[str] | None = None,
                as_of: dt.date | None = None) -> Inputs:
    """Read the evaluation's inputs at ``versions`` (default: current), optionally for some systems.

    ``as_of`` defaults to the last day of ``silver/pv_intervals`` at its version (all systems).
    """
    versions = dict(versions or current_versions(lake))
    silver = lake.scan(T.PV_INTERVALS.name, versions[T.PV_INTERVALS.name])
    if as_of is None:
        as_of = silver.select(pl.col("day").max()).collect().item()
    ids = sorted(set(system_ids)) if system_ids is not None else None
    # string predicates are applied after the scan (pyarrow cannot compare string with string_view)
    hourly = silver.select(*INTERVAL_COLUMNS).filter(pl.col("day") <= as_of).collect()
    if ids is not None:
        hourly = hourly.filter(pl.col("system_id").is_in(ids))
    daily = daily_terms(hourly)
    systems = lake.read(T.SYSTEMS.name, versions[T.SYSTEMS.name])
    photos = lake.read(T.INSTALLATION_PHOTOS.name, versions[T.INSTALLATION_PHOTOS.name])
    if ids is not None:
        systems = systems.filter(pl.col("system_id").is_in(ids))
        photos = photos.filter(pl.col("system_id").is_in(ids))
    return Inputs(versions, as_of, daily, systems, photos)


def _performance(lake: Lake, versions: dict[str, int], system_ids: list[str]) -> pl.DataFrame:
    """gold/system_daily rows of some systems at the pinned version (the pack's daily PR and completeness)."""
    frame = (lake.scan(T.SYSTEM_DAILY.name, versions[T.SYSTEM_DAILY.name])
             .select("system_id", "day", *DAILY_PERFORMANCE_COLUMNS).collect())
    return frame.filter(pl.col("system_id").is_in(system_ids))


def evaluate(inputs: Inputs, params: GuaranteeParams = GuaranteeParams()) -> pl.DataFrame:
    return evaluate_guarantees(inputs.daily, inputs.systems, inputs.photos, inputs.as_of, params)


def write_evaluations(lake: Lake, params: GuaranteeParams = GuaranteeParams()) -> tuple[pl.DataFrame, dict]:
    """Evaluate every system's completed guarantee years and replace ``gold/guarantee_evaluations``.

    Returns the evaluations and the source versions used.
    """
    inputs = load_inputs(lake)
    evaluations = evaluate(inputs, params)
    spec = T.GUARANTEE_EVALUATIONS
    lake.overwrite(spec.name, evaluations, spec.schema, configuration=spec.configuration)
    return evaluations, inputs.versions


def portfolio_summary(evaluations: pl.DataFrame) -> pl.DataFrame:
    """Per insurer and verdict: systems, shortfall kWh and EUR (for progress output and notebooks)."""
    return (evaluations.group_by("insurer", "verdict")
            .agg(years=pl.len(), systems=pl.col("system_id").n_unique(),
                 shortfall_kwh=pl.col("shortfall_kwh").fill_null(0.0).sum(),
                 shortfall_eur=pl.col("shortfall_eur").fill_null(0.0).sum())
            .sort("insurer", "verdict"))


# ---------------------------------------------------------------------------------- plots
def _mpl():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    return buf.getvalue()


def _fig_monthly(monthly: pl.DataFrame, title: str):
    plt = _mpl()
    fig, ax = plt.subplots(figsize=(8.27, 4.2))
    labels = [m.strftime("%b %Y") for m in monthly.get_column("month").to_list()]
    x = list(range(len(labels)))
    meas = monthly.get_column("measured_kwh").to_list()
    mod = monthly.get_column("modelled_kwh").to_list()
    ax.bar(x, meas, color="#2b7bba", label="measured")
    ax.bar(x, mod, bottom=meas, color="#9ecae1", hatch="//", label="modelled (data gaps)")
    ax.plot(x, monthly.get_column("guarantee_kwh").to_list(), "o-", color="#d62728",
            label="weather-corrected guarantee")
    ax.set_xticks(x, labels, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("kWh per month")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def _fig_pr(daily: pl.DataFrame, annual_pr: float | None, title: str):
    plt = _mpl()
    fig, ax = plt.subplots(figsize=(8.27, 3.8))
    d = daily.filter(pl.col("performance_ratio").is_not_null())
    low = d.get_column("low_light").fill_null(True).to_list()
    days = d.get_column("day").to_list()
    pr = d.get_column("performance_ratio").to_list()
    ax.plot([x for x, lo in zip(days, low) if not lo], [p for p, lo in zip(pr, low) if not lo], ".",
            color="#2b7bba", markersize=4, label="daily PR")
    ax.plot([x for x, lo in zip(days, low) if lo], [p for p, lo in zip(pr, low) if lo], ".",
            color="#bbbbbb", markersize=3, label="daily PR, low light (< 0.5 h)")
    if annual_pr is not None:
        ax.axhline(annual_pr, color="#d62728", lw=1, label=f"guarantee-year PR {annual_pr:.2f}")
    ax.set_ylim(0, 1.2)
    ax.set_ylabel("performance ratio [-]")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def _fig_calendar(daily: pl.DataFrame, year_start: dt.date, year_end: dt.date, title: str):
    import numpy as np

    plt = _mpl()
    months = []
    m = year_start.replace(day=1)
    while m <= year_end:
        months.append(m)
        m = (m.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    grid = np.full((len(months), 31), np.nan)
    index = {(mm.year, mm.month): i for i, mm in enumerate(months)}
    for day, c in daily.select("day", "data_completeness").iter_rows():  # <= 366 rows
        if c is not None and year_start <= day <= year_end:
            grid[index[(day.year, day.month)], day.day - 1] = c
    fig, ax = plt.subplots(figsize=(8.27, 0.35 * len(months) + 1.6))
    cmap = plt.get_cmap("RdYlGn").with_extremes(bad="#eeeeee")
    im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0, vmax=1, aspect="auto")
    ax.set_yticks(range(len(months)), [mm.strftime("%b %Y") for mm in months], fontsize=8)
    ax.set_xticks(range(0, 31, 2), [str(d) for d in range(1, 32, 2)], fontsize=8)
    ax.set_xlabel("day of month (grey: outside the guarantee year or no daylight data)")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, label="data completeness")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------- rendering
def _fmt(v, unit: str = "", digits: int = 0) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:,.{digits}f}{unit}"
    return f"{v}{unit}"


def summary_lines(ev: dict, claim: str, policy_number: str, params: GuaranteeParams) -> list[tuple[str, str]]:
    """The report's key figures as (label, value) pairs."""
    return [
        ("Claim", claim),
        ("Policy number", policy_number),
        ("System (pseudonymous id)", ev["system_id"]),
        ("Insurer", ev["insurer"]),
        ("Guarantee year", f"{ev['year_start']} .. {ev['year_end']} (year {ev['guarantee_year']}, {ev['days']} days)"),
        ("Array rating", _fmt(ev["kwp"], " kWp", 2)),
        ("Verdict", ev["verdict"].replace("_", " ")),
        ("Reason", ev["verdict_reason"]),
        ("Guaranteed yield", _fmt(ev["guaranteed_kwh"], " kWh")),
        ("Reference irradiation (GHI)", _fmt(ev["reference_irradiation_kwh_m2"], " kWh/m2")),
        ("Measured irradiation (GHI)", _fmt(ev["measured_irradiation_kwh_m2"], " kWh/m2", 1)),
        ("Weather correction", _fmt(ev["weather_correction"], "", 4)),
        ("Weather-corrected guarantee", _fmt(ev["corrected_guarantee_kwh"], " kWh", 1)),
        ("Measured production", _fmt(ev["measured_kwh"], " kWh", 1)),
        ("Modelled for data gaps", f"{_fmt(ev['modelled_kwh'], ' kWh', 1)} "
                                   f"({_fmt(100 * (ev['modelled_share'] or 0), ' %', 2)} of expected; "
                                   f"limit {100 * params.max_modelled_share:.0f} %)"),
        ("Production counted", _fmt(ev["total_kwh"], " kWh", 1)),
        ("Gap hours / partial hours", f"{ev['gap_hours']} / {ev['partial_hours']} (daylight)"),
        ("Data completeness", _fmt(100 * (ev["data_completeness"] or 0), " %", 2)),
        ("Performance ratio", _fmt(ev["performance_ratio"], "", 3)),
        ("Shortfall", _fmt(ev["shortfall_kwh"], " kWh", 1)),
        ("Contract tariff", _fmt(ev["tariff_eur_per_kwh"], " EUR/kWh", 3)),
        ("Value of the shortfall", _fmt(ev["shortfall_eur"], " EUR", 2)),
    ]


METHOD_TEXT = (
    "Method. Measured production is the sum of the inverter's 5-minute AC readings. Intervals without a "
    "reading are modelled as the pvlib expectation (registry metadata, station weather) times the system's "
    "measured/expected ratio over the covered intervals of the same guarantee year; above {limit:.0f} % of "
    "the year's expected energy modelled the year is 'insufficient data'. The guaranteed yield is weather-"
    "corrected by the ratio of the year's measured global horizontal irradiation to the reference "
    "irradiation the guarantee was computed with. A shortfall is valued at the contract tariff."
)


def _daily_for_pack(daily: pl.DataFrame, perf: pl.DataFrame, ev: dict) -> pl.DataFrame:
    k = ev["measured_expected_ratio"] or 0.0
    d = daily.filter((pl.col("system_id") == ev["system_id"])
                     & pl.col("day").is_between(ev["year_start"], ev["year_end"]))
    p = perf.select("system_id", "day", *DAILY_PERFORMANCE_COLUMNS)
    out = (d.join(p, on=["system_id", "day"], how="left")
           .with_columns(modelled_kwh=k * pl.col("gap_expected_kwh"))
           .select("system_id", "day", "measured_kwh", "modelled_kwh", "expected_kwh", "ghi_kwh_m2", "poa_kwh_m2",
                   "gap_hours", "partial_hours", "estimated_weather_hours", *DAILY_PERFORMANCE_COLUMNS)
           .sort("day"))
    return round_floats(out)


def _table_bytes(frame: pl.DataFrame) -> tuple[bytes, bytes]:
    pq, csv = io.BytesIO(), io.BytesIO()
    frame.write_parquet(pq, compression="zstd", statistics=False)
    frame.write_csv(csv)
    return pq.getvalue(), csv.getvalue()


def render_pack(ev: dict, daily: pl.DataFrame, perf: pl.DataFrame, policy_number: str,
                params: GuaranteeParams) -> dict[str, bytes]:
    """Every file of a claim's pack (name -> bytes), from the evaluation row and its inputs.

    Deterministic: the same inputs give the same bytes.
    """
    from matplotlib.backends.backend_pdf import PdfPages

    plt = _mpl()
    claim = claim_id(policy_number, ev["year_start"])
    days = _daily_for_pack(daily, perf, ev)
    monthly = monthly_breakdown(daily, ev)
    evaluation = pl.DataFrame([ev], schema=pl.from_arrow(GUARANTEE_SCHEMA.empty_table()).schema).with_columns(
        claim_id=pl.lit(claim), policy_number=pl.lit(policy_number))
    files: dict[str, bytes] = {}
    for name, frame in (("evaluation", evaluation), ("daily", days), ("monthly", monthly)):
        files[f"{name}.parquet"], files[f"{name}.csv"] = _table_bytes(frame)

    year = f"{ev['year_start']} .. {ev['year_end']}"
    figs = [
        ("monthly", _fig_monthly(monthly, f"Monthly production vs weather-corrected guarantee, {year}")),
        ("performance_ratio", _fig_pr(days, ev["performance_ratio"], f"Daily performance ratio, {year}")),
        ("completeness", _fig_calendar(days, ev["year_start"], ev["year_end"], f"Data completeness, {year}")),
    ]
    lines = summary_lines(ev, claim, policy_number, params)
    method = METHOD_TEXT.format(limit=100 * params.max_modelled_share)

    pdf = io.BytesIO()
    with PdfPages(pdf, metadata={"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None,
                                 "Title": f"Guarantee evidence {claim}"}) as pages:
        fig = plt.figure(figsize=(8.27, 11.69))
        fig.text(0.08, 0.95, "kWh guarantee: evidence for the insurer", fontsize=15, weight="bold")
        y = 0.91
        for label, value in lines:
            fig.text(0.08, y, label, fontsize=9.5)
            fig.text(0.42, y, value, fontsize=9.5, weight="bold" if label in ("Verdict", "Shortfall") else None)
            y -= 0.027
        import textwrap

        fig.text(0.08, y - 0.02, "\n".join(textwrap.wrap(method, 100)), fontsize=8, va="top")
        pages.savefig(fig)
        plt.close(fig)
        for _, f in figs:
            pages.savefig(f)
    files["report.pdf"] = pdf.getvalue()

    imgs = {}
    for name, f in figs:
        imgs[name] = base64.b64encode(_png(f)).decode("ascii")
        plt.close(f)
    rows = "\n".join(f"<tr><th>{html.escape(label)}</th><td>{html.escape(str(value))}</td></tr>"
                     for label, value in lines)
    body = "\n".join(f'<figure><img alt="{n}" src="data:image/png;base64,{b64}"></figure>' for n, b64 in imgs.items())
    files["report.html"] = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>Guarantee evidence {html.escape(claim)}</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}th{text-align:left;padding-right:2em;"
        "font-weight:normal}td{font-weight:bold}img{max-width:100%}</style></head><body>\n"
        "<h1>kWh guarantee: evidence for the insurer</h1>\n"
        f"<table>\n{rows}\n</table>\n<p>{html.escape(method)}</p>\n{body}\n"
        "<p>Numbers: evaluation, daily and monthly tables (Parquet and CSV) in this folder; file hashes, "
        "source data versions and the signature in manifest.json.</p>\n</body></html>\n"
    ).encode("utf-8")
    return files


# ---------------------------------------------------------------------------------- packs
@dataclass
class PackResult:
    claim_id: str
    insurer: str
    system_id: str
    folder: str
    verdict: str
    shortfall_kwh: float | None
    shortfall_eur: float | None
    seconds: float


def _policy(systems: pl.DataFrame, system_id: str) -> tuple[str, str]:
    row = systems.filter(pl.col("system_id") == system_id).select("policy_number", "insurer")
    if row.height != 1 or row.item(0, 0) is None:
        raise ClaimError(f"system {system_id} has no policy in restricted/systems")
    return row.item(0, 0), row.item(0, 1)


def pack_folder(export_root: ExportRoot, insurer: str, claim: str, revise: bool = False) -> str | None:
    """Where a claim's pack goes (``insurers/<insurer>/<claim>``, relative to the exports root).

    A pack already there has been signed and may have been sent: it is never overwritten. Then
    the result is None, or with ``revise`` the first free revision ``<claim>-r2``, ``-r3``, ...
    """
    base = f"insurers/{insurer_slug(insurer)}/{claim}"
    if not export_root.exists(f"{base}/{MANIFEST}"):
        return base
    if not revise:
        return None
    n = 2
    while export_root.exists(f"{base}-r{n}/{MANIFEST}"):
        n += 1
    return f"{base}-r{n}"


def write_pack(export_root: ExportRoot, ev: dict, files: dict[str, bytes], policy_number: str,
               versions: dict[str, int], as_of: dt.date, params: GuaranteeParams,
               rel: str | None = None) -> ExportFolder:
    """Write the files and the signed manifest of one claim (into ``rel``, default the claim's own
    folder); returns the folder."""
    claim = claim_id(policy_number, ev["year_start"])
    folder = export_root.folder(rel or f"insurers/{insurer_slug(ev['insurer'])}/{claim}")
    for name in sorted(files):
        folder.write(name, files[name])
    manifest = {
        "format": PACK_FORMAT,
        "claim_id": claim,
        "insurer": ev["insurer"],
        "policy_number": policy_number,
        "system_id": ev["system_id"],
        "guarantee_year": {"start": ev["year_start"].isoformat(), "end": ev["year_end"].isoformat(),
                           "number": ev["guarantee_year"]},
        "verdict": ev["verdict"],
        "shortfall_kwh": ev["shortfall_kwh"],
        "shortfall_eur": ev["shortfall_eur"],
        "files": sorted(folder.files, key=lambda f: f["path"]),
        "tables": dict(sorted(versions.items())),
        "as_of": as_of.isoformat(),
        "code_version": code_version(),
        "parameters": params.to_dict(),
        "created_at_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "signature_algorithm": "HMAC-SHA256",
        "key_name": insurer_key_name(ev["insurer"]),
    }
    signed = sign_manifest(manifest, keys.get_key(insurer_key_name(ev["insurer"])))
    export_root.write(f"{folder.rel}/{MANIFEST}", json.dumps(signed, indent=2, sort_keys=True).encode("utf-8"))
    return folder


def select_claims(evaluations: pl.DataFrame, claims: Iterable[tuple[str, dt.date]] | None = None,
                  year: int | None = None) -> pl.DataFrame:
    """The shortfall rows to build packs for: given (system_id, year_start) pairs, or every shortfall
    whose guarantee year ended in ``year`` (all shortfalls when both are None)."""
    short = evaluations.filter(pl.col("verdict") == "shortfall")
    if claims is not None:
        want = pl.DataFrame(list(claims), schema={"system_id": pl.String, "year_start": pl.Date}, orient="row")
        found = evaluations.join(want, on=["system_id", "year_start"], how="semi")
        if found.height < want.height:
            missing = want.join(evaluations, on=["system_id", "year_start"], how="anti")
            raise ClaimError(f"no completed guarantee year for {missing.height} requested claim(s), e.g. "
                             f"{missing.row(0)[0]} starting {missing.row(0)[1]}")
        bad = found.filter(pl.col("verdict") != "shortfall")
        if bad.height:
            raise ClaimError(f"{bad.height} requested year(s) are not shortfalls (e.g. {bad.item(0, 'system_id')}: "
                             f"{bad.item(0, 'verdict')}); only shortfalls are claims")
        return found.sort("insurer", "system_id", "year_start")
    if year is not None:
        short = short.filter(pl.col("year_end").dt.year() == year)
    return short.sort("insurer", "system_id", "year_start")


def resolve_claim(lake: Lake, claim: str) -> tuple[str, dt.date]:
    """``(system_id, year_start)`` of a claim id ``<policy_number>-<YYYYMMDD>``."""
    m = re.fullmatch(r"(.+)-(\d{8})", claim)
    if not m:
        raise ClaimError(f"claim id {claim!r} is not <policy_number>-<YYYYMMDD>")
    systems = lake.read(T.SYSTEMS.name).filter(pl.col("policy_number") == m.group(1))
    if systems.height != 1:
        raise ClaimError("no system with that policy number")
    return systems.item(0, "system_id"), dt.datetime.strptime(m.group(2), "%Y%m%d").date()


def build_packs(lake: Lake, claims: Iterable[tuple[str, dt.date]] | None = None, year: int | None = None,
                export_root: ExportRoot | None = None, params: GuaranteeParams = GuaranteeParams(),
                progress: Callable[[str], None] | None = None, audit: bool = True,
                revise: bool = False) -> list[PackResult]:
    """Evaluate at pinned table versions and write one signed pack per selected shortfall.

    ``claims``: (system_id, year_start) pairs (each must be a shortfall); else every shortfall whose
    guarantee year ended in ``year`` (else all shortfalls). A claim whose pack exists is kept as it
    is (it was signed and may have been sent), unless ``revise``: then a new revision is written
    beside it (:func:`pack_folder`). Progress lines name the pseudonymous system id, never the
    policy number.
    """
    say = progress or (lambda msg: None)
    export_root = export_root or ExportRoot.from_env()
    versions = current_versions(lake)
    claims = list(claims) if claims is not None else None
    ids = sorted({c[0] for c in claims}) if claims is not None else None
    inputs = load_inputs(lake, versions, ids)
    evaluations = evaluate(inputs, params)
    todo = select_claims(evaluations, claims, year)
    say(f"{todo.height} claim pack(s) to build (tables {', '.join(f'{k}@v{v}' for k, v in versions.items())})")
    if todo.height == 0:
        return []
    perf = _performance(lake, versions, todo.get_column("system_id").unique().to_list())
    results = []
    for i, ev in enumerate(todo.iter_rows(named=True), 1):  # one row per claim (a handful)
        t0 = time.perf_counter()
        policy, _ = _policy(inputs.systems, ev["system_id"])
        rel = pack_folder(export_root, ev["insurer"], claim_id(policy, ev["year_start"]), revise)
        if rel is None:
            say(f"  [{i}/{todo.height}] {ev['system_id']} {ev['year_start']}..{ev['year_end']} ({ev['insurer']}): "
                "pack already built: kept (--revise writes a new revision beside it)")
            continue
        files = render_pack(ev, inputs.daily, perf.filter(pl.col("system_id") == ev["system_id"]), policy, params)
        folder = write_pack(export_root, ev, files, policy, versions, inputs.as_of, params, rel)
        secs = time.perf_counter() - t0
        results.append(PackResult(claim_id(policy, ev["year_start"]), ev["insurer"], ev["system_id"], folder.uri,
                                  ev["verdict"], ev["shortfall_kwh"], ev["shortfall_eur"], secs))
        say(f"  [{i}/{todo.height}] {ev['system_id']} {ev['year_start']}..{ev['year_end']} ({ev['insurer']}): "
            f"shortfall {ev['shortfall_kwh']:,.1f} kWh = {ev['shortfall_eur']:,.2f} EUR, {len(files) + 1} files, "
            f"{secs:.1f} s")
    if audit:
        from wattlake.audit import AuditEntry, record

        by_insurer: dict[str, int] = {}
        for r in results:
            by_insurer[insurer_slug(r.insurer)] = by_insurer.get(insurer_slug(r.insurer), 0) + 1
        record(lake, AuditEntry("release"), "insurer evidence packs written",
               {"kind": "insurer_evidence", "packs": len(results), "by_insurer": by_insurer,
                "tables": versions})
    return results


# ---------------------------------------------------------------------------------- checking
@dataclass
class Verification:
    ok: bool
    problems: list[str] = field(default_factory=list)
    manifest: dict | None = None


def open_folder(location: str | ExportFolder) -> ExportFolder:
    """An :class:`ExportFolder` for a pack given as a folder path or ``s3://`` URI."""
    if isinstance(location, ExportFolder):
        return location
    loc = str(location).rstrip("/")
    if not loc.startswith("s3://"):
        loc = str(Path(loc).expanduser().resolve())
    parent, _, name = loc.rpartition("/")
    return ExportRoot(parent or "/").folder(name)


def verify_pack(location: str | ExportFolder) -> Verification:
    """Check a pack's signature (per-insurer key) and every file's SHA-256; list what is wrong."""
    return verify_signed_folder(location, "insurer", insurer_key_name)


def verify_signed_folder(location: str | ExportFolder, party: str, key_name: Callable[[str], str]) -> Verification:
    """Check a signed export folder: the manifest's HMAC signature with the key of the party its
    ``party`` field names (``key_name(value)``, never a key the manifest picks), every listed file's
    SHA-256, and that nothing unlisted lies beside them."""
    folder = open_folder(location)
    try:
        manifest = json.loads(folder.read(MANIFEST))
    except Exception as exc:  # missing or not JSON
        return Verification(False, [f"{MANIFEST}: unreadable ({type(exc).__name__})"])
    problems = []
    sig = manifest.get("signature")
    who = manifest.get(party)
    if not sig or not who:
        problems.append(f"{MANIFEST}: no signature or {party}")
    else:
        body = {k: v for k, v in manifest.items() if k != "signature"}
        if not keys.verify(keys.get_key(key_name(who)), canonical_json(body), sig):
            problems.append(f"{MANIFEST}: signature does not match (manifest altered or wrong key)")
    files = manifest.get("files") or []
    problems += folder.verify_files(files)
    listed = {f["path"] for f in files} | {MANIFEST}
    problems += [f"{p}: not listed in the manifest" for p in folder.listing() if p not in listed]
    return Verification(not problems, problems, manifest)


@dataclass
class Recomputation:
    evaluation: dict
    files: dict[str, bytes]
    mismatches: list[str]

    @property
    def identical(self) -> bool:
        return not self.mismatches


def recompute_pack(lake: Lake, manifest: dict) -> Recomputation:
    """Rebuild a pack's numbers and files from the table versions its manifest records.

    Reads ``silver/pv_intervals``, ``gold/system_daily`` and the registry at those versions (Delta
    time travel), evaluates with the recorded parameters and ``as_of`` and renders the files; a
    mismatch names every file whose SHA-256 differs from the manifest's.
    """
    versions = {k: int(v) for k, v in manifest["tables"].items()}
    params = GuaranteeParams(**manifest["parameters"])
    system_id = manifest["system_id"]
    year_start = dt.date.fromisoformat(manifest["guarantee_year"]["start"])
    inputs = load_inputs(lake, versions, [system_id], as_of=dt.date.fromisoformat(manifest["as_of"]))
    evaluations = evaluate(inputs, params).filter(pl.col("year_start") == year_start)
    if evaluations.height != 1:
        raise ClaimError("the recorded versions hold no such guarantee year")
    ev = evaluations.row(0, named=True)
    perf = _performance(lake, versions, [system_id])
    files = render_pack(ev, inputs.daily, perf, manifest["policy_number"], params)
    recorded = {f["path"]: f["sha256"] for f in manifest["files"]}
    mismatches = sorted(p for p in set(recorded) | set(files)
                        if p not in files or recorded.get(p) != sha256_bytes(files[p]))
    return Recomputation(ev, files, mismatches)
