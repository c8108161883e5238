"""`python -m keras_impl`: the same command line as `gan-keras`."""

import sys

from keras_impl.train import main

sys.exit(main())
