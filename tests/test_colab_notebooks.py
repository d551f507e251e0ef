"""The Colab notebooks run top to bottom on a CPU, offline, with tiny sizes.

Each notebook takes its sizes and paths from one cell tagged `parameters`
(papermill's convention). The test overrides them the way papermill does: it
inserts a cell of assignments right after that cell, then executes the
notebook with nbclient in a fresh `python3` kernel whose working directory is
a temporary one. Any cell error fails the test (nbclient's
CellExecutionError names the cell and shows its traceback); a notebook that
runs past its time limit fails too, as a guard against hangs. The install
cell runs only inside Colab, so nothing is downloaded here.
"""

import json
import pathlib
import re
import time

import nbformat
import pytest
from conftest import SHARED_DATA
from nbclient import NotebookClient

COLAB = pathlib.Path(__file__).resolve().parents[1] / "colab"
README = COLAB.parent / "README.md"
NOTEBOOKS = ("pretrain_on_tpu.ipynb", "finetune_and_export.ipynb")
# A guard against a hung cell or server, not a performance assertion.
NOTEBOOK_TIME_LIMIT_S = 420

# XLA is left off: compiling on two busy CPU cores costs more than the whole run.
TINY_PRETRAINING = {
    "PRESET": "bert_tiny", "SEQ_LENGTH": 32, "MAX_PREDICTIONS_PER_SEQ": 5,
    "GLOBAL_BATCH_SIZE": 8, "NUM_TRAIN_STEPS": 12, "NUM_WARMUP_STEPS": 2, "STEPS_PER_EPOCH": 4,
    "STEPS_PER_EXECUTION": 2, "LEARNING_RATE": 1e-3, "JIT_COMPILE": False,
}
TINY_FINETUNING = {
    "SEQ_LENGTH": 32, "BATCH_SIZE": 8, "NUM_TRAIN_STEPS": 12, "STEPS_PER_EPOCH": 4,
    "STEPS_PER_EXECUTION": 2,
    "MAX_TRAIN_EXAMPLES": 96, "MAX_EVAL_EXAMPLES": 32, "LEARNING_RATE": 1e-3,
    "JIT_COMPILE": False,
}


def _shared(*parts: str) -> str:
    """A file of ../shared/data, or "" so the notebook uses its offline default."""
    path = SHARED_DATA.joinpath(*parts)
    return str(path) if path.is_file() else ""


def _inject_parameters(notebook, parameters: dict) -> None:
    """Inserts `NAME = value` lines after the `parameters` cell, as papermill does."""
    tagged = [i for i, cell in enumerate(notebook.cells)
              if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1, "a notebook needs exactly one cell tagged 'parameters'"
    source = "\n".join(f"{name} = {value!r}" for name, value in parameters.items())
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = ["injected-parameters"]
    notebook.cells.insert(tagged[0] + 1, cell)


def _execute(name: str, parameters: dict, workdir: pathlib.Path, stop_before: str | None = None):
    """Runs the notebook in `workdir`; with `stop_before`, only the cells above that heading."""
    notebook = nbformat.read(COLAB / name, as_version=4)
    if stop_before is not None:
        end = next(i for i, cell in enumerate(notebook.cells)
                   if cell.cell_type == "markdown" and cell.source.startswith(stop_before))
        notebook.cells = notebook.cells[:end]
    _inject_parameters(notebook, parameters)
    deadline = time.monotonic() + NOTEBOOK_TIME_LIMIT_S
    NotebookClient(
        notebook,
        kernel_name="python3",
        timeout_func=lambda cell: max(1, int(deadline - time.monotonic())),
        resources={"metadata": {"path": str(workdir)}},
    ).execute()
    return notebook


def _outputs_text(notebook) -> str:
    return "\n".join(
        output.get("text", "") + json.dumps(output.get("data", {}).get("text/plain", ""))
        for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs)


def _has_image(notebook) -> bool:
    return any("image/png" in output.get("data", {})
               for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """Runs the pretraining notebook once; its output directory feeds the fine-tuning one."""
    workdir = tmp_path_factory.mktemp("pretrain_notebook")
    parameters = dict(TINY_PRETRAINING, VOCAB_FILE=_shared("vocab", "bert-base-uncased.txt"),
                      OUTPUT_DIR=str(workdir / "bert_pretrain"),
                      EXPORT_DIR=str(workdir / "bert_pretrain_export"))
    notebook = _execute("pretrain_on_tpu.ipynb", parameters, workdir)
    return notebook, workdir


def test_pretraining_notebook_writes_curves_a_google_checkpoint_and_a_text_savedmodel(
        pretrained):
    notebook, workdir = pretrained
    output_dir = workdir / "bert_pretrain"
    for name in ("bert_model.ckpt.index", "bert_config.json", "vocab.txt", "checkpoint"):
        assert (output_dir / name).is_file(), name
    assert list((output_dir / "checkpoints").glob("ckpt-12.index")), "training checkpoint"
    assert list((output_dir / "logs").rglob("events.out.tfevents.*")), "TensorBoard logs"
    assert (workdir / "bert_pretrain_export" / "1" / "saved_model.pb").is_file()
    assert _has_image(notebook), "the loss/accuracy plot"
    text = _outputs_text(notebook)
    assert "_DefaultDistributionStrategy with 1 replica(s)" in text
    assert "Colab: False; TPU: False" in text


def test_finetuning_notebook_fine_tunes_the_pretrained_checkpoint_exports_and_serves_it(
        pretrained, tmp_path):
    _, pretrain_dir = pretrained
    parameters = dict(TINY_FINETUNING, CHECKPOINT_DIR=str(pretrain_dir / "bert_pretrain"),
                      TRAIN_DATA=_shared("glue", "SST-2", "train.tsv"))
    notebook = _execute("finetune_and_export.ipynb", parameters, tmp_path)
    text = _outputs_text(notebook)
    assert "Fine-tuning the pretrained checkpoint" in text
    assert (tmp_path / "bert_classifier_export" / "1" / "saved_model.pb").is_file()
    assert "the served model agrees with the fine-tuned model" in text


def test_finetuning_notebook_without_a_checkpoint_saves_and_loads_a_random_initialisation(
        tmp_path):
    # Training, export and serving are the same as above; this runs the cells up to them.
    parameters = dict(TINY_FINETUNING, CHECKPOINT_DIR=str(tmp_path / "absent"), TRAIN_DATA="")
    notebook = _execute("finetune_and_export.ipynb", parameters, tmp_path,
                        stop_before="## Fine-tune and evaluate")
    text = _outputs_text(notebook)
    assert "RANDOMLY INITIALISED" in text
    random_init = tmp_path / "bert_finetune" / "random_init"
    assert (random_init / "bert_model.ckpt.index").is_file()
    assert (random_init / "vocab.txt").is_file(), "a vocabulary learned from the embedded texts"
    assert "loaded 39 variables; not used: []" in text  # BERT-Tiny's encoder, no heads


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebook_has_no_outputs_and_one_parameters_cell(name):
    notebook = nbformat.read(COLAB / name, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code
    for cell in code:
        assert cell.outputs == [], f"cell {cell.id} of {name} has outputs"
        assert cell.execution_count is None, f"cell {cell.id} of {name} has an execution count"
    tagged = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1


def test_readme_opens_each_notebook_in_colab_from_the_repository_the_notebooks_install():
    readme = README.read_text(encoding="utf-8")
    links = re.findall(r"https://colab\.research\.google\.com/github/([^/]+/[^/]+)/blob/[^/]+/"
                       r"colab/([\w.]+\.ipynb)", readme)
    assert sorted(name for _, name in links) == sorted(NOTEBOOKS)
    for name in NOTEBOOKS:
        sources = "\n".join(cell.source for cell in nbformat.read(COLAB / name, as_version=4).cells)
        installs = re.findall(r"git\+https://github\.com/([\w.-]+/[\w.-]+)", sources)
        assert installs and {repo for repo, _ in links} == set(installs), name
