"""`ssl4rl doctor`: everything a verl launch needs, checked in seconds before any GPU-hour is spent.

One line per check, `ok` / `warn` / `FAIL` / `skip`, each failure with its fix. The checks read the config
exactly as `main_ppo` will compose it, the data files it names, the model directory and this machine:

  python, packages      the interpreter and the pinned stack (`ssl4rl/configs/gpu_stack.txt`)
  trainer imports       every module verl's trainer will import for this config (trainer version, rollout
                        server, training engine, attention kernels, reward function, dataset class, loggers),
                        imported in a fresh interpreter with verl's own loaders
  CUDA / driver / GPUs  the wheel's CUDA build against the NVIDIA driver, GPUs against the layout
  GPU memory            actor + vLLM + reserve per GPU (resources.py), after any offload `ssl4rl train` chose
  Ray CPUs              logical CPUs verl's placement groups and TransferQueue wait for (else a silent hang)
  data                  rows >= one training batch, steps > 0, every prompt (text + image tokens, counted
                        with the model's processor) within data.max_prompt_length, placeholders matching
                        images, vLLM's images-per-prompt limit, train/validation overlap
  checkpoints, disk     an existing global_step_* is never resumed unless asked; free disk for the
                        checkpoints the run keeps
  processor             the model directory has the processor, tokenizer and chat template verl loads

`node` checks (CUDA, driver, GPU count and memory, flash-attn, Ray CPUs) are skipped on a login node
(`--login`). `ssl4rl train` runs all of them before starting Ray; `--no-check` skips them.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

from omegaconf import OmegaConf

from ... import gpu_stack
from ...errors import UserError
from ...model_families import ModelFamily, family_of_model_dir, family_of_model_name
from ...rl_row import PromptLength, processor_family
from ...training_data.online import OnlineSSLData
from ...training_data.online_spec import is_spec_file, load_spec
from ...training_data.profile import (
    FileProfile,
    budget_mismatch,
    data_files,
    profile_online_spec,
    profile_parquet,
)
from . import resources
from .launch import Launch, check_config, compose, has_checkpoints

OK, WARN, FAIL, SKIP = "ok", "warn", "FAIL", "skip"
INSTALL_FIX = "bash scripts/install_gpu.sh (in a fresh venv), see verl/README.md"
GIB = resources.GIB


@dataclass
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.status:<4}  {self.name:<17} {self.detail}"
        return text + (
            f"\n      {'':<17} fix: {self.fix}" if self.fix and self.status in (FAIL, WARN) else ""
        )


@dataclass
class Facts:
    """What the doctor measured once, for the checks and for `ssl4rl train`'s adjustments."""

    train: list[FileProfile] = field(default_factory=list)
    val: list[FileProfile] = field(default_factory=list)
    missing_files: list[str] = field(default_factory=list)
    data_error: str | None = None
    params: int | None = None
    adapter_params: int | None = None  # LoRA runs: the adapter's trainable parameters
    model_dir: str | None = None
    processor: Any = None
    processor_error: str | None = None
    driver: gpu_stack.DriverReport = field(default_factory=lambda: gpu_stack.DriverReport(None, ()))
    gpu_bytes: int | None = None
    paper_split: bool = False
    model_family: ModelFamily | None = None  # from the processor, else config.json, else the model's name
    budget_mismatch: str | None = None  # the data's token budget was built for another family

    @property
    def train_rows(self) -> int:
        return sum(p.rows for p in self.train)

    @property
    def max_images(self) -> int:
        return max((p.max_images for p in self.train + self.val), default=0)


def _select(config: Any, key: str, default: Any = None) -> Any:
    value = OmegaConf.select(config, key)
    return default if value is None else value


# ---- measuring -------------------------------------------------------------------------------------------


def load_processor(model_dir: str | None) -> tuple[Any, str | None]:
    if model_dir is None:
        return None, "the model is not on this machine (a hub id not in the Hugging Face cache)"
    try:
        from transformers import AutoProcessor

        return AutoProcessor.from_pretrained(model_dir), None
    except Exception as exc:  # any loader failure is the finding itself
        return None, f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"


def _paper_split(files: list[str]) -> bool:
    """`ssl4rl preprocess --paper-split` wrote these files: validation rows are part of training by design."""
    for path in files:
        manifest = os.path.join(os.path.dirname(path), "manifest.json")
        try:
            with open(manifest) as f:
                if json.load(f).get("config", {}).get("paper_split"):
                    return True
        except (OSError, ValueError):
            continue
    return False


def _profile_files(files: list[str], facts: Facts, length_of, max_length: int, digests: bool, progress: bool):
    profiles = []
    specs = [f for f in files if is_spec_file(f)]
    if specs:
        # generated within max_prompt_length by construction; images per prompt depend on the curriculum
        profiles.append(profile_online_spec(", ".join(specs), len(OnlineSSLData(load_spec(specs))), 0))
    for path in files:
        if not is_spec_file(path):
            profiles.append(
                profile_parquet(
                    path,
                    length_of=length_of,
                    max_prompt_length=max_length,
                    digests=digests,
                    progress=progress,
                )
            )
    return profiles


def gather_facts(config: Any, *, gpu_memory_gb: float | None = None, progress: bool = True) -> Facts:
    facts = Facts()
    model = str(config.actor_rollout_ref.model.path)
    facts.model_dir = resources.local_model_dir(model)
    facts.params = resources.count_parameters(model)
    facts.adapter_params = resources.lora_adapter_parameters(config, model)
    facts.processor, facts.processor_error = load_processor(facts.model_dir)
    facts.model_family = (processor_family(facts.processor) if facts.processor is not None else None) or (
        family_of_model_dir(facts.model_dir) or family_of_model_name(model)
    )
    facts.driver = gpu_stack.nvidia_driver()
    if gpu_memory_gb:
        facts.gpu_bytes = int(gpu_memory_gb * GIB)
    elif facts.driver.gpus:
        facts.gpu_bytes = min(g.memory_bytes for g in facts.driver.gpus)

    train_files, val_files = data_files(config.data.train_files), data_files(config.data.val_files)
    facts.missing_files = [p for p in train_files + val_files if "://" not in p and not os.path.exists(p)]
    facts.paper_split = _paper_split(val_files)
    if facts.missing_files:
        return facts
    facts.budget_mismatch = budget_mismatch(
        [p for p in train_files + val_files if not is_spec_file(p)], facts.model_family
    )
    length_of = None
    if facts.processor is not None:
        kwargs = config.data.get("apply_chat_template_kwargs")
        kwargs = OmegaConf.to_container(kwargs) if kwargs else {}
        length_of = PromptLength(facts.processor, fetch_resize=True, chat_template_kwargs=kwargs)
    max_length = int(config.data.max_prompt_length)
    try:
        facts.val = _profile_files(val_files, facts, length_of, max_length, True, progress)
        facts.train = _profile_files(train_files, facts, length_of, max_length, bool(val_files), progress)
    except UserError as exc:
        facts.data_error = str(exc)
    return facts


# ---- adjustments `ssl4rl train` makes from the facts --------------------------------------------------------


def adjustments(
    config: Any, facts: Facts, launch: Launch, *, local_ray: bool
) -> tuple[dict[str, Any], list[str]]:
    """Config values measured here: vLLM's image limit, offloading to fit GPU memory, Ray's CPU count."""
    values: dict[str, Any] = {}
    notes: list[str] = []
    if facts.max_images and not any(p.online for p in facts.train + facts.val):
        values["actor_rollout_ref.rollout.limit_images"] = facts.max_images
        notes.append(f"vLLM limit_images={facts.max_images} (the data's largest image count per prompt)")
    if facts.params and facts.gpu_bytes:
        plan = resources.fit_memory(
            config,
            facts.params,
            facts.gpu_bytes,
            fixed=set(launch.user_keys),
            adapter_params=facts.adapter_params,
        )
        values.update(plan.changes)
        if plan.changes:
            changed = ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in plan.changes.items())
            notes.append(f"GPU memory: {changed} so that {plan.describe()}")
    if local_ray and _select(config, "ray_kwargs.ray_init.num_cpus") is None:
        needed, available = resources.ray_cpus_needed(config), resources.available_cpus()
        if available < needed:
            values["ray_kwargs.ray_init.num_cpus"] = needed
            notes.append(
                f"Ray num_cpus={needed} (logical; this machine has {available}): verl's placement groups and "
                "TransferQueue storage units wait forever for CPUs Ray does not offer"
            )
    return values, notes


# ---- checks ----------------------------------------------------------------------------------------------


def check_python() -> Check:

    version = ".".join(map(str, sys.version_info[:3]))
    low, high = gpu_stack.PYTHON_RANGE
    glibc = gpu_stack.glibc_version()
    detail = f"{version}, {platform.machine()}, glibc {'.'.join(map(str, glibc)) if glibc else 'none'}"
    if not gpu_stack.python_supported():
        return Check(
            "python",
            FAIL,
            f"{detail}: verl 0.9.1 and vLLM support Python {low[0]}.{low[1]}-{high[0]}.{high[1]}",
            "create the venv with python3.11 or 3.12",
        )
    if glibc is not None and glibc[:2] < gpu_stack.MIN_GLIBC:
        return Check(
            "python",
            FAIL,
            f"{detail}: vLLM's wheels need glibc >= 2.31 (Ubuntu 20.04+, RHEL 9)",
            "use a newer OS image or a container",
        )
    return Check("python", OK, detail)


def check_packages(severity: str = FAIL) -> Check:
    stack, pins = gpu_stack.stack_for_environment()
    wrong = gpu_stack.version_mismatches(pins)
    name = f"packages ({stack})"
    fix = INSTALL_FIX if stack == "main" else "STACK=cu12 " + INSTALL_FIX
    if not wrong:
        return Check(name, OK, ", ".join(f"{n} {v}" for n, v in pins.items()))
    listed = "; ".join(f"{n} {have or 'missing'} (pinned {want})" for n, want, have in wrong)
    return Check(name, severity, listed, fix)


PROBE = r"""
import json, sys, warnings
warnings.simplefilter("ignore")
results = []
for label, code in json.loads(sys.argv[1]):
    try:
        exec(code, {})
        results.append([label, None])
    except BaseException as exc:
        results.append([label, f"{type(exc).__name__}: {exc}"[:300]])
print("SSL4RL_PROBE " + json.dumps(results))
"""


def import_probes(config: Any, attention: str) -> list[tuple[str, str]]:
    """(what, code) for every module the trainer imports with this config, through verl's own loaders."""
    probes = [("entry point", "import verl.trainer.main_ppo")]
    if _select(config, "trainer.use_v1", False):
        probes.append(("V1 trainer", "import transfer_queue, verl.trainer.ppo.v1"))
    else:
        probes.append(("legacy trainer", "import verl.trainer.main_ppo_v0"))
    rollout = str(config.actor_rollout_ref.rollout.name)
    mode = str(_select(config, "actor_rollout_ref.rollout.mode", "async"))
    probes.append(
        (
            f"{rollout} rollout",
            "from verl.workers.rollout.replica import RolloutReplicaRegistry\n"
            f"RolloutReplicaRegistry.get({rollout!r})\n"
            "from verl.workers.rollout.base import get_rollout_class\n"
            f"get_rollout_class({rollout!r}, {mode!r})",
        )
    )
    # verl's model patching (run for every model its engine builds) imports trl's value-head class whenever
    # trl is installed; trl >= 1 removed it, so an environment holding ssl4rl's TRL backend cannot build
    # a verl actor (verl's own fsdp extra pins trl 0.27).
    probes.append(
        (
            "model patching (trl)",
            "from verl.utils.import_utils import is_trl_available\n"
            "if is_trl_available():\n"
            "    try:\n"
            "        from trl.experimental.ppo import AutoModelForCausalLMWithValueHead\n"
            "    except ImportError:\n"
            "        from trl import AutoModelForCausalLMWithValueHead",
        )
    )
    strategy = str(config.actor_rollout_ref.actor.strategy)
    engine = "megatron" if strategy == "megatron" else "fsdp"
    probes.append((f"{strategy} engine", f"import verl.workers.engine.{engine}"))
    if attention == "flash_attention_2":
        probes.append(("flash-attn", "import flash_attn"))
    reward = config.reward.custom_reward_function
    if reward.get("path"):
        probes.append(
            (
                f"reward {reward.path}:{reward.get('name') or 'compute_score'}",
                "from verl.utils.import_utils import load_extern_type\n"
                f"load_extern_type({str(reward.path)!r}, {str(reward.get('name') or 'compute_score')!r})",
            )
        )
    custom = config.data.get("custom_cls") or {}
    if custom.get("path"):
        probes.append(
            (
                f"dataset {custom.get('name')}",
                "from verl.utils.import_utils import load_extern_type\n"
                f"load_extern_type({str(custom['path'])!r}, {str(custom.get('name'))!r})",
            )
        )
    else:
        probes.append(("dataset RLHFDataset", "from verl.utils.dataset.rl_dataset import RLHFDataset"))
    probes.append(("image fetch (qwen_vl_utils)", "import qwen_vl_utils"))
    external = _select(config, "actor_rollout_ref.model.external_lib")
    if external:  # e.g. GLM-4.1V's fixes (glm4v_patch), imported by every worker that builds the model
        probes.append(
            (
                f"model lib {external}",
                f"from verl.utils.import_utils import import_external_libs\nimport_external_libs({str(external)!r})",
            )
        )
    loggers = _select(config, "trainer.logger", [])
    for name, module in (
        ("tensorboard", "torch.utils.tensorboard"),
        ("wandb", "wandb"),
        ("mlflow", "mlflow"),
    ):
        if name in loggers:
            probes.append((f"{name} logger", f"import {module}"))
    return probes


def check_imports(config: Any, attention: str, severity: str = FAIL) -> Check:
    probes = import_probes(config, attention)
    try:
        result = subprocess.run(
            [sys.executable, "-c", PROBE, json.dumps(probes)], capture_output=True, text=True, timeout=600
        )
    except subprocess.TimeoutExpired:
        return Check("trainer imports", FAIL, "importing the trainer's modules took over 10 minutes")
    line = next((x for x in result.stdout.splitlines() if x.startswith("SSL4RL_PROBE ")), None)
    if line is None:
        tail = " ".join((result.stderr or "").split()[-30:])
        return Check("trainer imports", FAIL, f"the import probe crashed: {tail[:300]}", INSTALL_FIX)
    failed = [(label, error) for label, error in json.loads(line[len("SSL4RL_PROBE ") :]) if error]
    labels = ", ".join(label for label, _ in probes)
    if not failed:
        return Check("trainer imports", OK, labels)
    detail = "; ".join(f"{label}: {error}" for label, error in failed)
    return Check("trainer imports", severity, detail, INSTALL_FIX)


def check_cuda(facts: Facts) -> Check:
    import torch

    cuda = gpu_stack.parse_version(torch.version.cuda)
    if cuda is None:
        return Check("CUDA", FAIL, f"torch {torch.__version__} is a CPU build", INSTALL_FIX)
    need = gpu_stack.min_driver_for_cuda(cuda)
    need_text = f"driver >= {need[0]}.{need[1]}" if need else "a matching driver"
    driver = gpu_stack.parse_version(facts.driver.driver)
    if driver is None:
        return Check(
            "CUDA",
            FAIL,
            f"torch built with CUDA {torch.version.cuda} needs {need_text}; no NVIDIA driver here",
            "run on a GPU node (or ssl4rl doctor --login on a login node)",
        )
    if need and driver[:2] < need:
        return Check(
            "CUDA",
            FAIL,
            f"driver {facts.driver.driver} is too old for CUDA {torch.version.cuda} ({need_text})",
            "update the NVIDIA driver (CUDA 13 wheels need >= 580); see verl/README.md",
        )
    if not torch.cuda.is_available():
        return Check(
            "CUDA", FAIL, f"driver {facts.driver.driver} but torch sees no GPU", "check CUDA_VISIBLE_DEVICES"
        )
    capability = min(torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count()))
    if capability < gpu_stack.MIN_COMPUTE_CAPABILITY:
        return Check(
            "CUDA",
            FAIL,
            f"a GPU of compute capability {capability[0]}.{capability[1]}: CUDA 13 and vLLM need >= 7.5",
            "use Turing (T4) or newer GPUs",
        )

    return Check("CUDA", OK, f"torch CUDA {torch.version.cuda}, driver {facts.driver.driver} ({need_text})")


def check_gpus(config: Any, facts: Facts, *, local_ray: bool) -> Check:
    wanted = int(config.trainer.n_gpus_per_node)
    have = len(facts.driver.gpus)
    names = ", ".join(sorted({g.name for g in facts.driver.gpus})) or "none"
    if not local_ray:
        return Check(
            "GPUs", SKIP, f"{wanted} per node on the Ray cluster (RAY_ADDRESS/multi-node): not checked here"
        )
    if have < wanted:
        return Check(
            "GPUs",
            FAIL,
            f"the layout asks for {wanted} GPU(s) per node; this machine has {have} ({names})",
            f"pass --gpus-per-node {have}" if have else "run on a GPU node",
        )
    return Check("GPUs", OK, f"{have} x {names} for {wanted} per node")


def check_memory(config: Any, facts: Facts) -> Check:
    if facts.params is None:
        return Check("GPU memory", SKIP, "parameter count unknown (the model is not on this machine)")
    if facts.gpu_bytes is None:
        return Check("GPU memory", SKIP, "no GPU here: pass --gpu-memory-gb to plan from a login node")
    plan = resources.memory_plan(config, facts.params, facts.gpu_bytes, adapter_params=facts.adapter_params)
    detail = f"{facts.params / 1e9:.2f}B params: {plan.describe()}"
    if plan.fits:
        return Check("GPU memory", OK, detail)
    return Check(
        "GPU memory",
        FAIL,
        detail + " (vLLM would fail to wake, or the update would run out of memory)",
        "drop your offload/gpu_memory_utilization overrides so ssl4rl train can choose, or use more GPUs",
    )


def check_ray_cpus(config: Any, *, local_ray: bool) -> Check:
    needed = resources.ray_cpus_needed(config)
    if not local_ray:
        return Check(
            "Ray CPUs", SKIP, f"cluster given (RAY_ADDRESS/multi-node): the head node needs >= {needed}"
        )
    offered = _select(config, "ray_kwargs.ray_init.num_cpus") or resources.available_cpus()
    if int(offered) >= needed:
        return Check("Ray CPUs", OK, f"{offered} offered, {needed} needed")
    return Check(
        "Ray CPUs",
        FAIL,
        f"Ray offers {offered} CPUs; verl's placement groups need {needed} (it would hang)",
        f"ray_kwargs.ray_init.num_cpus={needed}",
    )


def check_data(config: Any, facts: Facts) -> list[Check]:
    if facts.missing_files:
        return [
            Check(
                "data files",
                FAIL,
                f"not found: {facts.missing_files[0]}",
                "write them with `ssl4rl preprocess ... --out DIR` and pass --data-dir DIR",
            )
        ]
    if facts.data_error:
        return [Check("data files", FAIL, facts.data_error)]
    checks = []
    batch = int(config.data.train_batch_size)
    rows = facts.train_rows
    steps = resources.training_steps(config, rows)
    if rows < batch:
        checks.append(
            Check(
                "train rows",
                FAIL,
                f"{rows} rows < data.train_batch_size {batch}: verl would run 0 steps and exit 0",
                "build more data, or lower data.train_batch_size (and ppo_mini_batch_size)",
            )
        )
    else:
        checks.append(Check("train rows", OK, f"{rows} rows, batch {batch}: {steps} steps"))
    val_rows = sum(p.rows for p in facts.val)
    checks.append(
        Check("val rows", OK, f"{val_rows} rows")
        if val_rows
        else Check(
            "val rows", WARN, "no validation rows", "pass --val or --holdout-fraction to ssl4rl preprocess"
        )
    )
    checks.append(check_prompt_tokens(config, facts))
    mismatched = sum(p.placeholder_mismatch for p in facts.train + facts.val)
    if mismatched:
        checks.append(
            Check(
                "placeholders",
                FAIL,
                f"{mismatched} rows whose <image> count differs from their images",
                "rewrite them with ssl4rl preprocess",
            )
        )
    limit = _select(config, "actor_rollout_ref.rollout.limit_images")
    if limit and facts.max_images > int(limit):
        checks.append(
            Check(
                "images/prompt",
                FAIL,
                f"rows with {facts.max_images} images; vLLM limit_images={limit}",
                f"actor_rollout_ref.rollout.limit_images={facts.max_images}",
            )
        )
    checks.append(check_overlap(facts))
    return checks


def check_prompt_tokens(config: Any, facts: Facts) -> Check:
    limit = int(config.data.max_prompt_length)
    parquet = [p for p in facts.train + facts.val if not p.online]
    filtered = bool(config.data.get("filter_overlong_prompts"))
    overlong = sum(p.overlong for p in parquet)
    uncounted = sum(p.uncounted for p in parquet)
    longest = max((p.max_tokens for p in parquet), default=0)
    how = (
        "counted with the model's processor" if facts.processor is not None else "stored by ssl4rl preprocess"
    )
    if facts.budget_mismatch and facts.processor is None:
        # the stored counts are another family's image tokens: nothing here can vouch for this model's
        return Check(
            "prompt tokens",
            FAIL,
            facts.budget_mismatch,
            "or pass a local --model: its processor re-counts every row",
        )
    if facts.budget_mismatch:
        how += f"; re-counted: {facts.budget_mismatch.split(';')[0]}"
    if overlong:
        example = next(p for p in parquet if p.overlong)
        detail = (
            f"{overlong} rows over data.max_prompt_length {limit} (longest {longest}; e.g. row "
            f"{example.overlong_example} of {os.path.basename(example.path)}; {how})"
        )
        if filtered:
            return Check(
                "prompt tokens", WARN, detail + ": verl's overlong filter will drop them at start-up"
            )
        if facts.processor is None:  # the builder's counts bound the text tokens from above
            return Check(
                "prompt tokens",
                WARN,
                detail.replace(" rows over", " rows may be over"),
                "pass a local --model to count exactly with its processor",
            )
        return Check(
            "prompt tokens",
            FAIL,
            detail + ": verl's agent loop would stop the run on the first one",
            "rebuild with ssl4rl build --max-prompt-tokens 1024, or data.filter_overlong_prompts=true",
        )
    if uncounted:
        detail = f"{uncounted} rows have no token count ({facts.processor_error or 'no processor'})"
        if filtered:
            return Check("prompt tokens", OK, detail + "; verl's overlong filter checks them at start-up")
        return Check(
            "prompt tokens",
            FAIL,
            detail,
            "pass a local --model, or turn verl's filter on: data.filter_overlong_prompts=true",
        )
    online = (
        " (online specs generate within the limit)" if any(p.online for p in facts.train + facts.val) else ""
    )
    return Check("prompt tokens", OK, f"every row <= {limit} (longest {longest}; {how}){online}")


def check_overlap(facts: Facts) -> Check:
    val = set().union(*(p.digests for p in facts.val)) if facts.val else set()
    train = set().union(*(p.digests for p in facts.train)) if facts.train else set()
    shared = len(val & train)
    if not shared:
        return Check("train/val overlap", OK, "no validation row appears in training")
    if facts.paper_split:
        return Check(
            "train/val overlap",
            OK,
            f"{shared} validation rows are trained on (--paper-split, as the release: validation is not held out)",
        )
    return Check(
        "train/val overlap",
        FAIL,
        f"{shared} of {len(val)} validation rows are also training rows",
        "preprocess with --holdout-fraction, or separate --train and --val inputs",
    )


def check_checkpoints(config: Any, launch: Launch | None) -> Check:
    run_dir = str(config.trainer.default_local_dir)
    mode = str(_select(config, "trainer.resume_mode", "auto"))
    if not os.path.isabs(run_dir):
        return Check(
            "checkpoints",
            FAIL,
            f"trainer.default_local_dir {run_dir} is relative: each node resolves it in its own cwd",
            "give an absolute path on a shared filesystem",
        )
    existing = has_checkpoints(run_dir)
    resuming = launch.resuming if launch is not None else mode != "disable"
    if existing and not resuming:
        return Check(
            "checkpoints",
            FAIL,
            f"{run_dir} holds an earlier run's global_step_* (resume_mode={mode})",
            "continue it with --resume, or start a fresh run (a new --run-id)",
        )
    if existing:
        return Check("checkpoints", OK, f"resuming {run_dir}")
    return Check("checkpoints", OK, f"fresh run in {run_dir}")


def check_disk(config: Any, facts: Facts) -> Check:
    if facts.params is None:
        return Check("disk", SKIP, "checkpoint size unknown (the model is not on this machine)")
    steps = resources.training_steps(config, facts.train_rows)
    kept = resources.checkpoints_kept(config, steps)
    one_save = resources.checkpoint_bytes(facts.params, facts.adapter_params)
    need = kept * one_save
    probe = str(config.trainer.default_local_dir)
    while not os.path.exists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    free = shutil.disk_usage(probe).free
    detail = (
        f"{kept} checkpoint(s) x {one_save / GIB:.1f} GiB = {need / GIB:.1f} GiB; "
        f"{free / GIB:.1f} GiB free at {probe}"
    )
    if need <= free:
        return Check("disk", OK, detail)
    return Check(
        "disk",
        FAIL,
        detail,
        "free space, point --checkpoint-root elsewhere, or lower trainer.max_actor_ckpt_to_keep",
    )


def check_processor(facts: Facts) -> Check:
    if facts.model_dir is None:
        return Check("processor", SKIP, facts.processor_error or "the model is not on this machine")
    if facts.processor is None:
        return Check(
            "processor",
            FAIL,
            f"{facts.model_dir}: {facts.processor_error}",
            "the model directory needs its processor, tokenizer and chat template files",
        )
    tokenizer = getattr(facts.processor, "tokenizer", facts.processor)
    if not (getattr(facts.processor, "chat_template", None) or getattr(tokenizer, "chat_template", None)):
        return Check(
            "processor",
            FAIL,
            f"{facts.model_dir} has no chat template",
            "copy chat_template.jinja from the base model",
        )
    return Check("processor", OK, f"{type(facts.processor).__name__} from {facts.model_dir}")


def run_checks(
    config: Any, facts: Facts, launch: Launch | None, *, login: bool, local_ray: bool, imports: bool = True
) -> list[Check]:
    """All checks. On a login node the GPU-machine checks are skipped and a missing or mismatched training
    stack is a warning (the job runs elsewhere); on the node that trains it is a failure."""
    attention = launch.attention if launch is not None else "flash_attention_2"
    stack = WARN if login else FAIL
    checks = [check_python(), check_packages(stack)]
    checks.append(
        check_imports(config, attention, stack) if imports else Check("trainer imports", SKIP, "not asked")
    )
    if login:
        checks += [Check(name, SKIP, "login node") for name in ("CUDA", "GPUs", "Ray CPUs")]
        checks.append(
            check_memory(config, facts) if facts.gpu_bytes else Check("GPU memory", SKIP, "login node")
        )
    else:
        checks += [
            check_cuda(facts),
            check_gpus(config, facts, local_ray=local_ray),
            check_memory(config, facts),
        ]
        checks.append(check_ray_cpus(config, local_ray=local_ray))
    checks += check_data(config, facts)
    checks += [check_checkpoints(config, launch), check_disk(config, facts), check_processor(facts)]
    return checks


def report(checks: list[Check]) -> str:
    failed = sum(c.status == FAIL for c in checks)
    summary = f"{failed} check(s) failed" if failed else "all checks passed"
    return "\n".join([*(c.line() for c in checks), summary])


def failed(checks: list[Check]) -> bool:
    return any(c.status == FAIL for c in checks)


# ---- the whole pre-flight, as `ssl4rl train` and `ssl4rl doctor` run it -------------------------------------


@dataclass
class Preflight:
    launch: Launch
    config: Any  # None when the config does not compose or verl rejects it
    facts: Facts | None
    checks: list[Check]


def uses_local_ray(launch: Launch) -> bool:
    """verl starts its own single-node Ray here (no RAY_ADDRESS, one node): this machine's GPUs and CPUs count."""
    return not os.environ.get("RAY_ADDRESS") and launch.layout.nnodes == 1


def composed_config(launch: Launch) -> Any:

    config = compose(launch.config_dir, launch.config_name, launch.overrides)
    check_config(config)
    return config


def preflight(
    launch: Launch,
    *,
    login: bool,
    gpu_memory_gb: float | None = None,
    progress: bool = True,
    imports: bool = True,
) -> Preflight:
    """Compose and validate the config, measure the data, model and machine, apply the adjustments those
    measurements call for (recomposing), then run every check on the final config."""
    local_ray = uses_local_ray(launch)
    try:
        config = composed_config(launch)
    except UserError as exc:
        return Preflight(launch, None, None, [check_python(), Check("verl config", FAIL, str(exc))])
    facts = gather_facts(config, gpu_memory_gb=gpu_memory_gb, progress=progress)
    values, notes = adjustments(config, facts, launch, local_ray=local_ray and not login)
    if values:
        launch = launch.with_adjustments(values, notes)
        config = composed_config(launch)
    checks = run_checks(config, facts, launch, login=login, local_ray=local_ray, imports=imports)
    ok = Check("verl config", OK, f"composes and passes verl's validate_config on {launch.layout} GPUs")
    checks.insert(3, ok)  # after python, packages, trainer imports
    return Preflight(launch, config, facts, checks)
