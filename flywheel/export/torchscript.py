"""TorchScript export of a model bundle and the Triton model repository of the ranker.

Layout written by :func:`export_bundle`::

    <out>/torchscript/user_tower.pt   user_idx [B] int64, user_dense [B, Du], history [B, H] -> [B, E]
    <out>/torchscript/item_tower.pt   item_idx, creator_idx [B], genres [B, G], tokens [B, T] -> [B, E]
    <out>/torchscript/ranker.pt       sparse_ids [B, 4] int64, dense_features [B, D], history_ids [B, H] int64
                                      -> (probs [B, 5], score [B, 1])
    <out>/index/item_embeddings.pt    the exact top-K index over the catalog (+ item_bias.pt, meta.json,
                                      content_ids.json): logit = u . v / temperature + bias
    <out>/triton/ranker/config.pbtxt  Triton (pytorch_libtorch) model config
    <out>/triton/ranker/1/model.pt    the scripted ranker
    <out>/triton_python/ranker/       the same model.pt behind Triton's python backend (config.pbtxt,
                                      1/model.py, 1/model.pt): the local stand-in for the libtorch
                                      backend, served by the tritonserver of the nvidia-pytriton wheel
    <out>/feature_spec.json           vocabularies and scaling for the serving-side encoder
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from flywheel.config.training import HEAD_NAMES
from flywheel.models.bundle import ModelBundle
from flywheel.models.encoding import encode_catalog
from flywheel.models.ranker import MultiTaskRanker, head_weight_vector
from flywheel.models.two_tower import TopKIndex


class ScoringRanker(nn.Module):
    """The serving form of the ranker: position fixed at 1, probabilities and weighted score."""

    def __init__(self, ranker: MultiTaskRanker, weights: torch.Tensor):
        super().__init__()
        self.ranker = ranker
        self.register_buffer("weights", weights)

    def forward(
        self, sparse_ids: torch.Tensor, dense_features: torch.Tensor, history_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Head probabilities [B, H] and the final score [B, 1]."""
        probs = torch.sigmoid(self.ranker(sparse_ids, dense_features, history_ids, None))
        return probs, (probs * self.weights).sum(dim=1, keepdim=True)  # type: ignore[operator]


def script_ranker(bundle: ModelBundle) -> torch.jit.ScriptModule:
    """The scripted serving ranker."""
    module = ScoringRanker(bundle.ranker, head_weight_vector(bundle.ranker_config)).eval()
    return torch.jit.script(module)


def triton_config(name: str, n_sparse: int, dense_dim: int, history_length: int, max_batch_size: int = 1024) -> str:
    """The config.pbtxt of the ranker for Triton's PyTorch (libtorch) backend."""
    return f"""name: "{name}"
platform: "pytorch_libtorch"
max_batch_size: {max_batch_size}
input [
  {{ name: "sparse_ids__0" data_type: TYPE_INT64 dims: [ {n_sparse} ] }},
  {{ name: "dense_features__1" data_type: TYPE_FP32 dims: [ {dense_dim} ] }},
  {{ name: "history_ids__2" data_type: TYPE_INT64 dims: [ {history_length} ] }}
]
output [
  {{ name: "probabilities__0" data_type: TYPE_FP32 dims: [ {len(HEAD_NAMES)} ] }},
  {{ name: "score__1" data_type: TYPE_FP32 dims: [ 1 ] }}
]
instance_group [ {{ kind: KIND_CPU count: 1 }} ]
dynamic_batching {{ max_queue_delay_microseconds: 500 }}
parameters: {{ key: "INFERENCE_MODE" value: {{ string_value: "true" }} }}
"""


def triton_python_config(name: str, max_batch_size: int = 1024) -> str:
    """The config.pbtxt of the ranker for Triton's python backend: the libtorch model's tensors, any
    widths (so one config serves every version of the ranker: ``<name>/<version>/model.pt``)."""
    return f"""name: "{name}"
backend: "python"
max_batch_size: {max_batch_size}
input [
  {{ name: "sparse_ids__0" data_type: TYPE_INT64 dims: [ -1 ] }},
  {{ name: "dense_features__1" data_type: TYPE_FP32 dims: [ -1 ] }},
  {{ name: "history_ids__2" data_type: TYPE_INT64 dims: [ -1 ] }}
]
output [
  {{ name: "probabilities__0" data_type: TYPE_FP32 dims: [ {len(HEAD_NAMES)} ] }},
  {{ name: "score__1" data_type: TYPE_FP32 dims: [ 1 ] }}
]
version_policy: {{ all {{ }} }}
instance_group [ {{ kind: KIND_CPU count: 1 }} ]
"""


def write_python_model(model_dir: Path, scripted_ranker: str | Path, version: int = 1) -> Path:
    """Write ``model_dir/<version>/{model.py, model.pt}`` and ``model_dir/config.pbtxt`` (python backend)."""
    version_dir = model_dir / str(version)
    version_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(scripted_ranker, version_dir / "model.pt")
    (version_dir / "model.py").write_text(TRITON_PYTHON_MODEL, encoding="utf-8")
    (model_dir / "config.pbtxt").write_text(triton_python_config(model_dir.name), encoding="utf-8")
    return version_dir


#: model.py of the python-backend ranker: runs the TorchScript model.pt beside it.
TRITON_PYTHON_MODEL = '''"""Triton python backend: the TorchScript ranker (model.pt) on CPU (written by flywheel)."""

import os
import sys
from pathlib import Path

# the stub's embedded interpreter ignores PYTHONPATH: the launcher passes the serving environment's path
sys.path[:0] = [p for p in os.environ.get("FLYWHEEL_TRITON_PYTHONPATH", "").split(os.pathsep) if p]

import torch  # noqa: E402
import triton_python_backend_utils as pb_utils  # noqa: E402

INPUTS = ("sparse_ids__0", "dense_features__1", "history_ids__2")
OUTPUTS = ("probabilities__0", "score__1")


class TritonPythonModel:
    def initialize(self, args):
        folder = Path(args["model_repository"]) / args["model_version"]
        torch.set_num_threads(1)
        self.model = torch.jit.load(str(folder / "model.pt"), map_location="cpu").eval()

    def execute(self, requests):
        responses = []
        for request in requests:
            # DLPack both ways: the backend's numpy bridge predates NumPy 2 (it reads a size of 0)
            tensors = [torch.from_dlpack(pb_utils.get_input_tensor_by_name(request, n).to_dlpack()) for n in INPUTS]
            with torch.inference_mode():
                probs, score = self.model(*tensors)
            outputs = [
                pb_utils.Tensor.from_dlpack(n, torch.utils.dlpack.to_dlpack(t.contiguous()))
                for n, t in zip(OUTPUTS, (probs, score))
            ]
            responses.append(pb_utils.InferenceResponse(output_tensors=outputs))
        return responses
'''


def export_bundle(bundle: ModelBundle, catalog: pd.DataFrame, out: str | Path, *, model_name: str = "ranker") -> Path:
    """Write TorchScript modules, the item index and the Triton repository under ``out``."""
    out = Path(out)
    ts_dir, index_dir = out / "torchscript", out / "index"
    version_dir = out / "triton" / model_name / "1"
    for folder in (ts_dir, index_dir, version_dir):
        folder.mkdir(parents=True, exist_ok=True)
    torch.jit.script(bundle.retrieval.user_tower.eval()).save(str(ts_dir / "user_tower.pt"))
    torch.jit.script(bundle.retrieval.item_tower.eval()).save(str(ts_dir / "item_tower.pt"))
    ranker = script_ranker(bundle)
    ranker.save(str(ts_dir / "ranker.pt"))
    shutil.copyfile(ts_dir / "ranker.pt", version_dir / "model.pt")
    n_sparse = len(bundle.ranker.embeddings)
    (out / "triton" / model_name / "config.pbtxt").write_text(
        triton_config(model_name, n_sparse, bundle.ranker.dense_dim, bundle.spec.history_length),
        encoding="utf-8",
    )
    write_python_model(out / "triton_python" / model_name, ts_dir / "ranker.pt")
    index = TopKIndex.build(bundle.retrieval, encode_catalog(catalog, bundle.spec))
    torch.save(index.embeddings, index_dir / "item_embeddings.pt")
    torch.save(index.bias, index_dir / "item_bias.pt")
    (index_dir / "meta.json").write_text(
        json.dumps(
            {"score": "user_embedding . item_embedding / temperature + item_bias", "temperature": index.temperature}
        ),
        encoding="utf-8",
    )
    (index_dir / "content_ids.json").write_text(json.dumps(list(index.content_ids)), encoding="utf-8")
    bundle.spec.save(out / "feature_spec.json")
    return out
