"""The typed configs of shared stages: a corpus, a reference or packaged model, an evaluation protocol.

Apart from the tables that instantiate them (esa.registry) so that adding a model or protocol there does not
change the code a corpus or training stage depends on (DVC params carry the values).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


def stage_params(config) -> dict:
    """A config as the params of the stage it drives: a description documents, it changes nothing computed."""
    data = asdict(config)
    data.pop("description", None)
    return data


@dataclass(frozen=True)
class CorpusConfig:
    """A corpus split by document; the registry's are built from text every Python install carries."""

    name: str
    # Documents are assigned to splits by a hash of their path: fractions of documents per split.
    calibration_fraction: float = 0.1
    evaluation_fraction: float = 0.1
    # Byte caps keep corpus building and training fast on two cores; 0 = no cap.
    max_train_bytes: int = 0
    max_calibration_bytes: int = 0
    max_evaluation_bytes: int = 0

    def params(self) -> dict:
        return stage_params(self)


@dataclass(frozen=True)
class LocalTextCorpus(CorpusConfig):
    """A corpus from the user's own text: a folder (each file one document), a ``.txt`` file (documents
    separated by ``separator``, default a run of blank lines) or a ``.jsonl`` file (one document per row).

    ``path`` is relative to the project root (where dvc.yaml lives) or absolute; ``format`` ``auto`` picks
    folder / txt / jsonl from the path.
    """

    kind: str = "local_text"
    path: str = ""
    format: str = "auto"
    glob: str = "**/*"  # folder: which files are documents (hidden and binary files are skipped)
    separator: str = ""  # txt: the literal line between documents; "" = one or more blank lines
    text_field: str = "text"  # jsonl
    id_field: str = ""  # jsonl: "" = ids from the file name and a hash of the text


@dataclass(frozen=True)
class HFDatasetCorpus(CorpusConfig):
    """A corpus from a Hugging Face dataset (``datasets.load_dataset``), read from the datasets cache.

    The rows of ``splits`` are pooled and re-split by document; ``group`` says what a document is: ``rows`` (each
    non-empty row) or ``wikitext_articles`` (consecutive rows from one `` = Title = `` heading line to the next,
    for WikiText, whose rows are lines).
    """

    kind: str = "hf_dataset"
    dataset: str = ""
    config: str = ""
    splits: list[str] = field(default_factory=lambda: ["train"])
    text_field: str = "text"
    group: str = "rows"
    revision: str = ""


CORPUS_KINDS: dict[str, type[CorpusConfig]] = {"local_text": LocalTextCorpus, "hf_dataset": HFDatasetCorpus}


def corpus_config(params: dict) -> CorpusConfig:
    """The config a corpus stage's params describe: a spec's own corpus by its ``kind``, else a registry one."""
    kind = params.get("kind")
    if kind is None:
        return CorpusConfig(**params)
    if kind not in CORPUS_KINDS:
        raise ValueError(f"unknown corpus kind '{kind}' (known: {', '.join(CORPUS_KINDS)})")
    return CORPUS_KINDS[kind](**params)


@dataclass(frozen=True)
class ReferenceModel:
    """A small Llama-architecture causal LM trained deterministically on CPU from a corpus."""

    name: str
    corpus: str
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    max_position_embeddings: int
    train_steps: int
    batch_size: int
    seq_len: int
    learning_rate: float
    seed: int = 0
    description: str = ""

    def params(self) -> dict:
        return stage_params(self)


@dataclass(frozen=True)
class MoEReferenceModel(ReferenceModel):
    """A Mixtral-shaped sparse mixture of experts trained by the reference recipe.

    ``intermediate_size`` is per expert; every token passes through ``experts_per_token`` experts, so the active
    MLP width is ``experts_per_token * intermediate_size``. ``router_aux_loss_coef`` weights Mixtral's load-balancing
    loss during training (it never enters an evaluation loss).
    """

    num_experts: int = 4
    experts_per_token: int = 2
    router_aux_loss_coef: float = 0.02


def reference_config(params: dict) -> ReferenceModel:
    """The config a reference stage's params describe: a sparse MoE when they name experts, else dense."""
    return (MoEReferenceModel if "num_experts" in params else ReferenceModel)(**params)


@dataclass(frozen=True)
class InstructModel:
    """A reference model fine-tuned on instruction pairs (docstring → function) from its corpus's train split.

    Same architecture, tokenizer and pre-training as ``base``; the tokenizer gains a chat template. The loss covers
    the response tokens only; pairs longer than ``seq_len`` tokens are skipped.
    """

    name: str
    base: str
    corpus: str
    train_steps: int
    batch_size: int
    seq_len: int
    learning_rate: float
    max_pairs: int = 0  # 0 = every pair the train split yields
    seed: int = 0
    description: str = ""

    def params(self) -> dict:
        return stage_params(self)


@dataclass(frozen=True)
class PackagedModel:
    """A pretrained causal LM shipped as a GGUF file inside a pip package; a stage converts it to float32.

    ``package`` is the distribution name pip installs, ``filename`` the GGUF file somewhere inside it, and
    ``quantization`` the GGUF file type the file is expected to carry (the stage records the one it reads).
    ``version`` pins the package: the GGUF lives outside the project, so the pin in the params is what makes an
    upgrade re-run the conversion (the stage refuses any other installed version).
    """

    name: str
    package: str
    filename: str
    quantization: str
    version: str = ""
    description: str = ""

    def params(self) -> dict:
        return stage_params(self)


@dataclass(frozen=True)
class Protocol:
    """An evaluation budget: window length, stride, and how many windows each seed samples."""

    name: str
    context: int
    stride: int
    max_windows: int
    batch_size: int
    description: str = ""
