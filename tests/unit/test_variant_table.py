"""The one table of variants: its entries, what an export writes from it, and that nothing else names them."""

import ast
from pathlib import Path

from triton_ner.core import variants
from triton_ner.core.variants import MODEL_FILES, Format, Precision, Target

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("triton_ner", "export", "loadtest", "client", "evaluate", "model_repository")


def test_every_entry_has_a_unique_name_and_a_model_file():
    assert len(set(variants.CONFIG_NAMES)) == len(variants.ENTRIES)
    for variant in variants.ENTRIES:
        assert variant.config_name and (variant.format, variant.precision) in MODEL_FILES, variant
        assert variant.label == f"configs/{variant.config_name}.pbtxt"
    assert variants.default(Format.ONNX).label == "config.pbtxt"


def test_an_export_writes_entries_of_the_table_with_its_precision():
    everything = variants.exported(set(Format), set(Precision), Target.BOTH)
    assert everything[0] == variants.default(Format.ONNX)
    by_name = {v.config_name: v for v in variants.ENTRIES}
    for variant in everything[1:]:
        entry = by_name[variant.config_name]
        assert (variant.target, variant.format, variant.backend, variant.needs) == (
            entry.target, entry.format, entry.backend, entry.needs), variant
    assert {v.config_name for v in everything[1:]} == set(variants.CONFIG_NAMES)
    cuda = next(v for v in everything if v.config_name == variants.CUDA.config_name)
    assert cuda.precision is Precision.FP16  # exported with fp16: the runner casts to it
    only_torchscript = variants.exported({Format.TORCHSCRIPT}, {Precision.FP32}, Target.GPU)
    assert [(v.config_name, v.backend) for v in only_torchscript[1:]] == [
        (variants.GPU.config_name, variants.Backend.PYTORCH), (variants.CUDA.config_name, variants.Backend.PYTHON)]


def test_auto_takes_the_first_exported_variant_the_machine_has_what_it_needs_for():
    everything = set(variants.CONFIG_NAMES)
    assert variants.auto(everything, True, set()) == variants.CUDA.config_name
    assert variants.auto(everything, False, {"amx_bf16"}) == variants.OPENVINO_BF16.config_name
    assert variants.auto({variants.BF16.config_name}, False, {"avx512_bf16"}) == variants.BF16.config_name
    assert variants.auto(everything, False, {"avx512f"}) is None  # BF16 emulated: slower than FP32
    assert variants.auto({variants.INT8.config_name}, True, {"amx_bf16"}) is None  # INT8 only when named


def _string_literals(path: Path) -> set[str]:
    return {node.value for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Constant)
            and isinstance(node.value, str)}


def test_no_other_product_module_spells_a_config_name():
    """Config names that are no format, precision or device: only the table spells them."""
    own = {v.config_name for v in variants.ENTRIES} - {f.value for f in Format} - {p.value for p in Precision} - {
        "gpu", "cuda"}
    assert own == {"gpu_torchscript", "openvino_bf16", "openvino_int8", "openvino_bf16_backend"}
    table = PROJECT_ROOT / "triton_ner" / "core" / "variants.py"
    spelled = {str(path.relative_to(PROJECT_ROOT)): own & _string_literals(path)
               for folder in PRODUCT for path in (PROJECT_ROOT / folder).rglob("*.py") if path != table}
    assert {path: names for path, names in spelled.items() if names} == {}
