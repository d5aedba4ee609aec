"""Reading what a team exports: rating and interaction files, item and user metadata.

``files`` finds and opens inputs, ``columns`` matches column names to roles, ``sniff`` works out a
delimited file's layout, ``ratings_file`` reads and validates rows (bad ones quarantined with a
reason), ``metadata`` reads item titles and user features.
"""

from .columns import parse_column_mapping
from .errors import RatingsFileError
from .files import list_rating_files
from .metadata import read_items, read_users
from .ratings_file import ParsedFile, read_ratings
from .sniff import SourceFormat, detect_format

__all__ = [
    "ParsedFile",
    "RatingsFileError",
    "SourceFormat",
    "detect_format",
    "list_rating_files",
    "parse_column_mapping",
    "read_items",
    "read_ratings",
    "read_users",
]
