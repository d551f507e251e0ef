"""BERT for TensorFlow 2 / Keras 3.

The public names below are the contract in DESIGN.md; code outside this repo
relies on them.
"""

import os

# TensorFlow's C++ start-up chatter is off unless the user asks for it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Each area adds its public names here once its module imports cleanly.
