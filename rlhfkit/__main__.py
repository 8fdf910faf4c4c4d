"""`python -m rlhfkit` (and `torchrun -m rlhfkit`): the command line."""
import sys

from rlhfkit.cli import main

sys.exit(main())
