"""GLM-4.1V in verl 0.9.1's FSDP2 engine with transformers 5: three fixes, imported into verl's workers.

Both were found running verl's own actor update on a tiny GLM-4.1V on CPU (tests/support/verl_cpu_grpo_step.py);
the code paths are the same on GPUs. Qwen2.5-VL and Qwen3-VL need neither.

1. verl's FSDP2 wrapping (`verl.utils.fsdp_utils._select_fsdp2_wrap_targets`) shards every untied `nn.Embedding`
   as a unit of its own, whose weight is a DTensor except while that unit runs. transformers'
   `Glm4vVisionEmbeddings.forward` reads `self.position_embedding.weight` directly (to interpolate the table with
   `grid_sample`) instead of calling the module, so the first forward stops with "aten.grid_sampler_2d.default
   got mixed torch.Tensor and DTensor". The patched forward fetches the whole table by calling the embedding on
   all of its indices (FSDP2 gathers the weight for the call; the gradient flows back through the same call)
   and runs transformers' own forward on it.
2. verl's GLM-4V model patch (`verl.models.transformers.glm4v._get_input_embeds`) takes `model.visual(...)` to be
   the merged image features, as in transformers 4; transformers 5 returns a `BaseModelOutputWithPooling` whose
   `pooler_output` holds them ("'BaseModelOutputWithPooling' object has no attribute 'shape'"). The patched
   function hands verl's a model whose vision tower returns `pooler_output`.
3. verl's MFU estimate for `glm4v` (`verl.utils.flops_counter.ESTIMATE_FUNC`, its text-only Qwen2 estimate) reads
   `config.hidden_size`, which transformers 5 keeps only on the text config ("'Glm4vConfig' object has no
   attribute 'hidden_size'", after the first update), and refuses the `images_seqlens` verl passes for VLMs.
   The same estimate is given the text config and the text arguments (vision FLOPs stay uncounted, as before).

verl imports `actor_rollout_ref.model.external_lib` in every worker that builds the model; `ssl4rl train` sets it
to this module for GLM-4.1V models (`launch.family_overrides`).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import torch
from transformers.models.glm4v import modeling_glm4v
from verl.models.transformers import glm4v as verl_glm4v
from verl.utils import flops_counter

_embeddings_forward = modeling_glm4v.Glm4vVisionEmbeddings.forward
_verl_get_input_embeds = verl_glm4v._get_input_embeds
_verl_glm4v_flops = flops_counter.ESTIMATE_FUNC["glm4v"]


def _forward(self, embeddings, lengths, image_shapes, h_coords, w_coords):
    table = self.position_embedding(
        torch.arange(self.position_embedding.num_embeddings, device=embeddings.device)
    )
    # transformers' forward reads only these two attributes of `self`
    view = SimpleNamespace(
        position_embedding=SimpleNamespace(weight=table), interpolated_method=self.interpolated_method
    )
    return _embeddings_forward(view, embeddings, lengths, image_shapes, h_coords, w_coords)


class _FeaturesTower:
    """The vision tower as verl's patch calls it: calling it returns the merged image features."""

    def __init__(self, visual: Any):
        self._visual = visual

    def __call__(self, *args, **kwargs):
        output = self._visual(*args, **kwargs)
        return getattr(output, "pooler_output", output)

    def __getattr__(self, name: str):
        return getattr(self._visual, name)


class _ModelView:
    def __init__(self, model: Any):
        self._model = model
        self.visual = _FeaturesTower(model.visual)

    def __getattr__(self, name: str):
        return getattr(self._model, name)


def _get_input_embeds(model, *args, **kwargs):
    return _verl_get_input_embeds(_ModelView(model), *args, **kwargs)


def _glm4v_flops(config, tokens_sum, batch_seqlens, delta_time, **_vision):
    return _verl_glm4v_flops(config.get_text_config(), tokens_sum, batch_seqlens, delta_time)


modeling_glm4v.Glm4vVisionEmbeddings.forward = _forward
verl_glm4v._get_input_embeds = _get_input_embeds
flops_counter.ESTIMATE_FUNC["glm4v"] = _glm4v_flops
