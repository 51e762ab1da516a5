"""verl 0.9.1 custom dataset: `RLHFDataset` with rows generated on the fly instead of read from parquet.

    data.custom_cls.path=pkg://ssl4rl.backends.verl.dataset
    data.custom_cls.name=OnlineRLHFDataset
    data.train_files=[train.yaml]      # online specs (ssl4rl.training_data.online_spec) instead of parquet
    data.val_files=[val.yaml]

verl builds it as `OnlineRLHFDataset(data_files=..., tokenizer=..., processor=..., config=data_config,
max_samples=...)` (verl.trainer.ppo.utils.create_rl_dataset). Only the source of raw rows changes:
`self.dataframe` becomes a lazy table whose `row[i]` generates the verl row, so verl's own
`__getitem__` (placeholders -> image items, `raw_prompt`, `index`, ...) and `process_vision_info`
stay in charge of everything else. The token budget defaults to `data.max_prompt_length` and the
processor's pixel limits, so every generated prompt fits (verl's overlong filter is not needed).

Importing this module imports verl (and torch): only verl's loader should import it.
"""

from __future__ import annotations

from typing import Any

from verl.utils.dataset.rl_dataset import RLHFDataset

from ...errors import UserError
from ...rl_row import processor_family, processor_pixel_limits
from ...training_data.online import OnlineSSLData
from ...training_data.online_spec import is_spec_file, load_spec


class _GeneratedRows:
    """Stands in for the HF dataset verl reads rows from: `len()` and `frame[i] -> row dict`."""

    def __init__(self, online: OnlineSSLData, limit: int):
        self.online = online
        self.limit = limit
        self.position: int | None = None  # set while a whole batch is being built

    def __len__(self) -> int:
        return self.limit

    def __getitem__(self, item: int) -> dict[str, Any]:
        return self.online.next_row(int(item), position=self.position)


class OnlineRLHFDataset(RLHFDataset):
    """Online specs generate rows; plain parquet files (e.g. a static validation set next to an online
    training set, since `data.custom_cls` applies to both) are read exactly as `RLHFDataset` reads them."""

    online: OnlineSSLData | None = None

    def _specs(self) -> bool:
        specs = [is_spec_file(str(f)) for f in self.original_data_files]
        if any(specs) and not all(specs):
            raise UserError(
                "give either online dataset specs (.yaml/.json) or parquet files, not both in one list"
            )
        return all(specs)

    def _download(self, use_origin_parquet: bool = False):
        if not self._specs():
            return super()._download(use_origin_parquet)
        self.data_files = list(self.original_data_files)  # specs are read where they are

    def _read_files_and_tokenize(self):
        if not self._specs():
            return super()._read_files_and_tokenize()
        config = self.config
        # A training step consumes train_batch_size prompts (verl may fetch them in gen_batch_size chunks).
        batch_size = config.get("train_batch_size", None) or 1
        min_pixels, max_pixels = processor_pixel_limits(self.processor)
        family = processor_family(self.processor)
        self.online = OnlineSSLData(
            load_spec([str(f) for f in self.data_files]),
            progress="served",
            batch_size=int(batch_size),
            max_prompt_tokens=int(self.max_prompt_length) if self.max_prompt_length else None,
            model_family=family.name if family else None,
            min_pixels=min_pixels,
            max_pixels=max_pixels,
            tokenizer=self.tokenizer,
        )
        total = len(self.online)
        limit = min(total, self.max_samples) if self.max_samples and self.max_samples > 0 else total
        self.dataframe = _GeneratedRows(self.online, limit)
        print(f"online dataset: {limit} items per epoch from {len(self.online.parts)} part(s)")

    def __getitems__(self, indices: list[int]) -> list[dict[str, Any]]:
        """A whole dataloader batch (torch calls this when it exists): its items share one serve position,
        so a curriculum step boundary never splits a batch, whichever worker builds it."""
        if self.online is None:
            return [self[i] for i in indices]
        self.dataframe.position = self.online.reserve(len(indices))
        try:
            return [self[i] for i in indices]
        finally:
            self.dataframe.position = None

    def maybe_filter_out_long_prompts(self, dataframe=None):
        if self.online is None:
            return super().maybe_filter_out_long_prompts(dataframe)
        return dataframe  # generated prompts fit max_prompt_length by construction

    def __getstate__(self):
        if self.online is None:
            return super().__getstate__()
        return self.__dict__.copy()  # the generator is small; verl's version drops `dataframe`

    def resume_dataset_state(self):
        if self.online is None:
            return super().resume_dataset_state()
        # online counters come back through state_dict/load_state_dict with the dataloader state

    # torchdata's StatefulDataLoader saves and restores these with verl's `data.pt` checkpoint.
    def state_dict(self) -> dict[str, Any]:
        return {} if self.online is None else self.online.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.online is not None:
            self.online.load_state_dict(state)
