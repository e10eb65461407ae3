"""ADM (guided-diffusion) -> diffusers UNet2DModel conversion, checked against an independent reference.

The guided-diffusion key layout is generated here from a description of its UNetModel
(resblock_updown, use_scale_shift_norm, legacy attention order, num_head_channels) at a reduced
width, and `reference_forward` is a functional re-implementation of that model's forward written
for this test; the converted diffusers model must reproduce it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from harness.models.adm_convert import (
    ADM_256_UNCOND,
    ADM_256_UNCOND_URL,
    ADMArchitecture,
    build_unet,
    convert_adm_checkpoint,
    convert_state_dict,
    load_adm_state_dict,
    split_legacy_qkv,
)
from harness.models.denoiser import load_denoiser

# Width 32, 64x64 images, attention at downsampling rates 8, 16, 32 (as ADM-256 at 32,16,8),
# 16-channel heads so attention blocks have 4 and 8 heads.
SMALL = ADMArchitecture(image_size=64, model_channels=32, attention_resolutions=(8, 4, 2), num_head_channels=16)


def adm_layout(arch: ADMArchitecture) -> list[tuple[str, str, list[tuple]]]:
    """guided-diffusion UNetModel blocks in forward order: (prefix, stage, layers).

    stage is 'in' (output pushed as a skip), 'mid', or 'out' (a skip is concatenated first);
    a layer is ('res', c_in, c_out, updown) or ('attn', channels).
    """
    mc = arch.model_channels
    blocks: list[tuple[str, str, list[tuple]]] = []
    ch, ds, skips, k = mc * arch.channel_mult[0], 1, [mc * arch.channel_mult[0]], 1
    rates = {arch.image_size // r for r in arch.attention_resolutions}
    for level, mult in enumerate(arch.channel_mult):
        for _ in range(arch.num_res_blocks):
            layers: list[tuple] = [("res", ch, mult * mc, None)]
            ch = mult * mc
            if ds in rates:
                layers.append(("attn", ch))
            blocks.append((f"input_blocks.{k}", "in", layers))
            skips.append(ch)
            k += 1
        if level != len(arch.channel_mult) - 1:
            blocks.append((f"input_blocks.{k}", "in", [("res", ch, ch, "down")]))
            skips.append(ch)
            k += 1
            ds *= 2
    blocks.append(("middle_block", "mid", [("res", ch, ch, None), ("attn", ch), ("res", ch, ch, None)]))
    k = 0
    for level, mult in reversed(list(enumerate(arch.channel_mult))):
        for i in range(arch.num_res_blocks + 1):
            layers = [("res", ch + skips.pop(), mc * mult, None)]
            ch = mc * mult
            if ds in rates:
                layers.append(("attn", ch))
            if level and i == arch.num_res_blocks:
                layers.append(("res", ch, ch, "up"))
                ds //= 2
            blocks.append((f"output_blocks.{k}", "out", layers))
            k += 1
    return blocks


def random_adm_state_dict(arch: ADMArchitecture, seed: int = 0) -> dict[str, torch.Tensor]:
    """A randomly initialised state dict with guided-diffusion's key names and shapes (no zero init)."""
    gen = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}

    def lin(name: str, out_f: int, in_f: int, *kernel: int) -> None:
        fan_in = in_f * math.prod(kernel)
        sd[f"{name}.weight"] = torch.randn(out_f, in_f, *kernel, generator=gen) / math.sqrt(fan_in)
        sd[f"{name}.bias"] = 0.1 * torch.randn(out_f, generator=gen)

    def norm(name: str, c: int) -> None:
        sd[f"{name}.weight"] = 1 + 0.1 * torch.randn(c, generator=gen)
        sd[f"{name}.bias"] = 0.1 * torch.randn(c, generator=gen)

    mc, emb = arch.model_channels, 4 * arch.model_channels
    lin("time_embed.0", emb, mc)
    lin("time_embed.2", emb, emb)
    lin("input_blocks.0.0", mc * arch.channel_mult[0], 3, 3, 3)
    for prefix, _, layers in adm_layout(arch):
        for j, layer in enumerate(layers):
            p = f"{prefix}.{j}" if prefix != "middle_block" else f"middle_block.{j}"
            if layer[0] == "res":
                _, cin, cout, _ = layer
                norm(f"{p}.in_layers.0", cin)
                lin(f"{p}.in_layers.2", cout, cin, 3, 3)
                lin(f"{p}.emb_layers.1", 2 * cout, emb)
                norm(f"{p}.out_layers.0", cout)
                lin(f"{p}.out_layers.3", cout, cout, 3, 3)
                if cin != cout:
                    lin(f"{p}.skip_connection", cout, cin, 1, 1)
            else:
                c = layer[1]
                norm(f"{p}.norm", c)
                lin(f"{p}.qkv", 3 * c, c, 1)
                lin(f"{p}.proj_out", c, c, 1)
    norm("out.0", mc)
    lin("out.2", arch.out_channels, mc, 3, 3)
    return sd


# --- an independent functional forward of guided-diffusion's UNetModel -----------------------------


def ref_timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """[cos | sin] of t * 10000^(-i/half), in float32 as guided-diffusion computes it."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
    args = t[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def ref_attention(sd: dict, p: str, x: torch.Tensor, head_channels: int) -> torch.Tensor:
    """AttentionBlock with QKVAttentionLegacy: heads split BEFORE q, k, v."""
    b, c, hgt, wid = x.shape
    flat = x.reshape(b, c, -1)
    qkv = F.conv1d(
        F.group_norm(flat, 32, sd[f"{p}.norm.weight"], sd[f"{p}.norm.bias"], 1e-5),
        sd[f"{p}.qkv.weight"],
        sd[f"{p}.qkv.bias"],
    )
    heads = c // head_channels
    q, k, v = qkv.reshape(b * heads, 3 * head_channels, -1).split(head_channels, dim=1)
    scale = head_channels**-0.25
    w = torch.softmax(torch.einsum("bct,bcs->bts", q * scale, k * scale), dim=-1)
    a = torch.einsum("bts,bcs->bct", w, v).reshape(b, c, -1)
    h = F.conv1d(a, sd[f"{p}.proj_out.weight"], sd[f"{p}.proj_out.bias"])
    return (flat + h).reshape(b, c, hgt, wid)


def ref_resblock(sd: dict, p: str, x: torch.Tensor, emb: torch.Tensor, updown: str | None) -> torch.Tensor:
    h = F.silu(F.group_norm(x, 32, sd[f"{p}.in_layers.0.weight"], sd[f"{p}.in_layers.0.bias"], 1e-5))
    if updown == "down":
        h, x = F.avg_pool2d(h, 2), F.avg_pool2d(x, 2)
    elif updown == "up":
        h, x = (F.interpolate(v, scale_factor=2, mode="nearest") for v in (h, x))
    h = F.conv2d(h, sd[f"{p}.in_layers.2.weight"], sd[f"{p}.in_layers.2.bias"], padding=1)
    emb_out = F.linear(F.silu(emb), sd[f"{p}.emb_layers.1.weight"], sd[f"{p}.emb_layers.1.bias"])
    scale, shift = emb_out.chunk(2, dim=1)
    h = F.group_norm(h, 32, sd[f"{p}.out_layers.0.weight"], sd[f"{p}.out_layers.0.bias"], 1e-5)
    h = h * (1 + scale[..., None, None]) + shift[..., None, None]
    h = F.conv2d(F.silu(h), sd[f"{p}.out_layers.3.weight"], sd[f"{p}.out_layers.3.bias"], padding=1)
    skip = x
    if f"{p}.skip_connection.weight" in sd:
        skip = F.conv2d(x, sd[f"{p}.skip_connection.weight"], sd[f"{p}.skip_connection.bias"])
    return skip + h


def reference_forward(sd: dict, arch: ADMArchitecture, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    emb = ref_timestep_embedding(t, arch.model_channels).to(x.dtype)
    emb = F.linear(
        F.silu(F.linear(emb, sd["time_embed.0.weight"], sd["time_embed.0.bias"])),
        sd["time_embed.2.weight"],
        sd["time_embed.2.bias"],
    )
    h = F.conv2d(x, sd["input_blocks.0.0.weight"], sd["input_blocks.0.0.bias"], padding=1)
    skips = [h]
    for prefix, stage, layers in adm_layout(arch):
        if stage == "out":
            h = torch.cat([h, skips.pop()], dim=1)
        for j, layer in enumerate(layers):
            p = f"{prefix}.{j}"
            if layer[0] == "res":
                h = ref_resblock(sd, p, h, emb, layer[3])
            else:
                h = ref_attention(sd, p, h, arch.num_head_channels)
        if stage == "in":
            skips.append(h)
    h = F.silu(F.group_norm(h, 32, sd["out.0.weight"], sd["out.0.bias"], 1e-5))
    return F.conv2d(h, sd["out.2.weight"], sd["out.2.bias"], padding=1)


@pytest.fixture(scope="module")
def small_adm():
    sd = random_adm_state_dict(SMALL)
    return sd, build_unet(SMALL, sd)


def test_layout_has_adm256_parameter_count():
    """The generated key layout at full width has guided-diffusion's published count (552,814,086)."""
    arch = ADM_256_UNCOND
    mc, emb = arch.model_channels, 4 * arch.model_channels
    count = 0
    for _, _, layers in adm_layout(arch):
        for layer in layers:
            if layer[0] == "res":
                _, cin, cout, _ = layer
                count += 2 * cin + cout * cin * 9 + cout + 2 * cout * emb + 2 * cout + 2 * cout
                count += cout * cout * 9 + cout + (cout * cin + cout if cin != cout else 0)
            else:
                c = layer[1]
                count += 2 * c + 3 * c * c + 3 * c + c * c + c
    count += mc * emb + emb + emb * emb + emb + 3 * mc * 9 + mc + 2 * mc + 6 * mc * 9 + 6
    assert count == 552_814_086


def test_key_mapping_covers_every_parameter(small_adm):
    sd, unet = small_adm
    converted = convert_state_dict(sd, SMALL)
    expected = unet.state_dict()
    assert set(converted) == set(expected)
    assert all(converted[k].shape == expected[k].shape for k in expected)
    n_adm = sum(v.numel() for v in sd.values())
    assert n_adm == sum(p.numel() for p in unet.parameters())


def test_legacy_qkv_split_is_per_head():
    c, ch = 8, 2
    w = torch.arange(3 * c, dtype=torch.float32).view(3 * c, 1, 1).expand(3 * c, c, 1).contiguous()
    out = split_legacy_qkv(w, torch.arange(3 * c, dtype=torch.float32), ch)
    # head h owns rows [6h, 6h+6): q = 6h..6h+1, k = 6h+2..6h+3, v = 6h+4..6h+5
    assert out["to_q.bias"].tolist() == [0, 1, 6, 7, 12, 13, 18, 19]
    assert out["to_k.bias"].tolist() == [2, 3, 8, 9, 14, 15, 20, 21]
    assert out["to_v.weight"][:, 0].tolist() == [4, 5, 10, 11, 16, 17, 22, 23]


def test_attention_block_matches_legacy_reference(small_adm):
    sd, unet = small_adm
    unet = unet.double()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, SMALL.channels[-1], 2, 2, dtype=torch.float64, generator=gen)
    sd64 = {k: v.double() for k, v in sd.items()}
    ref = ref_attention(sd64, "middle_block.1", x, SMALL.num_head_channels)
    with torch.no_grad():
        got = unet.mid_block.attentions[0](x)
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10)
    # the naive [q|k|v] split would not reproduce it
    assert not torch.allclose(ref, ref_attention_naive(sd64, "middle_block.1", x, SMALL.num_head_channels))


def ref_attention_naive(sd: dict, p: str, x: torch.Tensor, head_channels: int) -> torch.Tensor:
    """The wrong ([q|k|v] first, then heads) reading of the same weights."""
    b, c, hgt, wid = x.shape
    flat = x.reshape(b, c, -1)
    qkv = F.conv1d(
        F.group_norm(flat, 32, sd[f"{p}.norm.weight"], sd[f"{p}.norm.bias"], 1e-5),
        sd[f"{p}.qkv.weight"],
        sd[f"{p}.qkv.bias"],
    )
    q, k, v = (t.reshape(b * (c // head_channels), head_channels, -1) for t in qkv.chunk(3, dim=1))
    w = torch.softmax(torch.einsum("bct,bcs->bts", q, k) / math.sqrt(head_channels), dim=-1)
    a = torch.einsum("bts,bcs->bct", w, v).reshape(b, c, -1)
    return (flat + F.conv1d(a, sd[f"{p}.proj_out.weight"], sd[f"{p}.proj_out.bias"])).reshape(b, c, hgt, wid)


def test_timestep_embedding_matches_reference(small_adm):
    sd, unet = small_adm
    t = torch.tensor([0, 177, 999])
    ref = ref_timestep_embedding(t, SMALL.model_channels).double()
    w = {k: v.double() for k, v in sd.items() if k.startswith("time_embed")}
    ref = F.linear(
        F.silu(F.linear(ref, w["time_embed.0.weight"], w["time_embed.0.bias"])),
        w["time_embed.2.weight"],
        w["time_embed.2.bias"],
    )
    unet = unet.double()
    with torch.no_grad():
        got = unet.time_embedding(unet.time_proj(t).double())
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10)


def test_full_forward_matches_reference(small_adm):
    sd, unet = small_adm
    unet = unet.double()
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, SMALL.image_size, SMALL.image_size, dtype=torch.float64, generator=gen)
    t = torch.tensor([3, 400])
    ref = reference_forward({k: v.double() for k, v in sd.items()}, SMALL, x, t)
    with torch.no_grad():
        got = unet(x, t).sample
    assert got.shape == (2, 6, SMALL.image_size, SMALL.image_size)
    torch.testing.assert_close(got, ref, rtol=1e-9, atol=1e-9)


def test_convert_checkpoint_roundtrip_through_load_denoiser(tmp_path: Path, small_adm):
    sd, unet = small_adm
    ckpt = tmp_path / "adm.pt"
    torch.save(sd, ckpt)
    out = convert_adm_checkpoint(ckpt, tmp_path / "converted", SMALL)
    den = load_denoiser(out)
    assert den.learned_sigma and den.sample_size == SMALL.image_size
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        t = torch.tensor([10])
        torch.testing.assert_close(den.unet(x, t).sample, unet.float()(x, t).sample)
    # a classifier-sized input (48 px here, 224 for ViT-B) is resized to the UNet's 64 and back
    seen = []
    den.unet.register_forward_hook(lambda mod, args, out: seen.append(tuple(args[0].shape[-2:])))
    assert den.one_shot(torch.rand(1, 3, 48, 48), 0.1).shape == (1, 3, 48, 48)
    assert seen == [(64, 64)]


def test_wrong_architecture_is_named(tmp_path: Path, small_adm):
    sd, _ = small_adm
    with pytest.raises(ValueError, match="shape mismatch"):
        build_unet(
            ADMArchitecture(image_size=64, model_channels=64, attention_resolutions=(8, 4, 2), num_head_channels=16),
            {k: v for k, v in sd.items()},
        )
    with pytest.raises(ValueError, match="unknown key"):
        build_unet(SMALL, {**sd, "label_emb.weight": torch.zeros(10, 128)})
    with pytest.raises(ValueError, match="missing"):
        build_unet(SMALL, {k: v for k, v in sd.items() if not k.startswith("out.2")})
    bad = tmp_path / "not_a_state_dict.pt"
    torch.save([1, 2, 3], bad)
    with pytest.raises(ValueError, match="plain state dict"):
        load_adm_state_dict(bad)
    with pytest.raises(FileNotFoundError, match="256x256_diffusion_uncond.pt"):
        load_adm_state_dict(tmp_path / "missing.pt")


@pytest.mark.gpu
def test_real_adm256_one_shot_raises_psnr(tmp_path: Path):
    """The converted ADM-256 denoises real-looking images: PSNR rises at sigma = 0.12, 0.25, 0.5."""
    path = os.environ.get("FVIT_ADM_CHECKPOINT")
    if not path or not Path(path).is_file():
        pytest.skip(
            f"missing ADM checkpoint 256x256_diffusion_uncond.pt: set FVIT_ADM_CHECKPOINT to its path "
            f"(download it from {ADM_256_UNCOND_URL})"
        )
    from harness.data.embedded import EmbeddedShapes, stack

    device = "cuda" if torch.cuda.is_available() else "cpu"
    den = load_denoiser(convert_adm_checkpoint(path, tmp_path / "adm256")).to(device)
    images, _, _ = stack(EmbeddedShapes("test"), range(4))
    images = F.interpolate(images, size=(224, 224), mode="bilinear", align_corners=False).to(device)
    gen = torch.Generator(device=device).manual_seed(0)
    for sigma in (0.12, 0.25, 0.5):
        noisy = images + sigma * torch.randn(images.shape, generator=gen, device=device)
        denoised = den.one_shot(noisy, sigma)
        psnr_in = -10 * torch.log10(F.mse_loss(noisy.clamp(0, 1), images))
        psnr_out = -10 * torch.log10(F.mse_loss(denoised, images))
        assert psnr_out > psnr_in + 1.0, (sigma, psnr_in.item(), psnr_out.item())
