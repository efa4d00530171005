"""Where the shared material lives: ``../shared`` beside the checkout (as in CI)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
EXAMPLE_DATA = SHARED / "data" / "openephys-example-0.6.7"
GILHOST_SRC = SHARED / "tools" / "gilhost"
