"""Smart-meter (DSMR 5 P1) day files and EV-charger / heat-pump device files.

Meter (``meter/<LOCAL date>/<em_id>.p1``): one telegram per local quarter hour (00:00 ... 23:45
Europe/Amsterdam; 92 telegrams on the March DST day, 100 on the October day where 02:00-02:45
appear twice, first with the ``S`` then with the ``W`` flag), concatenated, built by
:func:`wattlake.parsing.p1.build_telegrams`. The counters of a telegram at ``ts`` include all
energy up to ``ts``: import/export are accumulated per 5-minute interval from
``net = household + EV + heat pump - PV`` (so a quarter hour can both import and export), on
tariff 1 (low: 23:00-07:00 local and weekends) or tariff 2. ``power_*_kw`` is the net power of the
last 5 minutes; gas counters (homes without heat pump) are read at ``ts`` as well.

Device (``device/<UTC day>/<em_id>.jsonl``, homes with an EV charger and/or heat pump): every 15
minutes one line per device, ``power_w`` = mean power of the 15 minutes ending at ``ts``,
``energy_total_kwh`` = lifetime counter at ``ts``; ``ts`` with the local offset.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl

from .badinput import empty_gt, gt_frame, kind_series
from .registry import ascii_hex, _meter_serials

TZ = "Europe/Amsterdam"


class MeterWriter:
    def __init__(self, landing: Path, fleet, seed: int):
        self.landing = landing
        self.fleet = fleet
        rng = np.random.default_rng([seed, 0, 9])
        n = len(fleet.kwp)
        self.imp = np.round(rng.uniform(4000, 25000, (n, 2)), 3)  # t1, t2 import counters [kWh]
        self.exp = np.round(rng.uniform(500, 9000, (n, 2)), 3)
        self.gas = np.where(fleet.has_gas, np.round(rng.uniform(3000, 20000, n), 3), np.nan)
        self.prev: dict | None = None
        self.n_files = 0
        self.n_telegrams = 0

    def quarter_rows(self, day: dt.date, net_kw: np.ndarray, gas_m3: np.ndarray,
                     tariff5: np.ndarray, times_end: pd.DatetimeIndex, rng) -> dict:
        """Advance the counters over one UTC day and keep the 96 quarter-hour readings."""
        n = net_kw.shape[0]
        de = net_kw * 5 / 60
        imp_e = np.maximum(de, 0)
        exp_e = np.maximum(-de, 0)
        low = (tariff5 == 1)[None, :]
        ci1 = self.imp[:, :1] + np.cumsum(np.where(low, imp_e, 0), axis=1)
        ci2 = self.imp[:, 1:] + np.cumsum(np.where(low, 0, imp_e), axis=1)
        ce1 = self.exp[:, :1] + np.cumsum(np.where(low, exp_e, 0), axis=1)
        ce2 = self.exp[:, 1:] + np.cumsum(np.where(low, 0, exp_e), axis=1)
        cg = self.gas[:, None] + np.cumsum(gas_m3, axis=1)
        self.imp = np.stack([ci1[:, -1], ci2[:, -1]], axis=1)
        self.exp = np.stack([ce1[:, -1], ce2[:, -1]], axis=1)
        self.gas = cg[:, -1]
        q = np.arange(0, 288, 3)
        p = net_kw[:, q]
        volt = 230.0 + rng.normal(0, 1.2, p.shape) + 0.9 * np.maximum(-p, 0)
        return {
            "ts": times_end[q],
            "imp1": ci1[:, q], "imp2": ci2[:, q], "exp1": ce1[:, q], "exp2": ce2[:, q],
            "pimp": np.maximum(p, 0), "pexp": np.maximum(-p, 0), "tariff": tariff5[q],
            "gas": cg[:, q], "volt": volt, "cur": np.abs(p) * 1000 / volt,
        }

    def day(self, day: dt.date, day_idx: int, rows: dict, sched, rng, write: bool) -> pl.DataFrame:
        """Keep today's quarter rows; write the LOCAL date ``day`` (needs yesterday's rows)."""
        prev, self.prev = self.prev, rows
        if not write or prev is None:
            return empty_gt()
        from wattlake.parsing.p1 import build_telegrams  # lazy: optional at import time

        f = self.fleet
        n = len(f.kwp)
        ts = prev["ts"].append(rows["ts"])
        local = ts.tz_convert(TZ)
        sel = np.nonzero(np.asarray(local.date) == day)[0]
        nt = len(sel)

        def cat(key):
            return np.concatenate([prev[key], rows[key]], axis=1)[:, sel]

        wall = pd.Series(local[sel].tz_localize(None))
        repeated = wall.duplicated(keep=False).to_numpy()  # the October hour, both passes
        ts_sel = pl.Series("ts_utc", ts[sel].tz_localize(None).to_numpy()).cast(
            pl.Datetime("us")).dt.replace_time_zone("UTC")
        tariff = np.concatenate([prev["tariff"], rows["tariff"]])[sel]

        # an unregistered energy manager: copy of a random home's readings under a foreign id
        n_unknown = sched.n("meter", "unknown_meter", day_idx)
        src = rng.integers(0, n, n_unknown)
        foreign_serial = _meter_serials(rng, n_unknown, "E")
        foreign_meter = ascii_hex(foreign_serial) if n_unknown else np.array([], dtype=str)
        foreign_em = np.array(["em_" + "".join(r) for r in np.array(list("0123456789abcdef"))[
            rng.integers(0, 16, (n_unknown, 8))]], dtype=str).reshape(n_unknown)
        homes = np.concatenate([np.arange(n), src])
        meter_ids = np.concatenate([f.systems["meter_id"].to_numpy(), foreign_meter])
        gas_ids = np.concatenate([f.systems["gas_meter_id"].to_numpy(), np.full(n_unknown, "")])
        em_ids = np.concatenate([f.systems["em_id"].to_numpy(), foreign_em])
        nh = len(homes)
        hi = np.repeat(np.arange(nh), nt)
        ti = np.tile(np.arange(nt), nh)
        h = homes[hi]

        def val(key):
            return cat(key)[h, ti]

        gas_id = gas_ids[hi]
        has_gas = gas_id != ""
        df = pl.DataFrame({
            "meter_id": meter_ids[hi],
            "gas_meter_id": pl.Series(gas_id.astype(str)).replace("", None),
            "ts_utc": ts_sel.gather(ti),
            "imported_t1_kwh": np.round(val("imp1"), 3),
            "imported_t2_kwh": np.round(val("imp2"), 3),
            "exported_t1_kwh": np.round(val("exp1"), 3),
            "exported_t2_kwh": np.round(val("exp2"), 3),
            "power_imported_kw": np.round(val("pimp"), 3),
            "power_exported_kw": np.round(val("pexp"), 3),
            "active_tariff": pl.Series(tariff[ti], dtype=pl.Int8),
            "gas_m3": pl.Series(np.where(has_gas, np.round(val("gas"), 3), np.nan)).fill_nan(None),
            "voltage_l1_v": np.round(val("volt"), 1),
            "current_l1_a": np.round(val("cur"), 0),
        }).with_columns(
            pl.when(pl.col("gas_meter_id").is_not_null()).then(pl.col("ts_utc"))
            .otherwise(None).alias("gas_ts_utc"))
        tele = build_telegrams(df)

        # --- bad input on distinct telegrams of registered homes, outside the DST hour ---------
        kind = np.full(nh * nt, None, dtype=object)
        kind[hi >= n] = "unknown_meter"
        kind[(hi < n) & repeated[ti]] = "dst_repeat"
        cand = rng.permutation(np.nonzero(kind == None)[0])  # noqa: E711
        nb = sched.n("meter", "bad_crc", day_idx)
        ntr = sched.n("meter", "truncated_telegram", day_idx)
        nd = sched.n("meter", "duplicate_telegram", day_idx)
        crc_rows, trunc_rows, dup_rows = cand[:nb], cand[nb:nb + ntr], cand[nb + ntr:nb + ntr + nd]
        kind[crc_rows] = "bad_crc"
        kind[trunc_rows] = "truncated_telegram"
        mode = np.zeros(nh * nt, dtype=np.int8)
        mode[crc_rows] = 1
        mode[trunc_rows] = 2
        keep_lines = rng.integers(3, 12, nh * nt)
        tdf = pl.DataFrame({"t": tele, "mode": mode, "keep": keep_lines}).with_columns(
            pl.col("t").str.find(r"\d\*kWh\)").alias("pos"))
        digit = tdf["t"].str.slice(tdf["pos"].fill_null(0), 1)
        tdf = tdf.with_columns(
            ((digit.cast(pl.Int64, strict=False).fill_null(0) + 5) % 10).cast(pl.String).alias("nd"))
        tdf = tdf.with_columns(
            pl.when(pl.col("mode") == 1).then(pl.concat_str([
                pl.col("t").str.slice(0, pl.col("pos")), pl.col("nd"),
                pl.col("t").str.slice(pl.col("pos") + 1)]))
            .when(pl.col("mode") == 2).then(
                pl.col("t").str.split("\r\n").list.head(pl.col("keep")).list.join("\r\n") + "\r\n")
            .otherwise(pl.col("t")).alias("t"))
        # duplicates: the energy manager re-sent the telegram right after itself
        rep = np.ones(nh * nt, dtype=np.int64)
        rep[dup_rows] = 2
        idx = np.repeat(np.arange(nh * nt), rep)
        second = np.zeros(len(idx), dtype=bool)
        second[1:] = idx[1:] == idx[:-1]
        texts = tdf["t"].gather(idx)
        kinds = kind[idx]
        kinds[second] = "duplicate_telegram"
        nlines = texts.str.count_matches("\n").to_numpy()
        file_of = hi[idx]

        d = self.landing / "meter" / day.isoformat()
        d.mkdir(parents=True, exist_ok=True)
        bounds = np.searchsorted(file_of, np.arange(nh + 1))
        tl = texts.to_list()
        gts = []
        for j in range(nh):  # one file per home
            a, b = bounds[j], bounds[j + 1]
            name = f"{em_ids[j]}.p1"
            with open(d / name, "w", newline="") as fh:
                fh.write("".join(tl[a:b]))
            kk = kinds[a:b]
            bad = np.nonzero(kk != None)[0]  # noqa: E711
            if len(bad):
                start_line = np.concatenate([[0], np.cumsum(nlines[a:b])])[bad] + 1
                gts.append(gt_frame("meter", f"meter/{day.isoformat()}/{name}", start_line, kk[bad]))
        self.n_files += nh
        self.n_telegrams += len(idx)
        return pl.concat(gts) if gts else empty_gt()


class DeviceWriter:
    def __init__(self, landing: Path, fleet, seed: int):
        self.landing = landing
        self.fleet = fleet
        rng = np.random.default_rng([seed, 0, 10])
        n = len(fleet.kwp)
        em = fleet.systems["em_id"].to_numpy()
        hx = np.array(list("0123456789abcdef"))
        self.ev_id = np.char.add("evc_", np.array(["".join(r) for r in hx[rng.integers(0, 16, (n, 8))]]))
        self.hp_id = np.char.add("hp_", np.array(["".join(r) for r in hx[rng.integers(0, 16, (n, 8))]]))
        self.ev_e = np.round(rng.uniform(500, 8000, n), 3)
        self.hp_e = np.round(rng.uniform(1000, 15000, n), 3)
        self.em = em
        self.n_files = 0
        self.n_lines = 0

    def day(self, day: dt.date, day_idx: int, ev_kw: np.ndarray, hp_kw: np.ndarray,
            ts_local: np.ndarray, sched, rng, write: bool) -> pl.DataFrame:
        f = self.fleet
        ev_c = self.ev_e[:, None] + np.cumsum(ev_kw * 5 / 60, axis=1)
        hp_c = self.hp_e[:, None] + np.cumsum(hp_kw * 5 / 60, axis=1)
        self.ev_e, self.hp_e = ev_c[:, -1], hp_c[:, -1]
        if not write:
            return empty_gt()
        q = np.arange(0, 288, 3)
        # mean power of the 15 minutes ending at ts (the first quarter uses what is known today)
        ev_p = ev_kw.reshape(len(ev_kw), 96, 3).mean(axis=2)
        hp_p = hp_kw.reshape(len(hp_kw), 96, 3).mean(axis=2)
        homes = np.nonzero(f.has_ev | f.has_hp)[0]
        parts = []
        for typ, has, ids, p, c in (("ev_charger", f.has_ev, self.ev_id, ev_p, ev_c),
                                    ("heat_pump", f.has_hp, self.hp_id, hp_p, hp_c)):
            s = np.nonzero(has)[0]
            si = np.repeat(s, 96)
            ti = np.tile(np.arange(96), len(s))
            parts.append(pl.DataFrame({
                "home": si, "t": ti, "typ_order": np.full(len(si), 0 if typ == "ev_charger" else 1),
                "device_id": ids[si], "device_type": np.full(len(si), typ),
                "ts": ts_local[q][ti], "power_w": np.round(p[si, ti] * 1000, 1),
                "energy": np.round(c[si, q[ti]], 3),
            }))
        df = pl.concat(parts).sort("home", "t", "typ_order")
        df = df.with_columns(pl.concat_str([
            pl.lit('{"device_id":"'), pl.col("device_id"), pl.lit('","device_type":"'),
            pl.col("device_type"), pl.lit('","ts":"'), pl.col("ts"), pl.lit('","power_w":'),
            pl.col("power_w").cast(pl.String), pl.lit(',"energy_total_kwh":'),
            pl.col("energy").cast(pl.String), pl.lit("}")]).alias("line"))
        nrow = df.height
        cand = rng.permutation(nrow)
        ntr = min(sched.n("device", "truncated_json", day_idx), nrow)
        nd = min(sched.n("device", "duplicate", day_idx), max(nrow - ntr, 0))
        kind = np.full(nrow, None, dtype=object)
        kind[cand[:ntr]] = "truncated_json"
        cut = rng.uniform(0.2, 0.85, nrow)
        df = df.with_columns(kind_series("kind", kind), pl.Series("cut", cut))
        df = df.with_columns(
            pl.when(pl.col("kind") == "truncated_json")
            .then(pl.col("line").str.slice(0, (pl.col("line").str.len_chars() * pl.col("cut")).cast(pl.Int64)))
            .otherwise(pl.col("line")).alias("line"))
        # duplicates: the same line again 1-4 lines later in the same file (re-sent batch)
        dup = cand[ntr:ntr + nd]
        home = df["home"].to_numpy()
        end_of_home = np.searchsorted(home, home, side="right")  # index after the home's last row
        ins = np.minimum(dup + rng.integers(1, 5, len(dup)), end_of_home[dup])
        keys = np.concatenate([2 * np.arange(nrow), 2 * ins - 1])
        allk = np.concatenate([kind, np.full(len(dup), "duplicate", dtype=object)])
        order = np.argsort(keys, kind="stable")
        lines = pl.concat([df["line"], df["line"].gather(dup)]).gather(order)
        kinds = allk[order]
        homes_all = np.concatenate([home, home[dup]])[order]

        d = self.landing / "device" / day.isoformat()
        d.mkdir(parents=True, exist_ok=True)
        tl = lines.to_list()
        bounds = np.searchsorted(homes_all, np.concatenate([homes, [len(f.kwp)]]))
        gts = []
        for j, hm in enumerate(homes):  # one file per home with devices
            a, b = bounds[j], bounds[j + 1]
            name = f"{self.em[hm]}.jsonl"
            with open(d / name, "w", newline="") as fh:
                fh.write("\n".join(tl[a:b]) + "\n")
            kk = kinds[a:b]
            bad = np.nonzero(kk != None)[0]  # noqa: E711
            if len(bad):
                gts.append(gt_frame("device", f"device/{day.isoformat()}/{name}", bad + 1, kk[bad]))
        self.n_files += len(homes)
        self.n_lines += len(tl)
        return pl.concat(gts) if gts else empty_gt()
