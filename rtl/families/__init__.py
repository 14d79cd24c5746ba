"""FPGA families."""
