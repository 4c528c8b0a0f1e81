"""Registry of the sample fleet: weather stations, systems (PV + home) and data subjects.

Everything is drawn from one seeded :class:`numpy.random.Generator` and built column-wise
(numpy / Polars), so the registry for 1,000 systems costs milliseconds.

Besides the public registry (``registry/systems.csv``, ``registry/subjects.csv``,
``registry/installation_photos.csv``) the builder returns the *true* physical parameters of every
system (true tilt/azimuth, modules per string, module rating, the true CEC module and inverter
model from :mod:`wattlake.generator.cec`, drawn from their own seeded stream) used by the
physics; orientations differ from the registry values by a few degrees (and by > 30 degrees for
``wrong_metadata`` faults, which :mod:`wattlake.generator.faults` applies afterwards).

Units: ``lat``/``lon`` [degrees], ``kwp`` [kWp DC at STC], ``inverter_ac_kw`` [kW AC],
``tilt_deg``/``azimuth_deg`` [degrees, azimuth 180 = south], ``guarantee_kwh_per_year`` [kWh AC],
``guarantee_ref_irradiation_kwh_m2`` [kWh/m2, typical-year horizontal irradiation the guarantee was
computed with], ``guarantee_tariff_eur_per_kwh`` [EUR/kWh]. The guarantee terms come from their own
random stream (``seed + 1000``): adding them changed no other generated value.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

from . import cec

#: Real KNMI automatic weather stations (station number, name, lat, lon, altitude m).
STATIONS: list[tuple[int, str, float, float, float]] = [
    (235, "De Kooy", 52.928, 4.781, 1.2),
    (240, "Schiphol", 52.318, 4.790, -3.3),
    (260, "De Bilt", 52.100, 5.180, 1.9),
    (270, "Leeuwarden", 53.224, 5.752, 1.2),
    (280, "Eelde", 53.125, 6.585, 5.2),
    (290, "Twenthe", 52.274, 6.891, 34.8),
    (310, "Vlissingen", 51.442, 3.596, 8.0),
    (344, "Rotterdam", 51.962, 4.447, -4.3),
    (370, "Eindhoven", 51.451, 5.377, 22.6),
    (380, "Maastricht", 50.906, 5.762, 114.3),
]

#: Towns the houses are scattered around: (name, lat, lon, first and last 4-digit postcode area,
#: relative weight ~ population). Postcode areas are the real ranges of those towns.
TOWNS: list[tuple[str, float, float, int, int, float]] = [
    ("Amsterdam", 52.370, 4.895, 1011, 1109, 8.0),
    ("Almere", 52.370, 5.214, 1311, 1363, 2.2),
    ("Haarlem", 52.381, 4.637, 2011, 2037, 1.7),
    ("Zaandam", 52.438, 4.826, 1501, 1509, 1.5),
    ("Alkmaar", 52.632, 4.748, 1811, 1827, 1.1),
    ("Hoorn", 52.642, 5.060, 1621, 1628, 0.8),
    ("Den Helder", 52.958, 4.760, 1781, 1789, 0.6),
    ("Hilversum", 52.223, 5.176, 1211, 1223, 0.9),
    ("Amersfoort", 52.156, 5.387, 3811, 3829, 1.6),
    ("Utrecht", 52.091, 5.122, 3511, 3585, 3.6),
    ("Leiden", 52.160, 4.497, 2311, 2334, 1.2),
    ("Den Haag", 52.070, 4.300, 2491, 2597, 5.5),
    ("Delft", 52.012, 4.357, 2611, 2629, 1.0),
    ("Rotterdam", 51.924, 4.478, 3011, 3089, 6.5),
    ("Dordrecht", 51.813, 4.690, 3311, 3329, 1.2),
    ("Gouda", 52.017, 4.708, 2801, 2809, 0.7),
    ("Breda", 51.589, 4.776, 4811, 4839, 1.8),
    ("Bergen op Zoom", 51.495, 4.291, 4611, 4625, 0.7),
    ("Roosendaal", 51.531, 4.457, 4701, 4709, 0.8),
    ("Tilburg", 51.560, 5.091, 5011, 5049, 2.2),
    ("'s-Hertogenbosch", 51.690, 5.304, 5211, 5237, 1.6),
    ("Oss", 51.765, 5.518, 5341, 5351, 0.9),
    ("Eindhoven", 51.441, 5.478, 5611, 5658, 2.4),
    ("Helmond", 51.482, 5.661, 5701, 5709, 0.9),
    ("Venlo", 51.370, 6.172, 5911, 5929, 1.0),
    ("Roermond", 51.194, 5.987, 6041, 6046, 0.6),
    ("Maastricht", 50.851, 5.691, 6211, 6229, 1.2),
    ("Heerlen", 50.888, 5.979, 6411, 6422, 0.9),
    ("Nijmegen", 51.842, 5.853, 6511, 6546, 1.8),
    ("Arnhem", 51.985, 5.899, 6811, 6846, 1.6),
    ("Ede", 52.047, 5.665, 6711, 6718, 1.2),
    ("Apeldoorn", 52.211, 5.970, 7311, 7339, 1.7),
    ("Deventer", 52.255, 6.163, 7411, 7429, 1.0),
    ("Harderwijk", 52.342, 5.621, 3841, 3849, 0.5),
    ("Zwolle", 52.516, 6.083, 8011, 8043, 1.3),
    ("Lelystad", 52.518, 5.471, 8211, 8245, 0.8),
    ("Enschede", 52.221, 6.894, 7511, 7548, 1.6),
    ("Hengelo", 52.266, 6.793, 7551, 7559, 0.8),
    ("Almelo", 52.357, 6.662, 7601, 7611, 0.7),
    ("Emmen", 52.779, 6.906, 7811, 7828, 1.1),
    ("Assen", 52.993, 6.564, 9401, 9409, 0.7),
    ("Groningen", 53.219, 6.567, 9711, 9747, 2.3),
    ("Leeuwarden", 53.201, 5.799, 8911, 8939, 1.2),
    ("Drachten", 53.107, 6.099, 9200, 9209, 0.5),
    ("Heerenveen", 52.960, 5.920, 8441, 8448, 0.5),
    ("Sneek", 53.033, 5.659, 8601, 8608, 0.4),
    ("Middelburg", 51.499, 3.614, 4331, 4339, 0.5),
    ("Vlissingen", 51.442, 3.573, 4381, 4389, 0.5),
    ("Goes", 51.504, 3.889, 4461, 4465, 0.4),
]

FIRST_NAMES = np.array([
    "Daan", "Sem", "Lucas", "Levi", "Finn", "Milan", "Bram", "Thijs", "Jesse", "Ruben", "Jan",
    "Pieter", "Kees", "Henk", "Willem", "Gerrit", "Johan", "Marco", "Sander", "Erik", "Emma",
    "Julia", "Sophie", "Tess", "Anna", "Lisa", "Sanne", "Fleur", "Eva", "Lotte", "Marieke",
    "Anouk", "Ingrid", "Petra", "Annelies", "Wilma", "Joke", "Femke", "Inge", "Esther",
])
LAST_NAMES = np.array([
    "de Jong", "Jansen", "de Vries", "van den Berg", "van Dijk", "Bakker", "Janssen", "Visser",
    "Smit", "Meijer", "de Boer", "Mulder", "de Groot", "Bos", "Vos", "Peters", "Hendriks",
    "van Leeuwen", "Dekker", "Brouwer", "de Wit", "Dijkstra", "Smits", "de Graaf", "van der Meer",
    "van der Linden", "Kok", "Jacobs", "de Haan", "Vermeulen", "van den Heuvel", "van der Veen",
    "van den Broek", "de Bruijn", "de Bruin", "van der Heijden", "Schouten", "van Beek",
    "Willems", "van Vliet", "Hoekstra", "Maas", "Verhoeven", "Koster", "Postma", "Kuipers",
])
STREETS = np.array([
    "Kerkstraat", "Dorpsstraat", "Schoolstraat", "Molenweg", "Stationsweg", "Nieuwstraat",
    "Julianastraat", "Beatrixstraat", "Wilhelminastraat", "Kastanjelaan", "Eikenlaan",
    "Lindelaan", "Berkenlaan", "Industrieweg", "Parallelweg", "Sportlaan", "Prinses Irenestraat",
    "Oranjestraat", "Burgemeester de Vlugtlaan", "Tulpstraat", "Rozenstraat", "Meidoornweg",
    "Zonnebloemstraat", "Weidelaan", "Polderweg", "Dijkstraat", "Havenstraat", "Marktstraat",
])
EMAIL_DOMAINS = np.array(["gmail.com", "hotmail.com", "ziggo.nl", "kpnmail.nl", "outlook.com",
                          "xs4all.nl", "planet.nl", "live.nl"])
BANKS = np.array(["ABNA", "INGB", "RABO", "SNSB", "TRIO", "ASNB", "KNAB", "BUNQ"])
INSURERS = np.array(["Lage Landen Verzekeringen", "Polder Assuradeuren", "ZonZeker NV"])
INSURER_PREFIX = np.array(["LLV", "PA", "ZZ"])
INSTALLERS = np.array(["inst_zonnefix", "inst_groenwatt", "inst_dakenergie", "inst_solarpro",
                       "inst_noordzon"])
# Letters used in Dutch postcodes (F, I, O, Q, U and Y are not used).
PC_LETTERS = np.array(list("ABCDEGHJKLMNPRSTVWXZ"))

#: Inverter catalogue per brand: (model, AC rating kW, number of MPPT inputs).
INVERTERS: dict[str, list[tuple[str, float, int]]] = {
    "SMA": [("Sunny Boy 2.5", 2.5, 1), ("Sunny Boy 3.0", 3.0, 2), ("Sunny Boy 3.6", 3.68, 2),
            ("Sunny Boy 4.0", 4.0, 2), ("Sunny Boy 5.0", 5.0, 3), ("Sunny Boy 6.0", 6.0, 3),
            ("Sunny Tripower 8.0", 8.0, 2), ("Sunny Tripower 10.0", 10.0, 2)],
    "SolarEdge": [("SE2200H", 2.2, 1), ("SE3000H", 3.0, 1), ("SE3500H", 3.5, 1),
                  ("SE4000H", 4.0, 1), ("SE5000H", 5.0, 1), ("SE6000H", 6.0, 1),
                  ("SE8K", 8.0, 1), ("SE10K", 10.0, 1)],
    "Growatt": [("MIN 2500TL-XE", 2.5, 2), ("MIN 3000TL-XE", 3.0, 2), ("MIN 3600TL-XE", 3.6, 2),
                ("MIN 4200TL-XE", 4.2, 2), ("MIN 5000TL-XE", 5.0, 2), ("MIN 6000TL-XE", 6.0, 2),
                ("MOD 8KTL3-X", 8.0, 2), ("MOD 10KTL3-X", 10.0, 2)],
    "Huawei": [("SUN2000-2KTL-L1", 2.0, 2), ("SUN2000-3KTL-L1", 3.0, 2),
               ("SUN2000-3.68KTL-L1", 3.68, 2), ("SUN2000-4KTL-L1", 4.0, 2),
               ("SUN2000-5KTL-L1", 5.0, 2), ("SUN2000-6KTL-L1", 6.0, 2),
               ("SUN2000-8KTL-M1", 8.0, 2), ("SUN2000-10KTL-M1", 10.0, 2)],
    "GoodWe": [("GW3000-NS", 3.0, 2), ("GW3600D-NS", 3.6, 2), ("GW5000D-NS", 5.0, 2),
               ("GW6000D-NS", 6.0, 2), ("GW8K-DT", 8.0, 2), ("GW10K-DT", 10.0, 2)],
    "Fronius": [("Primo 3.0-1", 3.0, 2), ("Primo 3.6-1", 3.6, 2), ("Primo 4.0-1", 4.0, 2),
                ("Primo 5.0-1", 5.0, 2), ("Primo 6.0-1", 6.0, 2), ("Primo 8.2-1", 8.2, 2),
                ("Symo 10.0-3-M", 10.0, 2)],
}
BRANDS = np.array(list(INVERTERS))
BRAND_WEIGHTS = np.array([0.22, 0.2, 0.18, 0.16, 0.12, 0.12])



@dataclass
class Fleet:
    """Registry frames plus the true physical parameters, aligned row by row (system index)."""

    stations: pl.DataFrame
    systems: pl.DataFrame
    subjects: pl.DataFrame
    photos: pl.DataFrame
    # True physics parameters, numpy arrays of shape (n_systems,) unless noted.
    station_idx: np.ndarray  # index into ``stations`` of each system's nearest station
    true_tilt: np.ndarray
    true_azimuth: np.ndarray
    module_wp: np.ndarray
    series_modules: np.ndarray  # (n_systems, 3) modules in series per MPPT input, 0 if absent
    input_share: np.ndarray  # (n_systems, 3) share of the array's modules on each input
    n_strings: np.ndarray
    kwp: np.ndarray  # registry kWp (modules x nominal rating)
    module_idx: np.ndarray  # index into ``cec.MODULE_NAMES`` (the true module)
    inverter_idx: np.ndarray  # index into ``cec.INVERTER_NAMES`` (true inverter model, scaled)
    n_modules: np.ndarray  # true number of modules of the array
    true_kwp: np.ndarray  # true array power at STC [kW] (n_modules x CEC STC rating)
    ac_kw: np.ndarray
    install_date: np.ndarray  # datetime64[D]
    annual_load_kwh: np.ndarray  # household base consumption, excl. EV and heat pump
    has_ev: np.ndarray
    has_hp: np.ndarray
    has_gas: np.ndarray
    ts_style_z: np.ndarray  # inverter stick sends "Z" (UTC) instead of local offset


def _hex_ids(rng: np.random.Generator, prefix: str, n: int, n_hex: int) -> np.ndarray:
    """``n`` unique ids ``prefix + n_hex`` lowercase hex characters."""
    out: np.ndarray = np.array([], dtype=object)
    while len(out) < n:
        raw = rng.integers(0, 16, size=(n * 2, n_hex))
        digits = np.array(list("0123456789abcdef"))[raw]
        cand = np.char.add(prefix, np.array(["".join(r) for r in digits]))
        out = np.array(list(dict.fromkeys(np.concatenate([out, cand]).tolist())), dtype=object)
    return out[:n].astype(str)


def _digits(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """``n`` strings of ``k`` random decimal digits."""
    if n == 0:
        return np.array([], dtype=str)
    d = rng.integers(0, 10, size=(n, k)).astype(str)
    return np.array(["".join(r) for r in d])


def _haversine_km(lat1, lon1, lat2, lon2):
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dphi = p2 - p1
    dl = np.radians(lon2 - lon1)
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * 6371.0 * np.arcsin(np.sqrt(a))


def nl_iban(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random Dutch IBANs with a valid ISO 13616 mod-97 check and a valid legacy 11-test."""
    acct = rng.integers(0, 10, size=(n, 10))
    acct[:, 0] = rng.integers(1, 10, size=n)
    weights = np.arange(10, 0, -1)
    for _ in range(50):  # resample the rows whose 11-test cannot be fixed by the last digit
        s9 = (acct[:, :9] * weights[:9]).sum(axis=1)
        last = (-s9) % 11
        bad = last == 10
        acct[:, 9] = np.where(bad, 0, last)
        if not bad.any():
            break
        acct[bad, :9] = rng.integers(0, 10, size=(int(bad.sum()), 9))
        acct[bad, 0] = rng.integers(1, 10, size=int(bad.sum()))
    banks = BANKS[rng.integers(0, len(BANKS), size=n)]
    bank_num = np.zeros(n, dtype=np.int64)
    for i in range(4):
        letter = np.array([ord(b[i]) - 55 for b in banks], dtype=np.int64)  # A=10 .. Z=35
        bank_num = bank_num * 100 + letter
    acct_num = (acct * (10 ** np.arange(9, -1, -1, dtype=np.int64))).sum(axis=1)
    r = bank_num % 97
    r = (r * 10**10 + acct_num) % 97
    r = (r * 10**6 + 232100) % 97  # "NL00" -> 23 21 00
    check = 98 - r
    acct_str = np.array(["".join(map(str, a)) for a in acct])
    return np.char.add(np.char.add(np.char.add("NL", np.char.zfill(check.astype(str), 2)),
                                   banks), acct_str)


def iban_is_valid(iban: str) -> bool:
    """ISO 13616 check (used by tests)."""
    s = iban[4:] + iban[:4]
    num = "".join(str(int(c, 36)) for c in s)
    return int(num) % 97 == 1


def _serials(rng: np.random.Generator, brands: np.ndarray) -> np.ndarray:
    """Inverter serial numbers in each brand's style."""
    n = len(brands)
    hexd = np.array(list("0123456789ABCDEF"))
    alnum = np.array(list("0123456789ABCDEFGHJKLMNPRSTUVWXYZ"))
    d10 = _digits(rng, n, 10)
    d8 = _digits(rng, n, 8)
    h8 = np.array(["".join(r) for r in hexd[rng.integers(0, 16, size=(n, 8))]])
    a10 = np.array(["".join(r) for r in alnum[rng.integers(0, len(alnum), size=(n, 10))]])
    out = np.where(brands == "SMA", np.char.add("30", np.char.ljust(d8, 8)), "")
    out = np.where(brands == "SolarEdge",
                   np.char.add(np.char.add("7E", np.array([h[:6] for h in h8])),
                               np.char.add("-", np.array([h[6:] for h in h8]))), out)
    out = np.where(brands == "Growatt", a10, out)
    out = np.where(brands == "Huawei", np.char.add("HV", d10), out)
    out = np.where(brands == "GoodWe", np.char.add(np.char.add("5", np.array([d[:4] for d in d10])),
                                                    np.char.add("DNS", np.array([d[4:] for d in d10]))),
                   out)
    out = np.where(brands == "Fronius", np.char.add("SN", d10), out)
    return out


def random_serial_like(rng: np.random.Generator, n: int) -> np.ndarray:
    """Serials that look real but belong to no registered system (prefix 'SN9' + 9 digits)."""
    return np.char.add("SN9", _digits(rng, n, 9))


def _meter_serials(rng: np.random.Generator, n: int, kind: str) -> np.ndarray:
    """ASCII DSMR equipment serials like 'E0044007131610217' (17 chars)."""
    if n == 0:
        return np.array([], dtype=str)
    manuf = np.array(["31", "33", "34", "44", "47", "53"])[rng.integers(0, 6, size=n)]
    year = np.char.zfill(rng.integers(14, 25, size=n).astype(str), 2)
    body = np.char.add(np.char.add(np.char.add(kind + "00", manuf), "0"),
                       np.char.add(_digits(rng, n, 2), year))
    return np.char.add(body, _digits(rng, n, 7))


def ascii_hex(values: np.ndarray) -> np.ndarray:
    return pl.Series(values, dtype=pl.String).str.encode("hex").to_numpy().astype(str)


#: share of guarantees that run per calendar year (start 1 January after commissioning); the
#: others start on the 1st of the month after commissioning
CALENDAR_YEAR_SHARE = 0.6
#: installer's estimate of a well-oriented system's annual yield per unit of annual horizontal
#: irradiation [kWh/kWp per kWh/m2]: plane-of-array gain (~1.12 at 36 deg south in NL) x a
#: performance ratio of ~0.85; the sample fleet's healthy systems reach about this
SPECIFIC_YIELD_PER_GHI = 0.95
#: share of the installer's typical-year estimate the contract guarantees
GUARANTEE_SHARE = 0.9
#: contract tariffs [EUR/kWh] a shortfall is valued at
GUARANTEE_TARIFFS = np.array([0.21, 0.25, 0.28, 0.31])
#: non-leap year whose hours the typical-year irradiation is summed over
_TYPICAL_YEAR = 2023


def _guarantee_terms(rng: np.random.Generator, install: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Guarantee start dates and contract tariffs [EUR/kWh] from the guarantee's own stream.

    A guarantee starts on the 1st of the month after commissioning, or (calendar-year contracts,
    :data:`CALENDAR_YEAR_SHARE`) on 1 January after commissioning, so its guarantee year runs
    from that date to the day before its anniversary.
    """
    n = len(install)
    calendar = rng.random(n) < CALENDAR_YEAR_SHARE
    month_after = install.astype("datetime64[M]") + np.timedelta64(1, "M")
    year_after = install.astype("datetime64[Y]") + np.timedelta64(1, "Y")
    start = np.where(calendar, year_after.astype("datetime64[D]"), month_after.astype("datetime64[D]"))
    tariff = GUARANTEE_TARIFFS[rng.integers(0, len(GUARANTEE_TARIFFS), size=n)]
    return start.astype("datetime64[D]"), tariff


def typical_annual_ghi_kwh_m2(stations: pl.DataFrame, altitudes: np.ndarray) -> np.ndarray:
    """Typical-year global horizontal irradiation per station [kWh/m2], rounded to 1 kWh/m2.

    The climatology the weather generator is calibrated to: hourly Ineichen clear-sky GHI (pvlib,
    Linke turbidity climatology) of a common year times the month's energy-weighted clear-sky
    index :data:`~wattlake.generator.weather.KC_MONTH` (De Bilt normals, about 1,040 kWh/m2 per
    year). This is the reference irradiation the sample fleet's kWh guarantees were computed with.
    """
    import pandas as pd
    import pvlib

    from .weather import KC_MONTH

    times = pd.date_range(f"{_TYPICAL_YEAR}-01-01 00:30", f"{_TYPICAL_YEAR}-12-31 23:30", freq="h", tz="UTC")
    kc = KC_MONTH[np.asarray(times.month) - 1]
    out = np.zeros(stations.height)
    for i, (lat, lon) in enumerate(zip(stations["lat"].to_numpy(), stations["lon"].to_numpy())):  # ~10
        loc = pvlib.location.Location(lat, lon, altitude=float(altitudes[i]))
        sp = loc.get_solarposition(times, method="ephemeris")
        with np.errstate(divide="ignore", invalid="ignore"):
            cs = loc.get_clearsky(times, model="ineichen", solar_position=sp)
        out[i] = float((np.nan_to_num(cs["ghi"].to_numpy()).clip(0) * kc).sum()) / 1000.0
    return np.round(out, 0)


def build_fleet(n_systems: int, start: dt.date, seed: int) -> Fleet:
    """Draw the registry of ``n_systems`` homes (deterministic in ``seed``)."""
    rng = np.random.default_rng([seed, 0, 1])
    n = n_systems
    st = pl.DataFrame(
        {
            "station_id": [s[0] for s in STATIONS],
            "name": [s[1] for s in STATIONS],
            "lat": [s[2] for s in STATIONS],
            "lon": [s[3] for s in STATIONS],
        }
    )
    st_lat = st["lat"].to_numpy()
    st_lon = st["lon"].to_numpy()

    # --- location -------------------------------------------------------------------------
    w = np.array([t[5] for t in TOWNS])
    town = rng.choice(len(TOWNS), size=n, p=w / w.sum())
    t_lat = np.array([t[1] for t in TOWNS])[town]
    t_lon = np.array([t[2] for t in TOWNS])[town]
    # houses within ~5 km of the town centre (1 deg lat ~ 111 km, 1 deg lon ~ 68 km)
    lat = np.round(t_lat + rng.normal(0, 0.03, n), 5)
    lon = np.round(t_lon + rng.normal(0, 0.045, n), 5)
    pc_lo = np.array([t[3] for t in TOWNS])[town]
    pc_hi = np.array([t[4] for t in TOWNS])[town]
    pc_num = pc_lo + np.floor(rng.random(n) * (pc_hi - pc_lo + 1)).astype(int)
    letters = PC_LETTERS[rng.integers(0, len(PC_LETTERS), size=(n, 2))]
    postcode = np.char.add(np.char.add(pc_num.astype(str), " "),
                           np.char.add(letters[:, 0], letters[:, 1]))
    city = np.array([t[0] for t in TOWNS])[town]
    dist = _haversine_km(lat[:, None], lon[:, None], st_lat[None, :], st_lon[None, :])
    station_idx = dist.argmin(axis=1)

    # --- PV system ------------------------------------------------------------------------
    module_wp = rng.choice(np.array([330, 370, 400, 410, 430]), size=n, p=[0.1, 0.2, 0.35, 0.2, 0.15])
    kwp_target = np.clip(rng.lognormal(np.log(5.0), 0.38, n), 2.5, 12.0)
    n_mod = np.clip(np.round(kwp_target * 1000 / module_wp), 7, 30).astype(int)
    kwp = np.clip(n_mod * module_wp / 1000.0, 2.5, 12.0)
    n_mod = np.round(kwp * 1000 / module_wp).astype(int)
    kwp = n_mod * module_wp / 1000.0
    brand = BRANDS[rng.choice(len(BRANDS), size=n, p=BRAND_WEIGHTS)]
    dcac = rng.uniform(1.0, 1.3, n)
    ac_target = kwp / dcac
    model = np.empty(n, dtype=object)
    ac_kw = np.zeros(n)
    mppts = np.zeros(n, dtype=int)
    for b, cat in INVERTERS.items():  # loop over a handful of brands
        sel = brand == b
        if not sel.any():
            continue
        ratings = np.array([c[1] for c in cat])
        # the model whose rating is nearest to the target DC/AC ratio
        idx = np.abs(ratings[None, :] - ac_target[sel][:, None]).argmin(axis=1)
        model[sel] = np.array([c[0] for c in cat], dtype=object)[idx]
        ac_kw[sel] = ratings[idx]
        mppts[sel] = np.array([c[2] for c in cat])[idx]
    # strings per MPPT input: 1 for short arrays, 2 common, 3 for large ones, never more than
    # the inverter's inputs (SolarEdge: one input, optimisers)
    n_strings = np.where(n_mod <= 9, 1, np.where(n_mod >= 22, 3, 2))
    n_strings = np.where((n_strings == 2) & (rng.random(n) < 0.12), 1, n_strings)
    n_strings = np.where((n_strings == 3) & (rng.random(n) < 0.3), 2, n_strings)
    n_strings = np.minimum(n_strings, mppts)
    mods = np.zeros((n, 3), dtype=int)  # modules wired to each input
    for k in range(3):  # first inputs get the remainder
        mods[:, k] = np.where(k < n_strings, n_mod // n_strings + (k < (n_mod % n_strings)), 0)
    # unequal strings happen (two roof faces): move 1-3 modules from input 2 to input 1
    shift = np.where((n_strings == 2) & (rng.random(n) < 0.3), rng.integers(1, 4, n), 0)
    shift = np.minimum(shift, mods[:, 1] - 4).clip(0)
    mods[:, 0] += shift
    mods[:, 1] -= shift
    # an input with more than 16 modules holds parallel strings of equal length
    n_par = np.ceil(mods / 16).clip(1)
    series = np.where(mods > 0, mods / n_par, 0.0)
    share = mods / n_mod[:, None]

    # orientation: pitched roofs (south-ish, 30-45 deg) and flat roofs (10-15 deg)
    flat = rng.random(n) < 0.25
    tilt = np.where(flat, rng.choice([10, 12, 13, 15], size=n), rng.choice([30, 35, 38, 40, 45], size=n))
    az_pitched = np.clip(np.round(rng.normal(180, 38, n) / 5) * 5, 90, 270)
    az_flat = rng.choice([90, 180, 270], size=n, p=[0.25, 0.5, 0.25])
    azimuth = np.where(flat, az_flat, az_pitched).astype(float)
    true_tilt = np.clip(tilt + rng.normal(0, 2.5, n), 3, 60)
    true_az = azimuth + rng.normal(0, 5.0, n)

    install_days = rng.integers(0, 8 * 365, size=n)  # installed 0-8 years before start
    install = (np.datetime64(start) - np.timedelta64(30, "D")) - install_days.astype("timedelta64[D]")
    rng.integers(0, 30, size=n)  # former guarantee-start draw: kept so the main random stream is unchanged
    # orientation factor relative to 36 deg south in NL (empirical, ~ +-2 %)
    orient = (1 - 0.11 * (np.abs(azimuth - 180) / 90) ** 2 * (tilt / 36)
              - 0.0009 * np.abs(tilt - 36) ** 1.3)
    # guarantee terms drawn from their OWN stream, so every value above and below is unchanged
    g_start, g_tariff = _guarantee_terms(np.random.default_rng([seed + 1000, 0, 1]), install)
    guarantee_start = g_start
    ref_ghi = typical_annual_ghi_kwh_m2(st, np.array([s[4] for s in STATIONS]))[station_idx]
    # the installer's typical-year estimate (specific yield per kWh/m2 of horizontal irradiation,
    # times the orientation factor); the contract guarantees GUARANTEE_SHARE of it
    guarantee = np.round(kwp * ref_ghi * SPECIFIC_YIELD_PER_GHI * orient * GUARANTEE_SHARE / 10) * 10

    has_ev = rng.random(n) < 0.35
    has_hp = rng.random(n) < 0.3
    has_gas = ~has_hp
    annual_load = rng.lognormal(np.log(2900), 0.25, n)

    system_id = _hex_ids(rng, "sys_", n, 10)
    subject_id = _hex_ids(rng, "sub_", n, 10)
    em_id = _hex_ids(rng, "em_", n, 8)
    serial = _serials(rng, brand)
    meter_serial = _meter_serials(rng, n, "E")
    gas_serial = _meter_serials(rng, n, "G")
    meter_id = ascii_hex(meter_serial)
    gas_meter_id = np.where(has_gas, ascii_hex(gas_serial), "")
    insurer_idx = rng.integers(0, len(INSURERS), size=n)
    policy = np.char.add(np.char.add(INSURER_PREFIX[insurer_idx], "-"),
                         np.char.add(np.char.add(install.astype("datetime64[Y]").astype(str), "-"),
                                     _digits(rng, n, 6)))
    installer = INSTALLERS[rng.integers(0, len(INSTALLERS), size=n)]
    ts_style_z = rng.random(n) < 0.15

    systems = pl.DataFrame(
        {
            "system_id": system_id,
            "subject_id": subject_id,
            "serial": serial,
            "meter_id": meter_id,
            "gas_meter_id": gas_meter_id,
            "em_id": em_id,
            "lat": lat,
            "lon": lon,
            "postcode": postcode,
            "kwp": np.round(kwp, 3),
            "tilt_deg": tilt.astype(float),
            "azimuth_deg": azimuth,
            "inverter_brand": brand,
            "inverter_model": model.astype(str),
            "inverter_ac_kw": ac_kw,
            "n_strings": n_strings,
            "install_date": install.astype("datetime64[D]"),
            "guarantee_start": guarantee_start.astype("datetime64[D]"),
            "guarantee_kwh_per_year": guarantee,
            "guarantee_ref_irradiation_kwh_m2": ref_ghi,
            "guarantee_tariff_eur_per_kwh": g_tariff,
            "insurer": INSURERS[insurer_idx],
            "policy_number": policy,
            "installer_id": installer,
            "has_ev_charger": has_ev,
            "has_heat_pump": has_hp,
            "station_id": st["station_id"].to_numpy()[station_idx],
        }
    ).with_columns(pl.col("install_date").cast(pl.Date), pl.col("guarantee_start").cast(pl.Date))

    # --- subjects -------------------------------------------------------------------------
    first = FIRST_NAMES[rng.integers(0, len(FIRST_NAMES), size=n)]
    last = LAST_NAMES[rng.integers(0, len(LAST_NAMES), size=n)]
    name = np.char.add(np.char.add(first, " "), last)
    local = pl.Series(np.char.add(np.char.add(first, "."), last)).str.to_lowercase().str.replace_all(
        " ", "").str.replace_all("'", "").to_numpy().astype(str)
    email = np.char.add(np.char.add(np.char.add(local, _digits(rng, n, 2)), "@"),
                        EMAIL_DOMAINS[rng.integers(0, len(EMAIL_DOMAINS), size=n)])
    phone = np.char.add("+31 6 ", _digits(rng, n, 8))
    street = STREETS[rng.integers(0, len(STREETS), size=n)]
    house = rng.integers(1, 180, size=n).astype(str)
    house = np.where(rng.random(n) < 0.1, np.char.add(house, "a"), house)
    created = (install.astype("datetime64[s]") - rng.integers(7, 120, size=n).astype("timedelta64[D]")
               + rng.integers(8 * 3600, 20 * 3600, size=n).astype("timedelta64[s]"))
    subjects = pl.DataFrame(
        {
            "subject_id": subject_id,
            "name": name,
            "street": street,
            "house_number": house,
            "postcode": postcode,
            "city": city,
            "email": email,
            "phone": phone,
            "iban": nl_iban(rng, n),
            "consent_research": rng.random(n) < 0.7,
            "restricted": rng.random(n) < 0.05,
            "objected": rng.random(n) < 0.05,
            "created_at": created.astype("datetime64[us]"),
        }
    ).with_columns(pl.col("created_at").cast(pl.Datetime("us")).dt.replace_time_zone("UTC"))

    has_photo = rng.random(n) < 0.9
    photo_idx = np.nonzero(has_photo)[0]
    k = len(photo_idx)
    sha = np.array(["".join(r) for r in np.array(list("0123456789abcdef"))[
        rng.integers(0, 16, size=(k, 64))]]) if k else np.array([], dtype=str)
    photos = pl.DataFrame(
        {
            "system_id": system_id[photo_idx],
            "file_name": np.char.add(np.char.add(np.char.add("IMG_", np.char.replace(
                install[photo_idx].astype(str), "-", "")), np.char.add("_", _digits(rng, k, 4))), ".jpg")
            if k else np.array([], dtype=str),
            "sha256": sha,
        },
        schema={"system_id": pl.String, "file_name": pl.String, "sha256": pl.String},
    )

    # --- true module and inverter (CEC library), own random stream ------------------------
    rng_m = np.random.default_rng([seed, 0, 2])
    stc_all = cec.module_table()["STC"]
    module_idx = np.zeros(n, dtype=int)
    for wp, names in cec.MODULES.items():  # a handful of ratings
        sel = module_wp == wp
        idx = np.array([cec.MODULE_NAMES.index(m) for m in names])
        module_idx[sel] = idx[rng_m.integers(0, len(idx), size=int(sel.sum()))]
    stc = stc_all[module_idx]
    # modules needed for the registry kWp with the true module (equals the registry count while
    # the CEC rating is within +-half a module of the nominal one)
    n_modules = np.round(kwp * 1000 / stc).astype(int)
    if (n_modules != n_mod).any():  # keep the wiring consistent: scale the inputs
        mods = np.round(mods * (n_modules / n_mod)[:, None]).astype(int)
        mods[:, 0] += n_modules - mods.sum(axis=1)
        n_par = np.ceil(mods / 16).clip(1)
        series = np.where(mods > 0, mods / n_par, 0.0)
        share = mods / n_modules[:, None]
    true_kwp = n_modules * stc / 1000.0
    inverter_idx = np.array([cec.INVERTER_NAMES.index(cec.INVERTERS[b]) for b in brand], dtype=int)

    return Fleet(
        stations=st,
        systems=systems,
        subjects=subjects,
        photos=photos,
        station_idx=station_idx,
        true_tilt=true_tilt,
        true_azimuth=true_az,
        module_wp=module_wp.astype(float),
        series_modules=series,
        input_share=share,
        n_strings=n_strings,
        kwp=kwp,
        module_idx=module_idx,
        inverter_idx=inverter_idx,
        n_modules=n_modules,
        true_kwp=true_kwp,
        ac_kw=ac_kw,
        install_date=install.astype("datetime64[D]"),
        annual_load_kwh=annual_load,
        has_ev=has_ev,
        has_hp=has_hp,
        has_gas=has_gas,
        ts_style_z=ts_style_z,
    )
