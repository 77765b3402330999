"""Load tests: real vault processes under concurrent companies and customers.

Run them alone with `python -m pytest tests/load tests/fault -s` (the figures are printed);
they are part of the normal suite too, bounded to well under a minute each.
"""
