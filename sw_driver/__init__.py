"""Host driver and wire protocol: weights and images down a serial link to a board (real,
or `bitfab.sim.board.SimulatedBoard`), outputs back.

`protocol` is the shell's frames and status, `beats` how items become stream beats,
`weights` checks a load stream against the plan, `host` drives a link.
"""
