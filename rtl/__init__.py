"""Amaranth hardware blocks (popcount PE arrays, the M x N PA datapath, diminished-1 units).

Empty until the hardware issue lands. Blocks here never import torch.
"""
