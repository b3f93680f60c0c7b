"""The README's ```bash blocks, run as written, in order, in a temp folder, on the tiny model.

The only substitutions: the pretrained model flags (``--model ViT-B-32 --pretrained openai`` and
``--model RN50 --pretrained openai``) become the tiny model's config and checkpoint, and the
encoder key ``ViT-B-32/openai`` becomes the tiny model's key. The folders the README names
(``./photos``, ``./pets/{train,val,test}``) are filled with small random-image class trees, and
the user-supplied files (``laion.csv`` with its images, ``syn.json``, ``class_captions.json``,
``sessions.json``, ``entries.txt``) are written. A
command that needs what no test machine has (the internet, a dataset root, a web server that
keeps running, other weights) is listed in SKIPPED with the reason; every other README command
must run and exit 0, and a README command that is neither run nor listed fails the test.
"""
from __future__ import annotations

import csv
import json
import re
import shlex
import shutil
from pathlib import Path

import pytest

from featurestore.store.feature_store import FeatureStore
from tests.cli_runner import run
from tests.images import write_class_tree, write_random_image

README = Path(__file__).resolve().parents[1] / "README.md"

# command prefix (as written in the README, continuation lines joined) -> why it does not run here
SKIPPED = {
    "fs extract ./imgs --store s.h5 --model timm:": "needs a timm checkpoint file (lite0.pth, dinov2_s.safetensors)",
    "fs extract ./imgs --store s.h5 --model hf-hub:": "needs the Hugging Face hub (internet)",
    "fs extract ./imgs --store s.h5 --model local-dir:": "needs an open_clip model folder (./my-clip)",
    "fs extract ./imgs --store s.h5 --model ViT-B-32 --pretrained ckpt.pt": "needs a ViT-B-32 checkpoint file",
    "fs text --store s.h5 --encoder K --weights head.npz": "needs a classifier head file and the store above",
    "fs datasets --root ~/data": "needs the datasets under ~/data",
    "fs extract --dataset ": "needs the datasets under ~/data",
    "fs benchmark --store pets.h5 --store imagenet.h5": "needs the ImageNet store",
    "fs serve ": "starts a web server that runs until Ctrl-C (tests/test_serve.py covers it)",
    "fs solve amu ": "needs a second, image-only encoder DINO (tests/test_cli_more_methods.py)",
    "fs solve label-free ": "needs a second, image-only encoder DINO (tests/test_cli_more_methods.py)",
    "fs anomaly ": "needs an MVTec store (tests/test_anomaly.py)",
}


def readme_commands() -> list[str]:
    """Every `fs` command of the README's bash blocks, continuation lines joined, comments cut."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line.startswith("fs "):
                commands.append(" ".join(line.split()))
    return commands


def _skip_reason(command: str) -> str | None:
    return next((why for prefix, why in SKIPPED.items() if command.startswith(prefix)), None)


def test_readme_lists_commands_this_test_knows():
    commands = readme_commands()
    assert len(commands) > 20
    unused = [p for p in SKIPPED if not any(c.startswith(p) for c in commands)]
    assert not unused, f"SKIPPED entries no README command matches any more: {unused}"


@pytest.mark.slow
def test_every_readme_command_runs_as_written(tmp_path, monkeypatch, capsys, tiny_checkpoint):
    from tests.conftest import TINY_CONFIG, TINY_MODEL

    monkeypatch.chdir(tmp_path)
    (tmp_path / "featurestore").symlink_to(README.parent / "featurestore")  # paths relative to a clone
    write_class_tree(tmp_path / "photos", {"cat": 3, "dog": 3, "emu": 3}, seed=1)
    for split, n, seed in (("train", 16, 0), ("val", 4, 100), ("test", 4, 200)):
        write_class_tree(tmp_path / "pets" / split, {"cat": n, "dog": n, "emu": n}, seed=seed)
    # the captioned pool and the user-supplied JSON files of the REAL / TIP-X / CapS-Adapter block
    with open(tmp_path / "laion.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "caption"])
        for i in range(60):
            name = ("cat", "dog", "emu")[i % 3]
            write_random_image(tmp_path / "laion" / f"{i}.jpg", seed=5000 + i)
            writer.writerow([f"laion/{i}.jpg", f"a photo of a {('kitty', name, 'puppy')[i % 3]} number {i}"])
    shutil.copy(README.parent / "featurestore" / "data" / "synonyms-example.json", tmp_path / "syn.json")
    (tmp_path / "class_captions.json").write_text(json.dumps({"cat": ["a photo of a kitty"], "dog": ["a puppy"],
                                                              "emu": ["a dromaius bird"]}))
    (tmp_path / "sessions.json").write_text(json.dumps({"base": ["cat", "dog"], "sessions": [["emu"]], "shots": 5}))
    (tmp_path / "entries.txt").write_text("kitty\npuppy\ncat\ndromaius\n")  # fs curate's metadata entries
    tiny = f"--model {TINY_MODEL} --model-config {TINY_CONFIG} --pretrained {tiny_checkpoint}"
    key = None
    ran = []
    for command in readme_commands():
        if _skip_reason(command):
            continue
        args = re.sub(r"--model (ViT-B-32|RN50) --pretrained openai", tiny, command)
        if key is not None:
            args = args.replace("ViT-B-32/openai", key)
        words = shlex.split(args)[1:]
        target = None
        if ">" in words:  # a shell redirect of stdout
            words, target = words[:words.index(">")], words[words.index(">") + 1]
        code, out, err = run(words, capsys)
        assert code == 0, f"README command failed: {command}\n-> {args}\n{err[-3000:]}"
        if target is not None:
            Path(target).write_text(out)
        ran.append(command)
        if key is None and Path("photos.h5").exists():
            with FeatureStore("photos.h5") as reader:
                key = reader.encoders()[0]
    assert any(c.startswith("fs eval ") for c in ran) and any(c.startswith("fs predict ") for c in ran)
