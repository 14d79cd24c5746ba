"""Suite-wide pytest set-up."""

# The demo run behind tests/test_digits.py takes most of the suite's time on one
# worker; scheduled first, everything else fits beside it on the other.
FIRST = ("test_digits.py",)


def pytest_collection_modifyitems(session, config, items):
    items.sort(key=lambda item: item.path.name not in FIRST)
