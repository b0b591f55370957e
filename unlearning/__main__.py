import sys

from unlearning.cli import main

sys.exit(main())
