"""Datasets: manifests -> verified local image files.

A dataset is named on the command line by a manifest name or alias (``kodak``, ``clic``,
``tecnick:T01R01``, ``sample``), by a manifest file (``my.toml``) or by a folder of images
(``./my_images``).  Manifest datasets live in ``<data dir>/<id>/``; they are downloaded
with pooch when absent, checked against the checksums the manifest gives, and pinned by
``SHA256SUMS`` in that folder (``sha256sum -c SHA256SUMS`` works there).  A small stat
cache next to it keeps later runs from re-hashing unchanged files.

One idea per module:

- ``dataset``: ``Dataset`` and ``ImageRef``, the data folder;
- ``manifests``: the manifest schema, its parser, the shipped manifests;
- ``download``: fetching with checksums, ``SHA256SUMS``, datasets listed file by file;
- ``archives``: datasets that come as one archive, and their safe extraction;
- ``folders``: any folder of images as a dataset;
- ``resolve``: names, aliases and parameters -> datasets; the listing.
"""

from harness.datasets.dataset import Dataset, ImageRef, default_data_dir, describe
from harness.datasets.download import ChecksumMismatch
from harness.datasets.manifests import Manifest, load_manifest
from harness.datasets.resolve import DatasetInfo, dataset_id, list_manifests, resolve_dataset

__all__ = [
    "ChecksumMismatch",
    "Dataset",
    "DatasetInfo",
    "ImageRef",
    "Manifest",
    "dataset_id",
    "default_data_dir",
    "describe",
    "list_manifests",
    "load_manifest",
    "resolve_dataset",
]
