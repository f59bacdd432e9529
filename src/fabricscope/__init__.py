"""fabricscope: trace tenant overlay flows hop by hop across the physical fabric.

Data flow: capture -> decode/sflow -> records -> store -> correlate (+inventory)
-> query -> cli/api/web. See docs/architecture.md.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fabricscope")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
