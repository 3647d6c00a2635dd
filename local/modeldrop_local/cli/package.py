"""`modeldrop package`: build a model.tar.gz and check it as an upload would be; no stack involved."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modeldrop_local.cli.errors import fail

package_app = typer.Typer()


@package_app.command()
def package(
    model_file: Annotated[list[Path], typer.Argument(exists=True, help="Model artifact file(s).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write model.tar.gz.")],
    inference: Annotated[Path | None, typer.Option("--inference", help="code/inference.py handlers.")] = None,
    requirements: Annotated[
        Path | None, typer.Option("--requirements", help="code/requirements.txt.")
    ] = None,
    framework_version: Annotated[
        str | None,
        typer.Option(
            "--framework-version", help="Image version to check against (default: the default one)."
        ),
    ] = None,
    no_requirements_check: Annotated[
        bool,
        typer.Option(
            "--no-requirements-check",
            help="Do not ask pip whether each requirement has a wheel for the image (needs an index).",
        ),
    ] = False,
) -> None:
    """Build a model.tar.gz with the layout SageMaker expects, and check it as an upload would be.

    The versions the model was saved with (code/modeldrop-libraries.json) are checked against the image
    it will run on, as OnUpload checks them: a model that image cannot load is not written. So is one
    whose code/requirements.txt names a package with no wheel for the image's Python and platform
    (`pip download --only-binary :all:`, through pip's own index configuration).
    """
    for label, path in (("inference file", inference), ("requirements file", requirements)):
        if path is not None and not path.is_file():
            raise fail(f"{label} not found: {path}")
    from modeldrop.frameworks import default_version
    from modeldrop.image_libraries import check_versions, image_libraries
    from modeldrop.rejection import UploadRejected
    from modeldrop.serving_setup import parse_libraries

    from modeldrop_local.packaging import (
        PackagingError,
        build_model_tarball,
        check_requirements,
        describe_tarball,
    )

    try:
        path = build_model_tarball(model_file, output, inference_py=inference, requirements_txt=requirements)
        report = describe_tarball(path)
    except PackagingError as error:
        raise fail(f"cannot package: {error}") from error
    except UploadRejected as rejection:
        raise fail(f"cannot package: {rejection.reason}") from rejection
    libraries, _ = parse_libraries(report.libraries_bytes)
    version = framework_version or (default_version(report.framework) if report.framework else None)
    try:
        warnings = check_versions(libraries, report.framework, version)
    except UploadRejected as rejection:
        path.unlink()
        raise fail(f"cannot package for the {version} image: {rejection.reason}") from rejection
    image = image_libraries(report.framework, version)
    if requirements is not None and not no_requirements_check and image is not None and image.python:
        family = f"{image.framework.value} {version}"
        try:
            check_requirements(requirements, image.python, family, glibc=image.glibc)
        except (UploadRejected, PackagingError) as error:
            path.unlink()
            reason = getattr(error, "reason", error)
            raise fail(f"cannot package for the {version} image: {reason}") from error
    for warning in warnings:
        typer.echo(f"warning: {warning}")
    typer.echo(f"wrote {path}: {', '.join(report.members)}")
