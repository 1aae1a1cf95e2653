"""`python -m tinykws` (also what `torchrun -m tinykws train ...` runs)."""

from tinykws.cli import app

if __name__ == "__main__":
    app()
