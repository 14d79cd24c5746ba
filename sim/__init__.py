"""cocotb testbenches and their runner; benches take expected values from the
golden model (`bitfab.hls_gen.golden`).
"""
