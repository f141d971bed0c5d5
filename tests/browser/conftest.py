"""The real-browser test runs on its own (`make browser-test`, which sets STITCHUP_BROWSER_TEST=1), not in `pytest tests/`."""
import os

collect_ignore_glob = [] if os.environ.get('STITCHUP_BROWSER_TEST') else ['test_*.py']
