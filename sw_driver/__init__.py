"""Host driver and wire protocol for streaming weights and images to a board.

Empty until the host driver issue lands.
"""
