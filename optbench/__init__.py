"""optbench: measure which runtime and optimization to ship.

Importing this package is cheap on purpose: no torch, no runtime, no CUDA. Heavy
libraries are imported inside the backend, transform or model that needs them.
"""

__version__ = "0.1.0"
SCHEMA_VERSION = 4
