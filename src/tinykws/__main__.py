"""`python -m tinykws` (also what `torchrun -m tinykws train ...` runs)."""

from tinykws.cli import main

if __name__ == "__main__":
    main()
