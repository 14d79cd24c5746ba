"""cocotb testbenches and their runner; benches take expected values from the
golden model (`bitfab.hls_gen.golden`). `board` is the simulated board: the
bitstream's serial top in the simulator, behind a TCP port.
"""
