"""The named datasets featurestore knows: where each lives under a data root, which reader
(layout family) reads it, its prompt templates and its published split sizes.

The 11 few-shot datasets and the four ImageNet shift sets follow CoOp's DATASETS.md layout
(github.com/KaiyangZhou/CoOp); CIFAR-10/100, STL-10 and MNIST torchvision's on-disk formats; any folder in
CLIP_benchmark's webdataset export layout is read with ``wds:<folder>``. Sizes are the rows the
CoOp paper's dataset table lists (train / val / test); ImageNet's test is its official val set.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from featurestore.errors import SourceError


@dataclass(frozen=True)
class DatasetInfo:
    """One named dataset.

    ``family`` names the reader module; ``options`` are that reader's per-dataset facts (split
    file, image folder, class-name clean-ups). ``shift_of`` marks a test-only distribution-shift
    set of another dataset: its labels index that dataset's classes, and ``subset`` says the
    test images cover only some of them (ImageNet-A/-R: 200 classes), so predictions are made
    among those classes only.
    """

    name: str
    title: str
    family: str
    folder: str
    n_classes: int
    sizes: dict[str, int]
    templates: str
    options: dict[str, Any] = field(default_factory=dict)
    shift_of: str | None = None
    subset: bool = False

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(self.sizes)


def _coop(name: str, title: str, folder: str, images: str, split_file: str, n_classes: int,
          sizes: tuple[int, int, int], **options: Any) -> DatasetInfo:
    return DatasetInfo(name, title, "coop_split", folder, n_classes,
                       dict(zip(("train", "val", "test"), sizes)), name,
                       {"images": images, "split_file": split_file, **options})


# Caltech101's split file never holds these two folders (CoOp drops them when it makes splits);
# EuroSAT's class names are the spelled-out names CoOp writes into its split file.
CALTECH_DROPPED = ("BACKGROUND_Google", "Faces_easy")
CALTECH_RENAMED = {"airplanes": "airplane", "Faces": "face", "Leopards": "leopard", "Motorbikes": "motorbike"}
EUROSAT_RENAMED = {
    "AnnualCrop": "Annual Crop Land", "Forest": "Forest", "HerbaceousVegetation": "Herbaceous Vegetation Land",
    "Highway": "Highway or Road", "Industrial": "Industrial Buildings", "Pasture": "Pasture Land",
    "PermanentCrop": "Permanent Crop Land", "Residential": "Residential Buildings", "River": "River",
    "SeaLake": "Sea or Lake",
}

DATASETS: dict[str, DatasetInfo] = {info.name: info for info in (
    DatasetInfo("imagenet", "ImageNet", "imagenet_folders", "imagenet", 1000,
                {"train": 1_281_167, "test": 50_000}, "imagenet", {"kind": "imagenet"}),
    _coop("caltech101", "Caltech101", "caltech-101", "101_ObjectCategories", "split_zhou_Caltech101.json",
          100, (4128, 1649, 2465), dropped=CALTECH_DROPPED, renamed=CALTECH_RENAMED),
    _coop("oxford_pets", "OxfordPets", "oxford_pets", "images", "split_zhou_OxfordPets.json",
          37, (2944, 736, 3669)),
    _coop("stanford_cars", "StanfordCars", "stanford_cars", ".", "split_zhou_StanfordCars.json",
          196, (6509, 1635, 8041)),
    _coop("oxford_flowers", "Flowers102", "oxford_flowers", "jpg", "split_zhou_OxfordFlowers.json",
          102, (4093, 1633, 2463)),
    _coop("food101", "Food101", "food-101", "images", "split_zhou_Food101.json",
          101, (50500, 20200, 30300)),
    DatasetInfo("fgvc_aircraft", "FGVCAircraft", "fgvc_variants", "fgvc_aircraft", 100,
                {"train": 3334, "val": 3333, "test": 3333}, "fgvc_aircraft", {"images": "images"}),
    _coop("sun397", "SUN397", "sun397", "SUN397", "split_zhou_SUN397.json",
          397, (15880, 3970, 19850)),
    _coop("dtd", "DTD", "dtd", "images", "split_zhou_DescribableTextures.json",
          47, (2820, 1128, 1692)),
    _coop("eurosat", "EuroSAT", "eurosat", "2750", "split_zhou_EuroSAT.json",
          10, (13500, 5400, 8100), renamed=EUROSAT_RENAMED),
    _coop("ucf101", "UCF101", "ucf101", "UCF-101-midframes", "split_zhou_UCF101.json",
          101, (7639, 1898, 3783)),
    DatasetInfo("imagenetv2", "ImageNet-V2", "imagenet_folders", "imagenetv2", 1000, {"test": 10_000},
                "imagenet", {"kind": "numbered", "images": "imagenetv2-matched-frequency-format-val"},
                shift_of="imagenet"),
    DatasetInfo("imagenet_sketch", "ImageNet-Sketch", "imagenet_folders", "imagenet-sketch", 1000,
                {"test": 50_889}, "imagenet", {"kind": "wnid", "images": "images"}, shift_of="imagenet"),
    DatasetInfo("imagenet_a", "ImageNet-A", "imagenet_folders", "imagenet-adversarial", 200, {"test": 7_500},
                "imagenet", {"kind": "wnid", "images": "imagenet-a"}, shift_of="imagenet", subset=True),
    DatasetInfo("imagenet_r", "ImageNet-R", "imagenet_folders", "imagenet-rendition", 200, {"test": 30_000},
                "imagenet", {"kind": "wnid", "images": "imagenet-r"}, shift_of="imagenet", subset=True),
    DatasetInfo("cifar10", "CIFAR-10", "torchvision_sets", "cifar-10-batches-py", 10,
                {"train": 50_000, "test": 10_000}, "cifar10", {"dataset": "CIFAR10"}),
    DatasetInfo("cifar100", "CIFAR-100", "torchvision_sets", "cifar-100-python", 100,
                {"train": 50_000, "test": 10_000}, "cifar100", {"dataset": "CIFAR100"}),
    DatasetInfo("stl10", "STL-10", "torchvision_sets", "stl10_binary", 10,
                {"train": 5_000, "test": 8_000}, "stl10", {"dataset": "STL10", "split_argument": True}),
    DatasetInfo("mnist", "MNIST", "torchvision_sets", "MNIST", 10, {"train": 60_000, "test": 10_000}, "mnist",
                {"dataset": "MNIST", "classes": [str(digit) for digit in range(10)]}),
)}

# The 11 datasets of the few-shot papers' Table 1, in their column order.
FEWSHOT_ELEVEN = ("imagenet", "caltech101", "oxford_pets", "stanford_cars", "oxford_flowers", "food101",
                  "fgvc_aircraft", "sun397", "dtd", "eurosat", "ucf101")
IMAGENET_SHIFTS = ("imagenetv2", "imagenet_sketch", "imagenet_a", "imagenet_r")
WDS_PREFIX = "wds:"


def dataset_info(name: str) -> DatasetInfo:
    """The catalogue entry of ``name``; ``wds:<folder>`` names a CLIP_benchmark webdataset folder."""
    if name.startswith(WDS_PREFIX):
        folder = name[len(WDS_PREFIX):]
        if not folder:
            raise SourceError("wds: needs a folder, e.g. wds:wds_cars (relative to --root)")
        stem = folder.rstrip("/").split("/")[-1]
        return DatasetInfo(name, stem, "clip_benchmark_wds", folder, 0, {"train": 0, "test": 0}, name)
    info = DATASETS.get(name)
    if info is None:
        raise SourceError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)} (or wds:<folder>); "
                          "see `fs datasets`")
    return info
