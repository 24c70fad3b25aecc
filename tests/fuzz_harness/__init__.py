"""Coverage-guided fuzz harnesses (atheris), not collected by pytest.

Each target is a plain function of bytes (``TARGETS``): atheris drives it in
``run.py``; ``tests/test_fuzz_replay.py`` replays fixed inputs through the same
functions without atheris. See README.md.
"""
