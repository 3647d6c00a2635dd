"""Shared command line of the example builders: where to write, and an optional modeldrop.json."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
# Run from a checkout without installing: the packages live in layers/modeldrop and local.
for package_root in (REPO_ROOT / "layers" / "modeldrop", REPO_ROOT / "local"):
    if str(package_root) not in sys.path:
        sys.path.insert(0, str(package_root))


def run(builder_name: str, description: str | None, switches: dict[str, str] | None = None) -> Path:
    """Parse `DEST_DIR [--config modeldrop.json]`, build the tarball, print it with sample predictions.

    switches: the builder's boolean keyword arguments offered as --flags, with their help text.
    """
    from modeldrop_local import example_models
    from modeldrop_local.packaging import describe_tarball

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("dest_dir", type=Path, help="directory to write model.tar.gz into (created)")
    parser.add_argument("--config", type=Path, help="a modeldrop.json to embed at the tarball root")
    for name, help_text in (switches or {}).items():
        parser.add_argument(f"--{name.replace('_', '-')}", action="store_true", help=help_text)
    args = parser.parse_args()
    config = json.loads(args.config.read_text()) if args.config else None
    builder_args: dict[str, Any] = {name: getattr(args, name) for name in switches or {}}

    tarball: Path = getattr(example_models, builder_name)(args.dest_dir, config=config, **builder_args)
    report = describe_tarball(tarball)
    rows = example_models.iris_sample()
    print(f"wrote {tarball} ({tarball.stat().st_size} bytes)")
    print(f"  members:     {', '.join(report.members)}")
    print(f"  framework:   {report.framework.value if report.framework else 'custom code'}")
    print(f"  payload:     {json.dumps(rows)}")
    print(f"  predictions: {json.dumps(example_models.predict_in_process(tarball, rows))}")
    return tarball
