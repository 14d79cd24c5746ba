"""Amaranth hardware blocks: popcount trees so far; the M x N PA datapath and the
diminished-1 units come next. Blocks here never import torch.
"""
