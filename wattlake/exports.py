"""What leaves the company: a folder tree on local disk or S3 (boto3), with SHA-256 of every file.

The exports root is ``$WATTLAKE_EXPORTS``, else ``./exports``; ``s3://bucket/prefix`` writes
through boto3 with the same AWS environment the lake uses (``AWS_ENDPOINT_URL`` for an
S3-compatible server). Layout (DESIGN.md):

- ``exports/insurers/<insurer>/<claim>/`` -- guarantee evidence packs
- ``exports/research/<partner>/<release>/`` -- anonymised research releases
- ``exports/installers/<installer>/<batch>/`` -- underperformance notices (deleted after
  ``notice_folders_after_days`` by retention, :mod:`wattlake.retention`)

Each pack is written by :class:`ExportFolder`, which remembers the SHA-256 of everything it wrote
so the manifest lists exactly those files.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_ROOT = "./exports"


def code_version() -> dict:
    """The code a manifest was written by: package version, git commit (read from ``.git``; None
    where unknown, e.g. an installed wheel), whether tracked files differed from that commit
    (``git_dirty``), and the versions of :data:`WRITING_LIBRARIES`."""
    try:
        from importlib.metadata import version

        pkg = version("wattlake")
    except Exception:  # not installed as a distribution
        pkg = None
    commit = None
    try:
        git = Path(__file__).resolve().parent.parent / ".git"
        head = (git / "HEAD").read_text().strip()
        if head.startswith("ref: "):
            ref = head[5:]
            if (git / ref).is_file():
                commit = (git / ref).read_text().strip()
            elif (git / "packed-refs").is_file():
                for line in (git / "packed-refs").read_text().splitlines():
                    if line.endswith(" " + ref):
                        commit = line.split()[0]
        else:
            commit = head
    except OSError:  # no repository: the package version must do
        commit = None
    return {"package": pkg, "git_commit": commit, "git_dirty": _git_dirty() if commit else None,
            "libraries": _library_versions()}


#: the libraries whose version can change a written file's bytes (Parquet writers, plots, models)
WRITING_LIBRARIES = ("polars", "pyarrow", "deltalake", "numpy", "pandas", "pvlib", "matplotlib")


def _git_dirty() -> bool | None:
    """Whether tracked files of the code's repository differ from its commit (the commit alone
    then does not name the code that ran); None when git cannot be asked."""
    import subprocess

    repo = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return bool(out.strip())


def _library_versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in WRITING_LIBRARIES:  # loop over a handful of package names
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _split_s3(uri: str) -> tuple[str, str]:
    rest = uri.split("://", 1)[1]
    bucket, _, prefix = rest.partition("/")
    return bucket, prefix.strip("/")


def _s3_client():
    import boto3

    return boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None,
                        region_name=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
                        or "us-east-1")


@dataclass
class ExportRoot:
    """The root every export folder lives under (local path or ``s3://bucket/prefix``)."""

    root: str = DEFAULT_ROOT

    def __post_init__(self) -> None:
        self.root = self.root.rstrip("/")
        if not self.is_s3:
            self.root = str(Path(self.root).expanduser().resolve())

    @classmethod
    def from_env(cls, root: str | None = None) -> "ExportRoot":
        return cls(root or os.environ.get("WATTLAKE_EXPORTS") or DEFAULT_ROOT)

    @property
    def is_s3(self) -> bool:
        return self.root.startswith("s3://")

    def folder(self, *parts: str) -> "ExportFolder":
        return ExportFolder(self, "/".join(p.strip("/") for p in parts))

    # -- raw file operations on paths relative to the root
    def write(self, rel: str, data: bytes) -> None:
        if self.is_s3:
            bucket, prefix = _split_s3(self.root)
            _s3_client().put_object(Bucket=bucket, Key=f"{prefix}/{rel}".lstrip("/"), Body=data)
        else:
            path = Path(self.root) / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)  # a reader never sees half a file

    def read(self, rel: str) -> bytes:
        if self.is_s3:
            bucket, prefix = _split_s3(self.root)
            return _s3_client().get_object(Bucket=bucket, Key=f"{prefix}/{rel}".lstrip("/"))["Body"].read()
        return (Path(self.root) / rel).read_bytes()

    def list(self, rel: str = "") -> list[str]:
        """Every file under ``rel`` (recursive), as paths relative to the root, sorted."""
        if self.is_s3:
            bucket, prefix = _split_s3(self.root)
            base = f"{prefix}/{rel}".strip("/") + "/"
            keys: list[str] = []
            for page in _s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=base):
                keys += [o["Key"] for o in page.get("Contents", [])]
            return sorted(k[len(prefix) + 1 if prefix else 0:] for k in keys)
        base = Path(self.root) / rel
        if not base.exists():
            return []
        return sorted(str(p.relative_to(self.root)) for p in base.rglob("*") if p.is_file())

    def delete(self, rels: list[str]) -> int:
        """Delete the files ``rels`` (paths relative to the root); local folders left empty go too.
        On S3 in batches of 1,000 keys (``DeleteObjects``); a key S3 refuses raises. Returns the
        files deleted; a local file already gone is not counted (S3 does not say which keys were
        there)."""
        if not rels:
            return 0
        if self.is_s3:
            bucket, prefix = _split_s3(self.root)
            s3, done = _s3_client(), 0
            keys = [f"{prefix}/{rel}".lstrip("/") for rel in rels]
            for i in range(0, len(keys), 1000):  # loop over batches of 1,000 keys (the API's limit)
                out = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]],
                                                               "Quiet": True})
                if out.get("Errors"):
                    first = out["Errors"][0]
                    raise OSError(f"S3 refused to delete {len(out['Errors'])} export objects "
                                  f"({first.get('Code')}: {first.get('Message')})")
                done += len(keys[i:i + 1000])
            return done
        done, parents = 0, set()
        for rel in rels:  # loop over files
            path = Path(self.root) / rel
            try:
                path.unlink()
                done += 1
            except FileNotFoundError:
                continue
            parents.add(path.parent)
        for folder in sorted(parents, key=lambda d: -len(d.parts)):  # deepest first
            while folder != Path(self.root) and Path(self.root) in folder.parents:
                try:
                    folder.rmdir()  # only when empty
                except OSError:
                    break
                folder = folder.parent
        return done

    def exists(self, rel: str) -> bool:
        if self.is_s3:
            return bool(self.list(rel)) or rel in self.list(str(Path(rel).parent))
        return (Path(self.root) / rel).exists()


@dataclass
class ExportFolder:
    """One pack/release folder; records ``{path, sha256}`` of every file written into it."""

    root: ExportRoot
    rel: str
    files: list[dict] = field(default_factory=list)

    @property
    def uri(self) -> str:
        return f"{self.root.root}/{self.rel}"

    def write(self, name: str, data: bytes) -> str:
        """Write ``name`` (relative to the folder); returns its SHA-256."""
        self.root.write(f"{self.rel}/{name}", data)
        digest = sha256_bytes(data)
        self.files = [f for f in self.files if f["path"] != name] + [{"path": name, "sha256": digest}]
        return digest

    def read(self, name: str) -> bytes:
        return self.root.read(f"{self.rel}/{name}")

    def listing(self) -> list[str]:
        """Files present in the folder, relative to it."""
        return [p[len(self.rel) + 1:] for p in self.root.list(self.rel)]

    def verify_files(self, files: list[dict]) -> list[str]:
        """Problems with ``files`` (``[{path, sha256}]``) as stored now: missing or changed files."""
        problems = []
        for f in files:
            try:
                data = self.read(f["path"])
            except (FileNotFoundError, OSError, KeyError):
                problems.append(f"{f['path']}: missing")
                continue
            except Exception as exc:  # boto3 NoSuchKey
                problems.append(f"{f['path']}: missing ({type(exc).__name__})")
                continue
            if sha256_bytes(data) != f["sha256"]:
                problems.append(f"{f['path']}: sha256 differs")
        return problems
