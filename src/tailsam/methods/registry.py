"""The method registry (`method.name` in the config); each method file registers into it.

Metadata of every entry: `paper`, the work the method comes from.
"""

from tailsam.registry import Registry

METHODS = Registry("method")
