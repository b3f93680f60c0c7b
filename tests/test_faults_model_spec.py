"""`fs extract` refuses a model spec that cannot load before it scans the source or imports
torch/open_clip/timm (a missing open_clip_config.json used to cost ~20 CPU-seconds first)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("torch", "open_clip", "timm", "torchvision", "faiss", "PIL")

# Runs each argv through the CLI in one fresh interpreter; prints [exit code, stderr] per case
# and which heavy modules were imported by then.
SCRIPT = """
import contextlib, io, json, sys
from cli.main import main
results = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            main(argv)
            code = 0
        except SystemExit as exc:
            code = exc.code
    results.append([code, err.getvalue()])
print(json.dumps({"results": results, "heavy": [m for m in json.loads(sys.argv[2]) if m in sys.modules]}))
"""


def _cases(tmp_path: Path) -> list[tuple[list[str], str]]:
    no_config = tmp_path / "my-clip"
    no_config.mkdir()
    no_weights = tmp_path / "clip-no-weights"
    no_weights.mkdir()
    (no_weights / "open_clip_config.json").write_text("{}")
    config = tmp_path / "cfg.json"
    config.write_text(json.dumps({"embed_dim": 8, "vision_cfg": {}, "text_cfg": {}}))
    not_config = tmp_path / "not-config.json"
    not_config.write_text("[1, 2]")
    return [
        (["--model", f"local-dir:{no_config}"],
         f"{no_config} is not an open_clip model folder (no open_clip_config.json)"),
        (["--model", f"local-dir:{no_weights}"], "holds no open_clip_model.safetensors"),
        (["--model", "hf-hub:org/repo", "--pretrained", "openai"], "carries its own weights; drop --pretrained"),
        (["--model", "ViT-B-32"], "give --pretrained for ViT-B-32"),
        (["--model", "ViT-B-32", "--pretrained", str(tmp_path / "gone.pt")], f"checkpoint {tmp_path / 'gone.pt'} "
                                                                              "does not exist"),
        (["--model", "timm:resnet18", "--pretrained", "random", "--model-config", str(config)],
         "a timm:ARCH model takes no --model-config"),
        (["--model", "timm:resnet18"], "give --pretrained for timm:resnet18"),
        (["--model", "mine", "--pretrained", "random", "--model-config", str(not_config)],
         "is not an open_clip model config"),
    ]


@pytest.mark.parametrize("source", ["missing", "folder"])
def test_a_bad_model_spec_is_refused_before_the_source_and_torch(tmp_path: Path, source: str) -> None:
    cases = _cases(tmp_path)
    photos = tmp_path / ("photos" if source == "folder" else "no-such-folder")
    if source == "folder":
        photos.mkdir()
        for i in range(3):
            (photos / f"{i}.png").write_bytes(b"not read")
    argvs = [["extract", str(photos), "--store", str(tmp_path / "s.h5"), *spec] for spec, _ in cases]
    out = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(argvs), json.dumps(HEAVY)], capture_output=True,
                         text=True, check=True, cwd=Path(__file__).resolve().parents[1]).stdout
    report = json.loads(out.strip().splitlines()[-1])
    for (spec, wanted), (code, err) in zip(cases, report["results"]):
        assert code == 2, (spec, err)
        assert err.count("\n") == 1 and wanted in err, (spec, err)
    assert report["heavy"] == []
    assert not (tmp_path / "s.h5").exists()
