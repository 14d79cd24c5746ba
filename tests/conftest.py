"""Suite-wide pytest set-up."""

# Longest files first, so that the two workers finish together: the demo run
# behind tests/test_digits.py (about six minutes) on one worker, the DFNT
# engine's netlist and the other long benches on the other (pyproject.toml
# keeps xdist from reordering the files by test count).
FIRST = ("test_digits.py", "test_conv_build.py", "test_dim1_cocotb.py", "test_netlist.py")


def pytest_collection_modifyitems(session, config, items):
    def rank(item):
        name = item.path.name
        return FIRST.index(name) if name in FIRST else len(FIRST)

    items.sort(key=rank)
