"""Write rendered environments into an output folder, touching only what render made there.

The output root holds a manifest (``MANIFEST``) naming each environment folder render made and
every file it wrote in it. A run:
- refuses, before writing anything, an output that is a symbolic link or a file, an environment
  folder that exists but is not in the manifest, and a file of someone else's where render
  would now write one of its own;
- replaces each environment folder atomically (staged beside it, then renamed into place),
  carrying over files render did not make;
- when it renders every environment, removes the files of environments no longer in the spec,
  and their folders once empty (a folder still holding someone else's files stays).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

MANIFEST = ".theodore-render.json"
GENERATOR = "theodore-obs render"


class OutputError(RuntimeError):
    """The output folder cannot be written as asked; nothing was changed."""


@dataclass
class Manifest:
    """What render made under one output root: environment → its files (relative paths)."""

    environments: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def read(cls, root: Path) -> Manifest:
        path = root / MANIFEST
        if path.is_symlink():
            raise OutputError(f"{path} is a symbolic link: render only trusts a manifest it wrote")
        if not path.exists():
            return cls()
        try:
            data = json.loads(path.read_text())
            envs = data["environments"]
            if data.get("generator") != GENERATOR or not isinstance(envs, dict):
                raise ValueError
            return cls({str(name): [str(f) for f in files] for name, files in envs.items()})
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise OutputError(f"{path} is not a manifest render wrote; move it away") from exc

    def write(self, root: Path) -> None:
        text = json.dumps({"generator": GENERATOR, "environments": dict(sorted(self.environments.items()))},
                          indent=1) + "\n"
        _atomic_write(root / MANIFEST, text)


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _files_under(folder: Path) -> list[str]:
    """Every file or symbolic link under ``folder`` (links are not followed), relative."""
    found = []
    for parent, dirs, names in os.walk(folder):
        base = Path(parent)
        found += [str((base / n).relative_to(folder)) for n in names]
        found += [str((base / d).relative_to(folder)) for d in dirs if (base / d).is_symlink()]
    return sorted(found)


def _check_root(root: Path) -> None:
    if root.is_symlink():
        raise OutputError(f"{root} is a symbolic link: pass the folder it points to "
                          f"({root.resolve()}) as --out, so render knows what it writes")
    if root.exists() and not root.is_dir():
        raise OutputError(f"{root} is not a folder")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {root}: {exc.strerror}") from exc
    if not os.access(root, os.W_OK | os.X_OK):
        raise OutputError(f"{root} is not writable")


def _foreign_files(dest: Path, name: str, files: dict[str, str], manifest: Manifest) -> list[str]:
    """Files in ``dest`` render did not make; an error if ``dest`` is not render's to replace."""
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        raise OutputError(f"{dest} is not a folder render made (a link or a file): move it away")
    if not dest.exists():
        return []
    present = _files_under(dest)
    if name not in manifest.environments:
        if present:
            raise OutputError(f"{dest} exists and was not made by `{GENERATOR}`: move it away or "
                              "choose another --out")
        return []
    ours = set(manifest.environments[name])
    foreign = [f for f in present if f not in ours]
    clash = sorted(set(foreign) & set(files))
    if clash:
        raise OutputError(f"{dest / clash[0]} was not made by render, which would now write it: "
                          "move it away")
    return foreign


def _stage(files: dict[str, str], dest: Path, foreign: list[str]) -> Path:
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-new-", dir=dest.parent))
    for relative, text in files.items():
        path = staging / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for relative in foreign:
        source, target = dest / relative, staging / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, target)
    return staging


def _swap(staging: Path, dest: Path) -> None:
    old = Path(tempfile.mkdtemp(prefix=f".{dest.name}-old-", dir=dest.parent))
    if dest.exists():
        os.rename(dest, old / "tree")
    os.rename(staging, dest)
    shutil.rmtree(old)


def _prune(root: Path, name: str, files: list[str]) -> str:
    dest = root / name
    if dest.is_symlink() or not dest.is_dir():
        return f"forgot {dest} (environment no longer in the spec; it was already gone)"
    for relative in files:
        path = dest / relative
        if path.is_file() and not path.is_symlink():
            path.unlink()
    for parent, _, _ in sorted(os.walk(dest), key=lambda entry: -len(entry[0])):
        if not os.listdir(parent):
            os.rmdir(parent)
    if dest.exists():
        return f"kept {dest}: it holds files render did not make (its rendered files are removed)"
    return f"removed {dest} (environment no longer in the spec)"


def write_environments(trees: dict[str, dict[str, str]], root: Path, prune: bool) -> list[str]:
    """Write each environment's files under ``root/<env>``; with ``prune``, also remove the
    environments render made earlier that ``trees`` no longer has. Returns what was done."""
    _check_root(root)
    manifest = Manifest.read(root)
    foreign = {name: _foreign_files(root / name, name, files, manifest) for name, files in trees.items()}
    done = []
    for name, files in trees.items():
        staging = None
        try:
            staging = _stage(files, root / name, foreign[name])
            _swap(staging, root / name)
        except OSError as exc:
            raise OutputError(f"cannot write {root / name}: {exc.strerror or exc}") from exc
        finally:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
        manifest.environments[name] = sorted(files)
        manifest.write(root)
        kept = f" (kept {len(foreign[name])} files render did not make)" if foreign[name] else ""
        done.append(f"rendered {len(files)} files into {root / name}{kept}")
    for name in sorted(set(manifest.environments) - set(trees)) if prune else ():
        done.append(_prune(root, name, manifest.environments.pop(name)))
        manifest.write(root)
    return done
