"""Write a planned pipeline folder (never overwriting without ``force``) and check it as
``dataplump config check --steps`` does."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy.engine import make_url

from dataplump.scaffold.errors import ScaffoldError
from dataplump.scaffold.plan import Plan

__all__ = ["check_folder", "write_plan"]


def write_plan(plan: Plan, folder: Path, *, force: bool = False) -> list[Path]:
    """Write ``plan``'s files under ``folder``; return their paths.

    Without ``force`` nothing is written when any of the files exists already, and the
    error lists them.
    """
    if folder.exists() and not folder.is_dir():
        raise ScaffoldError(f"{folder} is a file, not a folder; choose another folder")
    targets = [folder / path for path in plan.files]
    existing = [path for path in targets if path.exists()]
    if existing and not force:
        shown = ", ".join(str(path) for path in existing[:5])
        more = f" ... and {len(existing) - 5} more" if len(existing) > 5 else ""
        raise ScaffoldError(
            f"{len(existing)} file{'s' if len(existing) != 1 else ''} would be overwritten:"
            f" {shown}{more}; pass --force to overwrite them, or choose another folder"
        )
    directories = [path for path in existing if path.is_dir()]
    if directories:
        raise ScaffoldError(f"{directories[0]} is a folder; remove it or choose another folder")
    written: list[Path] = []
    for relative, text in plan.files.items():
        path = folder / relative
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise ScaffoldError(
                f"cannot write {path}: {exc.strerror}"
                + (f" (written before it: {len(written)} files)" if written else "")
            ) from None
        written.append(path)
    return written


def check_folder(plan: Plan, folder: Path, url: str) -> list[str]:
    """Problems ``dataplump config check --steps`` would report for the written folder
    (an empty list when it passes), with the password given to ``${VAR}`` the way the
    user's environment will."""
    from dataplump.config import InvalidConfigError, load_config
    from dataplump.engine import check_steps

    env: Mapping[str, str] = dict(os.environ)
    if plan.password_variable is not None:
        # the password as it is: the config loader percent-encodes it in the URL
        env = {**env, plan.password_variable: make_url(url).password or ""}
    try:
        config = load_config(folder / "dataplump.yaml", env=env)
    except InvalidConfigError as exc:
        return [str(issue) for issue in exc.issues]
    return [
        str(problem) for table in config.transform.steps for problem in check_steps(config, table)
    ]
