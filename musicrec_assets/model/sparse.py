"""Small helpers over scipy's CSR matrices, the shape every interaction matrix takes here."""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix


def row_of_entry(indptr: np.ndarray) -> np.ndarray:
    """The row of every stored entry of a CSR matrix with this ``indptr``, as int64."""
    indptr = np.asarray(indptr)
    return np.repeat(np.arange(len(indptr) - 1, dtype=np.int64), np.diff(indptr))


def to_triples(matrix: csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (row, column, value) arrays of a sparse matrix, row-major order."""
    matrix = csr_matrix(matrix, copy=True)
    matrix.sum_duplicates()
    return row_of_entry(matrix.indptr), matrix.indices.astype(np.int64), matrix.data


def from_triples(
    rows: np.ndarray, cols: np.ndarray, values: np.ndarray, shape: tuple[int, int]
) -> csr_matrix:
    """A CSR matrix from (row, column, value) arrays; duplicates are summed."""
    matrix = csr_matrix((values, (rows, cols)), shape=shape)
    matrix.sum_duplicates()
    return matrix
