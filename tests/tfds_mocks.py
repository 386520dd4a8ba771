"""``tfds.testing.mock_data`` for ``tfds.data_source``, with batched reads that work.

TFDS 4.9's mock sets the fake source's ``__getitems__`` as a plain attribute of a
MagicMock, which is then called without its ``self`` (a TypeError), while
``__getitem__`` (a magic method MagicMock binds) works. genjax's loader reads in
batches through ``__getitems__``; :func:`mock_tfds` binds it, so the tests go
through the same reads as real array_record files.
"""

from __future__ import annotations

import contextlib
import functools
from unittest import mock

import tensorflow_datasets as tfds
from tensorflow_datasets.testing import mocking


class BatchingSourceMock(mocking.PickableDataSourceMock):
    """A fake ``ArrayRecordDataSource`` whose ``__getitems__`` receives its ``self``."""

    @property
    def __getitems__(self):
        return functools.partial(self.__dict__["_getitems_fn"], self)

    @__getitems__.setter
    def __getitems__(self, fn):
        self.__dict__["_getitems_fn"] = fn


@contextlib.contextmanager
def mock_tfds(num_examples: int):
    """Every ``tfds.data_source`` split: ``num_examples`` random, deterministic records
    (record i is the same on every read); every builder reports itself prepared
    (``mock_data`` fakes the records, not the prepared files load_split checks first)."""
    with tfds.testing.mock_data(
        num_examples=num_examples,
        policy=tfds.testing.MockPolicy.USE_CODE,
        mock_array_record_data_source=BatchingSourceMock(),
    ), mock.patch("tensorflow_datasets.core.dataset_builder.DatasetBuilder.is_prepared", lambda self: True):
        yield
