"""The stages' table (``triton_ner_loadtest.stages``): the medians of each stage's runs, and what each stage adds
to the one before it; the staged servings themselves are served in tests/integration/test_stages.py."""

from triton_ner.core import names
from triton_ner_loadtest.alternate import OUTSIDE
from triton_ner_loadtest.stages import markdown


def run(outside: float) -> dict[str, float]:
    return {"texts/s": 1000.0, "tritonserver": 0.1, names.TEXT_STEP: outside - 0.1, OUTSIDE: outside}


def test_the_table_gives_each_stage_its_median_and_what_it_adds():
    found = {"answer": {"64x1": [run(0.20), run(0.22), run(0.21)], "64x8": [run(0.03)]},
             "read": {"64x1": [run(0.25)] * 3, "64x8": [run(0.02)]}}
    rows = markdown(found).splitlines()[2:]
    assert [row.split(" | ")[-2:] for row in rows] == [["0.210", "- |"], ["0.250", "+0.040 |"],
                                                        ["0.030", "- |"], ["0.020", "-0.010 |"]]
