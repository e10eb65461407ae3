"""Convert guided-diffusion's ADM UNet (e.g. `256x256_diffusion_uncond.pt`) to a diffusers UNet2DModel.

The checkpoint is a plain state dict of guided-diffusion's `UNetModel`; diffusers has no loader for it
(ECOSYSTEM.md). `ADMArchitecture` describes the model by its guided-diffusion flags (width is a
parameter, so tests can build the same key layout at a reduced width); `unet_config` gives the
equivalent UNet2DModel config; `convert_state_dict` renames every key and splits the attention's
fused qkv, which ADM-256 stores in the LEGACY per-head order [q_h | k_h | v_h] for each head h
(`QKVAttentionLegacy`), into diffusers' separate to_q / to_k / to_v. 1-d convolutions (qkv,
proj_out) become Linear weights. `convert_adm_checkpoint` writes a folder `load_denoiser` reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import DDPMScheduler, UNet2DModel

from harness.smoothing.timesteps import BETA_END, BETA_START, NUM_TRAIN_STEPS

ADM_256_UNCOND_URL = "https://openaipublic.blob.core.windows.net/diffusion/jul-2021/256x256_diffusion_uncond.pt"

StateDict = dict[str, torch.Tensor]


@dataclass(frozen=True)
class ADMArchitecture:
    """guided-diffusion UNetModel flags (defaults: 256x256_diffusion_uncond) with resblock_updown,
    use_scale_shift_norm, legacy attention order and num_head_channels (not num_heads)."""

    image_size: int = 256
    model_channels: int = 256
    channel_mult: tuple[int, ...] = (1, 1, 2, 2, 4, 4)
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (32, 16, 8)
    num_head_channels: int = 64
    learn_sigma: bool = True

    @property
    def channels(self) -> list[int]:
        return [self.model_channels * m for m in self.channel_mult]

    @property
    def attention_levels(self) -> set[int]:
        """Levels whose downsampling rate ds = 2**level is in image_size // attention_resolutions."""
        rates = {self.image_size // r for r in self.attention_resolutions}
        return {level for level in range(len(self.channel_mult)) if 2**level in rates}

    @property
    def out_channels(self) -> int:
        return 6 if self.learn_sigma else 3

    def unet_config(self) -> dict:
        """The equivalent diffusers UNet2DModel config (see ECOSYSTEM.md, 'diffusers')."""
        levels = range(len(self.channel_mult))
        attn = self.attention_levels
        return dict(
            sample_size=self.image_size,
            in_channels=3,
            out_channels=self.out_channels,
            block_out_channels=tuple(self.channels),
            layers_per_block=self.num_res_blocks,
            down_block_types=tuple("AttnDownBlock2D" if i in attn else "ResnetDownsampleBlock2D" for i in levels),
            up_block_types=tuple("AttnUpBlock2D" if i in attn else "ResnetUpsampleBlock2D" for i in reversed(levels)),
            attention_head_dim=self.num_head_channels,
            resnet_time_scale_shift="scale_shift",
            downsample_type="resnet",
            upsample_type="resnet",
            norm_num_groups=32,
            norm_eps=1e-5,
            attn_norm_num_groups=32,
            flip_sin_to_cos=True,
            freq_shift=0,
        )


ADM_256_UNCOND = ADMArchitecture()

_RESBLOCK = {
    "in_layers.0": "norm1",
    "in_layers.2": "conv1",
    "emb_layers.1": "time_emb_proj",
    "out_layers.0": "norm2",
    "out_layers.3": "conv2",
    "skip_connection": "conv_shortcut",
}
_ATTENTION_PARAMS = {"norm.weight", "norm.bias", "qkv.weight", "qkv.bias", "proj_out.weight", "proj_out.bias"}
_TOP = {
    "time_embed.0": "time_embedding.linear_1",
    "time_embed.2": "time_embedding.linear_2",
    "input_blocks.0.0": "conv_in",
    "out.0": "conv_norm_out",
    "out.2": "conv_out",
}


def module_map(arch: ADMArchitecture) -> dict[str, tuple[str, str]]:
    """guided-diffusion module prefix -> (diffusers module prefix, kind in {plain, res, attn})."""
    out: dict[str, tuple[str, str]] = {k: (v, "plain") for k, v in _TOP.items()}
    attn, n_levels = arch.attention_levels, len(arch.channel_mult)
    k = 1
    for level in range(n_levels):
        for j in range(arch.num_res_blocks):
            out[f"input_blocks.{k}.0"] = (f"down_blocks.{level}.resnets.{j}", "res")
            if level in attn:
                out[f"input_blocks.{k}.1"] = (f"down_blocks.{level}.attentions.{j}", "attn")
            k += 1
        if level != n_levels - 1:
            out[f"input_blocks.{k}.0"] = (f"down_blocks.{level}.downsamplers.0", "res")
            k += 1
    out["middle_block.0"] = ("mid_block.resnets.0", "res")
    out["middle_block.1"] = ("mid_block.attentions.0", "attn")
    out["middle_block.2"] = ("mid_block.resnets.1", "res")
    k = 0
    for up, level in enumerate(reversed(range(n_levels))):
        for i in range(arch.num_res_blocks + 1):
            out[f"output_blocks.{k}.0"] = (f"up_blocks.{up}.resnets.{i}", "res")
            sub = 1
            if level in attn:
                out[f"output_blocks.{k}.1"] = (f"up_blocks.{up}.attentions.{i}", "attn")
                sub = 2
            if level != 0 and i == arch.num_res_blocks:
                out[f"output_blocks.{k}.{sub}"] = (f"up_blocks.{up}.upsamplers.0", "res")
            k += 1
    return out


def split_legacy_qkv(weight: torch.Tensor, bias: torch.Tensor, head_channels: int) -> dict[str, torch.Tensor]:
    """Fused legacy qkv (conv1d weight (3C, C, 1), bias (3C,)) -> to_q/to_k/to_v Linear weights and biases.

    Rows are ordered per head: head h owns rows [3ch h, 3ch (h+1)) = [q_h | k_h | v_h], ch = head_channels.
    """
    three_c, c = weight.shape[0], weight.shape[1]
    heads = c // head_channels
    if three_c != 3 * c or heads * head_channels != c:
        raise ValueError(f"qkv weight of shape {tuple(weight.shape)} does not fit {head_channels}-channel heads")
    w = weight.reshape(heads, 3, head_channels, c)
    b = bias.reshape(heads, 3, head_channels)
    out = {}
    for i, name in enumerate(("to_q", "to_k", "to_v")):
        out[f"{name}.weight"] = w[:, i].reshape(c, c).contiguous()
        out[f"{name}.bias"] = b[:, i].reshape(c).contiguous()
    return out


def convert_state_dict(adm: StateDict, arch: ADMArchitecture = ADM_256_UNCOND) -> StateDict:
    """Rename/reshape every tensor of a guided-diffusion state dict to UNet2DModel keys.

    Raises ValueError naming unknown keys (a checkpoint of another architecture).
    """
    modules = module_map(arch)
    by_module: dict[str, dict[str, torch.Tensor]] = {}
    unknown = []
    for key, value in adm.items():
        prefix, _, param = key.rpartition(".")
        match = next((m for m in _prefixes(prefix) if m in modules), None)
        if match is None:
            unknown.append(key)
            continue
        local = prefix[len(match) + 1 :] if len(prefix) > len(match) else ""
        by_module.setdefault(match, {})[f"{local}.{param}" if local else param] = value
    if unknown:
        raise ValueError(
            f"checkpoint is not a guided-diffusion UNet of the expected architecture {arch}: "
            f"{len(unknown)} unknown key(s), e.g. {unknown[:5]}"
        )
    out: StateDict = {}
    for adm_prefix, params in by_module.items():
        target, kind = modules[adm_prefix]
        if kind == "plain":
            out.update({f"{target}.{p}": v for p, v in params.items()})
        elif kind == "res":
            for p, v in params.items():
                sub, _, name = p.rpartition(".")
                if sub not in _RESBLOCK:
                    raise ValueError(f"unexpected ResBlock parameter {adm_prefix}.{p} in the checkpoint")
                out[f"{target}.{_RESBLOCK[sub]}.{name}"] = v
        else:
            if set(params) != _ATTENTION_PARAMS:
                raise ValueError(
                    f"attention block {adm_prefix} has parameters {sorted(params)}, "
                    f"expected {sorted(_ATTENTION_PARAMS)}"
                )
            out[f"{target}.group_norm.weight"] = params["norm.weight"]
            out[f"{target}.group_norm.bias"] = params["norm.bias"]
            qkv = split_legacy_qkv(params["qkv.weight"], params["qkv.bias"], arch.num_head_channels)
            out.update({f"{target}.{p}": v for p, v in qkv.items()})
            out[f"{target}.to_out.0.weight"] = params["proj_out.weight"][..., 0]
            out[f"{target}.to_out.0.bias"] = params["proj_out.bias"]
    return out


def _prefixes(prefix: str) -> list[str]:
    """'a.b.c' -> ['a.b.c', 'a.b', 'a']: the longest known module prefix wins."""
    parts = prefix.split(".")
    return [".".join(parts[:i]) for i in range(len(parts), 0, -1)]


def build_unet(arch: ADMArchitecture = ADM_256_UNCOND, adm: StateDict | None = None) -> UNet2DModel:
    """A UNet2DModel of `arch`, loaded from guided-diffusion state dict `adm` if given (strict)."""
    unet = UNet2DModel(**arch.unet_config())
    if adm is not None:
        converted = convert_state_dict(adm, arch)
        expected = unet.state_dict()
        missing = sorted(set(expected) - set(converted))
        extra = sorted(set(converted) - set(expected))
        bad = [k for k in expected.keys() & converted.keys() if expected[k].shape != converted[k].shape]
        if missing or extra or bad:
            details = "; ".join(
                f"{label}: {keys[:3]}{' ...' if len(keys) > 3 else ''}"
                for label, keys in (("missing", missing), ("unexpected", extra), ("shape mismatch", bad))
                if keys
            )
            raise ValueError(f"checkpoint does not match the ADM architecture {arch}: {details}")
        unet.load_state_dict({k: v.float() for k, v in converted.items()}, strict=True)
    return unet.eval()


def load_adm_state_dict(path: str | Path) -> StateDict:
    """torch.load(weights_only=True) a guided-diffusion checkpoint; clear errors for a wrong file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"ADM checkpoint {path} not found; download 256x256_diffusion_uncond.pt from {ADM_256_UNCOND_URL}"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle/zip errors come in many types
        raise ValueError(f"{path} is not a loadable torch state dict: {err}") from err
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise ValueError(f"{path} does not hold a plain state dict of tensors (got {type(state).__name__})")
    return state


def convert_adm_checkpoint(checkpoint: str | Path, out_dir: str | Path, arch: ADMArchitecture = ADM_256_UNCOND) -> Path:
    """Convert `checkpoint` and save UNet2DModel (+ linear DDPMScheduler in scheduler/) to `out_dir`."""
    unet = build_unet(arch, load_adm_state_dict(checkpoint))
    out_dir = Path(out_dir)
    unet.save_pretrained(str(out_dir))
    DDPMScheduler(
        num_train_timesteps=NUM_TRAIN_STEPS,
        beta_start=BETA_START,
        beta_end=BETA_END,
        beta_schedule="linear",
        prediction_type="epsilon",
        variance_type="learned_range" if arch.learn_sigma else "fixed_small",
    ).save_pretrained(str(out_dir / "scheduler"))
    return out_dir
