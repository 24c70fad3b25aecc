"""The ``dicomnet`` command line (``dicomnet.cli.main:main``): a user of the public API,
built with click and rich; it holds no protocol logic."""
