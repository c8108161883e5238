"""`python -m torch_impl`: the same command line as `gan-torch`."""

import sys

from torch_impl.train import main

sys.exit(main())
