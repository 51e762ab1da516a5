"""Training rows against validation rows, for `ssl4rl preprocess --val`.

Two kinds of overlap, told apart because one is always a mistake and the other usually is:
- the same row: one built sample (same source image, task, split and sample index, and the same
  prompt, answer and image bytes) on both sides, e.g. `--train DIR --val DIR:validation` where DIR holds
  the validation split too. Validation would score rows the model trained on.
- a shared source image: different samples made from one photo (a `train` and a `validation` build of
  one folder). The model may learn the photo itself (which way is up, what lies where), so validation
  measures memory; `--allow-shared-images` accepts it. `--holdout-fraction` splits by image instead.
`--paper-split` trains on the validation rows by design and is not checked here.

Memory grows with the validation side only: its images and row digests are kept, training rows stream
past them (the caller reads the validation inputs first).
"""

from __future__ import annotations

import hashlib

import pyarrow as pa

ROW_ID = ("source", "source_key", "task", "split", "sample_index")
CONTENT = ("task", "knobs", "label", "query", "answer")
EXAMPLES = 3


class OverlapCheck:
    def __init__(self) -> None:
        self.val_images: set[tuple[str, str]] = set()
        self.val_rows: dict[tuple, bytes] = {}
        self.checked = {"train": 0, "val": 0}
        self.same_rows = 0
        self.rows_sharing_images = 0
        self.examples: list[str] = []  # source keys of shared images, for the message

    def add_val(self, table: pa.Table, partner_keys: list[list[str]]) -> None:
        ids = _row_ids(table)
        for row_id, digest, partners in zip(ids, _digests(table), partner_keys):
            self.val_rows[row_id] = digest
            source, key = row_id[0], row_id[1]
            self.val_images.update((source, k) for k in (key, *partners))
        self.checked["val"] += table.num_rows

    def add_train(self, table: pa.Table, partner_keys: list[list[str]]) -> None:
        candidates = []
        for i, (row_id, partners) in enumerate(zip(_row_ids(table), partner_keys)):
            source = row_id[0]
            shared = [k for k in (row_id[1], *partners) if (source, k) in self.val_images]
            if shared:
                self.rows_sharing_images += 1
                if len(self.examples) < EXAMPLES and f"{source}:{shared[0]}" not in self.examples:
                    self.examples.append(f"{source}:{shared[0]}")
            if row_id in self.val_rows:
                candidates.append(i)
        if candidates:  # only rows that claim to be a validation sample are hashed
            subset = table.take(candidates)
            for row_id, digest in zip(_row_ids(subset), _digests(subset)):
                self.same_rows += self.val_rows[row_id] == digest
        self.checked["train"] += table.num_rows

    def refusal(self, allow_shared_images: bool) -> str | None:
        """The one-line reason to refuse these outputs, or None."""
        if self.same_rows:
            return (
                f"{self.same_rows} training rows are also validation rows (the same built samples, e.g. "
                "--train DIR reads DIR's validation split too): name the splits (--train DIR:train --val "
                "DIR:validation), or use --paper-split to train on the validation rows as the paper does"
            )
        if self.rows_sharing_images and not allow_shared_images:
            return (
                f"{self.rows_sharing_images} of {self.checked['train']} training rows use source images that "
                f"validation rows use too (e.g. {', '.join(self.examples)}), so validation would measure "
                "memorised photos: build validation from other images, split by image with "
                "--holdout-fraction, or accept it with --allow-shared-images"
            )
        return None

    def summary(self, allow_shared_images: bool) -> dict:
        return {
            "checked_rows": dict(self.checked),
            "same_rows": self.same_rows,
            "train_rows_sharing_source_images": self.rows_sharing_images,
            "shared_image_examples": list(self.examples),
            "shared_images_allowed": allow_shared_images,
        }


def _row_ids(table: pa.Table) -> list[tuple]:
    return list(zip(*(table[name].to_pylist() for name in ROW_ID)))


def _digests(table: pa.Table) -> list[bytes]:
    columns = [table[name].to_pylist() for name in CONTENT]
    images = table["images"].to_pylist()
    digests = []
    for i, row_images in enumerate(images):
        digest = hashlib.blake2b(digest_size=16)
        for column in columns:
            digest.update((column[i] or "").encode() + b"\0")
        for image in row_images or []:
            data = image["bytes"] or b""
            digest.update(len(data).to_bytes(8, "big") + data)
        digests.append(digest.digest())
    return digests
