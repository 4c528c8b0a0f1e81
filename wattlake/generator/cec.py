"""CEC module and inverter parameters (pvlib's shipped SAM libraries) for the "true" physics.

The generator's true production uses models the estimator (:mod:`wattlake.yield_model`, PVWatts)
does not: the CEC single-diode module model and the Sandia inverter model. This module holds the
small catalogue of real products the fleet is built from and loads their parameters from the CSV
files pvlib ships (``retrieve_sam("CECMod")`` / ``retrieve_sam("CECInverter")``, offline). The
tables are loaded lazily, once per process (~0.2-1 s), and only the rows named here are kept.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

#: Mono-Si modules (CEC library names), one or two per registry module rating [Wp]. The module of
#: a system is drawn among the entries of its registry rating (see ``registry.build_fleet``).
MODULES: dict[int, list[str]] = {
    330: ["Jinko_Solar_Co___Ltd_JKM330M_60L", "LG_Electronics_Inc__LG330N1C_Z4"],
    370: ["LG_Electronics_Inc__LG370Q1C_A5",
          "LONGi_Green_Energy_Technology_Co___Ltd__LR6_72PH_370M"],
    400: ["Jinko_Solar_Co___Ltd_JKM400M_72HL"],
    410: ["LG_Electronics_Inc__LG410N2C_A5"],
    430: ["Canadian_Solar_Inc__CS1U_430MS"],
}
MODULE_NAMES: list[str] = [m for ms in MODULES.values() for m in ms]

#: Sandia/CEC inverter used for each registry brand (240 V US listings; GoodWe is not in the CEC
#: list, an ABB 5 kW string inverter stands in). Scaled to each system's AC rating in ``pv``.
INVERTERS: dict[str, str] = {
    "SMA": "SMA_America__SB5_0_1SP_US_40__240V_",
    "SolarEdge": "SolarEdge_Technologies_Ltd___SE5000H_US__240V_",
    "Growatt": "Shenzhen_Growatt_New_Energy_Technology_Co___Ltd__GROWATT_5000MTLP_US__240V_",
    "Huawei": "Huawei_Technologies_Co___Ltd___SUN2000_5KTL_USL0__240V_",
    "GoodWe": "ABB__PVI_5000_OUTD_S_US_Z__240V_",
    "Fronius": "Fronius_International_GmbH__Fronius_Primo_5_0_1_208_240__240V_",
}
INVERTER_NAMES: list[str] = list(dict.fromkeys(INVERTERS.values()))

MODULE_COLS = ["STC", "N_s", "V_mp_ref", "I_mp_ref", "alpha_sc", "a_ref", "I_L_ref", "I_o_ref",
               "R_s", "R_sh_ref", "Adjust"]
INVERTER_COLS = ["Paco", "Pdco", "Vdco", "Pso", "C0", "C1", "C2", "C3", "Pnt"]


def _library_rows(library: str, names: list[str], cols: list[str]) -> dict[str, np.ndarray]:
    """Columns ``cols`` of pvlib's SAM ``library`` for ``names`` (row ``i`` = ``names[i]``)."""
    import pvlib

    lib = pvlib.pvsystem.retrieve_sam(library)
    missing = [m for m in names if m not in lib.columns]
    if missing:
        raise KeyError(f"not in pvlib's {library} library: {missing}")
    sub = lib[names]
    return {c: sub.loc[c].to_numpy(dtype=float) for c in cols}


@lru_cache(maxsize=1)
def module_table() -> dict[str, np.ndarray]:
    """Parameters of :data:`MODULE_NAMES` (row ``i`` = ``MODULE_NAMES[i]``), column -> array."""
    return _library_rows("CECMod", MODULE_NAMES, MODULE_COLS)


@lru_cache(maxsize=1)
def inverter_table() -> dict[str, np.ndarray]:
    """Parameters of :data:`INVERTER_NAMES` (row ``i`` = ``INVERTER_NAMES[i]``)."""
    return _library_rows("CECInverter", INVERTER_NAMES, INVERTER_COLS)
