"""Stage: convert a packaged pretrained LM (a GGUF file a pip package ships) to a float32 transformers model.

    python stages/packaged.py --key packaged_models.smollm2-135m-instruct --out models/smollm2-135m-instruct

A ``gguf_path`` param, when present, names the GGUF file directly instead of looking it up in the package.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run by path from a checkout

from esa.configs import PackagedModel  # noqa: E402
from esa.engine.models.gguf_convert import (  # noqa: E402
    INSTALL_HINT,
    PackageMissing,
    convert_gguf,
    gguf_header,
    package_version,
    packaged_gguf,
)
from esa.engine.models.loading import quiet_hub_progress  # noqa: E402
from esa.stageio import Manifest, bad_input, load_params, stage_parser  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    args = stage_parser(__doc__, what="packaged model").parse_args(argv)
    try:
        params = load_params(args.key, args.params)
        override = params.get("gguf_path")
        cfg = PackagedModel(**{k: v for k, v in params.items() if k != "gguf_path"})
        installed = package_version(cfg.package)
        if not override and cfg.version and installed and installed != cfg.version:
            raise ValueError(f"{cfg.package} {installed} is installed but {args.key} pins {cfg.version}: install "
                             f"that version ({INSTALL_HINT}) or change the pin")
        gguf_path = Path(override) if override else packaged_gguf(cfg)
        if not gguf_path.is_file():
            raise FileNotFoundError(f"no GGUF file at {gguf_path}")
        header = gguf_header(gguf_path)
        if header["file_type"] != cfg.quantization:
            raise ValueError(f"{gguf_path.name} is {header['file_type']}, params expect {cfg.quantization}")
    except PackageMissing as exc:
        return bad_input("packaged", exc)
    except ImportError as exc:  # the gguf reader itself is part of the same extra
        return bad_input("packaged", exc, f"reading GGUF files needs the 'gguf' package: {INSTALL_HINT}")
    except (KeyError, TypeError, OSError, ValueError) as exc:
        return bad_input("packaged", exc, "bad params or GGUF file")

    quiet_hub_progress()
    with Manifest(args.out, params=params, stage="packaged") as manifest:
        provenance = convert_gguf(gguf_path, args.out)
        manifest.set(
            device="cpu",
            package=cfg.package,
            package_version=package_version(cfg.package),
            gguf_version=package_version("gguf"),
            gguf_path=str(gguf_path),
            **provenance,
        )
        manifest.time("convert", provenance["convert_s"])
    print(f"packaged {cfg.name}: {provenance['n_params']} params, {provenance['weights']}, "
          f"in {provenance['convert_s']:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
