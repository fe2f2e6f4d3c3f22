"""The datasets' one error type, below the package and every dataset module (they all raise it).

Usage: from stargan_train.data.errors import DatasetError  (also `from stargan_train.data import DatasetError`)
"""


class DatasetError(ValueError):
    """A dataset that cannot be used as configured; the message names the file, folder or value at fault."""
