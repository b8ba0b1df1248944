"""(Re)write the SimBench instances and cigre_lv: a thin wrapper of flexplan.convert.simbench.

    python instances/tools/convert_simbench.py                      # sb_lv_rural sb_lv_semiurb sb_lv_urban sb_mv_rural cigre_lv
    python instances/tools/convert_simbench.py sb_lv_urban
    python instances/tools/convert_simbench.py --code 1-LV-rural2--2-sw --out instances/sb_lv_rural2

Needs the simbench package (pip install -e ".[simbench]"); about 30 s per SimBench grid (the
scenario-2 and scenario-1 nets are both read). Options: see --help or the module docstring.
"""
import sys

from flexplan.convert.simbench import main

if __name__ == "__main__":
    sys.exit(main())
