"""cocotb testbenches, runners and the simulated board.

Empty until the hardware issue lands; testbenches will import the golden model
from `bitfab.hls_gen.golden`.
"""
