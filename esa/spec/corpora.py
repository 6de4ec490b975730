"""Corpora a spec declares itself (``corpora:``): the user's own text files or a Hugging Face dataset.

Runs name them in ``data:`` like the registry's corpora; each becomes one ``corpus.<name>`` stage that splits the
documents by hash exactly as the registry's are split (stages/text_corpus.py).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from esa.configs import CorpusConfig, HFDatasetCorpus, LocalTextCorpus


class _CorpusBase(BaseModel):
    model_config = ConfigDict(extra="forbid")
    config_class: ClassVar[type[CorpusConfig]] = CorpusConfig

    calibration_fraction: float = Field(0.1, gt=0, lt=1, description="fraction of documents in the calibration split")
    evaluation_fraction: float = Field(0.1, gt=0, lt=1, description="fraction of documents in the evaluation split")
    max_train_bytes: int = Field(0, ge=0, description="byte cap of the train split (0 = no cap)")
    max_calibration_bytes: int = Field(0, ge=0, description="byte cap of the calibration split (0 = no cap)")
    max_evaluation_bytes: int = Field(0, ge=0, description="byte cap of the evaluation split (0 = no cap)")

    @model_validator(mode="after")
    def _fractions(self):
        if self.calibration_fraction + self.evaluation_fraction >= 1:
            raise ValueError("calibration_fraction and evaluation_fraction must sum to less than 1 (the rest is train)")
        return self

    def stage_config(self, name: str) -> CorpusConfig:
        """The stage's config (its params): this corpus under its name."""
        return self.config_class(name=name, **self.model_dump())


class LocalTextSpec(_CorpusBase):
    """The user's own text: a folder (each file one document), a .txt file or a .jsonl file."""

    config_class: ClassVar[type[CorpusConfig]] = LocalTextCorpus

    kind: Literal["local_text"]
    path: str = Field(min_length=1, description=(
        "folder or file; relative to the project root (where dvc.yaml lives) or absolute. A DVC dependency of "
        "the corpus stage: editing the text rebuilds the corpus and everything after it"))
    format: Literal["auto", "folder", "txt", "jsonl"] = Field(
        "auto", description="auto: folder for a folder, jsonl for .jsonl/.ndjson, else txt")
    glob: str = Field("**/*", min_length=1, description=(
        "folder: which files are documents (hidden, binary and non-UTF-8 files are skipped and listed)"))
    separator: str = Field("", description=(
        "txt: a line of exactly this text separates documents (e.g. '---'); empty: a run of blank lines does, "
        "so each paragraph is one document"))
    text_field: str = Field("text", min_length=1, description="jsonl: the field holding a document's text")
    id_field: str = Field("", description="jsonl: a field holding unique document ids (empty: file name + text hash)")


class HFDatasetSpec(_CorpusBase):
    """A Hugging Face dataset read by `datasets.load_dataset` (pip install 'esa[hf]'); offline, from its cache."""

    config_class: ClassVar[type[CorpusConfig]] = HFDatasetCorpus

    kind: Literal["hf_dataset"]
    dataset: str = Field(min_length=1, description=(
        "dataset id on the hub (e.g. wikitext), or a dataset folder on disk written as a path (./…, /…), which "
        "is then a DVC dependency like local text"))
    config: str = Field("", description="dataset configuration (e.g. wikitext-2-raw-v1)")
    splits: list[str] = Field(["train"], min_length=1, description=(
        "the dataset's splits to read; their rows are pooled and re-split by document hash"))
    text_field: str = Field("text", min_length=1, description="the column holding the text")
    group: Literal["rows", "wikitext_articles"] = Field("rows", description=(
        "what one document is: each non-empty row, or (WikiText, whose rows are lines) the rows from one "
        "' = Title = ' heading to the next"))
    revision: str = Field("", description="dataset revision (git tag or commit); empty: the cached or latest one")

    @field_validator("splits")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("splits must be distinct")
        return value


SpecCorpus = Annotated[Union[LocalTextSpec, HFDatasetSpec], Field(discriminator="kind")]
