"""How often the unperturbed baseline is evaluated: count baseline stages and the perturbation stages reading each.

    python benchmarks/phase3_sharing.py            # reads dvc.yaml in the current directory

The baseline of a (model, data, protocol, dtype, window seed) is one DVC stage whatever the number of conditions,
so it runs once and is cached; this prints the sharing from the compiled pipeline itself.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import yaml


def main(path: str = "dvc.yaml") -> int:
    stages = yaml.safe_load(Path(path).read_text())["stages"]
    baselines = {name: stage for name, stage in stages.items() if name.startswith("baseline.")}
    readers: Counter = Counter()
    conditions: Counter = Counter()
    params = yaml.safe_load(Path("params.yaml").read_text())
    for name, stage in stages.items():
        if not name.startswith("perturb."):
            continue
        run = params[name.split(".", 1)[1].split("/")[0]][name.split("/")[1]]
        n_conditions = len(run["levels"]) * (1 + len(run["controls"]))
        for base_name, base in baselines.items():
            if any(dep.startswith(base["outs"][0].rsplit("/", 1)[0]) for dep in stage.get("deps", [])):
                readers[base_name] += 1
                conditions[base_name] += n_conditions
    print("| baseline stage | perturbation stages reading it | conditions evaluated against it | baseline runs |")
    print("|---|---|---|---|")
    for name in baselines:
        print(f"| `{name}` | {readers[name]} | {conditions[name]} | 1 |")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
