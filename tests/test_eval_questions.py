"""Reading multiple-choice rows from the layouts benchmarks ship in (VLMEvalKit TSV, Hugging Face)."""

from __future__ import annotations

import base64
import io
import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from ssl4rl.errors import UserError
from ssl4rl.evaluation.protocols import PAPER_INSTRUCTION, question_prompt
from ssl4rl.evaluation.questions import (
    NA_STRINGS,
    add_rotations,
    limit_groups,
    load_image,
    load_images,
    load_questions,
    rows_to_questions,
)
from ssl4rl.evaluation.synthetic import SyntheticQuestion, png_base64, write_vlmeval_tsv
from ssl4rl.images import SkipSample


def png_bytes(seed: int, size=(40, 30)) -> bytes:
    return base64.b64decode(png_base64(seed, size))


def write_parquet(path, rows):
    pq.write_table(pa.Table.from_pylist(rows), path)
    return str(path)


def test_mmbench_excerpt(mmbench_sample):
    loaded = load_questions(mmbench_sample)
    assert [q.key for q in loaded.questions] == ["241", "252", "253"]
    first = loaded.questions[0]
    assert list(first.options) == ["A", "B"]  # empty C and D cells are not options
    assert first.answer == "B"
    assert first.l2_category == "attribute_reasoning" and first.category == "identity_reasoning"
    assert "\n" in first.hint  # multi-line quoted hint survives
    assert load_images(first)[0].size == (302, 232)
    prompt = question_prompt(first)
    assert prompt.startswith("Hint: ") and "\nOptions:\nA. Does Madelyn" in prompt
    assert prompt.endswith(f"\nB. {first.options['B']}\n{PAPER_INSTRUCTION} \n")
    assert question_prompt(first, "direct").endswith(
        "Answer with the option's letter from the given choices directly. \n"
    )


def test_vlmeval_tsv_references_and_rotations(tmp_path):
    questions = [SyntheticQuestion(options=("x", "y", "z"), answer="C", l2_category="logic_reasoning")]
    path = write_vlmeval_tsv(str(tmp_path / "q.tsv"), questions, with_rotations=True, first_index=7)
    loaded = load_questions(path)
    keys = [q.key for q in loaded.questions]
    assert keys == ["7", "1000007", "2000007"]
    assert {q.group for q in loaded.questions} == {"7"}
    assert [q.rotation for q in loaded.questions] == [0, 1, 2]
    # the copies' image cell is the index "7": they resolve to the original row's image
    images = [load_images(q)[0] for q in loaded.questions]
    assert all(im.tobytes() == images[0].tobytes() for im in images)
    # every rotation keeps the right text under its answer letter
    assert all(q.options[q.answer] == "z" for q in loaded.questions)


def test_large_indexes_without_originals_are_not_rotations(tmp_path):
    path = tmp_path / "ids.tsv"
    image = png_base64(1)
    path.write_text(
        "index\tquestion\tA\tB\tanswer\timage\n"
        f"5000001\tq1\tyes\tno\tA\t{image}\n"
        f"5000002\tq2\tyes\tno\tB\t{image}\n"
    )
    loaded = load_questions(str(path))
    assert [(q.group, q.rotation) for q in loaded.questions] == [("5000001", 0), ("5000002", 0)]


def test_generated_rotations_move_the_answer():
    loaded = [
        SyntheticQuestion(options=("a", "b", "c", "d"), answer="B"),
    ]
    # build through the TSV path to get MCQuestion objects
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        questions = load_questions(write_vlmeval_tsv(f"{tmp}/x.tsv", loaded, first_index=3)).questions
    rotated = add_rotations(questions)
    assert [q.key for q in rotated] == ["3", "1000003", "2000003", "3000003"]
    assert [q.answer for q in rotated] == ["B", "A", "D", "C"]
    assert all(q.options[q.answer] == "b" for q in rotated)
    assert [q.options["A"] for q in rotated] == ["a", "b", "c", "d"]
    assert len(limit_groups(rotated + add_rotations(questions), 1)) == 8  # whole groups kept


def test_list_of_base64_images_in_one_cell(tmp_path):
    cell = str([png_base64(1), png_base64(2)])
    path = tmp_path / "multi.tsv"
    path.write_text(f"index\tquestion\tA\tB\tanswer\timage\n0\tSame?\tyes\tno\tA\t{cell}\n")
    (question,) = load_questions(str(path)).questions
    assert len(load_images(question)) == 2


def test_huggingface_mmbench_parquet(tmp_path):
    rows = [
        {
            "index": 3,
            "question": "What colour?",
            "hint": None,
            "A": "red",
            "B": "blue",
            "C": None,
            "D": None,
            "answer": "B",
            "category": "attribute_recognition",
            "image": png_base64(3),
            "source": "x",
            "l2-category": "finegrained_perception (instance-level)",
            "comment": None,
            "split": "dev",
        }
    ]
    (q,) = load_questions(write_parquet(tmp_path / "validation-00000.parquet", rows)).questions
    assert q.options == {"A": "red", "B": "blue"} and q.hint == "" and q.answer == "B"
    assert load_images(q)[0].size == (64, 48)


def test_seed_bench_layout(tmp_path):
    rows = [
        {
            "question_id": "101669",
            "question": "How many towels are in the image?",
            "choice_a": "One",
            "choice_b": "Two",
            "choice_c": "Three",
            "choice_d": "Four",
            "answer": "A",
            "question_type_id": 5,
            "data_type": "image",
            "image": [{"bytes": png_bytes(5), "path": None}],
        }
    ]
    (q,) = load_questions(write_parquet(tmp_path / "seed.parquet", rows)).questions
    assert q.key == "101669" and q.category == "5"
    assert q.options == {"A": "One", "B": "Two", "C": "Three", "D": "Four"}
    assert load_images(q)[0].size == (40, 30)


def test_blink_layout(tmp_path):
    rows = [
        {
            "idx": "val_Art_Style_1",
            "question": "Which image shares the style of the reference?",
            "sub_task": "Art_Style",
            "image_1": {"bytes": png_bytes(1), "path": None},
            "image_2": {"bytes": png_bytes(2), "path": None},
            "image_3": {"bytes": png_bytes(3), "path": None},
            "image_4": None,
            "choices": ["the second image", "the third image"],
            "answer": "(B)",
        }
    ]
    (q,) = load_questions(write_parquet(tmp_path / "blink.parquet", rows)).questions
    assert q.key == "val_Art_Style_1" and q.category == "Art_Style"
    assert q.options == {"A": "the second image", "B": "the third image"} and q.answer == "B"
    assert len(load_images(q)) == 3


def test_mmstar_inline_options(tmp_path):
    rows = [
        {
            "index": 0,
            "question": "Which option describes the scene?\nOptions: A: A cat on a mat., B: A dog, in a car., "
            "C: Two birds., D: Nothing",
            "image": {"bytes": png_bytes(0), "path": None},
            "answer": "B",
            "category": "coarse perception",
            "l2_category": "image scene and topic",
            "meta_info": {"source": "x"},
        }
    ]
    (q,) = load_questions(write_parquet(tmp_path / "mmstar.parquet", rows)).questions
    assert q.question == "Which option describes the scene?"
    assert q.options == {"A": "A cat on a mat.", "B": "A dog, in a car.", "C": "Two birds.", "D": "Nothing"}
    assert q.category == "coarse perception" and q.l2_category == "image scene and topic"


def test_realworldqa_options_on_lines(tmp_path):
    rows = [
        {
            "image": {"bytes": png_bytes(9), "path": None},
            "question": "Which object is closer?\nA. The car\nB. The tree\nC. The sign\n"
            "Please answer directly with only the letter of the correct option and nothing else.",
            "answer": "B",
        },
        {
            "image": {"bytes": png_bytes(8), "path": None},
            "question": "How many cars are there?",
            "answer": "3",
        },
    ]
    loaded = load_questions(write_parquet(tmp_path / "rwqa.parquet", rows))
    (q,) = loaded.questions
    assert q.question == "Which object is closer?"
    assert q.options == {"A": "The car", "B": "The tree", "C": "The sign"}
    assert q.key == "0"
    assert loaded.skipped == {"no_options": 1}  # free-form rows are not multiple choice


def test_mme_realworld_option_lists(tmp_path):
    options = ["(A) 12", "(B) 15", "(C) 18", "(D) 21", "(E) The image does not feature the answer"]
    tsv = tmp_path / "MME-RealWorld-Lite.tsv"
    tsv.write_text(
        "index\tquestion\tmulti-choice options\tanswer\tcategory\tl2-category\timage\n"
        f"11\tWhat is the speed limit?\t{options!r}\tC\tPerception\tOCR\t{png_base64(11)}\n"
    )
    (q,) = load_questions(str(tsv)).questions
    assert q.options["C"] == "18" and q.options["E"] == "The image does not feature the answer"
    assert q.category == "Perception" and q.l2_category == "OCR"
    lmms = [{"question_id": "q1", "question": "Speed?", "multi-choice options": options, "answer": "A",
             "bytes": png_base64(4), "category": "Perception", "l2-category": "OCR"}]  # fmt: skip
    (q,) = load_questions(write_parquet(tmp_path / "lmms.parquet", lmms)).questions
    assert q.options["A"] == "12" and load_images(q)[0].size == (64, 48)


def test_jsonl_and_answer_given_as_option_text(tmp_path):
    path = tmp_path / "q.jsonl"
    row = {
        "id": 4,
        "question": "Colour?",
        "choices": ["red", "green"],
        "answer": "green",
        "image": png_base64(4),
    }
    path.write_text(json.dumps(row) + "\n")
    (q,) = load_questions(str(path)).questions
    assert q.answer == "B"


def test_skip_reasons(tmp_path):
    path = tmp_path / "odd.tsv"
    image = png_base64(0)
    path.write_text(
        "index\tquestion\tA\tB\tanswer\timage\n"
        f"1\tok\tyes\tno\tA\t{image}\n"
        f"2\tno answer\tyes\tno\t\t{image}\n"
        f"3\tbad answer\tyes\tno\tE\t{image}\n"
        f"4\tone option\tyes\t\tA\t{image}\n"
    )
    loaded = load_questions(str(path))
    # letter columns: every row with a letter answer is a question, as VLMEvalKit scores it; row 3's
    # answer has no option (nobody can get it right) and row 4 has one option
    assert [q.key for q in loaded.questions] == ["1", "3", "4"]
    assert loaded.skipped == {"no_answer": 1}
    assert loaded.questions[1].answer == "E" and "E" not in loaded.questions[1].options
    assert loaded.questions[2].options == {"A": "yes"}
    # other layouts still need two options and an answer among them
    rows = [
        {"index": 1, "question": "q", "choices": ["yes"], "answer": "A"},
        {"index": 2, "question": "q", "choices": ["yes", "no"], "answer": "maybe"},
    ]
    loaded = rows_to_questions(rows, list(rows[0]))
    assert loaded.questions == [] and loaded.skipped == {"no_options": 1, "answer_not_an_option": 1}


def test_na_like_option_cells_are_no_options_as_pandas_reads_them(tmp_path):
    """VLMEvalKit reads its files with pandas' defaults: whatever pandas calls missing is no option there."""
    path = tmp_path / "na.tsv"
    image = png_base64(0)
    lines = ["index\tquestion\thint\tA\tB\tC\tanswer\timage"]
    for number, cell in enumerate(sorted(NA_STRINGS - {""})):
        lines.append(f"{number}\tq{number}\t{cell}\tyes\t{cell}\tno\tB\t{image}")
    lines.append(f"99\tq99\tNONE\tyes\tN/A (none)\tNone of these\tC\t{image}")  # not missing to pandas
    path.write_text("\n".join(lines) + "\n")
    frame = pd.read_csv(path, sep="\t")  # VLMEvalKit's `load` for a .tsv
    questions = {q.key: q for q in load_questions(str(path)).questions}
    assert len(questions) == len(frame)
    for record in frame.to_dict("records"):
        q = questions[str(record["index"])]
        expected = {letter: str(record[letter]) for letter in "ABC" if not pd.isna(record[letter])}
        assert q.options == expected, record
        assert q.hint == ("" if pd.isna(record["hint"]) else record["hint"])
    assert questions["0"].answer == "B" and "B" not in questions["0"].options  # counted, never right


def test_orphan_circular_copies_are_dropped_in_a_circular_file(tmp_path):
    questions = [SyntheticQuestion(options=("x", "y"), answer="A") for _ in range(2)]
    path = write_vlmeval_tsv(str(tmp_path / "q.tsv"), questions, with_rotations=True)
    lines = (tmp_path / "q.tsv").read_text().splitlines()
    # drop the original of question 1 but keep its copy 1000001
    kept = [line for line in lines if not line.startswith("1\t")]
    (tmp_path / "q.tsv").write_text("\n".join(kept) + "\n")
    loaded = load_questions(path)
    assert [q.key for q in loaded.questions] == ["0", "1000000"]
    assert loaded.skipped == {"orphan_circular_copy": 1}


def test_bad_inputs_raise_user_errors(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        load_questions(str(tmp_path / "missing.tsv"))
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(UserError, match="unsupported"):
        load_questions(str(tmp_path / "x.txt"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="no .tsv"):
        load_questions(str(empty))


def test_load_image_variants(tmp_path):
    raw = png_bytes(1)
    path = tmp_path / "im.png"
    path.write_bytes(raw)
    image = Image.open(io.BytesIO(raw))
    for ref in (raw, base64.b64encode(raw).decode(), {"bytes": raw, "path": None}, str(path), image):
        assert load_image(ref).size == (40, 30)
    tiny = io.BytesIO()
    Image.new("RGB", (5, 3)).save(tiny, format="PNG")
    assert load_image(tiny.getvalue()).size == (5, 3)  # small benchmark images are kept, not skipped
    with pytest.raises(SkipSample):
        load_image("!!not base64 and not a path!!")
    with pytest.raises(SkipSample):
        load_image(b"garbage")
