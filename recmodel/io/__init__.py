"""Reading what a team exports: rating and interaction files, item and user metadata.

``files`` finds and opens inputs safely (no links, regular files only, bounded), ``columns`` matches
column names to roles, ``sniff`` works out a delimited file's layout and feedback kind, ``ratings_file``
validates rows a chunk at a time (bad ones quarantined with a reason), ``metadata`` reads item titles and
user features.
"""

from .columns import parse_column_mapping
from .errors import RatingsFileError, UserError
from .files import Limits, list_rating_files
from .metadata import read_items, read_users
from .ratings_file import ParsedFile, ReadOptions, StagedRatings, read_ratings, stage_ratings
from .sniff import SourceFormat, detect_format

__all__ = [
    "Limits",
    "ParsedFile",
    "RatingsFileError",
    "ReadOptions",
    "SourceFormat",
    "StagedRatings",
    "UserError",
    "detect_format",
    "list_rating_files",
    "parse_column_mapping",
    "read_items",
    "read_ratings",
    "read_users",
    "stage_ratings",
]
