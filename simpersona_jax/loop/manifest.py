"""Stage manifests: what a finished pipeline stage made, from what, and whether it is current.

`<stage dir>/manifest.json` is written last, atomically, when a stage finishes:

    {"stage", "config" (the stage's resolved config), "config_digest",
     "inputs" {input stage: its manifest's digest}, "outputs" {what the next stages read:
     paths, K, layout, counts, ...}, "artifacts" [paths that must exist], "seconds",
     "finished", "digest" (of everything above)}

Paths under the workdir are stored as "$WORKDIR/...", so a workdir can be moved or copied and
stay current. A stage is current when its manifest exists, its config and input digests equal
the ones the run would use now, and every artifact is present. `started.json` (config + input digests) is
written when a stage starts: a rerun of an unfinished stage with the same digests resumes in
place (the train loop continues from its checkpoints), with other digests it starts afresh.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil

MANIFEST = "manifest.json"
STARTED = "started.json"


def digest(obj) -> str:
    """sha256 of obj's canonical JSON (sorted keys), first 16 hex digits."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _swap(obj, old: str, new: str):
    text = json.dumps(obj, default=str)
    text = text.replace(f'"{old}"', f'"{new}"').replace(old + "/", new + "/")
    return json.loads(text)


def portable(obj, workdir: str):
    """obj with paths under `workdir` written "$WORKDIR/..." (what digests and manifests hold)."""
    return _swap(obj, workdir, "$WORKDIR")


def _write_json(path: str, obj: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True, default=str)
    os.replace(tmp, path)


def read(stage_dir: str) -> dict | None:
    """The stage's manifest with its paths under this workdir (the stage dir's parent)."""
    path = os.path.join(stage_dir, MANIFEST)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return _swap(json.load(f), "$WORKDIR", os.path.dirname(os.path.abspath(stage_dir)))


def stale_reason(stage_dir: str, config_digest: str, inputs: dict[str, str]) -> str | None:
    """None when the stage's manifest is current, else why not (for the stage's line)."""
    m = read(stage_dir)
    if m is None:
        return "no manifest"
    if m["config_digest"] != config_digest:
        return "config changed"
    if m["inputs"] != inputs:
        changed = sorted(
            k for k in set(m["inputs"]) | set(inputs) if m["inputs"].get(k) != inputs.get(k)
        )
        return f"input {', '.join(changed)} changed"
    missing = [a for a in m["artifacts"] if not os.path.exists(os.path.join(stage_dir, a))]
    if missing:
        return f"artifact {missing[0]} missing"
    return None


def begin(stage_dir: str, config_digest: str, inputs: dict[str, str]) -> bool:
    """Prepares the stage directory; True when an unfinished run with the same digests resumes.

    A finished (stale) stage or an unfinished one with other digests is cleared first, so a
    changed config never resumes from checkpoints of another."""
    key = {"config_digest": config_digest, "inputs": inputs}
    started = os.path.join(stage_dir, STARTED)
    resume = False
    if os.path.exists(started) and read(stage_dir) is None:
        with open(started) as f:
            resume = json.load(f) == key
    if not resume and os.path.exists(stage_dir):
        shutil.rmtree(stage_dir)
    os.makedirs(stage_dir, exist_ok=True)
    if not resume:
        _write_json(started, key)
    return resume


def finish(
    stage_dir: str,
    stage: str,
    config: dict,
    config_digest: str,
    inputs: dict[str, str],
    outputs: dict,
    artifacts: list[str],
    seconds: float,
) -> dict:
    """Writes manifest.json (after checking every artifact exists) and returns it."""
    missing = [a for a in artifacts if not os.path.exists(os.path.join(stage_dir, a))]
    if missing:
        raise RuntimeError(f"stage {stage} finished without its artifacts {missing} in {stage_dir}")
    m = dict(
        stage=stage,
        config=config,
        config_digest=config_digest,
        inputs=inputs,
        outputs=outputs,
        artifacts=artifacts,
        seconds=round(seconds, 1),
        finished=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )
    stored = portable(m, os.path.dirname(os.path.abspath(stage_dir)))
    stored["digest"] = m["digest"] = digest(stored)
    _write_json(os.path.join(stage_dir, MANIFEST), stored)
    return m
