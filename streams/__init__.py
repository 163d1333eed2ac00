"""The drivers of policyloop: replay over a file, the Faust worker on Kafka, and the CLI."""

import os

# One BLAS thread (unless the operator says otherwise), set before numpy loads OpenBLAS: the
# processors' matrix products are small, and on a machine with few (shared) cores BLAS
# threads fight over them (a dot of ~32k elements took 8 ms with threads, well under 1 ms
# without). Only the drivers read the environment; processors never do.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
