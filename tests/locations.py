"""Where the suite's files are (a module of its own: two conftest.py files share a name on sys.path)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
