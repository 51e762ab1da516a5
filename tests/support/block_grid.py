"""Block-grid geometry computed independently of the tasks, for the label proofs.

Tasks cut their views on the source's 16 px JPEG block grid: the largest box of whole 16 px blocks
starting at the grid's origin (0, 0 unless an EXIF orientation moved it), patch and hole sides in
whole blocks.
"""

from __future__ import annotations

BLOCK = 16


def aligned_box(width: int, height: int, origin: tuple[int, int] = (0, 0)) -> tuple[int, int, int, int]:
    ox, oy = origin
    return ox, oy, ox + (width - ox) // BLOCK * BLOCK, oy + (height - oy) // BLOCK * BLOCK


def grid_patch(width: int, height: int, rows: int, cols: int) -> tuple[int, int]:
    """(patch width, patch height) of a rows x cols grid in whole blocks on a width x height source."""
    left, top, right, bottom = aligned_box(width, height)
    return (right - left) // cols // BLOCK * BLOCK, (bottom - top) // rows // BLOCK * BLOCK
