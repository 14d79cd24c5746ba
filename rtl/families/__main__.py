"""``python -m bitfab.rtl.families after-synthesis FAMILY NETLIST.json``: the family's edit
of yosys's JSON netlist, run by a build script between yosys and nextpnr."""

import sys

from . import family

if len(sys.argv) != 4 or sys.argv[1] != "after-synthesis":
    sys.exit("usage: python -m bitfab.rtl.families after-synthesis FAMILY NETLIST.json")
family(sys.argv[2]).after_synthesis(sys.argv[3])
