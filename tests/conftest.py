"""Suite-wide pytest set-up."""

# Longest files first, so that the two workers finish together: the demo run
# behind tests/test_digits.py (about eight minutes) on one worker, the DFNT
# engine's netlist and the other long benches on the other (pyproject.toml
# keeps xdist from reordering the files by test count). Ranking the graph benches
# and the iCEBreaker CNN right after the demo made the suite slower (21:13 against
# 19:32, 2026-12-07): the iCEBreaker test's training beside the demo's more than
# doubled its time.
FIRST = ("test_digits.py", "test_conv_build.py", "test_dim1_cocotb.py", "test_netlist.py")


def pytest_collection_modifyitems(session, config, items):
    def rank(item):
        name = item.path.name
        return FIRST.index(name) if name in FIRST else len(FIRST)

    items.sort(key=rank)


def pytest_sessionfinish(session, exitstatus):
    """With BITFAB_COVERAGE set (`bitfab.sim.coverage`), the merged coverage report of
    every bench this run built, written by the controller once the workers are done."""
    from bitfab.sim import coverage
    runs = coverage.folder()
    if runs is None or hasattr(session.config, "workerinput") or not runs.exists():
        return
    result = coverage.write_report(runs)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(
            f"coverage: {result['runs']} runs, line blocks {result['lines_covered']} of "
            f"{result['lines']} ({100 * (result['line_coverage'] or 0):.1f}%); "
            f"{runs / 'coverage.txt'}")
