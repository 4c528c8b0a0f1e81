"""Anonymisation of a per-home table: Mondrian partitioning over generalisation hierarchies.

Pure functions, Polars in and out, no I/O. The research release (:mod:`wattlake.research`) calls
:func:`anonymise` on one row per home and publishes only the generalised quasi-identifiers.

Quasi-identifiers (QI) come in two kinds:

- :class:`NumericQI` (kWp, install year, tilt, azimuth): a class publishes the closed range
  ``lo-hi`` of its members' values (rounded outwards to ``decimals``). The fixed band hierarchy
  (e.g. kWp: exact -> 1 kWp -> 5 kWp -> any) is used by the naive baseline and documented in the
  manifest.
- :class:`HierarchyQI` (location, inverter, EV charger, heat pump): a class publishes the lowest
  common ancestor of its members in a value hierarchy, e.g. location
  PC4 ``"1234"`` -> PC3 ``"123x"`` -> PC2 ``"12xx"`` -> PC1 ``"1xxx"`` -> ``"NL"``; the leaf is
  the finest value that can ever be published (never a full postcode, never a coordinate).

Algorithm (:func:`anonymise`): top-down Mondrian multidimensional partitioning [1]_. A partition is
split while both (all) parts keep at least ``k`` homes and at least ``l`` distinct values of every
l-diversity column (distinct l-diversity [2]_ on binned sensitive values). Numeric QIs split at a
value boundary near the median; hierarchy QIs split into the children of the partition's common
ancestor (children too small to stand alone stay together under the parent). Three variants run
and the one with the least information loss wins:

``mondrian``
    LeFevre's rule: split the QI with the widest normalised spread, at the median.
``mondrian-greedy``
    evaluate every candidate split of every QI and take the one that lowers the loss most.
``mondrian-greedy-suppress``
    as greedy, but a split may also suppress a part that cannot reach ``k``/``l`` (an outlier
    group), within the suppression limit, when that lowers the total loss. Suppressed homes
    count as fully generalised (NCP 1), so suppression is used only when it pays for itself --
    the "utility-driven" suppression of ARX [5]_.

Information loss:

- normalised certainty penalty (NCP, [3]_): per home and QI, a numeric range costs
  ``(hi - lo) / (max - min of the attribute)``; a hierarchy node costs ``leaves(node) / leaves``
  (0 for a leaf); a suppressed home costs 1 on every QI. The table's NCP is the mean over homes
  and QIs, in [0, 1].
- discernibility metric (DM, [4]_): ``sum over classes |E|^2 + suppressed x N``.

The naive baseline (:func:`naive_baseline`) generalises every QI to its top level but one (PC1,
5 kWp bands, 5-year bands, 30 degree tilt bands, 90 degree azimuth sectors, inverter brand,
EV/heat pump unchanged) and suppresses every class that still has fewer than ``k`` homes or
fewer than ``l`` distinct sensitive bins.

References
----------
.. [1] K. LeFevre, D. J. DeWitt, R. Ramakrishnan, "Mondrian multidimensional k-anonymity",
   ICDE 2006.
.. [2] A. Machanavajjhala et al., "l-diversity: privacy beyond k-anonymity", ACM TKDD 1(1), 2007.
.. [3] J. Xu et al., "Utility-based anonymization using local recoding", KDD 2006.
.. [4] R. J. Bayardo, R. Agrawal, "Data privacy through optimal k-anonymization", ICDE 2005.
.. [5] F. Prasser et al., "Flexible data anonymization using ARX", Software: Practice and
   Experience 50(7), 2020.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import polars as pl


class AnonymisationError(ValueError):
    """The table cannot be made k-anonymous and l-diverse (too few homes or sensitive values)."""


# ------------------------------------------------------------------------------------------
# quasi-identifier specifications
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NumericQI:
    """A numeric quasi-identifier published as a closed range ``lo-hi``.

    Parameters
    ----------
    column : released column name (string ``"lo-hi"``).
    source : input column (numeric).
    bands : widths of the band levels between the exact value and ``any`` (baseline hierarchy).
    decimals : decimals of the published range (``lo`` rounded down, ``hi`` rounded up).
    origin : where bands start (e.g. 45 for azimuth sectors 45-135, 135-225, ...).
    unit : unit of the values, for the data dictionary.
    """

    column: str
    source: str
    bands: tuple[float, ...]
    decimals: int = 0
    origin: float = 0.0
    unit: str = ""
    description: str = ""

    @property
    def levels(self) -> list[str]:
        return ["exact", *[f"{w:g} {self.unit} bands".replace("  ", " ") for w in self.bands], "any"]


@dataclass(frozen=True)
class HierarchyQI:
    """A categorical quasi-identifier with a value hierarchy.

    Parameters
    ----------
    column : released column name.
    sources : input label columns from the leaf level up; each must be a function of the
        previous one (e.g. ``pc4 -> pc3 -> pc2 -> pc1``).
    top : the label of the root (``"NL"``, ``"any"``).
    level_names : names of the levels (``sources`` then the root).
    """

    column: str
    sources: tuple[str, ...]
    top: str = "any"
    level_names: tuple[str, ...] = ()
    description: str = ""

    @property
    def levels(self) -> list[str]:
        return list(self.level_names) if self.level_names else [*self.sources, self.top]


QI = NumericQI | HierarchyQI

#: the quasi-identifiers of a home in a research release (inputs from :func:`home_quasi_identifiers`)
HOME_QIS: tuple[QI, ...] = (
    HierarchyQI("location", ("pc4", "pc3", "pc2", "pc1"), top="NL",
                level_names=("PC4 (1234)", "PC3 (123x)", "PC2 (12xx)", "PC1 (1xxx)", "NL"),
                description="postcode area of the home: 4-digit postcode or a prefix of it "
                "(x = any digit); NL = anywhere in the Netherlands"),
    NumericQI("kwp_range", "kwp", bands=(1.0, 5.0), decimals=2, unit="kWp",
              description="installed PV power at STC [kWp], range of the class"),
    NumericQI("install_year_range", "install_year", bands=(2.0, 5.0), decimals=0, origin=2000.0,
              unit="years", description="year of installation, range of the class"),
    NumericQI("tilt_deg_range", "tilt_deg", bands=(10.0, 30.0), decimals=0, unit="deg",
              description="panel tilt from horizontal [deg], range of the class"),
    NumericQI("azimuth_deg_range", "azimuth_deg", bands=(45.0, 90.0), decimals=0, origin=45.0,
              unit="deg", description="panel azimuth [deg, 180 = south], range of the class"),
    HierarchyQI("inverter", ("inverter_model_full", "inverter_brand"), top="any",
                level_names=("model", "brand", "any"),
                description="inverter model ('brand model'), its brand, or any"),
    HierarchyQI("ev_charger", ("ev_charger_flag",), top="any", level_names=("yes/no", "any"),
                description="an EV charger in the home: yes, no or any"),
    HierarchyQI("heat_pump", ("heat_pump_flag",), top="any", level_names=("yes/no", "any"),
                description="a heat pump in the home: yes, no or any"),
)

_PC4 = r"^[1-9][0-9]{3}"


def home_quasi_identifiers(systems: pl.DataFrame) -> pl.DataFrame:
    """The input columns of :data:`HOME_QIS` from registry rows (``restricted/systems``).

    Adds ``pc4``/``pc3``/``pc2``/``pc1`` (from ``postcode`` "1234 AB": the letters are dropped
    here and never used), ``install_year``, ``inverter_model_full`` ("brand model") and
    ``ev_charger_flag``/``heat_pump_flag`` ("yes"/"no"). Coordinates are not used at all.
    """
    pc4 = pl.col("postcode").str.strip_chars().str.extract(f"({_PC4})", 1)
    out = systems.with_columns(
        pc4.alias("pc4"),
        (pc4.str.slice(0, 3) + "x").alias("pc3"),
        (pc4.str.slice(0, 2) + "xx").alias("pc2"),
        (pc4.str.slice(0, 1) + "xxx").alias("pc1"),
        pl.col("install_date").dt.year().cast(pl.Float64).alias("install_year"),
        (pl.col("inverter_brand") + " " + pl.col("inverter_model")).alias("inverter_model_full"),
        pl.when(pl.col("has_ev_charger")).then(pl.lit("yes")).otherwise(pl.lit("no")).alias("ev_charger_flag"),
        pl.when(pl.col("has_heat_pump")).then(pl.lit("yes")).otherwise(pl.lit("no")).alias("heat_pump_flag"),
    )
    bad = out.filter(pl.col("pc4").is_null()).height
    if bad:
        raise AnonymisationError(f"{bad} homes have no usable 4-digit postcode")
    return out


def quantile_bins(values: pl.Series, n_bins: int = 5, significant: int = 3) -> tuple[pl.Series, list[float]]:
    """Bin a sensitive column at its quantiles (edges rounded to ``significant`` figures).

    Returns the bin labels (``"[812, 861)"``; the first bin ``"< 812"``, the last ``">= 950"``)
    and the inner edges. Distinct l-diversity is checked on these labels.
    """
    v = values.cast(pl.Float64).to_numpy()
    if len(v) == 0 or np.isnan(v).any():
        raise AnonymisationError(f"sensitive column {values.name!r} is empty or has missing values")
    qs = np.quantile(v, np.linspace(0, 1, n_bins + 1)[1:-1])

    def _round(x: float) -> float:
        if x == 0 or not math.isfinite(x):
            return 0.0
        return round(x, significant - 1 - int(math.floor(math.log10(abs(x)))))

    edges = sorted({_round(float(q)) for q in qs})
    idx = np.searchsorted(np.array(edges), v, side="right")
    fmt = [f"{e:g}" for e in edges]
    labels = ([f"< {fmt[0]}"] + [f"[{fmt[i]}, {fmt[i + 1]})" for i in range(len(edges) - 1)]
              + [f">= {fmt[-1]}"]) if edges else ["all"]
    return pl.Series(f"{values.name}_bin", np.array(labels, dtype=object)[idx].astype(str)), edges


# ------------------------------------------------------------------------------------------
# encoded table
# ------------------------------------------------------------------------------------------
class _Table:
    """QI values encoded as arrays, with the NCP of any partition (indices into the rows)."""

    def __init__(self, frame: pl.DataFrame, qis: tuple[QI, ...], l_columns: tuple[str, ...]):
        self.qis = qis
        self.n = frame.height
        self.num_pos = [i for i, q in enumerate(qis) if isinstance(q, NumericQI)]
        self.hier_pos = [i for i, q in enumerate(qis) if isinstance(q, HierarchyQI)]
        self.V = np.column_stack([frame[qis[i].source].cast(pl.Float64).to_numpy() for i in self.num_pos]) \
            if self.num_pos else np.zeros((self.n, 0))
        if np.isnan(self.V).any():
            raise AnonymisationError("numeric quasi-identifiers have missing values")
        self.vmin = self.V.min(axis=0) if self.n else np.zeros(len(self.num_pos))
        self.vmax = self.V.max(axis=0) if self.n else np.zeros(len(self.num_pos))
        self.vrange = self.vmax - self.vmin
        # hierarchies: codes[level] per row (level 0 = leaf); leaves under each node
        self.codes: list[np.ndarray] = []
        self.labels: list[list[np.ndarray]] = []
        self.leafcount: list[list[np.ndarray]] = []
        self.n_leaves: list[int] = []
        for i in self.hier_pos:
            q = qis[i]
            if frame.select(pl.any_horizontal(pl.col(s).is_null() for s in q.sources).any()).item():
                raise AnonymisationError(f"quasi-identifier {q.column!r} has missing values")
            codes, labels, counts = [], [], []
            leaf_codes = None
            for lv, s in enumerate(q.sources):
                lab, inv = np.unique(frame[s].to_numpy().astype(str), return_inverse=True)
                codes.append(inv)
                labels.append(lab)
                if lv == 0:
                    leaf_codes = inv
                    counts.append(np.ones(len(lab), dtype=int))
                else:
                    pairs = np.unique(np.column_stack([inv, leaf_codes]), axis=0)
                    counts.append(np.bincount(pairs[:, 0], minlength=len(lab)))
                if lv > 0:  # each level must be a function of the level below
                    below = np.unique(np.column_stack([codes[lv - 1], inv]), axis=0)
                    if len(below) != len(np.unique(codes[lv - 1])):
                        raise AnonymisationError(f"{q.column}: level {s!r} is not a function of {q.sources[lv - 1]!r}")
            self.codes.append(np.vstack(codes))
            self.labels.append(labels)
            self.leafcount.append(counts)
            self.n_leaves.append(len(labels[0]))
        self.B = np.column_stack([np.unique(frame[c].to_numpy().astype(str), return_inverse=True)[1]
                                  for c in l_columns]) if l_columns else np.zeros((self.n, 0), dtype=int)

    # -- per partition
    def lca_level(self, h: int, idx: np.ndarray) -> int:
        """Lowest hierarchy level at which all rows share one node (len(sources) = the root)."""
        codes = self.codes[h]
        for lv in range(codes.shape[0]):
            c = codes[lv, idx]
            if (c == c[0]).all():
                return lv
        return codes.shape[0]

    def hier_ncp(self, h: int, idx: np.ndarray) -> float:
        lv = self.lca_level(h, idx)
        if lv == 0 or self.n_leaves[h] <= 1:
            return 0.0
        if lv == self.codes[h].shape[0]:
            return 1.0
        return float(self.leafcount[h][lv][self.codes[h][lv, idx[0]]]) / self.n_leaves[h]

    def ncp(self, idx: np.ndarray) -> np.ndarray:
        """NCP of each QI (in ``qis`` order) for the partition ``idx``."""
        out = np.zeros(len(self.qis))
        if self.num_pos:
            sub = self.V[idx]
            with np.errstate(invalid="ignore", divide="ignore"):
                out[self.num_pos] = np.where(self.vrange > 0, (sub.max(axis=0) - sub.min(axis=0)) / self.vrange, 0.0)
        for h, i in enumerate(self.hier_pos):
            out[i] = self.hier_ncp(h, idx)
        return out

    def cost(self, idx: np.ndarray) -> float:
        """Sum over the partition's rows of their mean NCP."""
        return len(idx) * float(self.ncp(idx).mean()) if len(self.qis) else 0.0

    def diversity(self, idx: np.ndarray) -> int:
        if self.B.shape[1] == 0:
            return len(idx)
        return min(len(np.unique(self.B[idx, c])) for c in range(self.B.shape[1]))

    def label(self, i_qi: int, idx: np.ndarray) -> str:
        q = self.qis[i_qi]
        if isinstance(q, NumericQI):
            j = self.num_pos.index(i_qi)
            v = self.V[idx, j]
            f = 10 ** q.decimals
            lo = math.floor(round(float(v.min()) * f, 6)) / f
            hi = math.ceil(round(float(v.max()) * f, 6)) / f
            return f"{lo:.{q.decimals}f}-{hi:.{q.decimals}f}"
        h = self.hier_pos.index(i_qi)
        lv = self.lca_level(h, idx)
        if lv == self.codes[h].shape[0]:
            return q.top
        return str(self.labels[h][lv][self.codes[h][lv, idx[0]]])


# ------------------------------------------------------------------------------------------
# Mondrian
# ------------------------------------------------------------------------------------------
@dataclass
class _Search:
    t: _Table
    k: int
    l: int
    greedy: bool
    budget: int  # homes that may still be suppressed (0: no suppression)
    kept: list[np.ndarray] = field(default_factory=list)
    suppressed: list[np.ndarray] = field(default_factory=list)

    def ok(self, idx: np.ndarray) -> bool:
        return len(idx) >= self.k and self.t.diversity(idx) >= self.l

    # candidate splits: lists of (part indices, keep?)
    def _numeric_options(self, idx: np.ndarray, j: int, allow_suppress: bool) -> list[list[tuple[np.ndarray, bool]]]:
        t, n = self.t, len(idx)
        x = t.V[idx, j]
        order = np.argsort(x, kind="stable")
        xs = x[order]
        pos = np.nonzero(xs[1:] > xs[:-1])[0] + 1  # split positions: left = order[:p]
        if len(pos) == 0:
            return []
        left_div = np.full(n + 1, n, dtype=int)
        right_div = np.full(n + 1, n, dtype=int)
        srt = idx[order]
        for c in range(t.B.shape[1]):
            b = t.B[srt, c]
            first = np.zeros(n, dtype=int)
            first[np.unique(b, return_index=True)[1]] = 1
            pre = np.concatenate([[0], np.cumsum(first)])  # distinct among the first p
            rb = b[::-1]
            rfirst = np.zeros(n, dtype=int)
            rfirst[np.unique(rb, return_index=True)[1]] = 1
            suf = np.concatenate([[0], np.cumsum(rfirst)])  # distinct among the last m
            left_div = np.minimum(left_div, pre)
            right_div = np.minimum(right_div, suf[::-1])  # right part of split p has n - p rows
        lok = (pos >= self.k) & (left_div[pos] >= self.l)
        rok = ((n - pos) >= self.k) & (right_div[pos] >= self.l)
        options: list[list[tuple[np.ndarray, bool]]] = []
        both = pos[lok & rok]
        if len(both):
            targets = [0.5] if not self.greedy else [0.5, 0.35, 0.65, 0.2, 0.8]
            chosen = sorted({int(both[np.abs(both - f * n).argmin()]) for f in targets})
            options += [[(srt[:p], True), (srt[p:], True)] for p in chosen]
        if allow_suppress:
            # cut off a tail that cannot stand alone (suppressed), keeping a valid rest
            for keep_left, mask in ((True, lok & ~rok), (False, rok & ~lok)):
                cand = pos[mask]
                cand = cand[((n - cand) if keep_left else cand) <= self.budget]
                if len(cand) == 0:
                    continue
                pick = np.unique(cand[np.linspace(0, len(cand) - 1, min(6, len(cand))).round().astype(int)])
                for p in pick:
                    options.append([(srt[:p], keep_left), (srt[p:], not keep_left)])
        return options

    def _hier_options(self, idx: np.ndarray, h: int, allow_suppress: bool) -> list[list[tuple[np.ndarray, bool]]]:
        t = self.t
        lv = t.lca_level(h, idx)
        if lv == 0:
            return []
        child = t.codes[h][lv - 1, idx]
        _, inv = np.unique(child, return_inverse=True)
        groups = [idx[inv == g] for g in range(inv.max() + 1)]
        if len(groups) < 2:
            return []
        valid = [self.ok(g) for g in groups]
        options: list[list[tuple[np.ndarray, bool]]] = []
        if all(valid):
            options.append([(g, True) for g in groups])
        elif allow_suppress and any(valid):
            n_sup = sum(len(g) for g, v in zip(groups, valid) if not v)
            if n_sup <= self.budget:
                options.append([(g, v) for g, v in zip(groups, valid)])
        # partial: the children that can stand alone, the rest together under the parent
        kept = sorted((g for g, v in zip(groups, valid) if v), key=len)
        rest = [g for g, v in zip(groups, valid) if not v]
        if kept and rest:
            rest_idx = np.concatenate(rest)
            while kept and not self.ok(rest_idx):
                rest_idx = np.concatenate([rest_idx, kept.pop(0)])
            if kept and self.ok(rest_idx):
                options.append([*[(g, True) for g in kept], (rest_idx, True)])
        return options

    def _options(self, idx: np.ndarray, i_qi: int, allow_suppress: bool):
        if i_qi in self.t.num_pos:
            return self._numeric_options(idx, self.t.num_pos.index(i_qi), allow_suppress)
        return self._hier_options(idx, self.t.hier_pos.index(i_qi), allow_suppress)

    def _choose(self, idx: np.ndarray):
        t = self.t
        base = t.cost(idx)
        if not self.greedy:  # LeFevre: widest normalised spread first, median split
            spread = t.ncp(idx)
            for i in np.argsort(-spread, kind="stable"):
                if spread[i] <= 0:
                    break
                opts = self._options(idx, int(i), False)
                if opts:
                    return opts[0]
            return None
        best, best_gain = None, 1e-9
        for i in range(len(t.qis)):
            for opt in self._options(idx, i, self.budget > 0):
                n_sup = sum(len(p) for p, keep in opt if not keep)
                gain = base - sum(t.cost(p) for p, keep in opt if keep) - n_sup
                if gain > best_gain:
                    best, best_gain = opt, gain
        return best

    def run(self, root: np.ndarray) -> None:
        stack = [root]
        while stack:
            idx = stack.pop()
            opt = self._choose(idx)
            if opt is None:
                self.kept.append(idx)
                continue
            for part, keep in opt:
                if keep:
                    stack.append(part)
                else:
                    self.suppressed.append(part)
                    self.budget -= len(part)


# ------------------------------------------------------------------------------------------
# results
# ------------------------------------------------------------------------------------------
@dataclass
class Anonymisation:
    """An anonymised table and its information loss.

    ``table`` is the input with the released QI columns (null where suppressed), ``class_id``
    (equivalence class: one per distinct released QI tuple; null where suppressed) and
    ``suppressed``.
    """

    table: pl.DataFrame
    method: str
    k: int
    l: int
    quasi_identifiers: list[str]
    l_columns: list[str]
    ncp: float
    ncp_per_qi: dict[str, float]
    discernibility: float
    n_records: int
    n_suppressed: int
    n_classes: int
    achieved_k: int
    achieved_l: int
    candidates: list[dict] = field(default_factory=list)

    def summary(self) -> dict:
        return {
            "method": self.method, "k": self.k, "l": self.l, "records": self.n_records,
            "released": self.n_records - self.n_suppressed, "suppressed": self.n_suppressed,
            "classes": self.n_classes, "achieved_k": self.achieved_k, "achieved_l": self.achieved_l,
            "ncp": round(self.ncp, 6), "discernibility": self.discernibility,
            "ncp_per_qi": {q: round(v, 6) for q, v in self.ncp_per_qi.items()},
        }


def _result(frame: pl.DataFrame, t: _Table, qis: tuple[QI, ...], l_columns: tuple[str, ...], k: int, l: int,
            method: str, labels: list[list[str] | None], ncp_rows: np.ndarray) -> Anonymisation:
    """Assemble an :class:`Anonymisation` from per-row labels (None = suppressed) and per-row NCP."""
    n = frame.height
    suppressed = np.array([lab is None for lab in labels], dtype=bool)
    cols = {q.column: [None if lab is None else lab[i] for lab in labels] for i, q in enumerate(qis)}
    out = frame.with_columns(
        *[pl.Series(c, v, dtype=pl.String) for c, v in cols.items()],
        pl.Series("suppressed", suppressed),
    )
    released = out.filter(~pl.col("suppressed"))
    qcols = [q.column for q in qis]
    if released.height:
        distinct = [pl.col(c).n_unique().alias(f"_d{j}") for j, c in enumerate(l_columns)]
        classes = released.group_by(qcols).agg(pl.len().alias("n"), *distinct).sort(qcols)
        classes = classes.with_columns(pl.format("c{}", (pl.int_range(pl.len()) + 1).cast(pl.String).str.zfill(3))
                                       .alias("class_id"))
        out = out.join(classes.select(*qcols, "class_id"), on=qcols, how="left", nulls_equal=False)
        achieved_k = int(classes["n"].min())
        achieved_l = int(min(classes[f"_d{j}"].min() for j in range(len(l_columns)))) if l_columns else achieved_k
        n_classes = classes.height
        dm = float((classes["n"].cast(pl.Float64) ** 2).sum())
    else:
        out = out.with_columns(pl.lit(None, dtype=pl.String).alias("class_id"))
        achieved_k = achieved_l = n_classes = 0
        dm = 0.0
    n_sup = int(suppressed.sum())
    ncp_rows = np.where(suppressed[:, None], 1.0, ncp_rows)
    return Anonymisation(
        table=out, method=method, k=k, l=l, quasi_identifiers=qcols, l_columns=list(l_columns),
        ncp=float(ncp_rows.mean()) if n else 0.0,
        ncp_per_qi={q.column: float(ncp_rows[:, i].mean()) if n else 0.0 for i, q in enumerate(qis)},
        discernibility=dm + float(n_sup) * n, n_records=n, n_suppressed=n_sup, n_classes=n_classes,
        achieved_k=achieved_k, achieved_l=achieved_l,
    )


def _check_inputs(frame: pl.DataFrame, k: int, l: int, l_columns: tuple[str, ...]) -> None:
    if k < 1 or l < 1:
        raise AnonymisationError(f"k and l must be at least 1 (got k={k}, l={l})")
    if frame.height < k:
        raise AnonymisationError(f"only {frame.height} eligible homes: fewer than k={k}, nothing can be released")
    for c in l_columns:
        d = frame[c].n_unique()
        if d < l:
            raise AnonymisationError(f"sensitive column {c!r} has only {d} distinct values in the whole table: "
                                     f"l={l} is impossible")


def mondrian(frame: pl.DataFrame, qis: tuple[QI, ...] = HOME_QIS, l_columns: tuple[str, ...] = (), k: int = 10,
             l: int = 1, greedy: bool = False, max_suppression: float = 0.0) -> Anonymisation:
    """One Mondrian run (see the module docstring); :func:`anonymise` picks the best of several.

    Parameters
    ----------
    frame : one row per home with the input columns of ``qis`` and the ``l_columns``.
    qis : quasi-identifier specifications.
    l_columns : binned sensitive columns that need ``l`` distinct values in every class.
    k, l : requested k-anonymity and distinct l-diversity.
    greedy : pick the split that lowers the NCP most (else LeFevre's widest-range rule).
    max_suppression : fraction of the homes that may be suppressed (greedy only).
    """
    _check_inputs(frame, k, l, l_columns)
    t = _Table(frame, qis, l_columns)
    budget = int(math.floor(max_suppression * frame.height + 1e-9)) if greedy else 0
    s = _Search(t, k, l, greedy=greedy, budget=budget)
    root = np.arange(frame.height)
    if not s.ok(root):
        raise AnonymisationError(f"the {frame.height} homes cannot satisfy k={k}, l={l} even in one class")
    s.run(root)
    labels: list[list[str] | None] = [None] * frame.height
    ncp_rows = np.ones((frame.height, len(qis)))
    for idx in s.kept:
        lab = [t.label(i, idx) for i in range(len(qis))]
        ncp = t.ncp(idx)
        for r in idx:
            labels[r] = lab
        ncp_rows[idx] = ncp
    method = "mondrian" if not greedy else ("mondrian-greedy-suppress" if budget else "mondrian-greedy")
    return _result(frame, t, qis, l_columns, k, l, method, labels, ncp_rows)


def anonymise(frame: pl.DataFrame, qis: tuple[QI, ...] = HOME_QIS, l_columns: tuple[str, ...] = (), k: int = 10,
              l: int = 3, max_suppression: float = 0.5) -> Anonymisation:
    """k-anonymous, distinct-l-diverse generalisation of ``frame`` with the least NCP found.

    Runs Mondrian (LeFevre's rule), greedy Mondrian, and greedy Mondrian with suppression of
    outlier groups up to ``max_suppression`` of the homes; returns the run with the lowest NCP
    (ties: fewer suppressed homes). ``candidates`` lists every run's loss.

    Raises
    ------
    AnonymisationError
        fewer than ``k`` homes, or fewer than ``l`` distinct values of an l-diversity column.
    """
    runs = [mondrian(frame, qis, l_columns, k, l, greedy=False),
            mondrian(frame, qis, l_columns, k, l, greedy=True)]
    if max_suppression > 0:
        runs.append(mondrian(frame, qis, l_columns, k, l, greedy=True, max_suppression=max_suppression))
    best = min(runs, key=lambda r: (round(r.ncp, 12), r.n_suppressed))
    best.candidates = [{"method": r.method, "ncp": round(r.ncp, 6), "discernibility": r.discernibility,
                        "suppressed": r.n_suppressed, "classes": r.n_classes} for r in runs]
    return best


# ------------------------------------------------------------------------------------------
# full-domain generalisation and the naive baseline
# ------------------------------------------------------------------------------------------
def top_but_one(qis: tuple[QI, ...] = HOME_QIS) -> dict[str, int]:
    """The level index just below the root of every QI (numeric: 0 exact, 1.. bands, then any)."""
    return {q.column: (len(q.bands) if isinstance(q, NumericQI) else len(q.sources) - 1) for q in qis}


def full_domain(frame: pl.DataFrame, levels: dict[str, int], qis: tuple[QI, ...] = HOME_QIS,
                l_columns: tuple[str, ...] = (), k: int = 10, l: int = 1,
                method: str = "full-domain") -> Anonymisation:
    """Generalise every QI to one fixed hierarchy level and suppress the classes below ``k``/``l``.

    Numeric band levels publish the band ``[lo, lo + width)``; its NCP is the band clipped to the
    attribute's range over the table (favourable to this method).
    """
    _check_inputs(frame, 1, 1, ())
    t = _Table(frame, qis, l_columns)
    n = frame.height
    lab_cols: list[np.ndarray] = []
    ncp_cols: list[np.ndarray] = []
    for i, q in enumerate(qis):
        lv = levels[q.column]
        if isinstance(q, NumericQI):
            j = t.num_pos.index(i)
            v = t.V[:, j]
            rng = t.vrange[j]
            if lv == 0:
                lab = np.array([f"{x:.{q.decimals}f}" for x in v])
                ncp = np.zeros(n)
            elif lv <= len(q.bands):
                w = q.bands[lv - 1]
                lo = np.floor((v - q.origin) / w) * w + q.origin
                hi = lo + w
                lab = np.array([f"{a:g}-{b:g}" for a, b in zip(lo, hi)])
                width = np.minimum(hi, t.vmax[j]) - np.maximum(lo, t.vmin[j])
                ncp = np.clip(width / rng, 0, 1) if rng > 0 else np.zeros(n)
            else:
                lab = np.full(n, "any")
                ncp = np.ones(n) if rng > 0 else np.zeros(n)
        else:
            h = t.hier_pos.index(i)
            depth = len(q.sources)
            if lv >= depth:
                lab = np.full(n, q.top)
                ncp = np.ones(n) if t.n_leaves[h] > 1 else np.zeros(n)
            else:
                codes = t.codes[h][lv]
                lab = t.labels[h][lv][codes].astype(str)
                ncp = np.zeros(n) if lv == 0 else t.leafcount[h][lv][codes] / t.n_leaves[h]
        lab_cols.append(lab)
        ncp_cols.append(ncp)
    ncp_rows = np.column_stack(ncp_cols) if ncp_cols else np.zeros((n, 0))
    keys = pl.DataFrame({f"_q{i}": c for i, c in enumerate(lab_cols)}).with_row_index("_row")
    groups = keys.group_by([f"_q{i}" for i in range(len(lab_cols))]).agg("_row")["_row"].to_list()
    labels: list[list[str] | None] = [None] * n
    for rows in groups:
        idx = np.array(rows, dtype=np.int64)
        if len(idx) >= k and t.diversity(idx) >= l:
            for r in idx:
                labels[r] = [str(c[r]) for c in lab_cols]
    return _result(frame, t, qis, l_columns, k, l, method, labels, ncp_rows)


def naive_baseline(frame: pl.DataFrame, qis: tuple[QI, ...] = HOME_QIS, l_columns: tuple[str, ...] = (),
                   k: int = 10, l: int = 3) -> Anonymisation:
    """Every QI at its top level but one, classes below ``k``/``l`` suppressed (the comparison point)."""
    return full_domain(frame, top_but_one(qis), qis, l_columns, k, l, method="naive-top-but-one")


def hierarchies(qis: tuple[QI, ...] = HOME_QIS) -> dict[str, dict]:
    """The generalisation hierarchy of every QI, for the manifest and the data dictionary."""
    out = {}
    for q in qis:
        if isinstance(q, NumericQI):
            out[q.column] = {"kind": "numeric range", "source": q.source, "levels": q.levels,
                             "bands": list(q.bands), "band_origin": q.origin, "decimals": q.decimals,
                             "unit": q.unit, "description": q.description}
        else:
            out[q.column] = {"kind": "hierarchy", "levels": q.levels, "description": q.description}
    return out


def generalisation_levels(result: Anonymisation, qis: tuple[QI, ...] = HOME_QIS) -> dict[str, dict]:
    """Per QI: released homes at each hierarchy level (numeric QIs: the widths of the ranges)."""
    rel = result.table.filter(~pl.col("suppressed"))
    out: dict[str, dict] = {}
    for q in qis:
        if isinstance(q, HierarchyQI):
            level_sets = [set(result.table[s].unique().to_list()) for s in q.sources]
            counts = dict.fromkeys(q.levels, 0)
            for value, n in rel.group_by(q.column).len().iter_rows():
                lv = next((i for i, vals in enumerate(level_sets) if value in vals), len(q.sources))
                counts[q.levels[lv]] += int(n)
            out[q.column] = counts
        else:
            bounds = rel[q.column].str.split("-").list.eval(pl.element().cast(pl.Float64))
            width = bounds.list.get(1) - bounds.list.get(0)
            out[q.column] = {"unit": q.unit, **({
                "min_width": float(width.min()), "median_width": float(width.median()),
                "max_width": float(width.max())} if rel.height else {})}
    return out
