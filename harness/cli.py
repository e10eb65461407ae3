"""The `fvit-bench` command line. Every subcommand has --help."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from harness import __version__

DEFAULT_REPORTS = Path("reports")
DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "embedded.yaml"


def _numbers(text: str) -> list[float]:
    """'0,8' -> [0.0, 8.0]."""
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a count >= 0, got {text!r}")
    return value


GALLERY_HELP = (
    "images in the report's map gallery, the first of the run (at most --limit), at PGD 8/255 as the "
    "claims; the run's own maps are reused when it computed them; 0 = no gallery (default 4)"
)


def _csv(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def _methods(text: str) -> list[str]:
    """Comma-separated method names; commas inside a plug-in's options (parentheses) do not split."""
    from harness.explainers.registry import split_names

    return split_names(text)


def _set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def _config_from_args(args: argparse.Namespace):
    from harness.runner.config import DDSSpec, build, load_config

    cfg = load_config(args.config)
    changes: dict = {}
    for key in (
        "model",
        "weights",
        "dataset",
        "dataset_root",
        "denoiser",
        "limit",
        "batch_size",
        "seed",
        "attack",
        "device",
        "dds_batch",
        "corrupt_images",
    ):
        value = getattr(args, key, None)
        if value is not None:
            changes[key] = value
    if args.methods is not None:
        changes["methods"] = tuple(args.methods)
    if getattr(args, "baselines", None) is not None:
        changes["baselines"] = args.baselines
    if args.radii is not None:
        changes["radii_255"] = tuple(args.radii)
    if args.tasks is not None:
        changes["tasks"] = tuple(args.tasks)
    if args.dds is not None or args.sigma is not None or args.samples is not None:
        # A variant keeps the config's settings for it, else its own defaults (never another variant's).
        configured = {d.variant: d for d in cfg.dds}
        variants = args.dds if args.dds is not None else list(configured)
        specs = []
        for v in variants:
            base = configured.get(v) or build(lambda v=v: DDSSpec(v))
            specs.append(
                build(
                    lambda v=v, base=base: DDSSpec(
                        v,
                        sigma=args.sigma if args.sigma is not None else base.sigma,
                        samples=args.samples if args.samples is not None else base.samples,
                        fusion=base.fusion,
                        sample_target=base.sample_target,
                    )
                )
            )
        changes["dds"] = tuple(specs)
    if args.all:
        changes["limit"] = None
    return cfg.replace(**changes) if changes else cfg


def cmd_run(args: argparse.Namespace) -> int:
    from harness.runner.main import run_and_report

    _set_threads(args.threads)
    cfg = _config_from_args(args)
    start = time.perf_counter()
    paths = run_and_report(cfg, Path(args.out), args.shard, args.num_shards, gallery=args.gallery)
    if paths:
        from harness.report.run_verdicts import run_summary

        print("\n".join(f"{name}: {path}" for name, path in paths.items() if name != "report"))
        print("\n".join(run_summary(cfg, Path(args.out))))
        print(
            f"done in {time.perf_counter() - start:.0f} s (wall clock); tables also as .csv, the per-item store "
            f"{Path(args.out) / 'rows.sqlite'}; read first: {paths['report']}"
        )
    else:
        print(f"shard done; merge all shards with `fvit-bench merge --config ... --out {args.out} --num-shards N`")
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from harness.runner.config import load_config
    from harness.runner.experiment import load_rows, merge_shards
    from harness.runner.main import write_tables

    cfg = load_config(args.config)
    merge_shards(args.out, cfg, args.num_shards)
    for path in write_tables(cfg, Path(args.out), load_rows(args.out, cfg)).values():
        print(path.read_text())
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from harness.runner.config import ExperimentConfig, config_from_dict
    from harness.runner.main import write_report

    out = Path(args.out)
    cfg_file = out / "config.json"
    if not cfg_file.is_file():
        raise FileNotFoundError(f"{cfg_file} is missing: {out} is not the output folder of `fvit-bench run`")
    data = json.loads(cfg_file.read_text())
    data.setdefault("baselines", False)  # written before runs of every method added the baseline maps
    cfg: ExperimentConfig = config_from_dict(data)
    path = write_report(cfg, out, Path(args.claims), Path(args.cost), gallery=args.gallery)
    print(f"wrote {path} and {path.with_suffix('.md')}")
    return 0


def cmd_claims(args: argparse.Namespace) -> int:
    from harness.claims.build import write_claims
    from harness.claims.registry import load_claims

    if args.action == "build":
        path = write_claims()
        print(f"wrote {path} ({len(load_claims(path))} claims)")
    elif args.action == "expectations":
        from harness.claims import expectations as ex

        verdicts = ex.EXPECTATIONS_FILE.parents[1] / "reports" / "claims" / "verdicts.csv"
        if not verdicts.is_file():
            raise FileNotFoundError(f"{verdicts} is missing: run `pytest claims/` first")
        if args.fresh and args.also_seen:
            raise ValueError("--fresh redraws every entry and --also-seen keeps them: choose one")
        if args.also_seen:
            draw = ex.numerics_draw()
            text, changed = ex.record_also_seen(verdicts, ex.load_expectations(), draw)
            ex.EXPECTATIONS_FILE.write_text(text)
            print(f"{len(changed)} claims with another outcome on {draw}: {', '.join(changed) or 'none'}")
        else:
            keep = {} if args.fresh else ex.load_expectations()
            ex.EXPECTATIONS_FILE.write_text(ex.draft_expectations(verdicts, keep))
        print(f"wrote {ex.EXPECTATIONS_FILE} from {verdicts}: review every reason before committing it")
    else:
        for claim in load_claims():
            target = f"{claim.reported} +/- {claim.tolerance}" if claim.kind == "value" else claim.relation
            print(f"{claim.id:70s} {claim.metric} ({claim.convention}): {target}")
    return 0


def cmd_train_mini(args: argparse.Namespace) -> int:
    kw = dict(seed=args.seed, threads=args.threads)
    if args.steps is not None:
        kw["steps"] = args.steps
    if args.batch_size is not None:
        kw["batch_size"] = args.batch_size
    if args.train_size is not None:
        kw["train_size"] = args.train_size
    recipe = set(kw) == {"seed", "threads"} and args.seed == 0  # no override: the shipped checkpoint's stages
    if not recipe and args.from_stage:
        raise ValueError(
            "--from-stage runs the recipe's stages: it takes no --steps, --batch-size, --train-size or --seed"
        )
    if args.model == "vit":
        from harness.models.mini import MINI_VIT_DIR
        from harness.train.mini_vit import train_mini_vit, train_mini_vit_recipe

        out = Path(args.out or MINI_VIT_DIR)
        if recipe:
            meta = train_mini_vit_recipe(out, threads=args.threads, start=args.from_stage)
        else:
            meta = train_mini_vit(out, **kw)  # one stage with the given settings
    else:
        from harness.models.mini import MINI_DENOISER_DIR
        from harness.train.mini_denoiser import train_mini_denoiser, train_mini_denoiser_recipe

        out = Path(args.out or MINI_DENOISER_DIR)
        if recipe:
            meta = train_mini_denoiser_recipe(out, threads=args.threads, start=args.from_stage)
        else:
            meta = train_mini_denoiser(out, **kw)  # one stage with the given settings
    print(json.dumps(meta, indent=2))
    return 0


def cmd_explainers(args: argparse.Namespace) -> int:
    from harness.explainers.registry import get_spec, names

    for name in names(baselines=True):
        spec = get_spec(name)
        opts = ", ".join(f"{k}={v!r}" for k, v in spec.defaults.items()) or "-"
        kind = "baseline map" if spec.baseline else "class-specific" if spec.is_class_specific() else "class-agnostic"
        print(f"{name:28s} {kind:15s} options: {opts}\n    {spec.description}")
    print(
        f"{'captum:<Class>(option=value, ...)':28s} {'class-specific':15s} options: the Captum class's own, and "
        "reduce='abs_sum' (or 'sum', 'l2', 'max_abs'), baselines=0.0 (pixel units), seed=0\n    Any Captum "
        "(inputs, target) attribution, e.g. captum:IntegratedGradients(n_steps=32) (pip install fvit-bench[captum]; "
        "docs/plugin_explainer.md)."
    )
    return 0


def cmd_cost_plan(args: argparse.Namespace) -> int:
    from harness.cost.plan import call_times, paper_plan_paths, plan_conventions, plan_table
    from harness.report.tables import write_table
    from harness.runner.config import load_config

    paths = args.config or paper_plan_paths()
    configs = [load_config(p) for p in paths]
    times = call_times(args.unet_seconds, args.vit_seconds, args.vit_backward_seconds)
    table = plan_table(configs, times=times)
    out = Path(args.out) if args.out != str(DEFAULT_REPORTS / "cost") else DEFAULT_REPORTS / "bench"
    _, md = write_table(
        table,
        out,
        "paper_plan",
        "Compute plan of the paper matrix: calls and GPU-hours",
        plan_conventions(times),
        [f"Configs: {', '.join(paths)}."],
        floatfmt=".2f",
    )
    print(md.read_text())
    print(f"wrote {md} and {md.with_suffix('.csv')}")
    return 0


def cmd_cost(args: argparse.Namespace) -> int:
    if args.plan:
        return cmd_cost_plan(args)
    import torch

    from harness.cost import timing
    from harness.models.mini import MINI_VIT_CONFIG

    _set_threads(args.threads)
    from harness.runner.devices import resolve_device

    device = resolve_device(args.device)
    sigma_by_variant = run_config_sigmas()
    model, denoiser, weights = timing.embedded_models(random_weights=args.random_weights)
    model, denoiser = model.to(device), denoiser.to(device)
    settings = timing.CostSettings(
        images=args.images,
        batch_size=args.batch_size,
        repeats=args.repeats,
        sigma=args.sigma,
        sigma_by_variant=sigma_by_variant,
        samples=args.samples,
        seed=args.seed,
        country_iso_code=args.country,
        carbon_intensity_g_per_kwh=args.carbon_intensity,
    )
    start = time.perf_counter()
    images = timing.embedded_images(args.images).to(device)
    table = timing.cost_table(model, denoiser, images, args.methods or None, args.dds, settings)
    if args.sigma is not None:
        sigma = f"{args.sigma * 255:.2f}/255 for every variant"
    else:
        sigma = ", ".join(f"{v} {s * 255:.2f}/255" for v, s in sigma_by_variant)
        sigma = f"{sigma} (as `fvit-bench run`), else each variant's default" if sigma else "each variant's default"
    samples = "each variant's default" if args.samples is None else args.samples
    context = [
        f"World: embedded (64x64 images, mini ViT: patch {MINI_VIT_CONFIG['patch_size']}, dim "
        f"{MINI_VIT_CONFIG['embed_dim']}, depth {MINI_VIT_CONFIG['depth']}; mini diffusers UNet): the cost "
        "of this world, not of ViT-B/16 + ADM-256 (tests/bench/test_bench_paper_cost.py measures those).",
        f"Weights: {weights}; time and energy do not depend on weight values.",
        f"Images: {args.images} of the embedded test split, batches of {args.batch_size}, "
        f"{args.repeats} pass(es), one untimed warm-up call per method; "
        f"torch threads: {torch.get_num_threads()}.",
        f"DDS sigma (pixel units): {sigma}; samples per image: {samples}; seed {args.seed}.",
        f"Wall time of the whole table: {time.perf_counter() - start:.1f} s.",
    ]
    _, md = timing.write_cost_report(table, Path(args.out), context)
    print(md.read_text())
    print(f"wrote {md} and {Path(args.out) / 'cost.csv'}")
    return 0


def run_config_sigmas() -> tuple[tuple[str, float], ...]:
    """(variant, sigma) of the default `run` config's DDS settings: the one default both commands use."""
    from harness.runner.config import load_config

    return tuple((d.variant, d.sigma) for d in load_config(DEFAULT_CONFIG).dds if d.sigma is not None)


def cmd_convert_adm(args: argparse.Namespace) -> int:
    if not args.checkpoint:
        raise FileNotFoundError(
            "no ADM checkpoint given: pass the path of 256x256_diffusion_uncond.pt or set FVIT_ADM_CHECKPOINT"
        )
    from harness.models.adm_convert import ADMArchitecture, convert_adm_checkpoint
    from harness.models.denoiser import load_denoiser

    arch = ADMArchitecture(image_size=args.image_size, model_channels=args.width)
    out = convert_adm_checkpoint(args.checkpoint, args.out, arch)
    den = load_denoiser(out)
    n_params = sum(p.numel() for p in den.unet.parameters())
    print(
        f"wrote {out}: diffusers UNet2DModel, {n_params:,} parameters, sample size {den.sample_size}, "
        f"learned sigma: {den.learned_sigma}; load it with harness.models.denoiser.load_denoiser"
    )
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: `fvit-bench: error: ...` (usage via --help)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"fvit-bench: error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="fvit-bench",
        description="Do ViT explanations survive attacks, and does Diffusion Denoised Smoothing make them faithful?",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show tracebacks instead of one-line errors (accepted anywhere on the command line)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser(
        "run",
        help="run an experiment (default: the embedded world) and write its tables",
        description="For every item, radius, method and DDS variant of the config: attack (PGD L-inf) -> "
        "optional DDS -> explain -> segmentation / perturbation / faithfulness metrics. Rows are persisted "
        "as they finish in OUT/rows.sqlite, so an interrupted run resumes where it stopped; the tables go to "
        "OUT/*.md and *.csv. Command-line options override the config file.",
    )
    run.add_argument("--config", default=str(DEFAULT_CONFIG), help=f"experiment YAML (default {DEFAULT_CONFIG})")
    run.add_argument(
        "--methods",
        type=_methods,
        default=None,
        help="comma-separated explainer names (see `fvit-bench explainers`; default: the config's, empty = all); "
        "Captum attributions as captum:<Class> or captum:<Class>(option=value, ...), e.g. "
        "captum:IntegratedGradients(n_steps=32)",
    )
    run.add_argument(
        "--baselines",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="add the baseline maps random_map, centre_map, constant_map as rows of every table, the "
        "chance level each method is read against (default: the config's; unset = added when the "
        "methods are all registered ones under the pgd attack, not to an explicit --methods list)",
    )
    run.add_argument(
        "--attack",
        choices=["pgd", "adaptive"],
        default=None,
        help="pgd (the papers': PGD on the prediction) or adaptive (PGD on each method's own map, "
        "through its DDS variant with expectation over the noise; raw_attention and rollout only). "
        "Default: the config's (pgd)",
    )
    run.add_argument(
        "--dds",
        type=_csv,
        default=None,
        help="comma-separated DDS variants compared with the plain method ('' for none)",
    )
    run.add_argument(
        "--sigma",
        type=float,
        default=None,
        help="DDS noise std in [0,1] pixel units for every "
        "variant (e.g. 0.1255 = 32/255; default: the config's setting of that variant, else the "
        "variant's own: 0.12 for carlini, 4/255 for the fvit family)",
    )
    run.add_argument("--samples", type=int, default=None, help="DDS samples per image")
    run.add_argument(
        "--radii", type=_numbers, default=None, help="comma-separated PGD L-inf radii in 1/255 pixel units, e.g. 0,8"
    )
    run.add_argument(
        "--tasks",
        type=_csv,
        default=None,
        help="comma-separated tasks: segmentation,perturbation (default); opt-in "
        "insertion_deletion,road,max_sensitivity",
    )
    run.add_argument("--model", default=None, help="mini-vit, vit_base_patch16_224 or deit_base_patch16_224")
    run.add_argument("--weights", default=None, help="local weights of a paper model (or its FVIT_* variable)")
    run.add_argument("--dataset", default=None, help="embedded, imagenet-seg or imagenet-val")
    run.add_argument("--dataset-root", default=None, help="dataset file/folder (or its FVIT_* variable)")
    run.add_argument(
        "--denoiser",
        default=None,
        help="diffusers UNet2DModel folder (default: the config's; if "
        "unset, the embedded one for mini-vit and $FVIT_ADM_DIR for paper models)",
    )
    run.add_argument("--limit", type=int, default=None, help="only the first N items (a quick subset)")
    run.add_argument("--all", action="store_true", help="every item of the dataset (overrides the config limit)")
    run.add_argument("--batch-size", type=int, default=None, help="items per unit of work (part of the config hash)")
    run.add_argument("--seed", type=int, default=None, help="seed of attack starts and DDS noise")
    run.add_argument(
        "--out",
        default=str(DEFAULT_REPORTS / "embedded"),
        help="output folder (default reports/embedded); rerunning with the same folder resumes",
    )
    run.add_argument(
        "--shard",
        type=int,
        default=None,
        help="run only shard I of --num-shards (default: from "
        "torchrun RANK/WORLD_SIZE or Slurm array variables, else 0 of 1)",
    )
    run.add_argument("--num-shards", type=int, default=None, help="number of shards")
    run.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's choice; part "
        "of the run identity: results are bit-identical only for the same count)",
    )
    run.add_argument(
        "--device",
        default=None,
        help="torch device for the classifier, denoiser, attacks and DDS, "
        "e.g. cpu, cuda, cuda:1 (default: CUDA when available, else CPU; printed at start)",
    )
    run.add_argument(
        "--dds-batch",
        type=int,
        default=None,
        help="images per UNet / explainer batch inside DDS "
        "(default: 64 on CPU; on CUDA as many 256x256 copies as half the free memory holds)",
    )
    run.add_argument(
        "--corrupt-images",
        choices=["error", "skip"],
        default=None,
        help="an unreadable image "
        "stops the run naming its path (error, the default) or is left out and recorded in the "
        "store's metadata (skip)",
    )
    run.add_argument("--gallery", type=_count, default=4, help=GALLERY_HELP)
    run.set_defaults(func=cmd_run)

    merge = sub.add_parser(
        "merge",
        help="merge the shard stores of a sharded run and write its tables",
        description="After all shards of a run finished (e.g. a Slurm job array), merge "
        "OUT/rows.shard*.sqlite into OUT/rows.sqlite and write the tables.",
    )
    merge.add_argument("--config", default=str(DEFAULT_CONFIG), help="the experiment YAML the shards ran")
    merge.add_argument("--out", required=True, help="the run's output folder")
    merge.add_argument("--num-shards", type=int, required=True, help="how many shards the run had")
    merge.set_defaults(func=cmd_merge)

    report = sub.add_parser(
        "report",
        help="(re)build report.html/.md of a run folder",
        description="Build report.html and report.md in a run folder: its tables and "
        "metric-vs-radius plots, a gallery of maps, the latest claim verdicts and cost table.",
    )
    report.add_argument("--out", default=str(DEFAULT_REPORTS / "embedded"), help="the run's output folder")
    report.add_argument("--claims", default=str(DEFAULT_REPORTS / "claims"), help="folder of verdicts.csv")
    report.add_argument("--cost", default=str(DEFAULT_REPORTS / "cost"), help="folder of cost.csv")
    report.add_argument("--gallery", type=_count, default=4, help=GALLERY_HELP)
    report.set_defaults(func=cmd_report)

    claims = sub.add_parser(
        "claims",
        help="list the claims registry, or rebuild it from the reported results",
        description="`list` prints every claim with its target; `build` regenerates "
        "claims/claims.yaml from claims/reported_results.csv.",
    )
    claims.add_argument(
        "action",
        choices=["list", "build", "expectations"],
        help="list; build claims.yaml; expectations: rewrite claims/expectations.yaml from the last "
        "reports/claims/verdicts.csv (every non-control claim not held, with its numbers)",
    )
    claims.add_argument(
        "--fresh",
        action="store_true",
        help="expectations: redraw every entry from the table (after a model or the world changed); by default "
        "a claim listed with the same outcome keeps its reason and a borderline one its also_seen",
    )
    claims.add_argument(
        "--also-seen",
        action="store_true",
        help="expectations: keep every entry and add this machine's outcome where it differs (another CPU, or "
        "ATEN_CPU_CAPABILITY) as a borderline claim's also_seen, its numbers in the reason under the CPU model and "
        "torch's CPU kernel set",
    )
    claims.set_defaults(func=cmd_claims)

    train = sub.add_parser(
        "train-mini",
        help="retrain an embedded-world model from its recipe",
        description="Train the embedded world's tiny ViT or tiny diffusion denoiser from scratch, deterministically "
        "for a given seed and thread count, and save it (default: over the shipped checkpoint).",
    )
    train.add_argument("model", choices=["vit", "denoiser"], help="which model to train")
    train.add_argument(
        "--steps",
        type=int,
        default=None,
        help="optimisation steps of a single stage on the embedded world (default: the full recipe, see "
        "RECIPE_STAGES in harness.train.mini_vit and harness.train.mini_denoiser: curriculum stages on the "
        "single-shape world, then the embedded world's)",
    )
    train.add_argument(
        "--from-stage",
        type=int,
        default=0,
        help="run the recipe from this stage (0-based), going on from the checkpoint in --out, which must be "
        "the output of the stage before (default 0: all stages)",
    )
    train.add_argument("--batch-size", type=int, default=None, help="batch size (default: the recipe's)")
    train.add_argument("--train-size", type=int, default=None, help="training images (default: the whole split)")
    train.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    train.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads; weights are bit-identical only for the same count (default 1, as the shipped checkpoints)",
    )
    train.add_argument("--out", default=None, help="output folder (default: the shipped asset folder)")
    train.set_defaults(func=cmd_train_mini)

    expl = sub.add_parser(
        "explainers",
        help="list the registered explanation methods and their options",
        description="List every registered explanation method with its default options.",
    )
    expl.set_defaults(func=cmd_explainers)

    cost = sub.add_parser(
        "cost",
        help="time, energy and kg CO2eq per image of each method, without and with each DDS variant",
        description="Measure every explainer plain and wrapped by every DDS variant on the embedded world "
        "(codecarbon, offline, for energy and CO2) and write cost.md / cost.csv with the with/without-DDS "
        "ratios.",
    )
    cost.add_argument(
        "--methods",
        type=_methods,
        default=None,
        help="comma-separated explainer names, captum:<Class>(...) too (default: all registered)",
    )
    cost.add_argument(
        "--dds", type=_csv, default=None, help="comma-separated DDS variants (default: all registered; '' for none)"
    )
    cost.add_argument(
        "--sigma",
        type=float,
        default=None,
        help="DDS noise std in [0,1] pixel units for "
        "every variant (default: as `run`: the default config's setting of a variant, 32/255 for "
        "carlini, else the variant's own, 4/255 for the fvit family)",
    )
    cost.add_argument("--samples", type=int, default=None, help="DDS samples per image (default: each variant's)")
    cost.add_argument("--images", type=int, default=4, help="images per cell (default 4)")
    cost.add_argument("--batch-size", type=int, default=4, help="images per explainer call (default 4)")
    cost.add_argument("--repeats", type=int, default=1, help="timed passes over the images per cell (default 1)")
    cost.add_argument("--seed", type=int, default=0, help="seed of the DDS noise (default 0)")
    cost.add_argument(
        "--country",
        default="FRA",
        help="3-letter ISO code of the electricity grid, for codecarbon's carbon intensity (default FRA)",
    )
    cost.add_argument(
        "--carbon-intensity",
        type=float,
        default=None,
        help="force the grid carbon intensity in gCO2eq/kWh, for reproducible kg (default: codecarbon's for --country)",
    )
    cost.add_argument(
        "--device",
        default=None,
        help="torch device to run on, e.g. cpu or cuda (default: CUDA when available, else CPU)",
    )
    cost.add_argument(
        "--random-weights",
        action="store_true",
        help="use random weights even if the "
        "shipped checkpoints exist (used when present; cost does not depend on weights)",
    )
    cost.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    cost.add_argument(
        "--out",
        default=str(DEFAULT_REPORTS / "cost"),
        help="output folder (default reports/cost; reports/bench with --plan)",
    )
    cost.add_argument(
        "--plan",
        action="store_true",
        help="instead of measuring, count the UNet and ViT calls of "
        "the paper matrix (the configs' methods x radii x DDS variants x dataset sizes) and the "
        "GPU-hours they imply; writes paper_plan.md/.csv",
    )
    cost.add_argument(
        "--config",
        action="append",
        default=None,
        help="with --plan: an experiment YAML to count "
        "(repeatable; default the ViT-B/16 segmentation and perturbation paper configs)",
    )
    cost.add_argument(
        "--unet-seconds",
        type=float,
        default=None,
        help="with --plan: measured seconds per ADM-256 forward of one image (default: 1.1 TFLOP at 300 TFLOP/s)",
    )
    cost.add_argument(
        "--vit-seconds",
        type=float,
        default=None,
        help="with --plan: measured seconds per "
        "ViT-B/16 forward of one image; backward = 2x unless --vit-backward-seconds "
        "(default: 17.6 GFLOP at 300 TFLOP/s)",
    )
    cost.add_argument(
        "--vit-backward-seconds",
        type=float,
        default=None,
        help="with --plan: measured seconds per ViT-B/16 backward of one image (default: 2 x --vit-seconds)",
    )
    cost.set_defaults(func=cmd_cost)

    adm = sub.add_parser(
        "convert-adm",
        help="convert guided-diffusion's 256x256_diffusion_uncond.pt to a diffusers UNet2DModel folder",
        description="Convert the ADM-256 unconditional checkpoint (a plain guided-diffusion state dict, from "
        "https://openaipublic.blob.core.windows.net/diffusion/jul-2021/256x256_diffusion_uncond.pt) to a "
        "diffusers UNet2DModel (+ linear DDPMScheduler in scheduler/) that --denoiser and load_denoiser "
        "read.",
    )
    adm.add_argument(
        "checkpoint",
        nargs="?",
        default=os.environ.get("FVIT_ADM_CHECKPOINT"),
        help="path to 256x256_diffusion_uncond.pt (default: $FVIT_ADM_CHECKPOINT)",
    )
    adm.add_argument(
        "--out",
        default=os.environ.get("FVIT_ADM_DIR") or "models/adm256_uncond",
        help="output folder (default: $FVIT_ADM_DIR, else models/adm256_uncond)",
    )
    adm.add_argument(
        "--width", type=int, default=256, help="base channel count (guided-diffusion num_channels; default 256)"
    )
    adm.add_argument("--image-size", type=int, default=256, help="UNet sample size in pixels (default 256)")
    adm.set_defaults(func=cmd_convert_adm)
    return parser


def error_line(err: BaseException) -> str:
    """One line describing an expected failure (pydantic, KeyError quoting and newlines flattened)."""
    from pydantic import ValidationError

    if isinstance(err, ValidationError):
        from harness.runner.config import _describe

        text = f"invalid configuration: {_describe(err)}"
    elif isinstance(err, KeyError) and err.args:
        text = str(err.args[0])
    else:
        text = str(err) or type(err).__name__
    expected = (OSError, ValueError, KeyError, TypeError, ImportError, KeyboardInterrupt)
    if not isinstance(err, expected):
        text = f"{type(err).__name__}: {text} (rerun with --debug for the traceback)"
    return " ".join(text.split())


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    args = build_parser().parse_args([a for a in argv if a != "--debug"])
    try:
        return args.func(args)
    except KeyboardInterrupt as err:
        if debug:
            raise
        message = error_line(err) if str(err) else "interrupted; rerun the same command to resume"
        print(f"fvit-bench: {message}", file=sys.stderr)
        return 130
    except Exception as err:
        if debug:
            raise
        print(f"fvit-bench: error: {error_line(err)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
