"""`python -m skelctl` (also what `torchrun -m skelctl` runs)."""

from skelctl.cli.app import main

if __name__ == "__main__":
    main()
