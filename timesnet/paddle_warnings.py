"""The one Paddle warning a command-line entry point hides: "No ccache found".

Importing paddle looks for ccache, a compiler cache for building custom C++ operators
(which this project never does), and warns once per process when it is missing. A
command that promises one-line errors would print that line before every one of them.

Libraries leave the warning policy to the application, so nothing in timesnet calls
this on import: the entry points that own stderr (``sensorstream`` and
``python -m timesnet.migrate``) call it first thing. The filter matches only that
message from Paddle's cpp_extension module; every other warning still shows. It is
not undone: ``warnings.catch_warnings`` would restore the filter list wholesale on
exit, dropping the filters Paddle's own import installs in between, and it is not
safe while the worker's threads run.
"""

from __future__ import annotations

import warnings

CCACHE_MESSAGE = "No ccache found"
CCACHE_MODULE = r"paddle\.utils\.cpp_extension\."  # where Paddle warns from


def hide_ccache_warning() -> None:
    """Ignore Paddle's "No ccache found" import warning, and only it, in this process."""
    warnings.filterwarnings(
        "ignore", message=CCACHE_MESSAGE, category=UserWarning, module=CCACHE_MODULE
    )
