"""Stage: the perturbation runs of one shared-load group, on one load of their model.

    python stages/perturb_group.py --stage perturb.phase3/shared-ref-s-float32-cpu --spec specs/phase3.yaml \
        --member phase3.signflip 1337 results/phase2/gradient/seed1337 results/baselines/… \
                 results/phase3/signflip/seed1337 \
        --member phase3.signflip 123 …

Every member (run params key, seed, scores folder, baseline folder, out folder) is checked first, then the model
is loaded once and each member runs exactly as stages/perturb.py runs it alone (the same function), writing the
same conditions.parquet, summary.json and manifest.json. Each manifest records the one load's load_seconds and
``shared_load`` (this stage and its members).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run by path from a checkout

from esa.stageio import bad_input  # noqa: E402
from stages.perturb import perturb_seed, read_params  # noqa: E402

# Params that decide the loaded model: every member must agree on them (the compiler groups by them).
LOAD_PARAMS = ("model", "dtype", "device", "revision", "trust_remote_code")
MEMBER_FIELDS = ("KEY", "SEED", "SCORES", "BASELINE", "OUT")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", required=True, help="this stage's name (recorded in each member's manifest)")
    parser.add_argument("--spec", default=None, help="the spec the runs came from (recorded only)")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--member", nargs=5, action="append", required=True, metavar=MEMBER_FIELDS,
                        help="one run and seed: its params key, seed, scores, baseline and output folders")
    return parser.parse_args(argv)


def read_members(args: argparse.Namespace) -> list[dict]:
    """Every member's params and folders, checked (KeyError, ValueError) before the model is loaded."""
    members = []
    for key, seed, scores, baseline, out in args.member:
        scores, baseline = Path(scores), Path(baseline)
        members.append({"params": read_params(key, args.params, scores, baseline), "seed": int(seed),
                        "scores": scores, "baseline_dir": baseline, "out": Path(out)})
    first = members[0]["params"]
    for member in members[1:]:
        differ = [name for name in LOAD_PARAMS if member["params"].get(name) != first.get(name)]
        if differ:
            raise ValueError(f"member {member['out']} loads another model than {members[0]['out']} "
                             f"({', '.join(differ)} differ); compile again")
    return members


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        members = read_members(args)
    except (KeyError, ValueError, OSError) as exc:
        return bad_input("perturb", exc)

    from tqdm import tqdm

    from esa.engine.models.loading import load_stage_model, quiet_hub_progress, resolve_device

    quiet_hub_progress()
    params = members[0]["params"]
    device = resolve_device(params.get("device", "cpu"))
    try:
        loaded = load_stage_model(params, device=str(device))
    except (ValueError, OSError) as exc:
        return bad_input("perturb", exc)
    shared = {"shared_load": {"stage": args.stage, "members": [member["out"].as_posix() for member in members]}}
    for member in tqdm(members, desc=args.stage, unit="run-seed"):
        code = perturb_seed(loaded, device, spec=args.spec, record=shared, **member)
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
