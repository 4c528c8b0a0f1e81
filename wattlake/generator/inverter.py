"""Inverter stick messages (JSON lines) of one UTC day, with bad input, out of order and late.

Conventions (what the landing code can rely on):

* One message per inverter every 5 minutes at ``HH:MM:00`` with MM a multiple of 5, day and
  night; at night ``ac_power_w`` is 0.0 and ``status`` is ``"standby"``. ``ac_power_w`` is the mean
  power of the 5 minutes ENDING at ``ts`` and ``ac_energy_total_kwh`` the lifetime counter at
  ``ts`` (it includes that interval; rounded to 3 decimals, so interval energy from counter
  differences is exact to 1 Wh).
* An inverter in an ``outage`` with detail ``offline`` sends nothing; with detail ``fault`` it
  sends status ``"fault"``, 0 W, 0 V / 0 A.
* ``ts`` carries the local Europe/Amsterdam offset (``+01:00``/``+02:00``), except for ~15 % of
  sticks that send UTC with ``Z``.
* Files ``inverter/<UTC day>/messages-NNN.jsonl`` hold the messages that ARRIVED that day: the day's
  own readings minus ~3 % of those after 21:00 UTC, which arrive after midnight (next day's file),
  plus the previous day's late ones. Lines are in chunks of 2,000-5,000 lines in random order
  (also random within a chunk); at most 100,000 lines per file. A ``duplicate`` line always comes
  after its original (same file, a later file, or the next day).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from .badinput import gt_frame, kind_series
from .registry import random_serial_like

MAX_LINES = 100_000
LATE_FROM_STEP = 252  # 21:00 UTC
LATE_PROB = 0.03


def _fmt(col: str, decimals: int) -> pl.Expr:
    return pl.col(col).round(decimals).cast(pl.String)


class InverterWriter:
    def __init__(self, landing: Path, fleet, seed: int):
        self.landing = landing
        self.fleet = fleet
        rng = np.random.default_rng([seed, 0, 7])
        n = len(fleet.kwp)
        # stable home IPs: Dutch residential ISP ranges; ~5 % IPv6
        prefixes = np.array(["84.24", "84.26", "84.30", "77.162", "77.166", "86.81", "86.87",
                             "92.108", "145.53", "213.127", "62.194", "31.151"])
        pre = prefixes[rng.integers(0, len(prefixes), n)]
        ip4 = np.char.add(np.char.add(pre, "."), np.char.add(
            np.char.add(rng.integers(0, 256, n).astype(str), "."), rng.integers(1, 255, n).astype(str)))
        hx = np.array(list("0123456789abcdef"))
        g = [np.array(["".join(r) for r in hx[rng.integers(0, 16, (n, 4))]]) for _ in range(3)]
        ip6 = np.char.add(np.char.add(np.char.add("2a02:a4", np.array([x[:2] for x in g[0]])), ":"),
                          np.char.add(np.char.add(g[1], ":"), np.char.add(g[2], "::1")))
        self.ip = np.where(rng.random(n) < 0.05, ip6, ip4)
        self.counter = np.zeros(n)
        self.carry = self._empty()
        self.n_files = 0
        self.n_lines = 0

    def set_start(self, start) -> None:
        """Counters at the start: ~2.4 kWh/kWp per day since installation (+-10 %)."""
        rng = np.random.default_rng([int(np.datetime64(start, "D").astype(int)), 0, 8])
        age = (np.datetime64(start) - self.fleet.install_date).astype(float)
        self.counter = np.round(age * self.fleet.kwp * 2.4 * rng.uniform(0.9, 1.1, len(age)), 3)

    @staticmethod
    def _empty() -> pl.DataFrame:
        return pl.DataFrame(schema={"line": pl.String, "kind": pl.String, "key": pl.Float64})

    def day(self, day, day_idx: int, last_day: bool, pv: dict, outage_fault: np.ndarray,
            offline: np.ndarray, ts_local: np.ndarray, ts_z: np.ndarray, rng: np.random.Generator,
            sched, write: bool) -> pl.DataFrame:
        """Build, inject, order and write one day; returns the bad-input ground truth rows."""
        f = self.fleet
        n, t = pv["pac"].shape
        pac = pv["pac"]
        energy = pac * (5 / 60) / 1000.0
        cum = np.cumsum(energy, axis=1)
        counter = self.counter[:, None] + cum
        online = ~offline

        # --- counter resets (firmware swap): a handful of systems, loop over them -------------
        n_reset = sched.n("inverter", "counter_reset", day_idx) if write else 0
        n_mix = sched.n("inverter", "unit_mixup", day_idx) if write else 0
        cand = rng.permutation(np.nonzero(online)[0])
        reset_sys = cand[:n_reset]
        mix_sys = cand[n_reset:n_reset + n_mix]
        reset_at = rng.integers(40, 250, len(reset_sys))
        for s, r in zip(reset_sys, reset_at):
            c0 = rng.uniform(0.0, 0.05)
            counter[s, r:] = c0 + cum[s, r:] - cum[s, r - 1]
        self.counter = counter[:, -1].copy()

        # --- rows ------------------------------------------------------------------------------
        sys_idx = np.repeat(np.arange(n), t)
        t_idx = np.tile(np.arange(t), n)
        keep = np.repeat(online, t)
        sys_idx, t_idx = sys_idx[keep], t_idx[keep]
        ns = f.n_strings[sys_idx]
        v = pv["dc_v"][sys_idx, t_idx]  # (rows, 3)
        i = pv["dc_i"][sys_idx, t_idx]
        p = pac[sys_idx, t_idx]
        fault = outage_fault[sys_idx]
        status = np.where(fault, "fault", np.where(p > 0, "ok", "standby"))
        kind = np.full(len(sys_idx), None, dtype=object)
        flat_key = sys_idx * t + t_idx
        is_mix = np.isin(sys_idx, mix_sys) & (p >= 1.0)  # kW with 3 decimals: >= 0.001
        kind[is_mix] = "unit_mixup"
        for s, r in zip(reset_sys, reset_at):
            kind[flat_key == s * t + r] = "counter_reset"
        df = pl.DataFrame({
            "sys": sys_idx, "t": t_idx,
            "serial": f.systems["serial"].to_numpy()[sys_idx],
            "ts": np.where(f.ts_style_z[sys_idx], ts_z[t_idx], ts_local[t_idx]),
            "ip": self.ip[sys_idx],
            "p": p, "e": counter[sys_idx, t_idx],
            "v1": v[:, 0], "i1": i[:, 0], "v2": v[:, 1], "i2": i[:, 1], "v3": v[:, 2], "i3": i[:, 2],
            "ns": ns, "temp": pv["inv_temp"][sys_idx, t_idx], "status": status,
            "kind": kind_series("kind", kind),
        })

        # --- single-line defects on distinct, otherwise normal rows -------------------------
        normal = np.nonzero(kind == None)[0]  # noqa: E711 (object array)
        picks = rng.permutation(normal)
        pos = 0
        chosen: dict[str, np.ndarray] = {}
        for k in ("negative_power", "missing_field", "truncated_json", "future_timestamp",
                  "unknown_serial", "duplicate"):
            m = sched.n("inverter", k, day_idx) if write else 0
            chosen[k] = np.sort(picks[pos:pos + m])
            pos += m
        rowk = np.full(len(sys_idx), "", dtype=object)
        for k in ("negative_power", "missing_field", "truncated_json", "future_timestamp"):
            rowk[chosen[k]] = k
        miss_key = np.full(len(sys_idx), "", dtype=object)
        miss_key[chosen["missing_field"]] = rng.choice(
            ["serial", "ts", "ac_power_w", "ac_energy_total_kwh"], len(chosen["missing_field"]))
        future_year = str(int(day.year) + int(rng.integers(3, 15)))
        neg = np.round(-rng.uniform(300, 900, len(sys_idx)), 1)
        df = df.with_columns(
            pl.Series("rowk", rowk, dtype=pl.String), pl.Series("miss", miss_key, dtype=pl.String),
            pl.Series("neg", neg),
        ).with_columns(
            pl.when(pl.col("rowk") != "").then(pl.col("rowk")).otherwise(pl.col("kind")).alias("kind")
        )
        line = self._lines(df, future_year)
        cut = rng.uniform(0.2, 0.85, len(sys_idx))
        df = df.with_columns(line.alias("line"), pl.Series("cut", cut)).with_columns(
            pl.when(pl.col("rowk") == "truncated_json")
            .then(pl.col("line").str.slice(0, (pl.col("line").str.len_chars() * pl.col("cut"))
                                           .cast(pl.Int64)))
            .otherwise(pl.col("line")).alias("line"))

        # unknown serials: copies of normal rows from a serial nobody registered
        unk = chosen["unknown_serial"]
        extra = []
        if len(unk):
            fake = random_serial_like(rng, len(unk))
            u = df[unk.tolist()].with_columns(
                pl.col("line").str.replace(r'"serial":"[^"]*"', "__S__", literal=False))
            u = u.with_columns(pl.concat_str([pl.lit('"serial":"'), pl.Series(fake), pl.lit('"')])
                               .alias("_s")).with_columns(
                pl.col("line").str.replace("__S__", pl.col("_s"), literal=True),
                pl.lit("unknown_serial").alias("kind"))
            extra.append(u.drop("_s"))
        main = pl.concat([df] + extra, how="vertical") if extra else df
        main = main.select("line", "kind", "t", "sys")

        if not write:
            return gt_frame("inverter", "", np.array([]), [])

        # --- late delivery ---------------------------------------------------------------------
        tarr = main["t"].to_numpy()
        karr = main["kind"].to_numpy()
        dup_orig = chosen["duplicate"]
        is_dup_orig = np.zeros(main.height, dtype=bool)
        is_dup_orig[dup_orig] = True
        late = (not last_day) & (tarr >= LATE_FROM_STEP) & (karr == None) & ~is_dup_orig  # noqa: E711
        late &= rng.random(main.height) < LATE_PROB
        dups = main[dup_orig.tolist()].with_columns(pl.lit("duplicate").alias("kind"))
        dup_next = (rng.random(len(dup_orig)) < 0.25) & (not last_day)
        carry_next = pl.concat([
            main.filter(pl.Series(late)).select("line", "kind"),
            dups.filter(pl.Series(dup_next)).select("line", "kind"),
        ]).with_columns(pl.Series("key", rng.uniform(0, 30, int(late.sum() + dup_next.sum()))))

        stay = main.filter(pl.Series(~late))
        stay_orig_pos = np.cumsum(~late)[dup_orig] - 1  # dup originals are never late
        today = pl.concat([
            self.carry,
            stay.select("line", "kind").with_columns(
                (pl.Series(stay["t"].to_numpy() + rng.random(stay.height)).alias("key"))),
        ])
        nt = today.height
        base = np.argsort(today["key"].to_numpy(), kind="stable")
        chunk = np.arange(nt) // int(rng.integers(2000, 5001))
        chunk_perm = rng.permutation(int(chunk.max()) + 1 if nt else 1)
        order = base[np.lexsort((rng.random(nt), chunk_perm[chunk]))]
        pos_of = np.empty(nt, dtype=np.int64)
        pos_of[order] = np.arange(nt)
        # same-day duplicates: after the original
        d_today = dups.filter(pl.Series(~dup_next)).select("line", "kind")
        orig_pos = pos_of[self.carry.height + stay_orig_pos[~dup_next]]
        ins = orig_pos + 1 + np.floor(rng.random(len(orig_pos)) * (nt - orig_pos)).astype(np.int64)
        keys = np.concatenate([2 * np.arange(nt), 2 * ins - 1])
        allrows = pl.concat([today[order.tolist()].select("line", "kind"), d_today])
        final = allrows[np.argsort(keys, kind="stable").tolist()]
        self.carry = carry_next

        # --- write files + ground truth ----------------------------------------------------------
        d = self.landing / "inverter" / day.isoformat()
        d.mkdir(parents=True, exist_ok=True)
        gts = []
        n_final = final.height
        for fi, a in enumerate(range(0, max(n_final, 1), MAX_LINES)):  # files of 100k lines
            part = final.slice(a, MAX_LINES)
            name = f"messages-{fi:03d}.jsonl"
            part.select("line").write_csv(d / name, include_header=False, quote_style="never")
            rel = f"inverter/{day.isoformat()}/{name}"
            kk = part["kind"].to_numpy()
            bad = np.nonzero(kk != None)[0]  # noqa: E711
            gts.append(gt_frame("inverter", rel, bad + 1, kk[bad]))
            self.n_files += 1
        self.n_lines += n_final
        return pl.concat(gts)

    @staticmethod
    def _lines(df: pl.DataFrame, future_year: str) -> pl.Expr:
        def mp(k: int) -> pl.Expr:
            return pl.concat_str([pl.lit('{"mppt":%d,"voltage_v":' % k), _fmt(f"v{k}", 1),
                                  pl.lit(',"current_a":'), _fmt(f"i{k}", 2), pl.lit("}")])

        dc = (pl.when(pl.col("ns") == 1).then(mp(1))
              .when(pl.col("ns") == 2).then(pl.concat_str([mp(1), pl.lit(","), mp(2)]))
              .otherwise(pl.concat_str([mp(1), pl.lit(","), mp(2), pl.lit(","), mp(3)])))
        rowk = pl.col("rowk")
        ts = pl.when(rowk == "future_timestamp").then(
            pl.concat_str([pl.lit(future_year), pl.col("ts").str.slice(4)])).otherwise(pl.col("ts"))
        power = (pl.when(rowk == "negative_power").then(_fmt("neg", 1))
                 .when(pl.col("kind") == "unit_mixup").then((pl.col("p") / 1000).round(3).cast(pl.String))
                 .otherwise(_fmt("p", 1)))

        def seg(key: str, value: pl.Expr, quoted: bool) -> pl.Expr:
            q = '"' if quoted else ""
            s = pl.concat_str([pl.lit(f'"{key}":{q}'), value, pl.lit(q)])
            return pl.when(pl.col("miss") == key).then(pl.lit(None, dtype=pl.String)).otherwise(s)

        body = pl.concat_str([
            seg("serial", pl.col("serial"), True),
            seg("ts", ts, True),
            seg("remote_ip", pl.col("ip"), True),
            seg("ac_power_w", power, False),
            seg("ac_energy_total_kwh", _fmt("e", 3), False),
            pl.concat_str([pl.lit('"dc":['), dc, pl.lit("]")]),
            seg("temperature_c", _fmt("temp", 1), False),
            seg("status", pl.col("status"), True),
        ], separator=",", ignore_nulls=True)
        return df.select(pl.concat_str([pl.lit("{"), body, pl.lit("}")]).alias("line")).to_series()
